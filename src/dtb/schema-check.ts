import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { YamlPath, YamlSource } from './layout-source.js';
import { yamlError, bigintsToHex } from './layout-source.js';

// JSON-schema validation of a YAML data file, reporting the first error at its place in the file.

// strictRequired/strictTypes off: the edits schema uses oneOf branches that only list required keys.
const ajv = new Ajv({ allErrors: false, strict: true, strictRequired: false, strictTypes: false });
const compiled = new WeakMap<object, ValidateFunction>();

function pathOf(e: ErrorObject): YamlPath {
  return e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function describe(e: ErrorObject): string {
  const where = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : 'document';
  if (e.keyword === 'additionalProperties') return `${where}: unknown key "${String(e.params.additionalProperty)}"`;
  if (e.keyword === 'enum') return `${where}: must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  if (e.keyword === 'anyOf') return `${where}: must be an integer or a "0x..." string`;
  return `${where}: ${e.message ?? e.keyword}`;
}

export function checkSchema(structure: string, schema: object, value: unknown, src: YamlSource): void {
  let validate = compiled.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(schema) as ValidateFunction;
    compiled.set(schema, validate);
  }
  if (validate(bigintsToHex(value))) return;
  const errs = validate.errors ?? [];
  // anyOf reports its branches first; the anyOf error itself is the readable one.
  const e = errs.find((x) => x.keyword === 'anyOf') ?? errs[0]!;
  throw yamlError(structure, src, pathOf(e), describe(e));
}
