import type { MachO } from './macho.js';

// The kernel's version string, "Darwin Kernel Version X.Y.Z: <date>; root:xnu-..." (the `version`
// variable in XNU's libkern/version.c). Patches and boot_args layout key off X.Y.Z.

export interface DarwinVersion {
  major: number;
  minor: number;
  patch: number;
  /** The whole string up to its NUL. */
  text: string;
  fileOffset: number;
}

const NEEDLE = Buffer.from('Darwin Kernel Version ');

/** Search the image's segments (or the whole buffer if it has none) for the version string. */
export function findDarwinVersion(m: MachO): DarwinVersion | undefined {
  const b = Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength);
  const ranges = m.segments.filter((s) => s.filesize > 0n && s.segname !== '__LINKEDIT').map((s) => [Number(s.fileoff), Number(s.fileoff + s.filesize)] as const);
  for (const [start, end] of ranges.length ? ranges : [[0, b.length] as const]) {
    let at = b.indexOf(NEEDLE, start);
    while (at >= 0 && at < end) {
      const v = parseAt(b, at, end);
      if (v) return v;
      at = b.indexOf(NEEDLE, at + 1);
    }
  }
  return undefined;
}

function parseAt(b: Buffer, at: number, end: number): DarwinVersion | undefined {
  let nul = b.indexOf(0, at);
  if (nul < 0 || nul > end) nul = Math.min(end, at + 512);
  const text = b.subarray(at, Math.min(nul, at + 512)).toString('latin1');
  const m = /^Darwin Kernel Version (\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0), text, fileOffset: at };
}
