import { planHfsPlus } from './hfsplus/write.js';
import { planApfs } from './apfs/write.js';
import type { ImagePlan } from './plan.js';
import type { DirNode } from './tree.js';

// Format dispatch for image building (pure: returns a plan; io-build.ts writes it).

export interface BuildOptions {
  fs: 'hfsplus' | 'apfs';
  label: string;
  caseSensitive?: boolean;
  size?: bigint;
  /** APFS volume role (e.g. 'system', 'data'); ignored by HFS+. */
  role?: string;
  createdNs: bigint;
  /** Testing aid: force file data into extents of this many blocks. */
  fragmentBlocks?: number;
}

export function planImage(root: DirNode, o: BuildOptions): ImagePlan {
  if (o.fs === 'apfs') {
    return planApfs(root, { label: o.label, caseSensitive: o.caseSensitive, size: o.size, role: o.role, createdNs: o.createdNs, fragmentBlocks: o.fragmentBlocks });
  }
  return planHfsPlus(root, { label: o.label, caseSensitive: o.caseSensitive, size: o.size, createdNs: o.createdNs, fragmentBlocks: o.fragmentBlocks });
}
