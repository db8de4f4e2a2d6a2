import { planTree, type TreeSpec } from './btree-write.js';
import { sealObject } from './checksum.js';
import * as F from './format.js';

// The space manager of a freshly written container (APFS Reference, "Space Manager"): one
// allocation bitmap block per chunk of 32768 blocks (kept in the internal pool), chunk-info
// blocks (CIBs) describing the chunks, CIB address blocks (CABs) when there are many CIBs, the
// internal-pool bitmaps (16 copies, the first current), and two empty free queues. The sizes
// follow the rules apfsck checks (the node limits below are its formulas, which mirror Apple's).

const BS = F.BLOCK_SIZE;
const BLOCKS_PER_CHUNK = 8 * BS;
const CHUNKS_PER_CIB = Math.floor((BS - 40) / 32);
const CIBS_PER_CAB = Math.floor((BS - 40) / 8);
/** Offset of the IP bitmap transaction ids in a non-versioned spaceman (as Apple writes it). */
const BITMAP_XID_OFF = 0x150;
const IP_BM_INDEX_INVALID = 0xffff;
const IP_BM_TX_MULTIPLIER = 16;

export interface SpacemanGeometry {
  chunkCount: number;
  cibCount: number;
  cabCount: number;
  ipBlocks: number;
  ipBmSize: number;
  ipBmapBlocks: number;
  ipBase: number;
}

export function spacemanGeometry(blockCount: number, ipBmapBase: number): SpacemanGeometry {
  const chunkCount = Math.ceil(blockCount / BLOCKS_PER_CHUNK);
  const cibCount = Math.ceil(chunkCount / CHUNKS_PER_CIB);
  let cabCount = Math.ceil(cibCount / CIBS_PER_CAB);
  if (cabCount === 1) cabCount = 0;
  const ipBlocks = (chunkCount + cibCount + cabCount) * 3;
  const ipBmSize = Math.ceil(ipBlocks / BLOCKS_PER_CHUNK);
  const ipBmapBlocks = 16 * ipBmSize;
  return { chunkCount, cibCount, cabCount, ipBlocks, ipBmSize, ipBmapBlocks, ipBase: ipBmapBase + ipBmapBlocks };
}

/** Node limit of the internal-pool free queue. */
export function ipFqNodeLimit(chunks: number): number {
  const r = Math.floor((3 * (chunks + 751)) / 1127) - 1;
  return r === 2 ? 3 : r & 0xffff;
}

/** Node limit of the main free queue. */
export function mainFqNodeLimit(blocks: number): number {
  let r: number;
  if (blocks < 0x40000) r = 1 + Math.floor((blocks - 1) / 4544);
  else if (blocks < 0x100000) r = 116 + Math.floor((blocks - 261281) / 2272);
  else r = 512;
  return r === 2 ? 3 : r & 0xffff;
}

export interface SpacemanIds {
  spacemanOid: bigint;
  ipFqOid: bigint;
  mainFqOid: bigint;
  ipBmapBase: number;
  dataBase: number;
  xid: bigint;
}

export interface SpacemanOutput {
  pieces: { block: number; bytes: Uint8Array }[];
  spacemanBlock: number;
  spacemanBlocks: number;
  ipFqBlock: number;
  mainFqBlock: number;
  /** Blocks of the checkpoint data area in use (reaper, spaceman, free queues). */
  ephemeralBlocks: number;
  mainFqNodeLimit: number;
}

function mark(bitmap: Uint8Array, start: number, count: number): void {
  for (let b = start; b < start + count; b++) bitmap[b >> 3]! |= 1 << (b & 7);
}

function popcount(bitmap: Uint8Array, from: number, count: number): number {
  let n = 0;
  for (let b = from; b < from + count; b++) if (bitmap[b >> 3]! & (1 << (b & 7))) n++;
  return n;
}

function obj(bytes: Uint8Array, oid: bigint, type: number, xid: bigint, subtype = 0): Uint8Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  dv.setBigUint64(8, oid, true);
  dv.setBigUint64(16, xid, true);
  dv.setUint32(24, type, true);
  dv.setUint32(28, subtype, true);
  sealObject(bytes);
  return bytes;
}

export function buildSpaceman(geo: SpacemanGeometry, blockCount: number, used: [number, number][], usedEnd: number, ids: SpacemanIds): SpacemanOutput {
  const pieces: { block: number; bytes: Uint8Array }[] = [];
  const usedChunks = Math.ceil(usedEnd / BLOCKS_PER_CHUNK);
  const firstChunkBmap = geo.ipBase;
  const firstCib = firstChunkBmap + usedChunks;
  const firstCab = firstCib + geo.cibCount;
  if (usedChunks + geo.cibCount + geo.cabCount > geo.ipBlocks) throw new Error('internal pool too small');

  // Main allocation bitmap, one block per used chunk.
  const bitmap = new Uint8Array(usedChunks * BS);
  for (const [s, c] of used) mark(bitmap, s, c);
  for (let c = 0; c < usedChunks; c++) pieces.push({ block: firstChunkBmap + c, bytes: bitmap.subarray(c * BS, (c + 1) * BS) });
  const totalUsed = popcount(bitmap, 0, usedChunks * BLOCKS_PER_CHUNK);

  // Chunk-info blocks (and CABs when more than one would be needed).
  let start = 0;
  const cibAddrs: number[] = [];
  for (let ci = 0; ci < geo.cibCount; ci++) {
    const cib = new Uint8Array(BS);
    const dv = new DataView(cib.buffer);
    dv.setUint32(32, ci, true);
    let n = 0;
    for (; n < CHUNKS_PER_CIB && start < blockCount; n++) {
      const o = 40 + 32 * n;
      const chunk = start / BLOCKS_PER_CHUNK;
      const count = Math.min(BLOCKS_PER_CHUNK, blockCount - start);
      dv.setBigUint64(o, ids.xid, true);
      dv.setBigUint64(o + 8, BigInt(start), true);
      dv.setUint32(o + 16, count, true);
      const usedHere = chunk < usedChunks ? popcount(bitmap, start, count) : 0;
      dv.setUint32(o + 20, count - usedHere, true);
      if (chunk < usedChunks) dv.setBigUint64(o + 24, BigInt(firstChunkBmap + chunk), true);
      start += count;
    }
    dv.setUint32(36, n, true);
    const block = firstCib + ci;
    cibAddrs.push(block);
    pieces.push({ block, bytes: obj(cib, BigInt(block), F.OBJ_PHYSICAL | F.OBJECT_TYPE_SPACEMAN_CIB, ids.xid) });
  }
  const cabAddrs: number[] = [];
  for (let ca = 0; ca < geo.cabCount; ca++) {
    const cab = new Uint8Array(BS);
    const dv = new DataView(cab.buffer);
    dv.setUint32(32, ca, true);
    const slice = cibAddrs.slice(ca * CIBS_PER_CAB, (ca + 1) * CIBS_PER_CAB);
    dv.setUint32(36, slice.length, true);
    slice.forEach((a, i) => dv.setBigUint64(40 + 8 * i, BigInt(a), true));
    const block = firstCab + ca;
    cabAddrs.push(block);
    pieces.push({ block, bytes: obj(cab, BigInt(block), F.OBJ_PHYSICAL | F.OBJECT_TYPE_SPACEMAN_CAB, ids.xid) });
  }

  // Internal-pool bitmap (the current copy); the other 15 copies stay zero.
  const ipBitmap = new Uint8Array(geo.ipBmSize * BS);
  mark(ipBitmap, firstChunkBmap - geo.ipBase, usedChunks);
  mark(ipBitmap, firstCib - geo.ipBase, geo.cibCount);
  mark(ipBitmap, firstCab - geo.ipBase, geo.cabCount);
  for (let i = 0; i < geo.ipBmSize; i++) pieces.push({ block: ids.ipBmapBase + i, bytes: ipBitmap.subarray(i * BS, (i + 1) * BS) });

  // The spaceman object itself: fixed fields, then the variable arrays at the offsets Apple uses.
  const bmAddrOff = BITMAP_XID_OFF + 8 * geo.ipBmSize;
  const freeNextOff = bmAddrOff + ((2 * geo.ipBmSize + 7) & ~7);
  const cibAddrOff = freeNextOff + 2 * geo.ipBmapBlocks;
  const addrEntries = geo.cabCount > 0 ? geo.cabCount : geo.cibCount;
  const smBlocks = Math.ceil((cibAddrOff + 8 * addrEntries) / BS);
  const sm = new Uint8Array(smBlocks * BS);
  const s = new DataView(sm.buffer);
  s.setUint32(32, BS, true);
  s.setUint32(36, BLOCKS_PER_CHUNK, true);
  s.setUint32(40, CHUNKS_PER_CIB, true);
  s.setUint32(44, CIBS_PER_CAB, true);
  // sm_dev[SD_MAIN]
  s.setBigUint64(48, BigInt(blockCount), true);
  s.setBigUint64(56, BigInt(geo.chunkCount), true);
  s.setUint32(64, geo.cibCount, true);
  s.setUint32(68, geo.cabCount, true);
  s.setBigUint64(72, BigInt(blockCount - totalUsed), true);
  s.setUint32(80, cibAddrOff, true);
  // sm_dev[SD_TIER2]: empty, its address array would follow the main one.
  s.setUint32(96 + 32, cibAddrOff + 8 * addrEntries, true);
  s.setUint32(148, IP_BM_TX_MULTIPLIER, true);
  s.setBigUint64(152, BigInt(geo.ipBlocks), true);
  s.setUint32(160, geo.ipBmSize, true);
  s.setUint32(164, geo.ipBmapBlocks, true);
  s.setBigUint64(168, BigInt(ids.ipBmapBase), true);
  s.setBigUint64(176, BigInt(geo.ipBase), true);
  const mainLimit = mainFqNodeLimit(blockCount);
  // sm_fq[SFQ_IP], sm_fq[SFQ_MAIN] (40 bytes each from 200).
  s.setBigUint64(208, ids.ipFqOid, true);
  s.setUint16(224, ipFqNodeLimit(geo.chunkCount), true);
  s.setBigUint64(248, ids.mainFqOid, true);
  s.setUint16(264, mainLimit, true);
  s.setUint16(320, geo.ipBmSize, true); // ip_bm_free_head
  s.setUint16(322, geo.ipBmapBlocks - 1, true); // ip_bm_free_tail
  s.setUint32(324, BITMAP_XID_OFF, true);
  s.setUint32(328, bmAddrOff, true);
  s.setUint32(332, freeNextOff, true);
  for (let i = 0; i < geo.ipBmSize; i++) {
    s.setBigUint64(BITMAP_XID_OFF + 8 * i, ids.xid, true);
    s.setUint16(bmAddrOff + 2 * i, i, true);
  }
  for (let i = 0; i < geo.ipBmapBlocks; i++) {
    const next = i >= geo.ipBmSize && i < geo.ipBmapBlocks - 1 ? i + 1 : IP_BM_INDEX_INVALID;
    s.setUint16(freeNextOff + 2 * i, next, true);
  }
  (geo.cabCount > 0 ? cabAddrs : cibAddrs).forEach((a, i) => s.setBigUint64(cibAddrOff + 8 * i, BigInt(a), true));
  const spacemanBlock = ids.dataBase + 1;
  pieces.push({ block: spacemanBlock, bytes: obj(sm, ids.spacemanOid, F.OBJ_EPHEMERAL | F.OBJECT_TYPE_SPACEMAN, ids.xid) });

  // Empty free queues and the reaper.
  const fqSpec: TreeSpec = { subtype: F.OBJECT_TYPE_SPACEMAN_FREE_QUEUE, storage: F.OBJ_EPHEMERAL, fixed: { key: 16, val: 8 }, btFlags: F.BTREE_EPHEMERAL | F.BTREE_ALLOW_GHOSTS, alwaysLongest: true };
  const ipFqBlock = spacemanBlock + smBlocks;
  const mainFqBlock = ipFqBlock + 1;
  pieces.push({ block: ipFqBlock, bytes: planTree([], fqSpec).build([ids.ipFqOid])[0]! });
  pieces.push({ block: mainFqBlock, bytes: planTree([], fqSpec).build([ids.mainFqOid])[0]! });
  const reaper = new Uint8Array(BS);
  const r = new DataView(reaper.buffer);
  r.setBigUint64(32, 1n, true); // nr_next_reap_id
  r.setUint32(64, 1, true); // NR_BHM_FLAG
  r.setUint32(108, BS - 112, true); // nr_state_buffer_size
  pieces.push({ block: ids.dataBase, bytes: obj(reaper, ids.spacemanOid + 1n, F.OBJ_EPHEMERAL | F.OBJECT_TYPE_NX_REAPER, ids.xid) });
  return {
    pieces, spacemanBlock, spacemanBlocks: smBlocks, ipFqBlock, mainFqBlock,
    ephemeralBlocks: mainFqBlock - ids.dataBase + 1, mainFqNodeLimit: mainLimit,
  };
}
