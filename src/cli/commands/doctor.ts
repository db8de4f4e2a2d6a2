import { defineCommand } from '../command.js';
import { table, colors } from '../ui.js';
import { runChecks } from '../../host/checks.js';
import '../../host/basic-checks.js';
import '../../host/register-all.js';

export const doctorCommand = defineCommand({
  command: 'doctor',
  describe: 'say what this host can do: CPU backends, KVM, tools used by tests and samples',
  builder: (y) => y.example('$0 doctor --json', 'machine-readable report'),
  run: async (args, ui) => {
    const results = await runChecks();
    if (ui.json) {
      ui.emitJson({ checks: results });
      return 0;
    }
    const mark = (s: string) => (s === 'ok' ? colors.green('ok') : s === 'warn' ? colors.yellow('warn') : colors.red('missing'));
    ui.out(table(results.map((r) => [r.name, mark(r.status), r.detail + (r.needFor ? ` (needed for ${r.needFor})` : '')]), ['check', 'status', 'detail']));
    return 0;
  },
});
