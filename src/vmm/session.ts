import type { VmLayout } from '../dtb/layout.js';
import { selectCpus } from '../dtb/layout.js';
import './cpu/unicorn/register.js';
import './cpu/kvm/register.js';
import './boot/linux.js';
import { bootProtocol, bootProtocolNames, type BootInputs } from './boot/protocol.js';
import type { DiskSpec, DiskStats, NicSpec, NicStats } from './devices/pcie-wiring.js';
import { Machine } from './machine.js';
import { RunLoop, type StopReason } from './run-loop.js';
import type { SerialPort } from './serial.js';
import { Tracer, type TraceKind } from './trace.js';
import { ConsoleVerifier } from './verify.js';
import { UsageError } from '../errors.js';

// One boot of one guest: build the machine from the layout, load the guest through its boot
// protocol, run, watch the console, and summarise. The CLI (src/cli/commands/boot.ts) is a thin
// shell around bootGuest().

export interface BootRequest {
  guest: string;
  inputs: BootInputs;
  layout: VmLayout;
  cpus: number;
  backend: string;
  disks?: DiskSpec[];
  /** Virtual NICs with their host links open (the caller owns the links and closes them). */
  nics?: NicSpec[];
  serial: SerialPort;
  expect: string[];
  fail: string[];
  /** Stop when every expect marker appeared. */
  stopOnSuccess: boolean;
  timeoutS: number;
  /** No console output while every vCPU's PC stays put for this long counts as a hang (0: never). */
  hangS: number;
  trace: Set<TraceKind>;
  traceFile?: string;
  sliceInstructions?: number;
  /** Called once the machine is built (the gdb stub attaches here). */
  onMachine?: (m: Machine, loop: RunLoop) => Promise<void> | void;
  log?: (line: string) => void;
}

export type Outcome = 'success' | 'failure' | 'panic' | 'hang' | 'timeout' | 'reset' | 'fatal' | 'stopped';

export interface BootSummary {
  outcome: Outcome;
  detail: string;
  guest: string;
  backend: string;
  cpus: number;
  wallSeconds: number;
  /** Retired instructions in completed slices (a lower bound: slices cut short by WFI are not
   *  counted); null where the backend cannot count them (KVM). */
  guestInstructions: bigint | null;
  exits: Record<string, number>;
  exceptionsDelivered: Record<string, number>;
  devicesTouched: Record<string, number>;
  unmappedAccesses: number;
  unknownSysregs: Record<string, number>;
  impdefAccesses: number;
  consoleBytes: number;
  markers: { seen: string[]; missing: string[]; failure: string | null };
  cpusStarted: number;
  /** Final PC of each vCPU (where a hang or fatal stop left them). */
  pcs: bigint[];
  placed: Array<{ what: string; base: bigint; size: bigint }>;
  /** virtio-blk disks: requests and bytes, and what the copy-on-write overlay holds. */
  disks: DiskStats[];
  /** virtio-net NICs: frames both ways and the state of their links. */
  nics: NicStats[];
}

export async function bootGuest(req: BootRequest): Promise<BootSummary> {
  const proto = bootProtocol(req.guest) ?? (await loadProtocol(req.guest));
  const layout = selectCpus(req.layout, req.cpus);
  const verifier = new ConsoleVerifier(req.expect, req.fail);
  // The UART emits one byte per UTXH write: collect them and pass lines on in batches (a write per
  // byte to stdout and a marker scan per byte cost more than the guest's printing itself).
  const pending = new Uint8Array(4096);
  let pendingLen = 0;
  const flush = () => {
    if (!pendingLen) return;
    const chunk = pending.slice(0, pendingLen);
    pendingLen = 0;
    req.serial.write(chunk);
    verifier.feed(chunk);
  };
  const machine = new Machine(layout, {
    layout,
    cpus: req.cpus,
    backend: req.backend,
    disks: req.disks,
    nics: req.nics,
    sliceInstructions: req.sliceInstructions,
    console: (b) => {
      for (const byte of b) {
        pending[pendingLen++] = byte;
        if (byte === 10 || pendingLen === pending.length) flush();
      }
    },
  });
  const tracer = req.trace.size ? new Tracer(req.traceFile) : null;
  try {
    req.serial.onInput = (b) => machine.uart.receive(b);
    const entry = proto.load(machine, req.inputs);
    for (const p of entry.placed) req.log?.(`${p.what}: 0x${p.base.toString(16)} (+0x${p.size.toString(16)})`);
    const loop = new RunLoop(machine);
    machine.pcie.onActivity = () => loop.wake();
    tracer?.attach(machine, loop, req.trace);
    machine.vcpus[0]!.start(entry.pc, entry.x0);
    await req.onMachine?.(machine, loop);
    const stuck = new StuckDetector(req.hangS);
    loop.check = (): StopReason | null => {
      flush();
      if (verifier.failure) return { kind: 'requested', why: 'failure marker' };
      if (machine.resetRequested) return { kind: 'requested', why: 'watchdog reset' };
      if (req.stopOnSuccess && verifier.allSeen) return { kind: 'requested', why: 'success' };
      return req.hangS > 0 ? stuck.check(machine, verifier.lastOutputAt) : null;
    };
    // Ctrl-C stops the guest and still prints the summary (a second one kills the process).
    const onSigint = () => loop.stop({ kind: 'requested', why: 'interrupted (Ctrl-C)' });
    process.once('SIGINT', onSigint);
    const t0 = process.hrtime.bigint();
    const stop = await loop.run({ timeoutMs: req.timeoutS * 1000 }).finally(() => process.removeListener('SIGINT', onSigint));
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    machine.uart.drainTx();
    flush();
    verifier.scan();
    return summarise(req, machine, loop, stop, verifier, wall, entry.placed);
  } finally {
    tracer?.close();
    machine.destroy();
  }
}

/** "No console output and a stuck PC": sampled twice a second; a PC that stays within 64 bytes
 *  (a spin loop, a WFI loop) counts as stuck. */
class StuckDetector {
  private lastSample = 0;
  private pcs: bigint[] = [];
  private stuckSince = Date.now();

  constructor(private readonly seconds: number) {}

  check(m: Machine, lastOutputAt: number): StopReason | null {
    const now = Date.now();
    if (now - this.lastSample < 500) return null;
    this.lastSample = now;
    const pcs = m.vcpus.filter((v) => v.running).map((v) => v.getRegs().pc);
    const same = pcs.length === this.pcs.length && pcs.every((p, i) => (p > this.pcs[i]! ? p - this.pcs[i]! : this.pcs[i]! - p) < 64n);
    if (!same) this.stuckSince = now;
    this.pcs = pcs;
    const limit = this.seconds * 1000;
    if (now - this.stuckSince >= limit && now - lastOutputAt >= limit) {
      return { kind: 'hang', why: `no console output and no progress (PCs ${pcs.map((p) => '0x' + p.toString(16)).join(' ')}) for ${this.seconds} s` };
    }
    return null;
  }
}

async function loadProtocol(name: string) {
  // The XNU protocol lives in boot/xnu.ts (its own area) and registers itself when imported.
  if (name === 'xnu') {
    const mod = './boot/xnu.js';
    try {
      await import(mod);
    } catch (e) {
      throw new UsageError(`the xnu boot protocol is not available in this build (${(e as Error).message})`);
    }
  }
  const p = bootProtocol(name);
  if (!p) throw new UsageError(`no boot protocol "${name}" (available: ${bootProtocolNames().join(', ')})`);
  return p;
}

function summarise(req: BootRequest, m: Machine, loop: RunLoop, stop: StopReason, v: ConsoleVerifier, wall: number, placed: BootSummary['placed']): BootSummary {
  const st = v.state();
  let outcome: Outcome;
  let detail: string;
  if (st.failure) {
    outcome = /Kernel panic|panic\(cpu/.test(st.failure) ? 'panic' : 'failure';
    detail = st.failure;
  } else if (m.resetRequested) {
    outcome = 'reset';
    detail = 'the guest reset the machine through the watchdog';
  } else if (v.allSeen) {
    outcome = 'success';
    detail = `all ${st.seen.length} success marker(s) appeared`;
  } else if (stop.kind === 'hang') {
    outcome = 'hang';
    detail = stop.why;
  } else if (stop.kind === 'timeout') {
    outcome = 'timeout';
    detail = `${req.timeoutS} s passed`;
  } else if (stop.kind === 'fatal') {
    outcome = 'fatal';
    detail = stop.why;
  } else {
    outcome = 'stopped';
    detail = stop.kind === 'requested' ? stop.why : stop.kind;
  }
  const delivered: Record<string, number> = {};
  for (const vc of m.vcpus) {
    const d = (vc as { delivered?: Map<string, number> }).delivered;
    if (d) for (const [k, n] of d) delivered[k] = (delivered[k] ?? 0) + n;
  }
  return {
    outcome,
    detail,
    guest: req.guest,
    backend: m.backend.description ?? m.backend.name,
    cpus: req.cpus,
    wallSeconds: wall,
    guestInstructions: m.backend.countsInstructions === false ? null : loop.instructions(),
    exits: mergeCounts(loop.stats.exits, ...m.vcpus.map((x) => x.ownExits?.() ?? {})),
    exceptionsDelivered: delivered,
    devicesTouched: mergeCounts(Object.fromEntries(m.bus.touched), hotUartAccesses(m)),
    unmappedAccesses: m.bus.unmappedAccesses,
    unknownSysregs: Object.fromEntries(m.sysregs.unknown),
    impdefAccesses: m.sysregs.accesses,
    consoleBytes: v.bytes,
    markers: st,
    cpusStarted: m.vcpus.filter((x) => x.running).length,
    pcs: m.vcpus.map((x) => x.getRegs().pc),
    placed,
    disks: m.pcie.stats(),
    nics: m.pcie.nicStats(),
  };
}

/** The run loop's exit counts plus those the backend served on its own (KVM vCPU threads). */
function mergeCounts(...parts: Array<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of parts) for (const [k, n] of Object.entries(p)) out[k] = (out[k] ?? 0) + n;
  return out;
}

/** UART accesses a vCPU thread served from the shared state, which the bus never saw. */
function hotUartAccesses(m: Machine): Record<string, number> {
  const n = m.uart.shared.hotReads + m.uart.shared.hotWrites;
  return n ? { [m.uart.name]: n } : {};
}
