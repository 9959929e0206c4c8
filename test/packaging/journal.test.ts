// Under systemd the daemon's stderr is the journal (StandardError=journal, JOURNAL_STREAM set to
// the stream's device:inode): every line must carry its syslog priority as a <N> prefix, which
// journald takes as the entry's PRIORITY and strips, so that `journalctl -u mailstore -p err`
// finds a stopped store and a refused start. Run the way the unit runs it: the built CLI, its
// stderr a file whose device:inode is in JOURNAL_STREAM (journald's stream, as systemd hands it over).
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bin, repoRoot, requireBuilt, tempDir } from '../cli/helpers.js';
import { PackedStore } from '../helpers/packed.js';

/**
 * Runs node with `args`, its stderr a file that JOURNAL_STREAM names (`journal`) or not, and its
 * stdout the same file with `stdout` (a unit's default: one journal stream for both); returns what
 * it wrote there.
 */
function stderrOf(args: string[], journal: boolean, stdout = false): { status: number | null; text: string } {
  const path = join(tempDir('journal-'), 'stderr');
  const fd = openSync(path, 'w');
  try {
    const { dev, ino } = fstatSync(fd);
    const env = { ...process.env, JOURNAL_STREAM: journal ? `${dev}:${ino}` : `${dev}:${ino + 1}` };
    const result = spawnSync(process.execPath, args, { stdio: ['ignore', stdout ? fd : 'ignore', fd], env, timeout: 30_000 });
    return { status: result.status, text: readFileSync(path, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

const LOGGER = `
const { Logger } = await import(${JSON.stringify(join(repoRoot, 'dist/src/daemon/log.js'))});
const logger = new Logger();
logger.info('listening', { socket: 's' });
logger.warn('background-error', { code: 'IO' });
logger.error('store-stopped', { code: 'HALTED' });
await logger.close();`;

describe('log lines in the journal', () => {
  requireBuilt();

  it("the daemon's lines carry their priority (<6> info, <4> warn, <3> error) when stderr is the journal, and none otherwise", () => {
    const { status, text } = stderrOf(['--input-type=module', '-e', LOGGER], true);
    expect(status, text).toBe(0);
    const lines = text.split('\n').filter(Boolean);
    expect(lines.map((line) => line.slice(0, 3))).toEqual(['<6>', '<4>', '<3>']);
    expect(JSON.parse(lines[2].slice(3))).toMatchObject({ level: 'error', event: 'store-stopped', code: 'HALTED' });
    // stderr is something else (a file, a terminal) that inherited the variable: plain JSON lines
    const plain = stderrOf(['--input-type=module', '-e', LOGGER], false).text.split('\n').filter(Boolean);
    expect(plain.map((line) => (JSON.parse(line) as { level: string }).level)).toEqual(['info', 'warn', 'error']);
  });

  it('a --log file that cannot be written (a full disk) is reported on stderr at err', () => {
    const script = `const { Logger } = await import(${JSON.stringify(join(repoRoot, 'dist/src/daemon/log.js'))});
const logger = new Logger('/dev/full');
logger.warn('background-error', { code: 'IO' });
await logger.close();`;
    const { text } = stderrOf(['--input-type=module', '-e', script], true);
    expect(text).toMatch(/^<3>mailstore: NO_SPACE: writing the log \/dev\/full: /m);
    // what a full log disk costs is log lines, not mail: never the append's "nothing acknowledged"
    expect(text).toMatch(/the daemon goes on serving, and the lines lost meanwhile are counted in the log once it writes again \(log-lines-lost\)/);
    expect(text).not.toMatch(/acknowledged/);
  });

  it('a --log write failing for another cause (IO, ACCESS) says too that the daemon goes on serving (was: the bare error, read as its end)', () => {
    const script = `const { Logger } = await import(${JSON.stringify(join(repoRoot, 'dist/src/daemon/log.js'))});
const logger = new Logger(${JSON.stringify(tempDir('journal-log-dir-'))});
logger.warn('background-error', { code: 'IO' });
await logger.close();`;
    const { text } = stderrOf(['--input-type=module', '-e', script], true);
    expect(text).toMatch(/^<3>mailstore: IO: writing the log .*: EISDIR; the daemon goes on serving, and the lines lost meanwhile are counted in the log once it writes again \(log-lines-lost\)$/m);
  });

  it('a --log file the daemon may not write (immutable, as a mode or an owner would refuse it) is ACCESS on stderr, not IO', (context) => {
    const log = join(tempDir('journal-log-'), 'serve.log');
    writeFileSync(log, '');
    const locked = spawnSync('chattr', ['+i', log], { encoding: 'utf8' });
    if (locked.status !== 0) return context.skip(`chattr +i on ${log}: ${locked.stderr.trim() || 'not available'} (needs root and ext4/xfs/btrfs)`);
    try {
      const script = `const { Logger } = await import(${JSON.stringify(join(repoRoot, 'dist/src/daemon/log.js'))});
const logger = new Logger(${JSON.stringify(log)});
logger.warn('background-error', { code: 'IO' });
await logger.close();`;
      const { text } = stderrOf(['--input-type=module', '-e', script], true);
      expect(text).toMatch(new RegExp(`^<3>mailstore: ACCESS: writing the log ${log.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: E(PERM|ACCES)`, 'm'));
    } finally {
      spawnSync('chattr', ['-i', log]);
    }
  });

  it('serve refusing an unmounted store (an empty directory) says so at err, and creates nothing there', () => {
    const empty = join(tempDir('journal-store-'), 'mailstore');
    mkdirSync(empty);
    const { status, text } = stderrOf([bin, 'serve', '--store', empty], true);
    expect(status).toBe(3);
    expect(text).toMatch(/^<3>mailstore: UNMOUNTED: .* has no STORE identity file/);
    expect(spawnSync('ls', ['-A', empty], { encoding: 'utf8' }).stdout).toBe('');
  });

  it("the nightly scrub's damage (mailstore-scrub.service: scrub --quiet) is one line at err; the table of findings stays at the default", async () => {
    const dir = join(tempDir('journal-scrub-'), 'store');
    const text = `Subject: damaged at night\r\n\r\n${'the body of a message '.repeat(200)}\r\n`;
    const store = await PackedStore.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', Buffer.from(text));
    await store.close();
    const pack = join(dir, 'packs', readdirSync(join(dir, 'packs')).find((name) => name.endsWith('.pack'))!);
    const bytes = readFileSync(pack);
    bytes[bytes.indexOf('the body of a message') + 100] ^= 0x01;
    writeFileSync(pack, bytes);
    const { status, text: journal } = stderrOf([bin, '--store', dir, 'scrub', '--quiet'], true, true);
    expect(status, journal).toBe(1);
    const lines = journal.split('\n').filter(Boolean);
    expect(lines.filter((line) => line.startsWith('<3>'))).toEqual([expect.stringMatching(/^<3>1 finding\(s\) of damage.*scrub --repair/)]);
    expect(lines.some((line) => /^KIND /.test(line))).toBe(true);
    // a terminal or a cron mail: no prefix
    expect(stderrOf([bin, '--store', dir, 'scrub', '--quiet'], false, true).text).toMatch(/^1 finding\(s\) of damage/m);
  });
});
