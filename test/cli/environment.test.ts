// The CLI in a hostile or unusual environment rather than given hostile input: stderr whose reader
// went away, a umask that grants everything, a current directory that was deleted, a socket path
// longer than a unix socket can name. Each must give the command's own result or a clear error
// code, never a crash that reads as another result.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, lstatSync, mkdirSync, readFileSync, openSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { untilAccepts } from '../daemon/processes.js';
import { bin, repoRoot, requireBuilt, run, tempDir } from './helpers.js';
import * as here from './in-process.js';
import { mountTmpfs, noRoot, unmountAll } from '../helpers/tmpfs.js';
import { AS_NOBODY, nobodyCannotReach } from '../helpers/nobody.js';

beforeAll(requireBuilt);

// What a case is about runs spawned (a process's stdio, umask, cwd, signals, exit status); the store
// it starts from and the checks after it run in this process (in-process.ts, a sample checked
// against the spawned command: here.*).

const freshStore = () => here.newStore(['M'], 'mailstore-env-');

/** Runs `mailstore ARGS` with stderr (or stdout) a pipe whose reading end is closed before it writes a byte. */
function runReaderGone(args: string[], store: string, gone: 'stdout' | 'stderr' = 'stderr'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...args], { cwd: repoRoot, env: { ...process.env, MAILSTORE_DIR: store }, stdio: ['ignore', 'pipe', 'pipe'] });
  child[gone].destroy();
  const output = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  for (const name of ['stdout', 'stderr'] as const) if (name !== gone) child[name].on('data', (chunk: Buffer) => output[name].push(chunk));
  const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString('utf8');
  return new Promise((done, failed) => {
    child.on('error', failed);
    child.on('close', (code) => done({ code, stdout: text(output.stdout), stderr: text(output.stderr) }));
  });
}
const runStderrGone = (args: string[], store: string) => runReaderGone(args, store, 'stderr');

/** A store whose M holds two messages in a pack (over the inline size), the first one's body damaged. */
async function storeWithDamage(): Promise<string> {
  const store = await freshStore();
  for (const text of ['first', 'second']) await here.ok(['append', 'M', '-'], { store, input: `Subject: ${text}\n\n${text.repeat(10_000)}\n` });
  const pack = join(store, 'packs', readdirSync(join(store, 'packs')).find((name) => name.endsWith('.pack'))!);
  const bytes = readFileSync(pack);
  bytes[20_000] ^= 0x01; // inside the first body
  writeFileSync(pack, bytes);
  return store;
}

describe('stderr closed (its reader went away)', () => {
  it('an import that reports a skipped file goes on to the end: every other message in, exit 1 with its summary', async () => {
    const work = tempDir();
    const source = join(work, 'md');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(source, sub), { recursive: true });
    for (let i = 1; i <= 20; i++) writeFileSync(join(source, 'cur', `${1700000000 + i}.M${i}.host:2,S`), `Subject: ${i}\n\nbody ${i}\n`);
    writeFileSync(join(work, 'secret'), 'root-only\n');
    symlinkSync(join(work, 'secret'), join(source, 'cur', '1700000000.Mlink.host:2,'));
    const store = await freshStore();
    const result = await runStderrGone(['import', source, '--mailbox', 'M', '--json'], store);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ imported: 20, skipped: 1, skippedReasons: { symlink: 1 } });
    expect((await here.json(['mailbox', 'status', 'M'], { store })).messages).toBe(20);
  });

  it('a failing command keeps its exit code (NOT_FOUND: 4, not 1)', async () => {
    const store = await freshStore();
    expect((await runStderrGone(['fetch', 'M', '7'], store)).code).toBe(4);
  });

  it('the daemon keeps serving when its log (stderr, no --log) cannot be written', async () => {
    const store = await freshStore();
    const daemon = spawn(process.execPath, [bin, 'serve'], { cwd: repoRoot, env: { ...process.env, MAILSTORE_DIR: store }, stdio: ['ignore', 'ignore', 'pipe'] });
    daemon.stderr.destroy();
    const exited = new Promise<number | null>((done) => daemon.on('close', (code) => done(code)));
    try {
      const socket = join(store, 'run', 'mailstore.sock');
      await untilAccepts(socket, daemon);
      // it has logged 'listening' by now, and its services after: the append goes through it
      const appended = await here.ok(['--no-wait', 'append', 'M', '-'], { store, input: 'Subject: via the daemon\n\nx\n' });
      expect(appended.trim()).toBe('1');
      expect(daemon.exitCode).toBeNull();
    } finally {
      daemon.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});

describe('stdout closed (its reader went away: | head, | true)', () => {
  // The CLI exited 0 on EPIPE whatever the command had still to say: `scrub | true` on a damaged
  // store exited 0 (under pipefail the damage read as clean), as did a list cut short.
  it('ends quietly (no stack trace) with the broken pipe\'s 141, never 0 for output it could not give; the store is untouched', async () => {
    const store = await storeWithDamage();
    for (const args of [['scrub'], ['scrub', '--jsonl'], ['messages', 'M'], ['fetch', 'M', '2']]) {
      const result = await runReaderGone(args, store, 'stdout');
      expect(result.code, args.join(' ')).toBe(141);
      expect(result.stderr, args.join(' ')).toBe('');
    }
    expect((await here.run(['scrub'], { store })).code).toBe(1); // the damage is still there to be found
    expect((await here.ok(['messages', 'M'], { store })).split('\n').filter(Boolean)).toHaveLength(2);
  });

  it('append, whose message is durable before it prints its uid, exits 0 (with --sysexits too: an MTA must not bounce what was delivered)', async () => {
    const store = await freshStore();
    for (const args of [['append', 'M', '-'], ['append', 'M', '-', '--sysexits']]) {
      const child = spawn(process.execPath, [bin, ...args], { cwd: repoRoot, env: { ...process.env, MAILSTORE_DIR: store }, stdio: ['pipe', 'pipe', 'pipe'] });
      child.stdout.destroy();
      child.stdin.end('Subject: delivered\n\nbody\n');
      const code = await new Promise((done) => child.on('close', done));
      expect(code, args.join(' ')).toBe(0);
    }
    expect((await here.ok(['messages', 'M'], { store })).split('\n').filter(Boolean)).toHaveLength(2);
  });
});

describe('stdout a full disk (> /dev/full)', () => {
  // A write to stdout that failed (ENOSPC, EIO) was thrown from the stream's error event: node
  // printed a stack trace and exited 1, which export and import document as "skipped entries".
  it.skipIf(!existsSync('/dev/full'))('NO_SPACE (exit 2) naming standard output; what the command did is done', async () => {
    const store = await freshStore();
    await here.ok(['append', 'M', '-'], { store, input: 'Subject: one\n\nbody\n' });
    const toFull = (args: string[], input = '') => spawnSync('sh', ['-c', 'exec "$@" > /dev/full', 'sh', process.execPath, bin, '--store', store, ...args], { encoding: 'utf8', input });
    const out = join(tempDir(), 'M.mbox');
    for (const args of [['messages', 'M'], ['messages', 'M', '--json'], ['mailbox', 'list'], ['export', 'M', '--format', 'mbox', '--out', out]]) {
      const result = toFull(args);
      expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(/^mailstore: NO_SPACE: cannot write to standard output: ENOSPC/);
      expect(result.stderr, args.join(' ')).not.toMatch(/\n\s+at /);
    }
    expect(readFileSync(out, 'utf8')).toContain('Subject: one'); // the export itself was complete
    const appended = toFull(['append', 'M', '-'], 'Subject: two\n\nbody\n');
    expect(appended.status).toBe(2);
    expect(await here.ok(['messages', 'M'], { store })).toMatch(/^2\t/m); // durable, though its uid could not be printed
  });

  // What commander itself prints (help, --version) is not written through writeStdout: since its
  // error was no longer thrown from the stream's error event, nothing was written and it exited 0.
  it.skipIf(!existsSync('/dev/full'))('help and --version too: NO_SPACE (exit 2), never 0 with nothing written', () => {
    for (const args of [['--help'], ['--version'], ['mailbox', '--help'], ['help', 'append']]) {
      const result = spawnSync('sh', ['-c', 'exec "$@" > /dev/full', 'sh', process.execPath, bin, ...args], { encoding: 'utf8' });
      expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(/^mailstore: NO_SPACE: cannot write to standard output: ENOSPC/);
      expect(result.stderr, args.join(' ')).not.toMatch(/\n\s+at /);
    }
  });
});

describe('stdout a file on a full disk (cron\'s > log, a tmpfs)', () => {
  afterEach(unmountAll);

  // A file's output is written on fd 1 itself, not through node's stream (std-streams.ts): its
  // failure must read as the stream's did, and the append stays durable.
  it.skipIf(noRoot)('NO_SPACE (exit 2) naming standard output; the append is durable', async () => {
    const store = await freshStore();
    const full = tempDir();
    const refused = mountTmpfs(full, '64k');
    expect(refused).toBeUndefined();
    const log = join(full, 'out.log');
    writeFileSync(log, '');
    spawnSync('sh', ['-c', 'cat /dev/zero > "$1"', 'sh', join(full, 'filler')]); // fills the tmpfs: ENOSPC
    const fd = openSync(log, 'a');
    try {
      const appended = spawnSync(process.execPath, [bin, '--store', store, 'append', 'M', '-'], { input: 'Subject: full\n\nbody\n', stdio: ['pipe', fd, 'pipe'], encoding: 'utf8' });
      expect(appended.status, appended.stderr).toBe(2);
      expect(appended.stderr).toMatch(/^mailstore: NO_SPACE: cannot write to standard output: ENOSPC/);
      expect(appended.stderr).not.toMatch(/\n\s+at /);
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(log, 'utf8')).toBe('');
    expect(await here.ok(['messages', 'M'], { store })).toMatch(/^1\t/m); // durable, though its uid could not be printed
  });
});

describe('the current directory deleted under the shell', () => {
  /** `mailstore ARGS` started in a directory that is removed before node starts. */
  function inDeletedDirectory(args: string[], env: Record<string, string> = {}) {
    const gone = join(tempDir(), 'gone');
    mkdirSync(gone);
    const environment: Record<string, string | undefined> = { ...process.env, ...env };
    if (!('MAILSTORE_DIR' in env)) delete environment.MAILSTORE_DIR;
    return spawnSync('sh', ['-c', 'cd "$1" && rmdir "$1" && shift && exec "$@"', 'sh', gone, process.execPath, bin, ...args], { env: environment, encoding: 'utf8' });
  }

  it('a relative or default store is NOT_FOUND (exit 4) saying why, not INTERNAL; an absolute one works', async () => {
    for (const args of [['stats'], ['--store', 'relative/store', 'stats'], ['serve']]) {
      const result = inDeletedDirectory(args);
      expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(4);
      expect(result.stderr).toMatch(/^mailstore: NOT_FOUND: .*current directory no longer exists/);
    }
    const store = await freshStore();
    const absolute = inDeletedDirectory(['--store', store, 'mailbox', 'list']);
    expect(absolute.status, absolute.stderr).toBe(0);
    expect(absolute.stdout).toBe('M\n');
    const source = inDeletedDirectory(['--store', store, 'import', 'Maildir', '--mailbox', 'M']);
    expect(source.status, source.stderr).toBe(4);
    expect(source.stderr).toMatch(/^mailstore: NOT_FOUND: cannot find "Maildir": it is relative/);
  });
});

describe('an empty path (a script\'s unset variable: --store "$SPOOL")', () => {
  // An empty --store or MAILSTORE_DIR was the current directory: init made a store there (in cron's
  // HOME), and every other command used whatever store the shell stood in; an empty SOURCE imported it.
  it('is INVALID (exit 5) naming where it came from, and nothing is created in the current directory', async () => {
    const cwd = tempDir();
    const store = await freshStore();
    const mailstore = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [bin, ...args], { cwd, env: { ...process.env, MAILSTORE_DIR: store, ...env }, encoding: 'utf8', input: '' });
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['init'], { MAILSTORE_DIR: '' }, /MAILSTORE_DIR is set but empty/],
      [['--store', '', 'init'], {}, /--store is empty/],
      [['--store', '', 'mailbox', 'list'], {}, /--store is empty/],
      [['import', '', '--mailbox', 'M'], {}, /an empty path/],
      [['export', 'M', '--format', 'maildir', '--out', ''], {}, /an empty path/],
    ];
    for (const [args, env, message] of cases) {
      const result = mailstore(args, env);
      expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(5);
      expect(result.stderr, args.join(' ')).toMatch(/^mailstore: INVALID: /);
      expect(result.stderr, args.join(' ')).toMatch(message);
    }
    expect(readdirSync(cwd)).toEqual([]);
    expect(await here.ok(['mailbox', 'list'], { store })).toBe('M\n');
  });
});

describe('a relative path given to a command that a daemon runs', () => {
  // scrub --repair through the daemon read a relative --replication-key in the daemon's working
  // directory (/ under systemd), not the admin's: NOT_FOUND, exit 4, for a key file that is there.
  it('scrub --repair --replication-key FILE is read where the admin stands', async () => {
    const store = await storeWithDamage();
    const keys = tempDir();
    writeFileSync(join(keys, 'key.hex'), `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    const daemon = spawn(process.execPath, [bin, '--store', store, 'serve'], { cwd: '/', stdio: 'ignore' });
    const exited = new Promise<number | null>((done) => daemon.on('close', (code) => done(code)));
    try {
      const socket = join(store, 'run', 'mailstore.sock');
      await untilAccepts(socket, daemon);
      const closedPort = await new Promise<number>((done) => {
        const server = createServer().listen(0, '127.0.0.1', () => { const { port } = server.address() as AddressInfo; server.close(() => done(port)); });
      });
      const result = spawnSync(process.execPath, [bin, '--store', store, 'scrub', '--repair', '--source', `127.0.0.1:${closedPort}`, '--replication-key', 'key.hex'], { cwd: keys, encoding: 'utf8' });
      // the key was read; what fails is the source, which nothing listens on
      expect(result.stderr).toMatch(new RegExp(`^mailstore: UNAVAILABLE: cannot reach 127\\.0\\.0\\.1:${closedPort}`));
      expect(result.status).toBe(2);
      expect(daemon.exitCode).toBeNull();
    } finally {
      daemon.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});

describe('append with nothing on stdin (/dev/null, closed, a generator that failed)', () => {
  // An empty message was appended and the command exited 0: `report | mailstore append M` from cron
  // stored an empty message whenever the report failed, and the pipeline's status (append's) hid it.
  it('INVALID (exit 5; 65 with --sysexits) and nothing is appended; an empty FILE likewise', async () => {
    const store = await freshStore();
    const empty = join(tempDir(), 'empty.eml');
    writeFileSync(empty, '');
    const mailstore = bin.replace(/'/g, `'\\''`);
    for (const [shell, code] of [
      [`exec "$0" '${mailstore}' append M < /dev/null`, 5],
      [`exec "$0" '${mailstore}' append M - <&-`, 5],
      [`false | "$0" '${mailstore}' append M`, 5],
      [`exec "$0" '${mailstore}' append M --sysexits < /dev/null`, 65],
      [`exec "$0" '${mailstore}' append M '${empty}'`, 5],
    ] as const) {
      const result = spawnSync('sh', ['-c', shell, process.execPath], { env: { ...process.env, MAILSTORE_DIR: store }, encoding: 'utf8' });
      expect(result.status, `${shell}: ${result.stderr}`).toBe(code);
      expect(result.stderr, shell).toMatch(/^mailstore: INVALID: .*empty/);
    }
    expect(await here.json(['messages', 'M'], { store })).toEqual([]);
  });
});

describe('umask 000', () => {
  /** Every path under `dir` that users other than owner and group reach (search bits all the way) and may write. */
  function writableByOthers(dir: string): string[] {
    const found: string[] = [];
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const stat = lstatSync(path);
      if ((stat.mode & 0o002) !== 0 && !stat.isSocket() && !stat.isSymbolicLink()) found.push(path);
      if (stat.isDirectory() && (stat.mode & 0o001) !== 0) found.push(...writableByOthers(path));
    }
    return found;
  }

  it('no directory of a store is open to other users, LevelDB\'s index/ and lock/ too (a root a package made 0755)', async () => {
    const store = join(tempDir(), 'store');
    mkdirSync(store, { mode: 0o755 });
    const mailstore = (...args: string[]) => spawnSync('sh', ['-c', 'umask 000 && exec "$@"', 'sh', process.execPath, bin, '--store', store, ...args], { input: 'Subject: x\n\ny\n', encoding: 'utf8' });
    for (const args of [['init'], ['mailbox', 'create', 'M'], ['append', 'M', '-'], ['reconstruct', '--force']]) {
      const result = mailstore(...args);
      expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(0);
    }
    for (const sub of ['index', 'lock', 'journal', 'packs']) expect((lstatSync(join(store, sub)).mode & 0o777).toString(8), sub).toBe('750');
    // the files inside LevelDB's directories follow the umask (0666): only owner and group reach them
    expect(writableByOthers(store)).toEqual([]);
  });
});

describe('a store directory that group or others may write', () => {
  // init (and restore --to) took an existing empty directory as it was: made 0777 (or 0775) by an
  // admin, the store's root let any local user rename or replace packs/, journal/ and STORE, though
  // every directory the store makes is 0750.
  // the modes are the directory's, not the process's: the commands run in this process (in-process.ts)
  it('init and restore --to refuse it (ACCESS, exit 2) and write nothing there; chmod go-w, and both go on', async () => {
    const work = tempDir();
    const source = await freshStore();
    await here.ok(['append', 'M', '-'], { store: source, input: 'Subject: kept\n\nbody\n' });
    const repo = join(work, 'repo');
    await here.ok(['backup', '--repo', repo], { store: source });
    for (const mode of [0o777, 0o775, 0o757, 0o1777]) {
      const target = join(work, `target-${mode.toString(8)}`);
      mkdirSync(target);
      chmodSync(target, mode);
      const init = await here.run(['init'], { store: target });
      expect(init.code, init.stderr).toBe(2);
      expect(init.stderr).toMatch(new RegExp(`ACCESS: ${target} may be written by group or others \\(mode ${mode.toString(8)}\\).*chmod go-w ${target}`));
      const restore = await here.run(['restore', '--repo', repo, '--to', target]);
      expect(restore.code, restore.stderr).toBe(2);
      expect(restore.stderr).toMatch(/ACCESS: .* may be written by group or others/);
      expect(readdirSync(target)).toEqual([]);
      chmodSync(target, mode & ~0o022);
      await here.ok(['restore', '--repo', repo, '--to', target]);
      expect(await here.ok(['fetch', 'M', '1'], { store: target })).toBe('Subject: kept\n\nbody\n');
    }
    const other = join(work, 'other');
    mkdirSync(other, { mode: 0o700 });
    chmodSync(other, 0o777);
    expect((await here.run(['init'], { store: other })).code).toBe(2);
    chmodSync(other, 0o755); // a mount point's usual mode: others may reach the socket directory, not write
    await here.ok(['init'], { store: other });
  });
});

describe('umask 077 (a hardened admin shell) when serve starts', () => {
  // serve made STORE/run/ with 0755 less the umask: started from a shell with umask 077 it was
  // 0700, and every member of the store's group (the MTA, the IMAP server) was refused at the
  // socket ('ACCESS ... join its group') though the socket itself was 0660 and they were in it.
  it.skipIf(process.getuid?.() !== 0)('the socket\'s directory is still reachable: a member of the group connects', async () => {
    const store = await freshStore();
    chmodSync(join(store, '..'), 0o755);
    const socket = join(store, 'run', 'mailstore.sock');
    const daemon = spawn('sh', ['-c', 'umask 077 && exec "$@"', 'sh', process.execPath, bin, '--store', store, 'serve'], { stdio: 'ignore' });
    const exited = new Promise<number | null>((done) => daemon.on('close', (code) => done(code)));
    try {
      await untilAccepts(socket, daemon);
      expect((lstatSync(join(store, 'run')).mode & 0o777).toString(8)).toBe('755');
      expect((lstatSync(socket).mode & 0o777).toString(8)).toBe('660');
      const member = spawnSync(process.execPath, ['-e', `require('net').createConnection(process.argv[1]).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`, socket], { uid: 65534, gid: lstatSync(store).gid, encoding: 'utf8' });
      expect(member.stdout.trim()).toBe('connected');
    } finally {
      daemon.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});

describe('a socket path longer than a unix socket can name (107 bytes)', () => {
  it('serve in a deep store says so (INVALID, exit 5) and serves with a shorter --socket; a long unix: LMTP path likewise', async () => {
    const deep = join(tempDir(), 'd'.repeat(60), 'e'.repeat(40), 'store');
    mkdirSync(join(deep, '..'), { recursive: true });
    await here.ok(['init'], { store: deep });
    await here.ok(['mailbox', 'create', 'M'], { store: deep });
    expect(Buffer.byteLength(join(deep, 'run', 'mailstore.sock'))).toBeGreaterThan(107);
    const refused = await run(['--no-wait', 'serve'], { store: deep });
    expect(refused.code, refused.stderr).toBe(5);
    expect(refused.stderr).toMatch(/INVALID: the socket .*mailstore\.sock is \d+ bytes long; a unix socket's path holds at most 107: give --socket/);
    const lmtp = await run(['--no-wait', 'serve', '--socket', join(tempDir(), 's.sock'), '--lmtp', `unix:${join(deep, 'lmtp.sock')}`], { store: deep });
    expect(lmtp.code, lmtp.stderr).toBe(5);
    expect(lmtp.stderr).toMatch(/INVALID: the LMTP socket .*lmtp\.sock is \d+ bytes long/);

    const socket = join(tempDir(), 's.sock');
    const daemon = spawn(process.execPath, [bin, '--store', deep, 'serve', '--socket', socket, '--log', join(tempDir(), 'log')], { stdio: 'ignore' });
    const exited = new Promise<number | null>((done) => daemon.on('close', (code) => done(code)));
    try {
      await untilAccepts(socket, daemon);
      expect((await here.ok(['--no-wait', 'append', 'M', '-'], { store: deep, input: 'Subject: x\n\ny\n', env: { MAILSTORE_SOCKET: socket } })).trim()).toBe('1');
    } finally {
      daemon.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});

describe('a socket in a directory another user may write', () => {
  // serve listened wherever --socket (or --lmtp unix:) said: in /tmp, or in a directory another
  // user made, that user could put a socket of their own at the path (while the daemon is down,
  // or by renaming the daemon's away) and take every append, fetch and LMTP delivery meant for it.
  it('serve refuses it (ACCESS, exit 2) for its socket, an LMTP unix socket and its log, and serves from a private one', async () => {
    const store = await freshStore();
    const shared = join(tempDir(), 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777); // as /tmp
    const refused = await run(['--no-wait', 'serve', '--socket', join(shared, 's.sock')], { store });
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toMatch(new RegExp(`ACCESS: the socket's directory ${shared} may be written by other users \\(mode 1777\\)`));
    const lmtp = await run(['--no-wait', 'serve', '--socket', join(tempDir(), 's.sock'), '--lmtp', `unix:${join(shared, 'lmtp.sock')}`], { store });
    expect(lmtp.code, lmtp.stderr).toBe(2);
    expect(lmtp.stderr).toMatch(/ACCESS: the LMTP socket's directory .* may be written by other users/);
    // a log there: another user's file (or link) made before the daemon starts would be appended to
    const log = await run(['--no-wait', 'serve', '--socket', join(tempDir(), 's.sock'), '--log', join(shared, 'mailstore.log')], { store });
    expect(log.code, log.stderr).toBe(2);
    expect(log.stderr).toMatch(/ACCESS: the log's directory .* may be written by other users \(mode 1777\): they could put a file or link of their own at .*mailstore\.log/);
    expect(readdirSync(shared)).toEqual([]);
    if (process.getuid?.() === 0) {
      const theirs = join(tempDir(), 'theirs');
      mkdirSync(theirs, { mode: 0o755 });
      spawnSync('chown', ['65534', theirs]);
      const owned = await run(['--no-wait', 'serve', '--socket', join(theirs, 's.sock')], { store });
      expect(owned.code, owned.stderr).toBe(2);
      expect(owned.stderr).toMatch(/ACCESS: the socket's directory .* belongs to another user \(uid 65534\)/);
    }
    expect((await here.ok(['append', 'M', '-'], { store, input: 'Subject: x\n\ny\n' })).trim()).toBe('1'); // the store as it was
  });
});

describe('a --log the daemon cannot append to', () => {
  // Was: the log's stream failed after the start, 'mailstore: IO: writing the log …: EISDIR' on
  // stderr, and the daemon served on, LMTP and all, with no log (found with a careless `--log
  // /var/log/mailstore`, the directory); a second daemon started meanwhile waited on the LOCK.
  it('serve refuses to start, names the log and says the daemon did not start; the store is as it was', async () => {
    const store = await freshStore();
    const directory = join(tempDir(), 'logs');
    mkdirSync(directory);
    const refused = await run(['--no-wait', 'serve', '--socket', join(tempDir(), 's.sock'), '--log', directory], { store });
    expect(refused.code, refused.stderr).not.toBe(0);
    expect(refused.stderr).toMatch(new RegExp(`IO: opening the log ${directory}: EISDIR; the daemon did not start: give --log a file it may append to`));
    expect(readdirSync(directory)).toEqual([]);
    expect(existsSync(join(store, 'run', 'mailstore.sock'))).toBe(false);
    expect((await here.ok(['append', 'M', '-'], { store, input: 'Subject: x\n\ny\n' })).trim()).toBe('1');
  });
});

describe('a store the caller may read but not write', () => {
  // As `nobody` (root ignores modes), who must reach the built CLI: see drills.test.ts
  const nobody = (args: string[], store: string) => spawnSync('setpriv', [...AS_NOBODY, process.execPath, bin, '--store', store, ...args], { cwd: '/', encoding: 'utf8' });
  const skip = nobodyCannotReach(bin);
  if (skip) console.warn(`SKIPPED: the read-only store test: ${skip}`);

  it.skipIf(skip !== undefined)('every command that only reads works (as fetch did), a change is ACCESS', async () => {
    const store = await freshStore();
    await here.ok(['append', 'M', '-', '--flags', '\\Seen'], { store, input: 'Subject: hello\n\nbody\n' });
    await here.ok(['quota', 'set', 'M', '--messages', '10'], { store });
    chmodSync(join(store, '..'), 0o755);
    spawnSync('chmod', ['-R', 'a+rX,go-w', store]);
    for (const args of [['fetch', 'M', '1'], ['messages', 'M'], ['search', 'M', '--subject', 'hello'], ['mailbox', 'dump'], ['usage', '--json'], ['quota', 'get', 'M'], ['quota', 'list']]) {
      const result = nobody(args, store);
      expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(0);
      expect(result.stdout.length, args.join(' ')).toBeGreaterThan(0);
    }
    const change = nobody(['flags', 'M', '1', '--add', '\\Flagged'], store);
    expect(change.status).toBe(2);
    expect(change.stderr).toMatch(/^mailstore: ACCESS: /);
  });

  it.skipIf(skip !== undefined)('init where the caller may not look (a parent directory root keeps 0700) is ACCESS, exit 2, naming the path (was INTERNAL, exit 70, "a bug"), and makes nothing', () => {
    const parent = tempDir(); // 0700, root's
    for (const store of [join(parent, 'store'), join(parent, 'deeper', 'store')]) {
      const result = nobody(['init'], store);
      expect(result.status, result.stderr).toBe(2);
      expect(result.stderr).toMatch(new RegExp(`^mailstore: ACCESS: .*${parent}.*EACCES \\(check ownership`));
      expect(result.stderr).not.toMatch(/INTERNAL|a bug/);
    }
    expect(readdirSync(parent)).toEqual([]);
  });

  it.skipIf(skip !== undefined)('a journal archive where the store\'s user may not look (snapshot --journal-archive, init --journal-archive) is ACCESS, exit 2, naming it (was INTERNAL, exit 70), and the setting is not changed', async () => {
    const store = await freshStore();
    spawnSync('chown', ['-R', 'nobody', store]);
    chmodSync(join(store, '..'), 0o755);
    const archive = join(tempDir(), 'archive'); // under a 0700 directory of root's
    const setting = nobody(['snapshot', '--journal-archive', archive], store);
    expect(setting.status, setting.stderr).toBe(2);
    expect(setting.stderr).toMatch(new RegExp(`^mailstore: ACCESS: looking at the journal archive ${archive}: EACCES`));
    expect(existsSync(join(store, 'JOURNAL-ARCHIVE'))).toBe(false);
    const fresh = join(tempDir(), 'store');
    chmodSync(join(fresh, '..'), 0o777);
    const init = nobody(['init', '--journal-archive', archive], fresh);
    expect(init.status, init.stderr).toBe(2);
    expect(init.stderr).toMatch(/^mailstore: ACCESS: looking at the journal archive /);
    expect(existsSync(fresh)).toBe(false);
  });

  it.skipIf(skip !== undefined)('rebuild-from-bucket with a --journal-copy the caller may not read is ACCESS, exit 2, naming it (was INTERNAL, exit 70), and makes nothing', () => {
    const copy = join(tempDir(), 'journal-copy'); // under a 0700 directory of root's
    const open = tempDir();
    chmodSync(open, 0o777);
    const target = join(open, 'store');
    const result = nobody(['rebuild-from-bucket', '--journal-copy', copy, '--object-store', `file://${open}/bucket`], target);
    expect(result.status, result.stderr).toBe(2);
    expect(result.stderr).toMatch(new RegExp(`^mailstore: ACCESS: looking at the journal copy ${copy}/STORE: EACCES`));
    expect(readdirSync(open)).toEqual([]);
  });

  // A read-only open copies the index's small files into $TMPDIR. Missing, it was NOT_FOUND (exit 4,
  // as for a missing mailbox) about "/nonexistent: ENOENT"; not writable, the ACCESS of the lock
  // was printed instead, and nothing named TMPDIR.
  it.skipIf(skip !== undefined)('a $TMPDIR that is missing or not writable is named, exit 2, and the read works with another', async () => {
    const store = await freshStore();
    await here.ok(['append', 'M', '-'], { store, input: 'Subject: hello\n\nbody\n' });
    chmodSync(join(store, '..'), 0o755);
    spawnSync('chmod', ['-R', 'a+rX,go-w', store]);
    const rootOnly = tempDir(); // 0700, root's
    for (const tmp of ['/nonexistent', rootOnly]) {
      const result = spawnSync('setpriv', [...AS_NOBODY, process.execPath, bin, '--store', store, 'messages', 'M'], { cwd: '/', encoding: 'utf8', env: { ...process.env, TMPDIR: tmp } });
      expect(result.status, `${tmp}: ${result.stderr}`).toBe(2);
      expect(result.stderr, tmp).toMatch(/^mailstore: (IO|ACCESS): .*\$TMPDIR \(/);
      expect(result.stderr, tmp).toContain(tmp);
    }
    expect(nobody(['messages', 'M'], store).status).toBe(0);
  });
});

describe('a read-only open killed before it closed (SIGKILL, a timeout, Ctrl-C)', () => {
  // Its private copy of the index (mailstore-read-only-*, in $TMPDIR: a copy of the index's log and
  // MANIFEST) stayed there for good, one more for each run a cron job's timeout cut short.
  it.skipIf(process.geteuid?.() !== 0)('leaves a copy that the next read-only open removes', async () => {
    const store = await freshStore();
    await here.ok(['append', 'M', '-'], { store, input: 'Subject: hello\n\nbody\n' });
    spawnSync('chown', ['-R', '65534:65534', store]); // root reads nobody's store read-only
    const tmp = tempDir();
    const env = { ...process.env, TMPDIR: tmp, MAILSTORE_DIR: store };
    const scrub = spawn(process.execPath, [bin, 'scrub'], { env, stdio: 'ignore' });
    const ended = new Promise((done) => scrub.on('close', done));
    const copies = () => readdirSync(tmp).flatMap((name) => readdirSync(join(tmp, name)));
    while (copies().length === 0 && scrub.exitCode === null) await new Promise((r) => setImmediate(r));
    scrub.kill('SIGKILL');
    await ended;
    const own = join(tmp, 'mailstore-read-only-uid0'); // root's own directory of copies there
    expect(readdirSync(tmp)).toEqual(['mailstore-read-only-uid0']);
    expect(readdirSync(own)).toHaveLength(1); // the killed one's
    const list = spawnSync(process.execPath, [bin, 'mailbox', 'list'], { env, encoding: 'utf8' });
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toBe('M\n');
    expect(readdirSync(own)).toEqual([]);
  });
});

describe('SIGUSR1 (the log-reopen signal of nginx and Dovecot, in a logrotate recipe)', () => {
  // node takes SIGUSR1 to start its inspector: the daemon then listened on 127.0.0.1:9229, where any
  // local user could run code as the daemon's user, with every mailbox in reach.
  it('the daemon reopens its log, as on SIGHUP, and starts no debugger', async () => {
    const store = await freshStore();
    const log = join(tempDir(), 'daemon.log');
    const daemon = spawn(process.execPath, [bin, '--store', store, 'serve', '--log', log], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    daemon.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<number | null>((done) => daemon.on('close', (code) => done(code)));
    const logged = (event: string) => existsSync(log) && readFileSync(log, 'utf8').includes(`"event":"${event}"`);
    try {
      const waitFor = async (event: string) => { // (60 s: a hang guard; node starts many times slower at load 20)
        for (let waited = 0; waited < 60_000 && !logged(event) && daemon.exitCode === null; waited += 20) await new Promise((r) => setTimeout(r, 20));
      };
      await waitFor('listening');
      daemon.kill('SIGUSR1');
      await waitFor('log-reopened');
      expect(logged('log-reopened')).toBe(true);
      expect(await here.ok(['--no-wait', 'append', 'M', '-'], { store, input: 'Subject: after USR1\n\nx\n' })).toBe('1\n');
      expect(stderr).not.toMatch(/Debugger listening/);
    } finally {
      daemon.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});

describe('node without WebAssembly (--jitless)', () => {
  it('scrub checks the index tables with the table-driven CRC32C: clean, exit 0; then finds a damaged table', async () => {
    const store = await freshStore();
    await here.ok(['append', 'M', '-'], { store, input: `Subject: big\n\n${'y'.repeat(200_000)}\n` });
    await here.ok(['append', 'M', '-'], { store, input: 'Subject: small\n\nx\n' });
    await here.ok(['snapshot'], { store }); // LevelDB's tables written: the index pass has blocks to check
    const jitless = (args: string[]) => spawnSync(process.execPath, ['--jitless', bin, '--store', store, ...args], { cwd: repoRoot, encoding: 'utf8' });
    const clean = jitless(['scrub', '--json']);
    expect(clean.status, clean.stderr).toBe(0);
    expect(JSON.parse(clean.stdout).summary).toMatchObject({ damage: 0, blobsVerified: 1 });
    expect(JSON.parse(clean.stdout).summary.indexKeys).toBeGreaterThan(0);
    const tables = readdirSync(join(store, 'index')).filter((name) => name.endsWith('.ldb'));
    expect(tables.length).toBeGreaterThan(0);
    const table = join(store, 'index', tables[0]);
    const bytes = readFileSync(table);
    bytes[10] ^= 0x40; // inside the first data block: its CRC no longer matches
    writeFileSync(table, bytes);
    const damaged = jitless(['scrub', '--json']);
    expect(damaged.status, damaged.stderr).not.toBe(0);
    expect(JSON.parse(damaged.stdout).summary.damage).toBeGreaterThan(0);
    expect(damaged.stdout).toContain(tables[0]);
  });
});
