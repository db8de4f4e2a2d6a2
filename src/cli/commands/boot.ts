import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { defineCommand } from '../command.js';
import { table } from '../ui.js';
import { HostError, UsageError, inFile } from '../../errors.js';
import { readManifest } from '../../manifest.js';
import { defaultLayoutPath, loadLayout, selectCpus, withRamSize, type VmLayout } from '../../dtb/layout.js';
import { parseFdt, serializeFdt } from '../../dtb/fdt.js';
import { deriveFdt } from '../../dtb/derive-fdt.js';
import { bootGuest, type BootSummary } from '../../vmm/session.js';
import type { BootInputs } from '../../vmm/boot/protocol.js';
import { openSerial, type SerialPort } from '../../vmm/serial.js';
import { parseTraceKinds } from '../../vmm/trace.js';
import { parseGdbTarget, startGdbStub } from '../../vmm/gdb-stub.js';
import { parseImageHeader } from '../../vmm/boot/linux.js';
import { assertBackend } from '../../vmm/cpu/registry.js';
import { probeKvm } from '../../vmm/cpu/kvm/probe.js';
import { openNetLink, parseNetSpec } from '../../vmm/net/link.js';
import type { NicSpec } from '../../vmm/devices/pcie-wiring.js';

// m1prep boot: boot prepared artifacts (OUT_DIR/manifest.json) or a Linux Image directly, on the
// virtual t8103 machine, and optionally verify the console.

interface BootArgs {
  outDir?: string;
  kernel?: string;
  initrd?: string;
  dtb?: string;
  append?: string;
  disk?: string[];
  diskWritable?: boolean;
  net?: string[];
  ram?: string;
  cpus?: number;
  backend: string;
  verify?: boolean;
  timeout?: number;
  expect?: string[];
  fail?: string[];
  serial: string;
  trace?: string;
  traceFile?: string;
  gdb?: string;
  layout?: string;
  hang?: number;
}

function readInput(p: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(p));
  } catch (e) {
    throw new UsageError(`${what} ${p}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
}

export function parseSize(text: string): bigint {
  const m = /^(\d+)([KMG]?)(i?B)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`--ram ${text}: use a size such as 1G, 512M`);
  const mult = { '': 1n << 20n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return BigInt(m[1]!) * mult;
}

function loadLayoutFile(p: string): VmLayout {
  return loadLayout(readFileSync(p, 'utf8'), p);
}

/** The upstream t8103-j274 FDT that scripts/build-t8103-dtb.sh caches. */
function cachedBaseDtb(): string {
  return path.join(process.env.M1PREP_CACHE ?? path.join(homedir(), '.cache/m1prep'), 'dts/t8103-j274.dtb');
}

export const bootCommand = defineCommand<BootArgs>({
  command: 'boot [outDir]',
  describe: 'boot prepared artifacts (OUT_DIR/manifest.json) or a Linux Image on the virtual M1 and verify the console',
  builder: (y) =>
    y
      .positional('outDir', { type: 'string', describe: 'directory with manifest.json (from m1prep patch)' })
      .option('kernel', { type: 'string', describe: 'boot this arm64 Linux Image directly (like qemu -kernel)' })
      .option('initrd', { type: 'string', describe: 'initramfs for --kernel' })
      .option('dtb', { type: 'string', describe: 'FDT for --kernel (default: derived from the cached t8103-j274.dtb and the layout)' })
      .option('append', { type: 'string', describe: 'kernel command line for --kernel' })
      .option('disk', { type: 'string', array: true, describe: 'image behind virtio-blk (repeatable; never modified unless --disk-writable: guest writes go to an in-memory overlay)' })
      .option('disk-writable', { type: 'boolean', describe: 'write the guest\'s disk writes through to the image files (default: overlay, images untouched)' })
      .option('net', { type: 'string', array: true, describe: 'virtio-net NIC (repeatable): socket,listen=[HOST:]PORT | socket,connect=[HOST:]PORT | tap[,ifname=NAME] | null, with ,mac=MAC ,dump=FILE.pcap; socket frames are framed as qemu\'s -netdev socket' })
      .option('ram', { type: 'string', describe: 'guest RAM size for --kernel, e.g. 1G' })
      .option('cpus', { type: 'number', describe: 'number of vCPUs (default: manifest, or 1)' })
      .option('backend', { type: 'string', default: 'software', choices: ['software', 'kvm'], describe: 'CPU backend' })
      .option('verify', { type: 'boolean', describe: 'exit 0 when every success marker appeared, 1 on failure, panic, hang or timeout' })
      .option('timeout', { type: 'number', describe: 'seconds before giving up (default: manifest, or 60)' })
      .option('expect', { type: 'string', array: true, describe: 'success marker regex (repeatable)' })
      .option('fail', { type: 'string', array: true, describe: 'failure marker regex (repeatable)' })
      .option('serial', { type: 'string', default: 'stdio', describe: 'console: stdio, stderr, null, file:PATH or tcp:PORT (127.0.0.1; waits for a client first); with --json, stdio means stderr' })
      .option('trace', { type: 'string', describe: 'comma list of mmio,sysreg,irq,exc' })
      .option('trace-file', { type: 'string', describe: 'write the trace here instead of stderr' })
      .option('gdb', { type: 'string', describe: 'start a GDB remote stub on 127.0.0.1:PORT, or on a Unix socket PATH, and wait for a debugger' })
      .option('layout', { type: 'string', describe: 'machine layout (default: the manifest\'s, or layouts/t8103-virt.yaml)' })
      .option('hang', { type: 'number', describe: 'seconds of no console output with every PC stuck that count as a hang (default: 30 with --verify, else off; 0: off)' })
      .example('$0 boot out/ --verify', 'boot what m1prep patch prepared and check its markers')
      .example('$0 boot --kernel Image --initrd initrd.cpio --append "console=ttySAC0 earlycon" --cpus 4 --expect "init ok" --verify', 'boot Linux like qemu')
      .example('$0 boot --kernel Image --disk rootfs.img --disk-writable', 'keep what the guest writes to rootfs.img')
      .example('$0 boot --kernel Image --net tap,ifname=tap0', 'the NIC on a host TAP interface (ip tuntap add dev tap0 mode tap user $USER)')
      .example('$0 boot --kernel Image --net socket,connect=127.0.0.1:5555,dump=net.pcap', 'one Ethernet segment with a qemu VM started with -netdev socket,id=n,listen=127.0.0.1:5555')
      .example('$0 boot out/ --trace mmio,sysreg --trace-file trace.txt', 'record device and system-register accesses')
      .example('$0 boot out/ --gdb 1234', 'then: gdb-multiarch -ex "target remote :1234"')
      .example('$0 boot out/ --gdb /tmp/m1prep-gdb.sock', 'then: gdb-multiarch -ex "target remote /tmp/m1prep-gdb.sock"')
      .epilog('Exit codes: 0 booted (with --verify: every marker seen), 1 verification failed or bad input, 2 usage, 4 host lacks something (e.g. Unicorn).') as never,
  run: async (args, ui) => {
    if (!args.outDir && !args.kernel) throw new UsageError('give OUT_DIR (with manifest.json) or --kernel IMAGE');
    if (args.outDir && args.kernel) throw new UsageError('give either OUT_DIR or --kernel, not both');
    // On KVM the stub's breakpoints and single step are KVM_SET_GUEST_DEBUG's: refuse up front
    // rather than let gdb set breakpoints that never fire.
    const gdbTarget = args.gdb !== undefined ? parseGdbTarget(args.gdb) : null;
    if (args.gdb !== undefined && args.backend === 'kvm') {
      const caps = probeKvm().caps;
      if (caps && !caps.guestDebug) throw new HostError('--gdb with --backend kvm needs KVM_CAP_SET_GUEST_DEBUG, which this kernel lacks; use --backend software');
    }
    assertBackend(args.backend);
    // Every --net is checked first: a usage error there opens and reads nothing.
    const netSpecs = (args.net ?? []).map((t) => parseNetSpec(t));
    let layout: VmLayout;
    let guest: string;
    let inputs: BootInputs;
    let cpus = args.cpus;
    let timeoutS = args.timeout;
    const expect = [...(args.expect ?? [])];
    const fail = [...(args.fail ?? [])];
    const writable = Boolean(args.diskWritable);
    const disks = (args.disk ?? []).map((p) => ({ path: p, writable }));

    if (args.outDir) {
      const man = readManifest(args.outDir);
      const at = (rel: string) => path.join(args.outDir!, rel);
      layout = loadLayoutFile(args.layout ?? at(man.artifacts.layout.path));
      layout = withRamSize(layout, BigInt(man.machine.ramMiB) << 20n);
      guest = man.guest;
      cpus ??= man.machine.cpus;
      timeoutS ??= man.verify.timeoutS;
      if (!args.expect) expect.push(...man.verify.success);
      fail.push(...man.verify.failure);
      if (man.artifacts.disk && !args.disk) disks.push({ path: at(man.artifacts.disk.path), writable });
      if (man.guest === 'linux') {
        const kernelPath = at(man.artifacts.kernel.path), dtbPath = at(man.artifacts.devicetree.path);
        inFile(kernelPath, () => parseImageHeader(readInput(kernelPath, 'kernel'), kernelPath));
        inFile(dtbPath, () => parseFdt(readInput(dtbPath, 'device tree')));
      }
      inputs = {
        kernel: readInput(at(man.artifacts.kernel.path), 'kernel'),
        deviceTree: readInput(at(man.artifacts.devicetree.path), 'device tree'),
        initrd: man.artifacts.initrd ? readInput(at(man.artifacts.initrd.path), 'initrd') : undefined,
        ramdisk: man.artifacts.ramdisk ? readInput(at(man.artifacts.ramdisk.path), 'ramdisk') : undefined,
        bootArgs: args.append ?? man.bootArgs,
        darwin: man.darwin,
      };
    } else {
      layout = loadLayoutFile(args.layout ?? defaultLayoutPath());
      if (args.ram) {
        try {
          layout = withRamSize(layout, parseSize(args.ram));
        } catch (e) {
          throw new UsageError(`--ram ${args.ram}: the layout's boot windows do not fit (${(e as Error).message.replace(/^.*?layout: /, '')})`);
        }
      }
      guest = 'linux';
      cpus ??= 1;
      const initrd = args.initrd ? readInput(args.initrd, '--initrd') : undefined;
      const bootArgs = args.append ?? 'earlycon console=ttySAC0,115200';
      let dtb: Uint8Array;
      if (args.dtb) {
        dtb = readInput(args.dtb, '--dtb');
        const bytes = dtb;
        inFile(args.dtb, () => parseFdt(bytes));
      }
      else {
        const base = cachedBaseDtb();
        if (!existsSync(base)) throw new UsageError(`no --dtb given and no base tree at ${base}: run scripts/build-t8103-dtb.sh, or pass --dtb`);
        dtb = serializeFdt(deriveFdt(parseFdt(readInput(base, 'base FDT')), selectCpus(layout, cpus), { bootargs: bootArgs, initrdSize: initrd ? BigInt(initrd.length) : undefined, watchdog: true }));
      }
      const kernel = readInput(args.kernel!, '--kernel');
      parseImageHeader(kernel, args.kernel);
      inputs = { kernel, deviceTree: dtb, initrd, bootArgs };
    }
    if (!Number.isInteger(cpus) || cpus! < 1 || cpus! > layout.cpus.length) throw new UsageError(`--cpus ${cpus}: the layout has ${layout.cpus.length} CPUs`);
    // The command owns the NIC links and the console: opened here, closed in the one finally.
    const nics: NicSpec[] = [];
    let serial: SerialPort | null = null;
    let gdbClose: (() => void) | null = null;
    let summary: BootSummary;
    try {
      for (const spec of netSpecs) nics.push({ link: await openNetLink(spec, (l) => ui.verbose(l)), mac: spec.mac });
      // With --json, stdout carries only the summary: the console goes to stderr.
      const serialSpec = ui.json && args.serial === 'stdio' ? 'stderr' : args.serial;
      serial = await openSerial(serialSpec, Boolean(process.stdin.isTTY) && !args.verify, (l) => ui.info(l));
      summary = await bootGuest({
        guest,
        inputs,
        layout,
        cpus: cpus!,
        backend: args.backend,
        disks,
        nics,
        serial,
        expect,
        fail,
        stopOnSuccess: Boolean(args.verify),
        timeoutS: timeoutS ?? 60,
        hangS: args.hang ?? (args.verify ? 30 : 0),
        trace: parseTraceKinds(args.trace),
        traceFile: args.traceFile,
        log: (l) => ui.verbose(l),
        onMachine: args.gdb !== undefined
          ? async (m, loop) => {
              const stub = await startGdbStub(m, loop, gdbTarget!, (l) => ui.info(l));
              gdbClose = stub.close;
            }
          : undefined,
      });
    } finally {
      for (const n of nics) n.link.close();
      (serial as SerialPort | null)?.close();
      (gdbClose as (() => void) | null)?.();
    }
    const ok = summary.outcome === 'success' || (!args.verify && (summary.outcome === 'stopped' || summary.outcome === 'timeout'));
    if (ui.json) ui.emitJson({ ok, ...summary });
    else printSummary(summary, (l) => ui.info(l));
    if (args.verify) return summary.outcome === 'success' ? 0 : 1;
    return summary.outcome === 'fatal' || summary.outcome === 'panic' ? 1 : 0;
  },
});

function printSummary(s: BootSummary, out: (l: string) => void): void {
  const kv = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  out('');
  out(table([
    ['outcome', `${s.outcome}: ${s.detail}`],
    ['machine', `${s.guest} guest, ${s.cpus} vCPU(s) (${s.cpusStarted} started), ${s.backend}`],
    ['final PCs', s.pcs.map((p) => '0x' + p.toString(16)).join(' ')],
    ['wall time', `${s.wallSeconds.toFixed(2)} s`],
    ['guest instructions', s.guestInstructions === null ? 'not counted by this backend' : `${s.guestInstructions} (at least)`],
    ['exits', kv(s.exits)],
    ['exceptions delivered', kv(s.exceptionsDelivered)],
    ['devices touched', kv(s.devicesTouched)],
    ['unmapped accesses', String(s.unmappedAccesses)],
    ['IMPDEF accesses', String(s.impdefAccesses)],
    ['unknown registers', kv(s.unknownSysregs)],
    ...s.disks.map((d): [string, string] => [`disk ${d.slot}`, `${d.path}: ${d.stats.reads} reads (${d.stats.bytesRead} B), ${d.stats.writes} writes (${d.stats.bytesWritten} B), ${d.stats.flushes} flushes${d.overlayBytes ? `, overlay ${d.overlayBytes} B` : ''}${d.stats.errors ? `, ${d.stats.errors} errors` : ''}`]),
    ...s.nics.map((n): [string, string] => [`nic ${n.slot}`, `${n.mac} on ${n.link}: ${n.stats.txFrames} frames out (${n.stats.txBytes} B), ${n.stats.rxFrames} in (${n.stats.rxBytes} B)${n.stats.rxDropped + n.linkStats.framesDropped ? `, ${n.stats.rxDropped + n.linkStats.framesDropped} dropped` : ''}`]),
    ['markers', s.markers.seen.length + s.markers.missing.length ? `seen: ${s.markers.seen.join(' | ') || '-'}; missing: ${s.markers.missing.join(' | ') || '-'}` : 'none given'],
  ]));
}
