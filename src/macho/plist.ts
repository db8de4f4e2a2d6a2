import { FormatError } from '../errors.js';

// A small XML property-list reader and writer, covering Apple's plist DTD and the IOKit dialect
// XNU's OSUnserializeXML reads in __PRELINK_INFO: ID="n" on any value and <tag IDREF="n"/>
// referring back to it, and <integer size="64">0x...</integer> hex integers. Integers become bigint
// (prelink addresses are above 2^53). Pure, linear, with a nesting bound.

export type PlistValue = string | bigint | number | boolean | Uint8Array | Date | PlistValue[] | PlistDict;
export type PlistDict = Map<string, PlistValue>;

const MAX_DEPTH = 256;

export function isDict(v: PlistValue | undefined): v is PlistDict {
  return v instanceof Map;
}

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;

class Reader {
  pos = 0;
  readonly ids = new Map<string, PlistValue>();
  constructor(readonly s: string, readonly base: bigint) {}

  fail(detail: string, at = this.pos): never {
    throw new FormatError('XML plist', this.base + BigInt(at), detail);
  }

  /** Skip whitespace, comments, <?...?> and <!DOCTYPE ...>. */
  skipMisc(): void {
    const s = this.s;
    for (;;) {
      while (this.pos < s.length && isSpace(s.charCodeAt(this.pos))) this.pos++;
      if (s.startsWith('<!--', this.pos)) {
        const e = s.indexOf('-->', this.pos + 4);
        if (e < 0) this.fail('unterminated comment');
        this.pos = e + 3;
      } else if (s.startsWith('<?', this.pos)) {
        const e = s.indexOf('?>', this.pos + 2);
        if (e < 0) this.fail('unterminated processing instruction');
        this.pos = e + 2;
      } else if (s.startsWith('<!', this.pos)) {
        const e = s.indexOf('>', this.pos + 2);
        if (e < 0) this.fail('unterminated declaration');
        this.pos = e + 1;
      } else {
        return;
      }
    }
  }

  /** Read a tag at pos: name, attributes, whether it is closing (</x>) or empty (<x/>). */
  tag(): { name: string; attrs: Map<string, string>; closing: boolean; empty: boolean; at: number } {
    const s = this.s;
    const at = this.pos;
    if (s[this.pos] !== '<') this.fail('expected a tag');
    const end = s.indexOf('>', this.pos);
    if (end < 0) this.fail('unterminated tag');
    let body = s.slice(this.pos + 1, end);
    this.pos = end + 1;
    const closing = body.startsWith('/');
    if (closing) body = body.slice(1);
    const empty = body.endsWith('/');
    if (empty) body = body.slice(0, -1);
    const m = /^([A-Za-z_][\w.-]*)\s*/.exec(body);
    if (!m) this.fail('malformed tag', at);
    const attrs = new Map<string, string>();
    const re = /([A-Za-z_][\w.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')\s*/y;
    re.lastIndex = m[0].length;
    while (re.lastIndex < body.length) {
      const a = re.exec(body);
      if (!a) this.fail('malformed attribute', at);
      attrs.set(a[1]!, a[2] ?? a[3] ?? '');
    }
    return { name: m[1]!, attrs, closing, empty, at };
  }

  /** Text up to the closing tag </name>. */
  text(name: string): string {
    const close = `</${name}>`;
    const e = this.s.indexOf(close, this.pos);
    if (e < 0) this.fail(`missing ${close}`);
    const t = this.s.slice(this.pos, e);
    if (t.includes('<')) this.fail(`markup inside <${name}>`);
    this.pos = e + close.length;
    return decodeEntities(t, this, this.pos);
  }

  value(depth: number): PlistValue {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    this.skipMisc();
    const t = this.tag();
    if (t.closing) this.fail(`unexpected </${t.name}>`, t.at);
    const ref = t.attrs.get('IDREF');
    if (ref !== undefined) {
      if (!t.empty) this.fail('IDREF on a non-empty element', t.at);
      const v = this.ids.get(ref);
      if (v === undefined) this.fail(`IDREF="${ref}" names no earlier ID`, t.at);
      return v;
    }
    const v = this.element(t, depth);
    const id = t.attrs.get('ID');
    if (id !== undefined) this.ids.set(id, v);
    return v;
  }

  element(t: { name: string; attrs: Map<string, string>; empty: boolean; at: number }, depth: number): PlistValue {
    switch (t.name) {
      case 'dict': {
        const d: PlistDict = new Map();
        if (t.empty) return d;
        for (;;) {
          this.skipMisc();
          const k = this.tag();
          if (k.closing && k.name === 'dict') return d;
          if (k.name !== 'key' || k.closing) this.fail(`expected <key> in <dict>, found <${k.closing ? '/' : ''}${k.name}>`, k.at);
          const key = k.empty ? '' : this.text('key');
          d.set(key, this.value(depth + 1));
        }
      }
      case 'array': {
        const a: PlistValue[] = [];
        if (t.empty) return a;
        for (;;) {
          this.skipMisc();
          if (this.s.startsWith('</array>', this.pos)) {
            this.pos += 8;
            return a;
          }
          a.push(this.value(depth + 1));
        }
      }
      case 'string':
        return t.empty ? '' : this.text('string');
      case 'integer': {
        const txt = t.empty ? '' : this.text('integer').trim();
        return parseInteger(txt, this, t.at);
      }
      case 'real': {
        const n = Number(t.empty ? '' : this.text('real').trim());
        if (Number.isNaN(n)) this.fail('bad <real>', t.at);
        return n;
      }
      case 'true':
      case 'false':
        if (!t.empty) this.text(t.name);
        return t.name === 'true';
      case 'data': {
        const txt = (t.empty ? '' : this.text('data')).replace(/\s+/g, '');
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(txt)) this.fail('bad base64 in <data>', t.at);
        return new Uint8Array(Buffer.from(txt, 'base64'));
      }
      case 'date': {
        const d = new Date(t.empty ? '' : this.text('date').trim());
        if (Number.isNaN(d.getTime())) this.fail('bad <date>', t.at);
        return d;
      }
      default:
        return this.fail(`unknown element <${t.name}>`, t.at);
    }
  }
}

function parseInteger(txt: string, r: Reader, at: number): bigint {
  const m = /^(-?)(0x[0-9a-fA-F]+|\d+)$/.exec(txt);
  if (!m) return r.fail(`bad <integer> "${txt.slice(0, 40)}"`, at);
  const v = BigInt(m[2]!);
  return m[1] ? -v : v;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeEntities(t: string, r: Reader, at: number): string {
  if (!t.includes('&')) return t;
  return t.replace(/&(#x[0-9a-fA-F]+|#\d+|\w+);?/g, (all, e: string) => {
    if (e.startsWith('#')) {
      const cp = e.startsWith('#x') ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      if (!(cp >= 0 && cp <= 0x10ffff)) r.fail(`character reference ${all} is not a Unicode code point`, at);
      return String.fromCodePoint(cp);
    }
    const v = ENTITIES[e];
    if (v === undefined) r.fail(`unknown entity ${all}`, at);
    return v;
  });
}

/** Parse an XML plist (with or without the <plist> wrapper). `base` is added to error offsets. */
export function parsePlist(text: string, base = 0n): PlistValue {
  const r = new Reader(text, base);
  r.skipMisc();
  let wrapped = false;
  if (text.startsWith('<plist', r.pos)) {
    r.tag();
    wrapped = true;
  }
  const v = r.value(0);
  r.skipMisc();
  if (wrapped) {
    const t = r.tag();
    if (!t.closing || t.name !== 'plist') r.fail('expected </plist>');
    r.skipMisc();
  }
  // A prelink info section is NUL-padded after the plist.
  const rest = text.slice(r.pos).replace(/\0+$/, '');
  if (rest.trim() !== '') r.fail('content after the top-level value');
  return v;
}

/** Parse a plist stored in bytes (a section, an Info.plist file); trailing NULs are ignored. */
export function parsePlistBytes(bytes: Uint8Array, base = 0n): PlistValue {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return parsePlist(new TextDecoder('utf-8').decode(bytes.subarray(0, end)), base);
}

// ---- writer ------------------------------------------------------------------------------

function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export interface PlistWriteOptions {
  /** IOKit style (as in __PRELINK_INFO): no XML declaration or <plist> wrapper, integers with size="64" in hex. */
  iokit?: boolean;
}

export function serializePlist(v: PlistValue, opts: PlistWriteOptions = {}): string {
  const lines: string[] = [];
  const emit = (x: PlistValue, ind: string): void => {
    if (typeof x === 'string') lines.push(`${ind}<string>${escape(x)}</string>`);
    else if (typeof x === 'bigint') {
      lines.push(opts.iokit ? `${ind}<integer size="64">0x${x.toString(16)}</integer>` : `${ind}<integer>${x.toString()}</integer>`);
    } else if (typeof x === 'number') lines.push(`${ind}<real>${x}</real>`);
    else if (typeof x === 'boolean') lines.push(`${ind}<${x}/>`);
    else if (x instanceof Uint8Array) lines.push(`${ind}<data>${Buffer.from(x).toString('base64')}</data>`);
    else if (x instanceof Date) lines.push(`${ind}<date>${x.toISOString().replace(/\.\d{3}Z$/, 'Z')}</date>`);
    else if (Array.isArray(x)) {
      if (x.length === 0) { lines.push(`${ind}<array/>`); return; }
      lines.push(`${ind}<array>`);
      for (const e of x) emit(e, ind + '\t');
      lines.push(`${ind}</array>`);
    } else {
      if (x.size === 0) { lines.push(`${ind}<dict/>`); return; }
      lines.push(`${ind}<dict>`);
      for (const [k, e] of x) {
        lines.push(`${ind}\t<key>${escape(k)}</key>`);
        emit(e, ind + '\t');
      }
      lines.push(`${ind}</dict>`);
    }
  };
  if (opts.iokit) {
    emit(v, '');
    return lines.join('\n') + '\n';
  }
  emit(v, '');
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    ...lines,
    '</plist>',
    '',
  ].join('\n');
}

/** Convenience getters for dictionary fields of a known type. */
export function dictString(d: PlistDict, k: string): string | undefined {
  const v = d.get(k);
  return typeof v === 'string' ? v : undefined;
}

export function dictInt(d: PlistDict, k: string): bigint | undefined {
  const v = d.get(k);
  return typeof v === 'bigint' ? v : undefined;
}
