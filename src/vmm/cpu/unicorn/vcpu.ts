import koffi from 'koffi';
import type { ExitHandler, Vcpu, VcpuExit, VcpuRegs } from '../backend.js';
import { INSN_WFI, decodeExceptionGen, decodeMemAccess, decodeSys, type SysInsn } from '../a64.js';
import { FSC_ALIGNMENT, walk, type AccessKind, type Regime, type WalkResult } from '../pagewalk.js';
import type { SoftwareBackend } from './backend.js';
import {
  EXCP, REG, UC_ARCH_ARM64, UC_ARM64_INS_SYS, UC_CPU_ARM64_MAX, UC_CTL_CPU_MODEL_WRITE, UC_CTL_TB_FLUSH_WRITE,
  UC_CTL_TB_REMOVE_CACHE_WRITE, UC_CTL_TCG_BUFFER_SIZE_WRITE, UC_CTL_TLB_FLUSH_WRITE, UC_HOOK_CODE, UC_HOOK_INSN, UC_HOOK_INTR, UC_MODE_ARM,
  UC_PROT_ALL, check, xreg,
} from './ffi.js';

// One vCPU on one Unicorn engine. Unicorn reports synchronous exceptions to a hook instead of
// taking them, so this class takes them architecturally itself (ESR/FAR computed from the decoded
// instruction and a walk of the guest's page tables), serves trapped system registers on the UNDEF
// path, and maps every non-RAM physical address to MMIO callbacks that reach the exit handler.

type Enc = [op0: number, op1: number, crn: number, crm: number, op2: number];
const SCR_EL3: Enc = [3, 6, 1, 1, 0];
const HCR_EL2: Enc = [3, 4, 1, 1, 0];
const CNTHCTL_EL2: Enc = [3, 4, 14, 1, 0];
const VPIDR_EL2: Enc = [3, 4, 0, 0, 0];
const VMPIDR_EL2: Enc = [3, 4, 0, 0, 5];
const SPSR_EL1: Enc = [3, 0, 4, 0, 0];
const ELR_EL1: Enc = [3, 0, 4, 0, 1];
const SCTLR_EL1: Enc = [3, 0, 1, 0, 0];
const TCR_EL1: Enc = [3, 0, 2, 0, 2];

// HCR_EL2: RW (EL1 is AArch64), FMO/IMO (physical FIQ/IRQ route to "EL2" so VF/VI inject),
// TDZ (DC ZVA traps, so guests see DCZID_EL0.DZP = 1), TACR (ACTLR_EL1 is Apple's, emulated),
// TID1 (REVIDR/AIDR report M1 values), TIDCP (all IMPDEF registers trap), TID3 (the feature ID
// registers: the engine implements the 16K granule M1 software needs but its ID_AA64MMFR0 does not
// say so; see ID_OVERRIDES).
const HCR_RW = 1n << 31n, HCR_TDZ = 1n << 28n, HCR_TACR = 1n << 21n, HCR_TIDCP = 1n << 20n, HCR_TID3 = 1n << 18n, HCR_TID1 = 1n << 16n;
const HCR_IMO = 1n << 4n, HCR_FMO = 1n << 3n, HCR_VI = 1n << 7n, HCR_VF = 1n << 6n;
const HCR_BASE = HCR_RW | HCR_TDZ | HCR_TACR | HCR_TIDCP | HCR_TID3 | HCR_TID1 | HCR_IMO | HCR_FMO;
// SCR_EL3: NS | RW (EL2 and below are AArch64, non-secure).
const SCR_VALUE = 0x401n;
// CNTHCTL_EL2: EL1PCTEN = 1 (the counter is readable), EL1PCEN = 0 (the physical timer traps).
const CNTHCTL_VALUE = 1n;
const PSTATE_EL1H_MASKED = 0x3c5n;

const EC_UNKNOWN = 0x00, EC_SVC64 = 0x15, EC_IABT_LOW = 0x20, EC_IABT_CUR = 0x21, EC_DABT_LOW = 0x24, EC_DABT_CUR = 0x25, EC_BRK = 0x3c;
// Feature ID registers (group 3, trapped by TID3) read from the engine, with these bits added.
// ID_AA64MMFR0_EL1.TGran16 (bits 23:20) = 1: 16K pages, which XNU and Asahi-style Linux use.
const ID_AA64MMFR0 = '3_0_0_7_0';
const ID_OVERRIDES: Record<string, bigint> = { [ID_AA64MMFR0]: 1n << 20n };
const NEVER = 1n; // an odd "until" address execution never reaches
const MAX_SPURIOUS = 64;
const PAGE = 0x1000n;
/** More dirty code pages than this and a whole translation-cache flush is cheaper. */
const MAX_PAGE_INVALIDATIONS = 256;

export class UnicornVcpu implements Vcpu {
  readonly uc: unknown;
  private readonly lib;
  private readonly u64 = new BigUint64Array(1);
  private handler: ExitHandler | null = null;
  private mmioValue = 0n;
  private sysValue = 0n;
  private hcr = HCR_BASE;
  private retired = 0n;
  private fatal: string | null = null;
  private stopRequested = false;
  private sliceEnded = false;
  private inEmu = false;
  private debugHit = false;
  private skipBreakpointAt: bigint | null = null;
  private bpHooks: bigint[] = [];
  private spuriousPc = -1n;
  private spuriousCount = 0;
  running = false;
  needTbFlush = false;
  needTlbFlush = false;
  /** Physical pages whose code another vCPU or the host changed. */
  private readonly dirtyCode = new Set<bigint>();
  /** Last IC IVAU translation: [ttbr0, ttbr1, va page, pa page]. */
  private icCache: [bigint, bigint, bigint, bigint] | null = null;
  sliceInstructions: number;
  /** Synchronous exceptions delivered to the guest, by kind (boot summary). */
  readonly delivered = new Map<string, number>();
  /** --trace exc */
  onDeliver: ((kind: string, esr: bigint, elr: bigint, far: bigint | null) => void) | null = null;
  private lastKind = '';

  constructor(
    private readonly backend: SoftwareBackend,
    readonly index: number,
    readonly mpidr: bigint,
    readonly midr: bigint | null,
  ) {
    const lib = (this.lib = backend.lib);
    this.sliceInstructions = backend.sliceInstructions;
    const out: unknown[] = [null];
    check(lib, lib.uc_open(UC_ARCH_ARM64, UC_MODE_ARM, out) as number, 'uc_open');
    this.uc = out[0];
    backend.ctl(this.uc, UC_CTL_CPU_MODEL_WRITE, 'int', UC_CPU_ARM64_MAX);
    backend.ctl(this.uc, UC_CTL_TCG_BUFFER_SIZE_WRITE, 'uint32_t', backend.tcgBufferBytes);
    for (const r of backend.ram) {
      check(lib, lib.uc_mem_map_ptr(this.uc, r.base, Number(r.size), UC_PROT_ALL, r.bytes) as number, `map RAM at 0x${r.base.toString(16)}`);
    }
    this.mapMmioGaps();
    this.addHooks();
    this.writeCp(SCR_EL3, SCR_VALUE);
    this.writeCp(HCR_EL2, this.hcr);
    this.writeCp(CNTHCTL_EL2, CNTHCTL_VALUE);
    if (midr !== null) this.writeCp(VPIDR_EL2, midr);
    this.writeCp(VMPIDR_EL2, mpidr | (1n << 31n));
    this.writeReg(REG.PSTATE, PSTATE_EL1H_MASKED);
  }

  // ---- engine plumbing -------------------------------------------------------------------------

  private mapMmioGaps(): void {
    const lib = this.lib;
    let cursor = 0n;
    const gaps: Array<[bigint, bigint]> = [];
    for (const r of this.backend.ram) {
      if (r.base > cursor) gaps.push([cursor, r.base]);
      cursor = r.base + r.size;
    }
    if (cursor < this.backend.physLimit) gaps.push([cursor, this.backend.physLimit]);
    for (const [start, end] of gaps) {
      const rd = this.backend.register((_uc: unknown, offset: number | bigint, size: number) => this.mmioRead(start + BigInt(offset), size), lib.MmioReadCb);
      const wr = this.backend.register((_uc: unknown, offset: number | bigint, size: number, value: number | bigint) => {
        this.mmioWrite(start + BigInt(offset), size, BigInt(value));
      }, lib.MmioWriteCb);
      check(lib, lib.uc_mmio_map(this.uc, start, Number(end - start), rd, null, wr, null) as number, `map MMIO 0x${start.toString(16)}-0x${end.toString(16)}`);
    }
  }

  private addHooks(): void {
    const lib = this.lib;
    const hh: unknown[] = [0];
    const intr = this.backend.register((_uc: unknown, intno: number) => this.guard(() => this.onException(intno)), lib.IntrCb);
    check(lib, lib.uc_hook_add(this.uc, hh, UC_HOOK_INTR, intr, null, 1n, 0n) as number, 'hook interrupts');
    const sys = this.backend.register((_uc: unknown, _reg: number, cp: unknown) => {
      this.guard(() => this.onSysInsn(cp));
      return 0;
    }, lib.SysCb);
    check(lib, lib.uc_hook_add(this.uc, hh, UC_HOOK_INSN, sys, null, 1n, 0n, 'int', UC_ARM64_INS_SYS) as number, 'hook SYS');
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.fatal = (e as Error).message;
      this.lib.uc_emu_stop(this.uc);
    }
  }

  readReg(id: number): bigint {
    this.lib.uc_reg_read(this.uc, id, this.u64);
    return this.u64[0]!;
  }

  writeReg(id: number, v: bigint): void {
    this.u64[0] = BigInt.asUintN(64, v);
    this.lib.uc_reg_write(this.uc, id, this.u64);
  }

  /** A uc_arm64_cp_reg buffer per encoding, filled once (crn, crm, op0, op1, op2, pad, val). */
  private readonly cpBufs = new Map<Enc, { bytes: Buffer; val: BigUint64Array }>();

  private cpBuf(e: Enc): { bytes: Buffer; val: BigUint64Array } {
    let b = this.cpBufs.get(e);
    if (!b) {
      const bytes = Buffer.alloc(32);
      const u32 = new Uint32Array(bytes.buffer, bytes.byteOffset, 8);
      u32[0] = e[2];
      u32[1] = e[3];
      u32[2] = e[0];
      u32[3] = e[1];
      u32[4] = e[4];
      b = { bytes, val: new BigUint64Array(bytes.buffer, bytes.byteOffset + 24, 1) };
      this.cpBufs.set(e, b);
    }
    return b;
  }

  readCp(e: Enc): bigint | null {
    const b = this.cpBuf(e);
    if (this.lib.uc_reg_read(this.uc, REG.CP_REG, b.bytes) !== 0) return null;
    return b.val[0]!;
  }

  /** Writing any register through the CP interface also rebuilds the engine's cached PSTATE flags. */
  writeCp(e: Enc, v: bigint): void {
    const b = this.cpBuf(e);
    b.val[0] = BigInt.asUintN(64, v);
    check(this.lib, this.lib.uc_reg_write(this.uc, REG.CP_REG, b.bytes) as number, `write s${e.join('_')}`);
  }

  readSysreg(op0: number, op1: number, crn: number, crm: number, op2: number): bigint | null {
    return this.readCp(this.enc(op0, op1, crn, crm, op2));
  }

  /** The same Enc object for the same encoding, so its buffer is reused. */
  private readonly encs = new Map<number, Enc>();
  private enc(op0: number, op1: number, crn: number, crm: number, op2: number): Enc {
    const k = (op0 << 14) | (op1 << 11) | (crn << 7) | (crm << 3) | op2;
    let e = this.encs.get(k);
    if (!e) this.encs.set(k, (e = [op0, op1, crn, crm, op2]));
    return e;
  }

  /** x0..x30; 31 is SP when `sp`, else XZR. */
  private x(n: number, sp: boolean): bigint {
    if (n === 31) return sp ? this.readReg(REG.SP) : 0n;
    return this.readReg(xreg(n));
  }

  private setX(n: number, v: bigint): void {
    if (n !== 31) this.writeReg(xreg(n), v);
  }

  // ---- guest memory by virtual address ---------------------------------------------------------

  regime(): Regime {
    return {
      sctlr: this.readCp(SCTLR_EL1) ?? 0n,
      tcr: this.readCp(TCR_EL1) ?? 0n,
      ttbr0: this.readReg(REG.TTBR0_EL1),
      ttbr1: this.readReg(REG.TTBR1_EL1),
    };
  }

  translate(va: bigint, kind: AccessKind, el: 0 | 1, pan: boolean, r = this.regime()): WalkResult {
    return walk(va, kind, el, pan, r, (pa) => this.backend.readPhys64(pa));
  }

  /** The instruction word at a virtual address (null if unmapped or not RAM). */
  fetch(va: bigint, r = this.regime()): number | null {
    const t = this.translate(va, 'read', 1, false, r);
    return t.ok ? this.backend.readPhys32(t.pa) : null;
  }

  // ---- MMIO -----------------------------------------------------------------------------------

  private mmioRead(addr: bigint, size: number): bigint {
    if (!this.handler) return 0n;
    this.mmioValue = 0n;
    try {
      this.handler(this, { kind: 'mmio', addr, size: size as 1 | 2 | 4 | 8, write: false, value: 0n, reg: -1 });
    } catch (e) {
      this.fail(e);
    }
    return this.mmioValue;
  }

  private mmioWrite(addr: bigint, size: number, value: bigint): void {
    if (!this.handler) return;
    try {
      this.handler(this, { kind: 'mmio', addr, size: size as 1 | 2 | 4 | 8, write: true, value, reg: -1 });
    } catch (e) {
      this.fail(e);
    }
  }

  private fail(e: unknown): void {
    this.fatal = (e as Error).message ?? String(e);
    this.lib.uc_emu_stop(this.uc);
  }

  completeMmioRead(value: bigint): void {
    this.mmioValue = value;
  }

  completeSysregRead(value: bigint): void {
    this.sysValue = value;
  }

  setExitHandler(handler: ExitHandler): void {
    this.handler = handler;
  }

  // ---- cross-engine maintenance ----------------------------------------------------------------

  private onSysInsn(cpPtr: unknown): void {
    const [crn, crm, op0, op1, op2] = koffi.decode(cpPtr, 'uint32_t', 5) as number[];
    if (op0 !== 1) return;
    if (crn === 8 && (crm === 3 || crm === 2 || crm === 1)) {
      // TLBI ...IS / ...OS (inner/outer shareable broadcast).
      this.backend.tlbFlushedBy(this);
    } else if (crn === 7 && op1 === 3 && crm === 5 && op2 === 1) {
      // IC IVAU, Xt: the other engines drop translations of that physical page.
      const va = koffi.decode(cpPtr, 24, 'uint64_t') as number | bigint;
      const pa = this.icTranslate(BigInt(va) & ~(PAGE - 1n));
      this.backend.codeChangedBy(this, pa, PAGE);
    } else if (crn === 7 && op1 === 0 && crm === 1 && op2 === 0) {
      // IC IALLUIS: everything.
      this.backend.codeChangedBy(this, null);
    }
  }

  /** Physical page of an IC IVAU address (null: unknown, so flush everything). */
  private icTranslate(vaPage: bigint): bigint | null {
    const ttbr0 = this.readReg(REG.TTBR0_EL1), ttbr1 = this.readReg(REG.TTBR1_EL1);
    const c = this.icCache;
    if (c && c[0] === ttbr0 && c[1] === ttbr1 && c[2] === vaPage) return c[3];
    const t = this.translate(vaPage, 'read', 1, false);
    if (!t.ok) return null;
    this.icCache = [ttbr0, ttbr1, vaPage, t.pa];
    return t.pa;
  }

  /** Code in [pa, pa + size) changed behind this engine's back. */
  codeChanged(pa: bigint | null, size: bigint): void {
    if (pa === null || this.needTbFlush) {
      this.needTbFlush = true;
      return;
    }
    for (let p = pa & ~(PAGE - 1n); p < pa + size; p += PAGE) {
      this.dirtyCode.add(p);
      if (this.dirtyCode.size > MAX_PAGE_INVALIDATIONS) {
        this.needTbFlush = true;
        return;
      }
    }
  }

  // ---- synchronous exceptions -----------------------------------------------------------------

  private count(kind: string): void {
    this.lastKind = kind;
    this.delivered.set(kind, (this.delivered.get(kind) ?? 0) + 1);
  }

  private onException(intno: number): void {
    const pc = this.readReg(REG.PC);
    const pstate = this.readReg(REG.PSTATE);
    const el = Number((pstate >> 2n) & 3n) as 0 | 1;
    const r = this.regime();
    switch (intno) {
      case EXCP.SWI: {
        const insn = this.fetch(pc - 4n, r) ?? 0;
        this.count('svc');
        this.deliver(EC_SVC64, (insn >>> 5) & 0xffff, pc, null, pstate, r);
        return;
      }
      case EXCP.HVC:
      case EXCP.SMC: {
        const insn = this.fetch(pc - 4n, r) ?? 0;
        this.hypercall(intno === EXCP.SMC, (insn >>> 5) & 0xffff);
        return;
      }
      case EXCP.UDEF:
        this.onUndef(pc, pstate, el, r);
        return;
      case EXCP.BKPT: {
        const insn = this.fetch(pc, r) ?? 0;
        this.count('brk');
        this.deliver(EC_BRK, (insn >>> 5) & 0xffff, pc, null, pstate, r);
        return;
      }
      case EXCP.PREFETCH_ABORT: {
        const t = this.translate(pc, 'exec', el, false, r);
        if (t.ok) return this.spurious(pc, 'instruction abort');
        this.count('instruction abort');
        this.deliver(el === 0 ? EC_IABT_LOW : EC_IABT_CUR, t.fsc | t.level, pc, pc, pstate, r);
        return;
      }
      case EXCP.DATA_ABORT:
        this.onDataAbort(pc, pstate, el, r);
        return;
      default:
        throw new Error(`vcpu ${this.index}: unexpected exception ${intno} at pc 0x${pc.toString(16)}`);
    }
  }

  private hypercall(smc: boolean, imm: number): void {
    if (!this.handler) return;
    this.handler(this, { kind: 'hypercall', smc, imm });
  }

  private onUndef(pc: bigint, pstate: bigint, el: 0 | 1, r: Regime): void {
    const insn = this.fetch(pc, r);
    if (insn === null) throw new Error(`vcpu ${this.index}: UNDEF at unmapped pc 0x${pc.toString(16)}`);
    const sys = decodeSys(insn);
    if (sys && el === 1 && sys.read && sys.op0 === 3 && sys.op1 === 0 && sys.crn === 0 && sys.crm >= 1) {
      // A feature ID register (TID3): the engine's value plus our overrides.
      const enc = this.enc(sys.op0, sys.op1, sys.crn, sys.crm, sys.op2);
      this.setX(sys.rt, (this.readCp(enc) ?? 0n) | (ID_OVERRIDES[enc.join('_')] ?? 0n));
      this.writeReg(REG.PC, pc + 4n);
      return;
    }
    if (sys && el === 1 && sys.op0 >= 2 && this.backend.options.sysregFilter(sys.op0, sys.op1, sys.crn, sys.crm, sys.op2)) {
      this.emulateSysreg(sys);
      this.writeReg(REG.PC, pc + 4n);
      return;
    }
    if (sys && el === 1 && sys.op0 === 1 && sys.op1 === 3 && sys.crn === 7 && sys.crm === 4 && sys.op2 === 1) {
      this.zeroBlock(this.x(sys.rt, false), r, pstate);
      this.writeReg(REG.PC, pc + 4n);
      return;
    }
    const gen = decodeExceptionGen(insn);
    if (gen && (gen.kind === 'hvc' || gen.kind === 'smc') && el === 1) {
      this.hypercall(gen.kind === 'smc', gen.imm);
      this.writeReg(REG.PC, pc + 4n);
      return;
    }
    this.count('undef');
    this.deliver(EC_UNKNOWN, 0, pc, null, pstate, r);
  }

  private emulateSysreg(s: SysInsn): void {
    if (!this.handler) throw new Error('software backend: no exit handler for a system register access');
    const write = !s.read;
    const value = write ? this.x(s.rt, false) : 0n;
    this.sysValue = 0n;
    this.handler(this, { kind: 'sysreg', op0: s.op0, op1: s.op1, crn: s.crn, crm: s.crm, op2: s.op2, write, value, reg: s.rt });
    if (!write) this.setX(s.rt, this.sysValue);
  }

  /** DC ZVA when HCR_EL2.TDZ traps it: zero the 64-byte block. */
  private zeroBlock(va: bigint, r: Regime, pstate: bigint): void {
    const t = this.translate(va & ~63n, 'write', 1, ((pstate >> 22n) & 1n) === 1n, r);
    if (!t.ok) return;
    const region = this.backend.ramAt(t.pa);
    if (region) region.bytes.fill(0, Number(t.pa - region.base), Number(t.pa - region.base) + 64);
  }

  private onDataAbort(pc: bigint, pstate: bigint, el: 0 | 1, r: Regime): void {
    const insn = this.fetch(pc, r);
    const acc = insn === null ? null : decodeMemAccess(insn, pc, (n, sp) => this.x(n, sp));
    if (!acc) throw new Error(`vcpu ${this.index}: data abort at pc 0x${pc.toString(16)} by an instruction that is not a load/store (0x${(insn ?? 0).toString(16)})`);
    const pan = ((pstate >> 22n) & 1n) === 1n && !acc.unprivileged;
    const checkEl: 0 | 1 = acc.unprivileged ? 0 : el;
    let fsc = -1;
    let far = acc.addr;
    if (acc.aligned && acc.addr % BigInt(acc.size) !== 0n) {
      fsc = FSC_ALIGNMENT;
    } else {
      const kind: AccessKind = acc.write ? 'write' : 'read';
      const end = acc.addr + BigInt(acc.size);
      for (let page = acc.addr; page < end; page = (page & ~0xfffn) + 0x1000n) {
        const t = this.translate(page, kind, checkEl, pan, r);
        if (!t.ok) {
          fsc = t.fsc | t.level;
          far = page;
          break;
        }
      }
    }
    if (fsc < 0) return this.spurious(pc, 'data abort');
    this.count('data abort');
    const iss = fsc | (acc.write ? 1 << 6 : 0) | (acc.cacheOp ? 1 << 8 : 0);
    this.deliver(el === 0 ? EC_DABT_LOW : EC_DABT_CUR, iss, pc, far, pstate, r);
  }

  /** The engine reported a fault our walk cannot reproduce: retry, but not forever. */
  private spurious(pc: bigint, what: string): void {
    if (pc === this.spuriousPc) this.spuriousCount++;
    else {
      this.spuriousPc = pc;
      this.spuriousCount = 1;
    }
    if (this.spuriousCount > MAX_SPURIOUS) {
      throw new Error(`vcpu ${this.index}: ${what} at pc 0x${pc.toString(16)} repeats but the page tables show no fault`);
    }
  }

  /** Take a synchronous exception to EL1 (Arm ARM D1.10): the backend's job on Unicorn. */
  private deliver(ec: number, iss: number, elr: bigint, far: bigint | null, pstate: bigint, r: Regime): void {
    const el = Number((pstate >> 2n) & 3n);
    if (el > 1) throw new Error(`vcpu ${this.index}: exception at EL${el}`);
    const spSel = pstate & 1n;
    const vbar = this.readReg(REG.VBAR_EL1);
    const offset = el === 0 ? 0x400n : spSel ? 0x200n : 0n;
    if (!(el === 1 && spSel)) {
      this.writeReg(REG.SP_EL0, this.readReg(REG.SP));
      this.writeReg(REG.SP, this.readReg(REG.SP_EL1));
    }
    this.writeCp(SPSR_EL1, pstate);
    const esr = (BigInt(ec) << 26n) | (1n << 25n) | BigInt(iss);
    this.writeReg(REG.ESR_EL1, esr);
    this.onDeliver?.(this.lastKind, esr, elr, far);
    if (far !== null) this.writeReg(REG.FAR_EL1, far);
    // PAN is set on exception entry unless SCTLR_EL1.SPAN says otherwise.
    const pan = ((r.sctlr >> 23n) & 1n) === 0n ? 1n << 22n : pstate & (1n << 22n);
    this.writeReg(REG.PSTATE, PSTATE_EL1H_MASKED | pan);
    this.writeCp(ELR_EL1, elr);
    this.writeReg(REG.PC, vbar + offset);
  }

  // ---- interrupts ------------------------------------------------------------------------------

  setIrq(level: boolean): void {
    this.setHcrBit(HCR_VI, level);
  }

  setFiq(level: boolean): void {
    this.setHcrBit(HCR_VF, level);
  }

  private setHcrBit(bit: bigint, level: boolean): void {
    const next = level ? this.hcr | bit : this.hcr & ~bit;
    if (next === this.hcr) return;
    this.hcr = next;
    this.writeCp(HCR_EL2, next);
  }

  // ---- running ---------------------------------------------------------------------------------

  private prepare(): void {
    if (!this.needTbFlush && this.dirtyCode.size) this.invalidatePages();
    this.dirtyCode.clear();
    if (this.needTbFlush) {
      this.backend.stats.tbFlushes++;
      this.backend.ctl(this.uc, UC_CTL_TB_FLUSH_WRITE);
      this.needTbFlush = false;
      this.needTlbFlush = false;
    } else if (this.needTlbFlush) {
      this.backend.stats.tlbFlushes++;
      this.backend.ctl(this.uc, UC_CTL_TLB_FLUSH_WRITE);
      this.needTlbFlush = false;
    }
  }

  /**
   * Drop the translations of the dirty physical pages. Unicorn's TB_REMOVE_CACHE takes a virtual
   * address in the engine's current regime, so translation is switched off around it (VA = PA),
   * with TLB flushes on both sides so no stale entry is used or kept.
   */
  private invalidatePages(): void {
    const sctlr = this.readCp(SCTLR_EL1) ?? 0n;
    this.backend.ctl(this.uc, UC_CTL_TLB_FLUSH_WRITE);
    if (sctlr & 1n) this.writeCp(SCTLR_EL1, sctlr & ~1n);
    for (const p of this.dirtyCode) {
      this.backend.ctl(this.uc, UC_CTL_TB_REMOVE_CACHE_WRITE, 'uint64_t', p, 'uint64_t', p + PAGE);
      this.backend.stats.pageInvalidations++;
    }
    if (sctlr & 1n) this.writeCp(SCTLR_EL1, sctlr);
    this.backend.ctl(this.uc, UC_CTL_TLB_FLUSH_WRITE);
  }

  private emu(count: number): VcpuExit {
    this.prepare();
    this.fatal = null;
    this.debugHit = false;
    this.inEmu = true;
    const pc = this.readReg(REG.PC);
    const rc = this.lib.uc_emu_start(this.uc, pc, NEVER, 0, count) as number;
    this.inEmu = false;
    if (this.fatal) return { kind: 'fatal', reason: this.fatal };
    if (rc !== 0) {
      const at = this.readReg(REG.PC);
      return { kind: 'fatal', reason: `vcpu ${this.index}: engine stopped at pc 0x${at.toString(16)}: ${this.lib.uc_strerror(rc) as string}` };
    }
    if (this.debugHit) return { kind: 'debug' };
    if (this.sliceEnded) {
      this.sliceEnded = false;
      return { kind: 'yield', partial: true } as VcpuExit;
    }
    if (this.stopRequested) {
      this.stopRequested = false;
      return { kind: 'stopped' };
    }
    return { kind: 'yield' };
  }

  run(): VcpuExit {
    const exit = this.emu(this.sliceInstructions);
    if (exit.kind !== 'yield') return exit;
    if ((exit as { partial?: boolean }).partial) return { kind: 'yield' };
    // The engine also returns when the guest executes WFI (with the PC after it).
    const pc = this.readReg(REG.PC);
    if (this.fetch(pc - 4n) === INSN_WFI) return { kind: 'wfi' };
    this.retired += BigInt(this.sliceInstructions);
    return exit;
  }

  step(): VcpuExit {
    this.skipBreakpointAt = this.readReg(REG.PC);
    const exit = this.emu(1);
    this.skipBreakpointAt = null;
    this.retired += 1n;
    return exit.kind === 'yield' ? { kind: 'debug' } : exit;
  }

  setBreakpoints(addrs: readonly bigint[]): void {
    for (const h of this.bpHooks) this.lib.uc_hook_del(this.uc, h);
    this.bpHooks = [];
    for (const a of addrs) {
      const cb = this.backend.register((_uc: unknown, address: number | bigint) => {
        if (this.skipBreakpointAt === BigInt(address)) return;
        this.debugHit = true;
        this.lib.uc_emu_stop(this.uc);
      }, this.lib.CodeCb);
      const hh: Array<number | bigint> = [0];
      check(this.lib, this.lib.uc_hook_add(this.uc, hh, UC_HOOK_CODE, cb, null, a, a) as number, 'breakpoint');
      this.bpHooks.push(BigInt(hh[0]!));
    }
  }

  /** Resume from a breakpoint: the first instruction is not reported again. */
  resumeFrom(pc: bigint): void {
    this.skipBreakpointAt = pc;
  }

  start(pc: bigint, arg: bigint): void {
    this.writeReg(REG.PSTATE, PSTATE_EL1H_MASKED);
    this.writeCp(SCTLR_EL1, (this.readCp(SCTLR_EL1) ?? 0n) & ~1n);
    this.writeReg(xreg(0), arg);
    this.writeReg(REG.PC, pc);
    this.running = true;
  }

  getRegs(): VcpuRegs {
    const x: bigint[] = [];
    for (let i = 0; i < 31; i++) x.push(this.readReg(xreg(i)));
    return { x, sp: this.readReg(REG.SP), pc: this.readReg(REG.PC), pstate: this.readReg(REG.PSTATE) };
  }

  setRegs(r: Partial<VcpuRegs>): void {
    if (r.x) r.x.forEach((v, i) => this.writeReg(xreg(i), v));
    if (r.sp !== undefined) this.writeReg(REG.SP, r.sp);
    if (r.pstate !== undefined) {
      this.writeReg(REG.PSTATE, r.pstate);
      this.writeCp(HCR_EL2, this.hcr); // rebuild cached flags
    }
    if (r.pc !== undefined) this.writeReg(REG.PC, r.pc);
  }

  instructions(): bigint {
    return this.retired;
  }

  endSlice(): void {
    if (!this.inEmu) return;
    this.sliceEnded = true;
    this.lib.uc_emu_stop(this.uc);
  }

  stop(): void {
    this.stopRequested = true;
    if (this.inEmu) this.lib.uc_emu_stop(this.uc);
  }

  close(): void {
    this.lib.uc_close(this.uc);
  }
}
