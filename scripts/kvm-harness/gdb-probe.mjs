// Inside the harness's L1: `m1prep boot --backend kvm --gdb SOCKET` on the KVM test guest, driven
// over the GDB remote protocol (L1 carries no arm64 gdb, so this speaks the few packets gdb would
// send; L1 has no IP stack, so the stub listens on a Unix socket): stop at the first instruction, set a breakpoint on the guest's entry (past the Image
// header), continue to it, read the instruction there and compare it with the file, single-step
// once, remove the breakpoint and let the guest finish. Prints KVMGDB-OK or KVMGDB-FAIL <why>.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';

const [kernel, dtb, sockPath] = process.argv.slice(2);
const ENTRY = 0x40n; // guests/kvm-test/guest.S: the 64-byte arm64 Image header, then `entry`

const boot = spawn('node', ['/m1prep/bin/m1prep.js', 'boot', '--backend', 'kvm', '--kernel', kernel, '--dtb', dtb,
  '--expect', 'KVMTEST-DONE', '--fail', 'KVMTEST-FAIL', '--verify', '--timeout', '120', '--serial', 'stdio', '--gdb', sockPath]);
let out = '';
boot.stdout.on('data', (d) => { out += d; });
boot.stderr.on('data', (d) => { out += d; });
const exited = new Promise((res) => boot.on('exit', (code) => res(code)));

const fail = async (why) => {
  console.log(`KVMGDB-FAIL ${why}`);
  boot.kill('SIGKILL');
  await exited;
  console.log(out);
  process.exit(1);
};

function connect() {
  return new Promise((resolve, reject) => {
    let tries = 0;
    const attempt = () => {
      const s = net.connect(sockPath);
      s.once('connect', () => resolve(s));
      s.once('error', () => (++tries > 300 ? reject(new Error('no stub')) : setTimeout(attempt, 100)));
    };
    attempt();
  });
}

const sock = await connect().catch(() => fail('the stub never listened'));
let buf = '';
const waiters = [];
sock.on('data', (d) => {
  buf += d.toString('latin1');
  for (;;) {
    buf = buf.replace(/^\+*/, '');
    const m = /^\$([^#]*)#[0-9a-f]{2}/.exec(buf);
    if (!m) break;
    buf = buf.slice(m[0].length);
    sock.write('+');
    waiters.shift()?.(m[1]);
  }
});
const sum = (s) => [...s].reduce((a, c) => (a + c.charCodeAt(0)) & 0xff, 0).toString(16).padStart(2, '0');
const ask = (p, ms = 60000) => new Promise((res) => {
  const t = setTimeout(() => fail(`no reply to ${p}`), ms);
  waiters.push((r) => { clearTimeout(t); res(r); });
  sock.write(`$${p}#${sum(p)}`);
});
const le = (hex) => BigInt('0x' + (hex.match(/../g) ?? []).reverse().join(''));
const pc = async () => le((await ask('g')).slice(32 * 16, 33 * 16));

if (!/^[ST]05/.test(await ask('?'))) await fail('no stop reply');
const start = await pc();
const bp = start + ENTRY;
if ((await ask(`Z0,${bp.toString(16)},4`)) !== 'OK') await fail('Z0 refused');
if (!/^[ST]05/.test(await ask('c'))) await fail('no stop after continue');
const atBp = await pc();
if (atBp !== bp) await fail(`stopped at 0x${atBp.toString(16)}, breakpoint at 0x${bp.toString(16)}`);
const insn = await ask(`m${bp.toString(16)},4`);
const file = readFileSync(kernel).subarray(Number(ENTRY), Number(ENTRY) + 4).toString('hex');
if (insn !== file) await fail(`memory at the breakpoint reads ${insn}, the file has ${file}`);
if (!/^[ST]05/.test(await ask('s'))) await fail('no stop after step');
const stepped = await pc();
if (stepped !== bp + 4n) await fail(`step went to 0x${stepped.toString(16)}, not 0x${(bp + 4n).toString(16)}`);
if ((await ask(`z0,${bp.toString(16)},4`)) !== 'OK') await fail('z0 refused');
sock.write(`$c#${sum('c')}`);
const code = await exited;
sock.destroy();
if (code !== 0 || !out.includes('KVMTEST-DONE')) await fail(`the guest did not finish after the debugger let go (exit ${code})`);
console.log(`KVMGDB-OK start=0x${start.toString(16)} breakpoint=0x${bp.toString(16)} step=0x${stepped.toString(16)} insn=${insn}`);
