// `m1prep doctor` runs every registered check. Areas register their own (the VMM its CPU
// backends) so that doctor always says what this host can do with the current code.

export type CheckStatus = 'ok' | 'missing' | 'warn';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What the user loses when this is not ok. */
  needFor?: string;
}

export type Check = () => CheckResult | CheckResult[] | Promise<CheckResult | CheckResult[]>;

const registry: Check[] = [];

export function registerCheck(c: Check): void {
  registry.push(c);
}

export async function runChecks(): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const c of registry) {
    const r = await c();
    out.push(...(Array.isArray(r) ? r : [r]));
  }
  return out;
}
