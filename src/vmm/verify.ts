// Watches the console for success and failure markers, and the panics of both guests.

export const PANIC_PATTERNS = [/Kernel panic/, /panic\(cpu/];

export interface VerifyState {
  seen: string[];
  missing: string[];
  failure: string | null;
}

export class ConsoleVerifier {
  private text = '';
  private readonly expect: RegExp[];
  private readonly fail: RegExp[];
  private readonly found = new Set<number>();
  failure: string | null = null;
  lastOutputAt = Date.now();
  bytes = 0;

  constructor(expect: readonly string[], fail: readonly string[]) {
    const compile = (s: string) => {
      try {
        return new RegExp(s, 'm');
      } catch (e) {
        throw new SyntaxError(`bad marker regex /${s}/: ${(e as Error).message}`);
      }
    };
    this.expect = expect.map(compile);
    this.fail = [...fail.map(compile), ...PANIC_PATTERNS];
  }

  feed(bytes: Uint8Array): void {
    this.bytes += bytes.length;
    this.lastOutputAt = Date.now();
    this.text += Buffer.from(bytes).toString('latin1');
    // Markers are matched line by line; keep a bounded tail for the partial last line.
    if (this.text.length > 65536) this.text = this.text.slice(-8192);
    if (bytes.includes(10)) this.scan();
  }

  /** Scan what is buffered (also called at the end for a last line without newline). */
  scan(): void {
    this.expect.forEach((re, i) => { if (!this.found.has(i) && re.test(this.text)) this.found.add(i); });
    if (!this.failure) for (const re of this.fail) {
      const m = re.exec(this.text);
      if (m) {
        const lineStart = this.text.lastIndexOf('\n', m.index) + 1;
        const lineEnd = this.text.indexOf('\n', m.index);
        this.failure = this.text.slice(lineStart, lineEnd < 0 ? undefined : lineEnd).trim();
        break;
      }
    }
    const nl = this.text.lastIndexOf('\n');
    if (nl >= 0 && this.text.length > 4096) this.text = this.text.slice(nl + 1);
  }

  get allSeen(): boolean {
    return this.expect.length > 0 && this.found.size === this.expect.length;
  }

  state(): VerifyState {
    return {
      seen: this.expect.filter((_, i) => this.found.has(i)).map((r) => r.source),
      missing: this.expect.filter((_, i) => !this.found.has(i)).map((r) => r.source),
      failure: this.failure,
    };
  }
}
