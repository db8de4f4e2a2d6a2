import os from 'node:os';
import { registerCheck } from './checks.js';
import { TOOLS, tool, toolVersion, type ToolName } from './tools.js';

const roles: Record<ToolName, string> = {
  clang: 'building the sample kernel and test binaries',
  'ld64.lld': 'linking the sample kernel collection',
  'llvm-objdump': 'Mach-O oracle tests',
  'llvm-objdump-19': 'chained-fixup and MH_FILESET oracle tests (LLVM 14 cannot decode them)',
  'llvm-readobj': 'Mach-O oracle tests',
  dtc: 'FDT oracle tests and Linux device trees',
  apfsck: 'APFS oracle tests',
  fsapfsinfo: 'APFS oracle tests',
  fls: 'Sleuth Kit oracle tests (APFS, HFS+)',
  '7zz': '7-Zip oracle tests (APFS, HFS+)',
  'qemu-system-aarch64': 'speed baseline and the KVM test harness',
  'aarch64-linux-gnu-gcc': 'building the Linux test guest',
  tcpdump: 'reading the pcap of m1prep boot --net ...,dump= in the network tests',
  setfattr: 'extended attributes on ramdisk source trees in the tests',
};

registerCheck(() => ({
  name: 'host',
  status: 'ok',
  detail: `${os.type()} ${os.release()} ${process.arch}, node ${process.version}, ${os.cpus().length} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
}));

registerCheck(() =>
  (Object.keys(TOOLS) as ToolName[]).map((n) => {
    const p = tool(n);
    return p
      ? { name: n, status: 'ok' as const, detail: `${p} ${toolVersion(p)}`.trim() }
      : { name: n, status: 'missing' as const, detail: 'not found (scripts/setup.sh installs it)', needFor: roles[n] };
  }),
);
