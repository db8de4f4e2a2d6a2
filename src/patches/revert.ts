import { readFileSync } from 'node:fs';
import path from 'node:path';
import { FormatError, UsageError } from '../errors.js';
import { sha256 } from '../manifest.js';
import { OUT } from './prepare.js';
import { REPORT_JSON, REPORT_VERSION, type PatchReport } from './report.js';

// `m1prep patch --revert out/`: the original collection, rebuilt from the patched one and the
// report's recorded bytes. Both ends are checked: the patched file must be the one the report
// describes, and the result must hash to the original the report recorded.

export const REVERTED = 'kernelcache.original.macho';

export function readReport(outDir: string): PatchReport {
  const file = path.join(outDir, REPORT_JSON);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`${outDir}: no ${REPORT_JSON} here (is it an output directory of m1prep patch?)`);
  }
  let r: PatchReport;
  try {
    r = JSON.parse(text) as PatchReport;
  } catch (e) {
    throw new FormatError('patch report', 0n, `not JSON: ${(e as Error).message}`, file);
  }
  if (r?.m1prepPatchReport !== REPORT_VERSION || !Array.isArray(r.patches)) throw new FormatError('patch report', 0n, 'not an m1prep patch report (version 1)', file);
  return r;
}

export function revertBytes(patched: Uint8Array, report: PatchReport, file: string): Uint8Array {
  if (sha256(patched) !== report.patchedSha256) {
    throw new FormatError('patched kernelcache', 0n, `sha256 ${sha256(patched)} is not the ${report.patchedSha256} the report recorded: it changed after m1prep patch wrote it`, file);
  }
  const out = patched.slice();
  for (const p of report.patches) {
    if (p.status !== 'applied') continue;
    for (const e of p.edits) {
      const off = Number(BigInt(e.fileOffset));
      const before = Buffer.from(e.before, 'hex');
      const after = Buffer.from(e.after, 'hex');
      if (off < 0 || off + after.length > out.length || Buffer.compare(Buffer.from(out.subarray(off, off + after.length)), after) !== 0) {
        throw new FormatError('patch report', BigInt(off), `patch ${p.id}: the bytes at ${e.vmaddr} are not the ones it wrote`, file);
      }
      out.set(before, off);
    }
  }
  if (sha256(out) !== report.originalSha256) {
    throw new FormatError('patch report', 0n, `the restored kernelcache hashes to ${sha256(out)}, not the original ${report.originalSha256}`, file);
  }
  return out;
}

export function revertDir(outDir: string): { bytes: Uint8Array; report: PatchReport } {
  const report = readReport(outDir);
  const file = path.join(outDir, OUT.kernel);
  return { bytes: revertBytes(new Uint8Array(readFileSync(file)), report, file), report };
}
