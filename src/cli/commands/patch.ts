import path from 'node:path';
import { PatchError, UsageError } from '../../errors.js';
import { checkFiles } from '../../patches/check.js';
import { planRequest, writeOutputs, type PatchPlan } from '../../patches/prepare.js';
import { loadProfile } from '../../patches/profile.js';
import { describePatch, REPORT_JSON, reportText } from '../../patches/report.js';
import { REVERTED, revertDir } from '../../patches/revert.js';
import { formatProblem } from '../../patches/yaml-source.js';
import { writeDirAtomic, writeFileAtomic } from '../../util/atomic-write.js';
import { defineCommand } from '../command.js';
import { colors, table, type Ui } from '../ui.js';

interface PatchArgs {
  profile?: string;
  kernelcache?: string;
  out?: string;
  deviceTree?: string;
  ramdiskFrom?: string;
  ramdiskFs?: 'apfs' | 'hfsplus';
  dryRun?: boolean;
  excludePatch?: string[];
  revert?: string;
  check?: string[];
}

const STATUS_COLOR: Record<string, (s: string) => string> = {
  applied: colors.green, failed: colors.red, 'already-applied': colors.red, 'not-matched': colors.yellow,
  'skipped-condition': colors.dim, excluded: colors.yellow,
};

function runCheck(files: string[], ui: Ui): number {
  if (files.length === 0) throw new UsageError('--check needs at least one patch set or profile file');
  const r = checkFiles(files);
  if (ui.json) ui.emitJson(r);
  else {
    for (const p of r.problems) ui.out(formatProblem(p));
    const patches = r.files.reduce((n, f) => n + f.patches, 0);
    ui.info(`checked ${r.files.length} file${r.files.length === 1 ? '' : 's'} (${patches} patches): ${r.problems.length ? colors.red(`${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`) : colors.green('no problems')}`);
  }
  return r.problems.length ? 3 : 0;
}

async function runRevert(dir: string, ui: Ui): Promise<number> {
  const { bytes, report } = revertDir(dir);
  const target = path.join(dir, REVERTED);
  await writeFileAtomic(target, bytes);
  const edits = report.patches.filter((p) => p.status === 'applied').reduce((n, p) => n + p.edits.length, 0);
  if (ui.json) ui.emitJson({ output: target, sha256: report.originalSha256, restoredEdits: edits });
  else ui.out(`${target}: original kernelcache restored (${edits} edits undone; sha256 ${report.originalSha256} as recorded in ${REPORT_JSON})`);
  return 0;
}

function printOutcome(plan: PatchPlan, ui: Ui): void {
  const rows = plan.report.patches.map((p) => [
    p.id, (STATUS_COLOR[p.status] ?? ((s: string) => s))(p.status), p.target,
    p.edits.length ? p.edits.map((e) => e.vmaddr).join(' ') : p.note ?? '',
  ]);
  ui.out(table(rows, ['patch', 'status', 'target', 'where / why']));
}

export const patchCommand = defineCommand({
  command: 'patch',
  describe: 'patch a kernelcache for a macOS version (profile) and prepare out/ for m1prep boot; --check validates patch and profile files',
  builder: (y) =>
    y
      .option('profile', { type: 'string', describe: 'profile: a shipped version (11.x, 12.0, 12.3, 13.x, 14.x, 15.x) or a path to a profile YAML' })
      .option('kernelcache', { type: 'string', describe: 'kernelcache: IM4P/IMG4 (LZFSE or LZSS) or raw Mach-O (MH_FILESET or a kernel)' })
      .option('out', { alias: 'o', type: 'string', describe: 'output directory (replaced as a whole, never half written)' })
      .option('device-tree', { type: 'string', describe: 'base Apple device tree (raw or IM4P); default: the profile\'s' })
      .option('ramdisk-from', { type: 'string', describe: 'ramdisk source directory or YAML manifest; default: the profile\'s' })
      .option('ramdisk-fs', { choices: ['apfs', 'hfsplus'] as const, describe: 'ramdisk file system; default: the profile\'s' })
      .option('dry-run', { type: 'boolean', describe: 'match and report every patch, write nothing' })
      .option('exclude-patch', { type: 'string', array: true, describe: 'leave this patch out (repeatable)' })
      .option('revert', { type: 'string', describe: `restore the original kernelcache of an output directory into <dir>/${REVERTED}` })
      .option('check', { type: 'string', array: true, describe: 'validate patch set and profile files (no kernelcache needed)' })
      .example('$0 patch --profile 12.3 --kernelcache kernelcache.im4p --device-tree DeviceTree.im4p --out out/', 'prepare out/ for m1prep boot')
      .example('$0 patch --profile 12.3 --kernelcache kernelcache.im4p --dry-run', 'show what every patch would do')
      .example('$0 patch --check patches/*.yaml profiles/*.yaml', 'validate patch sets and profiles (exit 3 on problems)')
      .example('$0 patch --revert out/', 'rebuild the unpatched kernelcache from out/ and its report'),
  run: async (argv, ui) => {
    const args = argv as unknown as PatchArgs;
    const modes = [args.check !== undefined, args.revert !== undefined, args.kernelcache !== undefined || args.profile !== undefined].filter(Boolean).length;
    if (modes !== 1) throw new UsageError('give either --profile and --kernelcache, or --check FILE..., or --revert DIR');
    if (args.check) return runCheck(args.check, ui);
    if (args.revert) return runRevert(args.revert, ui);
    if (!args.profile || !args.kernelcache) throw new UsageError('patching needs both --profile and --kernelcache');
    if (!args.out && !args.dryRun) throw new UsageError('give --out DIR (or --dry-run to write nothing)');

    const loaded = loadProfile(args.profile);
    if ('problems' in loaded) {
      for (const p of loaded.problems) process.stderr.write(formatProblem(p) + '\n');
      throw new PatchError(`profile ${args.profile}: ${loaded.problems.length} problem${loaded.problems.length === 1 ? '' : 's'} in its files (listed above)`);
    }
    ui.info(`profile ${loaded.profile.name} (macOS ${loaded.profile.macos}): ${loaded.patches.length} patches from ${loaded.sets.map((s) => s.name).join(', ')}`);
    const plan = await planRequest({
      loaded, kernelcache: args.kernelcache, deviceTree: args.deviceTree, ramdiskFrom: args.ramdiskFrom, ramdiskFs: args.ramdiskFs,
      exclude: args.excludePatch ?? [], dryRun: Boolean(args.dryRun),
    });
    const failed = plan.report.patches.filter((p) => p.status === 'failed');
    const already = plan.report.patches.filter((p) => p.status === 'already-applied');
    if (failed.length || already.length) {
      for (const p of [...failed, ...already]) process.stderr.write(describePatch(p).join('\n') + '\n\n');
      if (ui.json) ui.emitJson(plan.report);
      if (failed.length) {
        throw new PatchError(`${failed.length} required patch${failed.length === 1 ? '' : 'es'} did not match (${failed.map((p) => `${p.id} at ${p.source}`).join(', ')}); nothing was written`);
      }
      throw new PatchError(`${args.kernelcache} is already patched (${already.map((p) => p.id).join(', ')} already in place): start from the original kernelcache (m1prep patch --revert restores it); nothing was written`);
    }
    if (args.dryRun) {
      if (ui.json) ui.emitJson(plan.report);
      else ui.out(reportText(plan.report));
      return 0;
    }
    const out = args.out!;
    let manifest;
    await writeDirAtomic(out, async (dir) => {
      manifest = await writeOutputs(plan, dir, (step) => ui.info(`  ${step}`));
    });
    if (ui.json) ui.emitJson({ out, manifest, report: plan.report });
    else {
      printOutcome(plan, ui);
      ui.info(`wrote ${out}/ (patch report: ${path.join(out, 'patch-report.txt')}); next: m1prep boot ${out}`);
    }
    return 0;
  },
});
