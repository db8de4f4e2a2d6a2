import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync, readdirSync, statSync, writeFileSync, mkdtempSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { corpus } from '../helpers/cli.js';
import { which, tool } from '../../src/host/tools.js';
import { FormatError } from '../../src/errors.js';
import { parsePlist, serializePlist, isDict, type PlistValue } from '../../src/macho/plist.js';
import { parseMachO, serializeMachO, findSection } from '../../src/macho/macho.js';
import { buildFileset } from '../../src/macho/fileset-builder.js';
import { listKexts } from '../../src/macho/kext.js';
import { parsePrelinkInfo } from '../../src/macho/prelink.js';
import { extractImage, extractTargets } from '../../src/macho/kext-extract.js';
import { buildKcFixtures, toolchainMissing } from '../fixtures/kc/build.js';
import { objdumpHeaders } from '../fixtures/kc/llvm.js';

// The plist reader against Python's plistlib (an independent XML plist parser), the IOKit dialect
// XNU writes into __PRELINK_INFO (ID/IDREF, size="64" hex integers), and an older-style prelinked
// kernel: an MH_EXECUTE whose kexts are found only through that plist.

const python = which(['python3']);
if (!python) console.warn('python3 not installed: plist comparisons against plistlib skipped');

/** plistlib's view of an XML plist as JSON (ints as strings to keep 64-bit values exact). */
function plistlibJson(xml: string): unknown {
  const code = `import plistlib,sys,json,base64,datetime
def conv(v):
    if isinstance(v,bool): return v
    if isinstance(v,int): return {'int':str(v)}
    if isinstance(v,bytes): return {'data':base64.b64encode(v).decode()}
    if isinstance(v,dict): return {'dict':[[k,conv(x)] for k,x in v.items()]}
    if isinstance(v,list): return [conv(x) for x in v]
    if isinstance(v,float): return {'real':v}
    if isinstance(v,datetime.datetime): return {'date':v.strftime('%Y-%m-%dT%H:%M:%SZ')}
    return v
print(json.dumps(conv(plistlib.loads(sys.stdin.buffer.read()))))`;
  const r = spawnSync(python!, ['-c', code], { input: xml, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

function ours(v: PlistValue): unknown {
  if (typeof v === 'bigint') return { int: v.toString() };
  if (v instanceof Uint8Array) return { data: Buffer.from(v).toString('base64') };
  if (v instanceof Date) return { date: v.toISOString().replace(/\.\d{3}Z$/, 'Z') };
  if (typeof v === 'number') return { real: v };
  if (Array.isArray(v)) return v.map(ours);
  if (isDict(v)) return { dict: [...v].map(([k, x]) => [k, ours(x)]) };
  return v;
}

const infoPlists: string[] = [];
const walk = (d: string) => {
  for (const n of readdirSync(d)) {
    const p = path.join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else if (n.endsWith('.plist')) infoPlists.push(p);
  }
};
walk(path.join(corpus, 'kernel/dyld-kc-tests'));

const sample = `<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
  <key>s</key><string>a &lt;b&gt; &amp; &#x263A; &#65;</string>
  <key>i</key><integer>-42</integer>
  <key>big</key><integer>18446744073709551615</integer>
  <key>t</key><true/><key>f</key><false/>
  <key>d</key><data>
    AAECAwQF
  </data>
  <key>r</key><real>1.5</real>
  <key>when</key><date>2022-02-21T20:35:58Z</date>
  <key>a</key><array><string>x</string><array/><dict/></array>
  <!-- a comment -->
  <key>empty</key><string/>
</dict></plist>`;

describe('XML plist reader', () => {
  it.skipIf(!python).each(infoPlists.map((p) => [path.relative(corpus, p), p]))('%s parses as plistlib does', (_n, p) => {
    const xml = readFileSync(p, 'utf8');
    expect(ours(parsePlist(xml))).toEqual(plistlibJson(xml));
  });

  it.skipIf(!python)('covers every value type, entities and comments as plistlib does, and our writer round-trips', () => {
    const v = parsePlist(sample);
    expect(ours(v)).toEqual(plistlibJson(sample));
    const again = serializePlist(v);
    expect(ours(parsePlist(again))).toEqual(plistlibJson(again));
    expect(ours(parsePlist(again))).toEqual(ours(v));
  });

  it('reads the IOKit dialect: ID/IDREF and size="64" hex integers above 2^53', () => {
    const v = parsePlist(`<dict><key>_PrelinkInfoDictionary</key><array>
      <dict><key>CFBundleIdentifier</key><string ID="1">com.a</string><key>CFBundleVersion</key><string ID="2">1.0</string>
        <key>_PrelinkExecutableLoadAddr</key><integer size="64" ID="3">0xfffffff007a1c000</integer></dict>
      <dict><key>CFBundleIdentifier</key><string>com.b</string><key>CFBundleVersion</key><string IDREF="2"/>
        <key>OSBundleLibraries</key><dict ID="4"><key>com.a</key><string IDREF="2"/></dict>
        <key>Again</key><dict IDREF="4"/></dict>
    </array></dict>`);
    const list = (v as Map<string, PlistValue>).get('_PrelinkInfoDictionary') as Map<string, PlistValue>[];
    expect(list[0]!.get('_PrelinkExecutableLoadAddr')).toBe(0xfffffff007a1c000n);
    expect(list[1]!.get('CFBundleVersion')).toBe('1.0');
    expect((list[1]!.get('Again') as Map<string, PlistValue>).get('com.a')).toBe('1.0');
  });

  it('2000 mutations of real and IOKit-style plists: only FormatError', () => {
    const seeds = [sample, readFileSync(infoPlists[0]!, 'utf8'), '<dict ID="0"><key>a</key><array ID="1"><integer size="64" ID="2">0xffffffff00000000</integer><string IDREF="2"/></array><key>b</key><array IDREF="1"/></dict>'];
    const alphabet = '<>/="&;#x0aZ \n';
    let seed = 7;
    const r = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 2000; i++) {
      let t = seeds[i % seeds.length]!;
      for (let k = 0; k < 1 + Math.floor(r() * 3); k++) {
        const at = Math.floor(r() * t.length);
        const how = r();
        if (how < 0.4) t = t.slice(0, at) + alphabet[Math.floor(r() * alphabet.length)] + t.slice(at + 1);
        else if (how < 0.7) t = t.slice(0, at) + t.slice(at + 1 + Math.floor(r() * 8));
        else if (how < 0.85) t = t.slice(0, at);
        else t = t.slice(0, at) + t.slice(at, at + 20) + t.slice(at);
      }
      try {
        parsePlist(t);
      } catch (e) {
        if (!(e instanceof FormatError)) throw new Error(`mutation ${i}: ${(e as Error).stack}\n${t}`);
      }
    }
  });

  it('rejects bad input with a FormatError', () => {
    for (const bad of ['<dict><key>a</key>', '<dict><key>a</key><string IDREF="9"/></dict>', '<dict><string>x</string></dict>',
      '<integer>12x</integer>', '<data>!!</data>', '<foo/>', '<string>a</string><string>b</string>', '<string>&bogus;</string>', '<string>&#x1234567890;</string>',
      '<array>'.repeat(1000) + '</array>'.repeat(1000)]) {
      expect(() => parsePlist(bad), bad.slice(0, 30)).toThrow(FormatError);
    }
  });
});

const missing = toolchainMissing();

describe.skipIf(missing !== undefined)('prelinked kernel (MH_EXECUTE + __PRELINK_INFO)', () => {
  let pk: Uint8Array;
  let out: string;
  let loadA: bigint;
  beforeAll(() => {
    const fx = buildKcFixtures();
    const kc = buildFileset({ kernel: readFileSync(fx.kernel), kexts: [{ id: 'com.example.kexta', macho: readFileSync(fx.kexta), infoPlist: fx.kextaPlist }, { id: 'com.example.kextb', macho: readFileSync(fx.kextb) }] });
    // Re-dress the collection as an older prelinked kernel: no fileset entries are consulted
    // (filetype MH_EXECUTE), and the kexts are known only through an IOKit plist that uses
    // ID/IDREF, hex integers, and lists a codeless kext.
    const m = parseMachO(kc);
    const old = parsePrelinkInfo(m)!;
    loadA = old[0]!.loadAddr!;
    const xml = `<dict><key>_PrelinkInfoDictionary</key><array>
<dict><key>CFBundleIdentifier</key><string>com.example.kexta</string><key>CFBundleVersion</key><string ID="1">1.4.2</string><key>_PrelinkExecutableLoadAddr</key><integer size="64" ID="2">0x${old[0]!.loadAddr!.toString(16)}</integer><key>_PrelinkExecutableSize</key><integer size="64">0x${old[0]!.size!.toString(16)}</integer></dict>
<dict><key>CFBundleIdentifier</key><string>com.example.codeless</string><key>CFBundleVersion</key><string IDREF="1"/><key>IOKitPersonalities</key><dict/></dict>
<dict><key>CFBundleIdentifier</key><string>com.example.kextb</string><key>CFBundleVersion</key><string>2.0.1</string><key>_PrelinkExecutableLoadAddr</key><integer size="64">0x${old[1]!.loadAddr!.toString(16)}</integer><key>_PrelinkExecutableSize</key><integer size="64">0x${old[1]!.size!.toString(16)}</integer></dict>
</array></dict>`;
    const sect = findSection(m, '__PRELINK_INFO', '__info')!;
    m.bytes.fill(0, sect.offset, sect.offset + Number(sect.size));
    m.bytes.set(new TextEncoder().encode(xml), sect.offset);
    sect.size = BigInt(xml.length);
    m.header.filetype = 2;
    pk = serializeMachO(m);
    out = mkdtempSync(path.join(os.tmpdir(), 'm1prep-prelink-'));
  });

  it('lists kexts from the plist, the codeless one included', () => {
    const rows = listKexts(parseMachO(pk));
    expect(rows.map((r) => [r.id, r.version, r.codeless, r.source])).toEqual([
      ['com.example.kexta', '1.4.2', false, 'prelink'],
      ['com.example.codeless', '1.4.2', true, 'prelink'],
      ['com.example.kextb', '2.0.1', false, 'prelink'],
    ]);
    expect(rows[0]!.vmaddr).toBe(loadA);
  });

  it.skipIf(!tool('llvm-objdump'))('extracts the kexts with code as Mach-Os llvm-objdump accepts', () => {
    const m = parseMachO(pk);
    const targets = extractTargets(m);
    expect(targets.map((t) => t.id)).toEqual(['com.example.kexta', 'com.example.kextb']);
    for (const t of targets) {
      const f = path.join(out, t.id);
      writeFileSync(f, extractImage(m, t.headerOffset));
      const h = objdumpHeaders(f);
      expect(h.code, h.err).toBe(0);
      expect(h.err).toBe('');
      expect(h.segments[0]!.vmaddr).toBe(t.id === 'com.example.kexta' ? loadA : h.segments[0]!.vmaddr);
    }
  });
});
