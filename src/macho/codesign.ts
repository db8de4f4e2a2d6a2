import { FormatError } from '../errors.js';
import { cString, u32be } from './macho-bytes.js';
import { codeSignatureCommand, type MachO } from './macho.js';

// The LC_CODE_SIGNATURE superblob: header, blob index, and the code directory's main fields.
// Big-endian. Names from XNU's osfmk/kern/cs_blobs.h.

export const CSMAGIC_REQUIREMENT = 0xfade0c00;
export const CSMAGIC_REQUIREMENTS = 0xfade0c01;
export const CSMAGIC_CODEDIRECTORY = 0xfade0c02;
export const CSMAGIC_EMBEDDED_SIGNATURE = 0xfade0cc0;
export const CSMAGIC_DETACHED_SIGNATURE = 0xfade0cc1;
export const CSMAGIC_BLOBWRAPPER = 0xfade0b01;
export const CSMAGIC_EMBEDDED_ENTITLEMENTS = 0xfade7171;
export const CSMAGIC_EMBEDDED_DER_ENTITLEMENTS = 0xfade7172;

export const CSSLOT_CODEDIRECTORY = 0;
export const CSSLOT_INFOSLOT = 1;
export const CSSLOT_REQUIREMENTS = 2;
export const CSSLOT_RESOURCEDIR = 3;
export const CSSLOT_APPLICATION = 4;
export const CSSLOT_ENTITLEMENTS = 5;
export const CSSLOT_DER_ENTITLEMENTS = 7;
export const CSSLOT_ALTERNATE_CODEDIRECTORIES = 0x1000;
export const CSSLOT_SIGNATURESLOT = 0x10000;

const SLOT_NAMES: Record<number, string> = {
  0: 'CSSLOT_CODEDIRECTORY', 1: 'CSSLOT_INFOSLOT', 2: 'CSSLOT_REQUIREMENTS', 3: 'CSSLOT_RESOURCEDIR',
  4: 'CSSLOT_APPLICATION', 5: 'CSSLOT_ENTITLEMENTS', 7: 'CSSLOT_DER_ENTITLEMENTS', 0x10000: 'CSSLOT_SIGNATURESLOT',
};

const MAGIC_NAMES: Record<number, string> = {
  [CSMAGIC_REQUIREMENT]: 'CSMAGIC_REQUIREMENT', [CSMAGIC_REQUIREMENTS]: 'CSMAGIC_REQUIREMENTS',
  [CSMAGIC_CODEDIRECTORY]: 'CSMAGIC_CODEDIRECTORY', [CSMAGIC_EMBEDDED_SIGNATURE]: 'CSMAGIC_EMBEDDED_SIGNATURE',
  [CSMAGIC_DETACHED_SIGNATURE]: 'CSMAGIC_DETACHED_SIGNATURE', [CSMAGIC_BLOBWRAPPER]: 'CSMAGIC_BLOBWRAPPER',
  [CSMAGIC_EMBEDDED_ENTITLEMENTS]: 'CSMAGIC_EMBEDDED_ENTITLEMENTS', [CSMAGIC_EMBEDDED_DER_ENTITLEMENTS]: 'CSMAGIC_EMBEDDED_DER_ENTITLEMENTS',
};

export interface CodeSignatureBlob {
  type: number;
  slot: string;
  offset: number;
  magic: number;
  magicName: string;
  length: number;
}

export interface CodeDirectory {
  version: number;
  flags: number;
  identifier: string;
  nSpecialSlots: number;
  nCodeSlots: number;
  codeLimit: number;
  hashSize: number;
  hashType: number;
  pageSize: number;
}

export interface CodeSignature {
  magic: number;
  length: number;
  blobs: CodeSignatureBlob[];
  codeDirectory?: CodeDirectory;
}

export function parseCodeSignature(m: MachO): CodeSignature | undefined {
  const lc = codeSignatureCommand(m);
  if (!lc || lc.datasize === 0) return undefined;
  const b = m.bytes;
  const base = lc.dataoff;
  const end = base + lc.datasize;
  const S = 'code signature superblob';
  if (lc.datasize < 12) throw new FormatError(S, BigInt(base), 'shorter than its header');
  const magic = u32be(b, base);
  if (magic !== CSMAGIC_EMBEDDED_SIGNATURE) throw new FormatError(S, BigInt(base), `magic 0x${magic.toString(16)} is not CSMAGIC_EMBEDDED_SIGNATURE`);
  const length = u32be(b, base + 4);
  const count = u32be(b, base + 8);
  if (length > lc.datasize || 12 + count * 8 > length) throw new FormatError(S, BigInt(base), `length ${length} / count ${count} do not fit in ${lc.datasize} bytes`);
  const blobs: CodeSignatureBlob[] = [];
  let codeDirectory: CodeDirectory | undefined;
  for (let i = 0; i < count; i++) {
    const type = u32be(b, base + 12 + 8 * i);
    const offset = u32be(b, base + 16 + 8 * i);
    if (offset + 8 > length) throw new FormatError('code signature blob index', BigInt(base + 12 + 8 * i), `blob offset ${offset} outside the superblob`);
    const bm = u32be(b, base + offset);
    const bl = u32be(b, base + offset + 4);
    if (offset + bl > length) throw new FormatError('code signature blob', BigInt(base + offset), `length ${bl} runs past the superblob`);
    blobs.push({ type, slot: SLOT_NAMES[type] ?? (type >= CSSLOT_ALTERNATE_CODEDIRECTORIES && type < CSSLOT_ALTERNATE_CODEDIRECTORIES + 5 ? 'CSSLOT_ALTERNATE_CODEDIRECTORIES' : `slot 0x${type.toString(16)}`), offset, magic: bm, magicName: MAGIC_NAMES[bm] ?? `0x${bm.toString(16)}`, length: bl });
    if (type === CSSLOT_CODEDIRECTORY && bm === CSMAGIC_CODEDIRECTORY && bl >= 44) {
      const c = base + offset;
      const identOffset = u32be(b, c + 20);
      codeDirectory = {
        version: u32be(b, c + 8), flags: u32be(b, c + 12), nSpecialSlots: u32be(b, c + 24), nCodeSlots: u32be(b, c + 28),
        codeLimit: u32be(b, c + 32), hashSize: b[c + 36]!, hashType: b[c + 37]!, pageSize: 2 ** b[c + 39]!,
        identifier: identOffset ? cString(b, c + identOffset, Math.min(end, c + bl), 'code directory identifier') : '',
      };
    }
  }
  return { magic, length, blobs, codeDirectory };
}
