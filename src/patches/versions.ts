// Dotted versions (Darwin 21.4.0, macOS 12.3) and inclusive ranges. A bound with fewer
// components covers every later component: max "21.4" admits 21.4.9, min "21" admits 21.0.0.

export interface VersionRange {
  min?: string;
  max?: string;
}

export function parseVersion(v: string): number[] {
  return v.replace(/\.x$/, '').split('.').map((s) => Number(s));
}

function cmpPrefix(a: number[], bound: number[]): number {
  for (let i = 0; i < bound.length; i++) {
    const x = a[i] ?? 0;
    if (x !== bound[i]) return x < bound[i]! ? -1 : 1;
  }
  return 0;
}

export function inRange(version: string, r: VersionRange | undefined): boolean {
  if (!r) return true;
  const v = parseVersion(version);
  if (r.min !== undefined && cmpPrefix(v, parseVersion(r.min)) < 0) return false;
  if (r.max !== undefined && cmpPrefix(v, parseVersion(r.max)) > 0) return false;
  return true;
}

/** True when some version lies in the range (min itself must not exceed max). */
export function rangeSane(r: VersionRange): boolean {
  if (r.min === undefined || r.max === undefined) return true;
  return cmpPrefix(parseVersion(r.min), parseVersion(r.max)) <= 0;
}

export function formatRange(r: VersionRange | undefined): string {
  if (!r) return 'any';
  return `${r.min ?? '*'}..${r.max ?? '*'}`;
}

/** Do two inclusive ranges share at least one version? */
export function rangesOverlap(a: VersionRange, b: VersionRange): boolean {
  const aboveMin = (x: VersionRange, y: VersionRange) => x.max === undefined || y.min === undefined || rangeSane({ min: y.min, max: x.max });
  return aboveMin(a, b) && aboveMin(b, a);
}
