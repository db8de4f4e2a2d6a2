import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { registerCheck } from '../../host/checks.js';
import { which } from '../../host/tools.js';

// `m1prep doctor`: can this host build the base FDT that Linux guests start from
// (scripts/build-t8103-dtb.sh: Linux's t8103-j274.dts from linux-source-6.1, cpp, dtc)?

registerCheck(() => {
  const cached = path.join(process.env.M1PREP_CACHE ?? path.join(os.homedir(), '.cache/m1prep'), 'dts/t8103-j274.dtb');
  const tarball = process.env.LINUX_SOURCE_TARBALL ?? '/usr/src/linux-source-6.1.tar.xz';
  const needFor = 'the Linux guest device tree (m1prep dtree layout --fdt)';
  if (existsSync(cached)) return { name: 't8103 base FDT', status: 'ok', detail: cached, needFor };
  const lacking = [...(existsSync(tarball) ? [] : [tarball]), ...['cpp', 'dtc'].filter((t) => !which(t))];
  if (lacking.length === 0) return { name: 't8103 base FDT', status: 'ok', detail: `buildable by scripts/build-t8103-dtb.sh from ${tarball}`, needFor };
  return { name: 't8103 base FDT', status: 'missing', detail: `lacking ${lacking.join(', ')} (apt-get install linux-source-6.1 cpp device-tree-compiler)`, needFor };
});
