import { spawnSync } from 'node:child_process';
import { tool } from '../../src/host/tools.js';

// Independent readers of our images: 7-Zip, Sleuth Kit (fls/icat/istat), fsapfsinfo, apfsck.

export interface SevenZipItem { path: string; folder: boolean; size: number; mode: string }

function run(cmd: string, args: string[], maxBuffer = 512 << 20): { code: number; stdout: Buffer; stderr: string } {
  const r = spawnSync(cmd, args, { maxBuffer, timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr?.toString() ?? '' };
}

/** `7zz l -slt`: every item, with the volume-name prefix 7-Zip adds for HFS+ removed. */
export function sevenZipList(image: string, stripFirst: boolean): SevenZipItem[] {
  const r = run(tool('7zz')!, ['l', '-slt', image]);
  if (r.code !== 0) throw new Error(`7zz l failed: ${r.stderr}`);
  const text = r.stdout.toString('utf8');
  const blocks = text.split('----------\n')[1]!.split(/\n\n+/);
  const items: SevenZipItem[] = [];
  for (const b of blocks) {
    const f = Object.fromEntries(b.split('\n').filter((l) => l.includes(' = ')).map((l) => [l.slice(0, l.indexOf(' = ')), l.slice(l.indexOf(' = ') + 3)]));
    if (f.Path === undefined) continue;
    let p = f.Path as string;
    if (stripFirst) {
      const i = p.indexOf('/');
      if (i < 0) continue; // the volume itself
      p = p.slice(i);
    } else p = '/' + p;
    items.push({ path: p.normalize('NFC'), folder: f.Folder === '+' || (f.Mode ?? '').startsWith('d'), size: Number(f.Size || 0), mode: f.Mode ?? '' });
  }
  return items;
}

export function sevenZipExtract(image: string, outDir: string): void {
  const r = run(tool('7zz')!, ['x', '-y', '-snld20', `-o${outDir}`, image]);
  if (r.code !== 0) throw new Error(`7zz x failed: ${r.stderr}`);
}

export interface FlsItem { type: string; inode: string; path: string }

/** `fls -r -p`: paths and inode numbers (file-system metadata files and HFS+ private dirs left out). */
export function flsList(image: string, extra: string[] = []): FlsItem[] {
  const r = run(tool('fls')!, ['-r', '-p', ...extra, image]);
  if (r.code !== 0) throw new Error(`fls failed: ${r.stderr}`);
  return r.stdout.toString('utf8').split('\n').filter((l) => l.includes(':\t')).map((l) => {
    const m = /^(\S+) (?:\* )?([^:]+):\t(.*)$/.exec(l)!;
    return { type: m[1]!, inode: m[2]!, path: ('/' + m[3]!).normalize('NFC') };
  }).filter((x) => !x.path.startsWith('/$') && !x.path.includes('HFS+ Private') && !x.path.startsWith('/^^^^'));
}

export function icat(image: string, inode: string, extra: string[] = []): Buffer {
  const r = run('icat', [...extra, image, inode]);
  if (r.code !== 0) throw new Error(`icat ${inode} failed: ${r.stderr}`);
  return r.stdout;
}

export function istat(image: string, inode: string, extra: string[] = []): string {
  const r = run('istat', [...extra, image, inode]);
  if (r.code !== 0) throw new Error(`istat ${inode} failed: ${r.stderr}`);
  return r.stdout.toString('utf8');
}

/** rwx string as ls prints it, from a mode. */
export function modeText(mode: number): string {
  const t = (mode & 0o170000) === 0o040000 ? 'd' : (mode & 0o170000) === 0o120000 ? 'l' : '-';
  const s = (v: number, special: boolean, ch: string) => `${v & 4 ? 'r' : '-'}${v & 2 ? 'w' : '-'}${special ? (v & 1 ? ch : ch.toUpperCase()) : v & 1 ? 'x' : '-'}`;
  return t + s(mode >> 6, Boolean(mode & 0o4000), 's') + s(mode >> 3, Boolean(mode & 0o2000), 's') + s(mode, Boolean(mode & 0o1000), 't');
}

/** `fsapfsinfo -H`: every path of the first volume (its {uuid} prefix removed). */
export function fsapfsinfoList(image: string, offset?: number): string[] {
  const r = run(tool('fsapfsinfo')!, [...(offset ? ['-o', String(offset)] : []), '-H', image]);
  if (r.code !== 0) throw new Error(`fsapfsinfo failed: ${r.stderr}`);
  return r.stdout.toString('utf8').split('\n').filter((l) => l.startsWith('/{')).map((l) => l.replace(/^\/\{[^}]+\}/, '')).filter((p) => p !== '/' && p !== '').map((p) => p.normalize('NFC'));
}

/** `fsapfsinfo -F PATH`: size and mode text of one file entry. */
export function fsapfsinfoEntry(image: string, p: string): { size: number; mode: string } {
  const r = run(tool('fsapfsinfo')!, ['-F', p, image]);
  if (r.code !== 0) throw new Error(`fsapfsinfo -F failed: ${r.stderr}`);
  const t = r.stdout.toString('utf8');
  return { size: Number(/Size\s+:\s+(\d+)/.exec(t)?.[1] ?? -1), mode: /File mode\s+:\s+\S+ \((\d+)\)/.exec(t)?.[1] ?? '' };
}

/** `apfsck -cuw`: exit code and report. */
export function apfsck(image: string): { code: number; out: string } {
  const r = run(tool('apfsck')!, ['-cuw', image]);
  return { code: r.code, out: (r.stdout.toString('utf8') + r.stderr).trim() };
}

/** Sleuth Kit's pool options for the first APFS volume (from pstat). */
export function tskApfsArgs(image: string): string[] {
  const r = run('pstat', [image]);
  const m = /APSB Block Number: (\d+)/.exec(r.stdout.toString('utf8'));
  if (!m) throw new Error(`pstat found no APFS volume: ${r.stderr}`);
  return ['-P', 'apfs', '-B', m[1]!];
}
