// HFS Plus on-disk constants, from Apple TN1150 "HFS Plus Volume Format" (names kept verbatim).

export const kHFSPlusSigWord = 0x482b; // 'H+'
export const kHFSXSigWord = 0x4858; // 'HX'
export const kHFSSigWord = 0x4244; // 'BD' (classic HFS)
export const kHFSPlusVersion = 4;
export const kHFSXVersion = 5;
export const kHFSVolumeUnmountedBit = 1 << 8;
export const kHFSVolumeJournaledBit = 1 << 13;
export const VOLUME_HEADER_OFFSET = 1024;

// Catalog node IDs (TN1150 "Catalog File").
export const kHFSRootParentID = 1;
export const kHFSRootFolderID = 2;
export const kHFSExtentsFileID = 3;
export const kHFSCatalogFileID = 4;
export const kHFSAllocationFileID = 6;
export const kHFSAttributesFileID = 8;
export const kHFSFirstUserCatalogNodeID = 16;

// Catalog record types.
export const kHFSPlusFolderRecord = 1;
export const kHFSPlusFileRecord = 2;
export const kHFSPlusFolderThreadRecord = 3;
export const kHFSPlusFileThreadRecord = 4;
export const kHFSThreadExistsMask = 0x0002;
export const kHFSHasAttributesMask = 0x0004;

// B-tree node kinds and header attributes.
export const kBTLeafNode = -1;
export const kBTIndexNode = 0;
export const kBTHeaderNode = 1;
export const kBTBigKeysMask = 0x2;
export const kBTVariableIndexKeysMask = 0x4;
export const kHFSCaseFolding = 0xcf;
export const kHFSBinaryCompare = 0xbc;

// Attributes file record types.
export const kHFSPlusAttrInlineData = 0x10;
export const kHFSPlusAttrForkData = 0x20;
export const kHFSPlusAttrExtents = 0x30;

/** Seconds between 1904-01-01 (the HFS epoch) and 1970-01-01. */
export const HFS_EPOCH_OFFSET = 2082844800n;

// Finder info of symbolic links (TN1150 "Symbolic Links").
export const SYMLINK_TYPE = 0x736c6e6b; // 'slnk'
export const SYMLINK_CREATOR = 0x72686170; // 'rhap'

export const FORK_DATA_SIZE = 80;
export const NODE_DESCRIPTOR_SIZE = 14;
export const BT_HEADER_REC_SIZE = 106;
export const BT_USER_DATA_SIZE = 128;

export function toHfsDate(ns: bigint): number {
  const s = ns / 1_000_000_000n + HFS_EPOCH_OFFSET;
  return Number(s < 0n ? 0n : s > 0xffffffffn ? 0xffffffffn : s);
}

export function fromHfsDate(d: number): bigint {
  return (BigInt(d) - HFS_EPOCH_OFFSET) * 1_000_000_000n;
}
