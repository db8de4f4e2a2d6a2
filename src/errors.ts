// The one error hierarchy of m1prep. Library code throws these; only src/cli maps them to
// messages and exit codes (see EXIT in src/cli/exit-codes.ts).

export class M1prepError extends Error {
  /** Exit code the CLI uses for this kind of error. */
  readonly exitCode: number = 1;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
  /** One line for a person: no stack, no newlines. */
  oneLine(): string {
    return this.message.replace(/\s*\n\s*/g, ' ');
  }
}

/** Bad bytes in an input file: where (file, offset) and in which structure. */
export class FormatError extends M1prepError {
  override readonly exitCode = 1;
  /** Set by whoever knows the file name (parsers do not). */
  file?: string;
  constructor(
    readonly structure: string,
    readonly offset: bigint,
    readonly detail: string,
    file?: string,
  ) {
    super(`${structure} at offset 0x${offset.toString(16)}: ${detail}`);
    this.file = file;
  }
  override oneLine(): string {
    const where = this.file ? `${this.file}: ` : '';
    return `${where}offset 0x${this.offset.toString(16)}: ${this.structure}: ${this.detail}`;
  }
}

/** Attach the file name to a FormatError raised by a pure parser, and rethrow. */
export function inFile<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof FormatError && e.file === undefined) e.file = file;
    throw e;
  }
}

/** The user asked for something that does not make sense (bad flag combination, missing file). */
export class UsageError extends M1prepError {
  override readonly exitCode = 2;
}

/** A patch or profile file is invalid, or a required patch did not match. */
export class PatchError extends M1prepError {
  override readonly exitCode = 3;
}

/** The host lacks something needed (a tool, /dev/kvm, a library). */
export class HostError extends M1prepError {
  override readonly exitCode = 4;
}

/** A boot was verified and failed (failure marker, panic, hang, timeout). */
export class VerifyError extends M1prepError {
  override readonly exitCode = 1;
}

/** A size read from input is larger than we are willing to allocate. */
export function checkedSize(structure: string, offset: bigint, size: bigint | number, limit: bigint | number): number {
  const s = BigInt(size);
  if (s < 0n || s > BigInt(limit)) {
    throw new FormatError(structure, offset, `size ${s} exceeds the limit of ${limit}`);
  }
  return Number(s);
}
