// `mailstore serve` as a child process, for the process-level tests of the daemon.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bin, repoRoot } from '../cli/helpers.js';
import { newStore } from '../cli/in-process.js';

export const INBOX = 'user/alice/INBOX';
export const clientModule = join(repoRoot, 'dist/src/client/client.js');

/** A store with INBOX, made in this process: two CLI processes (~0.2 s each idle, seconds at load) are not the point of a daemon test. */
export const freshStore = (): Promise<string> => newStore([INBOX], 'mailstore-serve-');

export interface Daemon { child: ChildProcess; stderr: () => string; exited: Promise<number | null> }

/**
 * The CLI (unbundled, dist/src/cli/program.js) with these limits of dist/src/limits.js changed first:
 * for tests that need a daemon to snapshot, compact or rotate within seconds (never a product knob);
 * `without`: daemon procedures removed, as a daemon of an older version lacks them.
 */
function withLimits(limits: Record<string, number>, without: string[] = []): string[] {
  const script = `const { limits } = await import(${JSON.stringify(join(repoRoot, 'dist/src/limits.js'))});
Object.assign(limits, ${JSON.stringify(limits)});
const { PROCEDURES } = await import(${JSON.stringify(join(repoRoot, 'dist/src/daemon/procedures.js'))});
for (const name of ${JSON.stringify(without)}) delete PROCEDURES[name];
const { main } = await import(${JSON.stringify(join(repoRoot, 'dist/src/cli/program.js'))});
process.exitCode = await main([process.execPath, 'mailstore', ...process.argv.slice(1)]);`;
  return ['--input-type=module', '-e', script];
}

/**
 * `openFilesMax`: the daemon runs under `ulimit -n` of it (soft and hard: Node cannot raise it); `env`: added to the environment;
 * `limits`: src/limits.ts values changed in the daemon (withLimits); `without`: procedures it lacks (an older daemon).
 */
export async function serve(store: string, args: string[] = [], options: { openFilesMax?: number; env?: Record<string, string>; limits?: Record<string, number>; without?: string[] } = {}): Promise<Daemon> {
  const cli = options.limits || options.without ? withLimits(options.limits ?? {}, options.without) : [bin];
  const command = options.openFilesMax === undefined
    ? [process.execPath, ...cli, 'serve', ...args]
    : ['/bin/sh', '-c', `ulimit -n ${options.openFilesMax} && exec "$0" "$@"`, process.execPath, ...cli, 'serve', ...args];
  const child = spawn(command[0], command.slice(1), { env: { ...process.env, MAILSTORE_DIR: store, ...options.env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  // 'close', not 'exit': the exit can be heard before the last of stderr, which tests read after it
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const at = args.indexOf('--socket');
  const socket = at >= 0 ? args[at + 1] : join(store, 'run', 'mailstore.sock');
  await untilAccepts(socket, child, () => `serve did not start: ${stderr}`);
  // LMTP and metrics listen only after the socket answers (server.ts's onStarted): a test that went
  // straight to a metrics scrape was refused (ECONNREFUSED) at load
  for (const port of tcpListeners(args)) await untilAccepts({ port, host: '127.0.0.1' }, child, () => `serve did not listen on ${port}: ${stderr}`);
  return { child, stderr: () => stderr, exited };
}

/** A loopback TCP port free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export function message(i: number): Buffer {
  return Buffer.from(`From: a@example.org\r\nMessage-ID: <${i}@example.org>\r\nSubject: ${i}\r\n\r\n${'body '.repeat(20 + (i % 50))}${i}\r\n`);
}

/** The loopback ports of `--lmtp` and `--metrics` given as 127.0.0.1:PORT. */
function tcpListeners(args: string[]): number[] {
  return args.flatMap((arg, i) => {
    const port = (args[i - 1] === '--lmtp' || args[i - 1] === '--metrics') ? /^127\.0\.0\.1:(\d+)$/.exec(arg)?.[1] : undefined;
    return port === undefined ? [] : [Number(port)];
  });
}

/**
 * Until `to` (a unix socket's path, or a loopback port) accepts a connection that `child` serves;
 * fails with `failure()` once `child` has ended, or after 60 s (a hang guard: node and the store's
 * open take many times their idle time at load 20). Not until the socket's file exists: a killed
 * daemon's file is still there while its successor starts, and a new daemon's is made a moment
 * before it listens (a connect then is refused, and a SIGTERM can reach it before it handles signals).
 */
export async function untilAccepts(to: string | { port: number; host: string }, child: ChildProcess, failure: () => string = () => 'never accepted'): Promise<void> {
  for (let waited = 0; !((typeof to !== 'string' || existsSync(to)) && await accepts(to)); waited += 50) {
    if (waited > 60_000 || child.exitCode !== null || child.signalCode !== null) throw new Error(failure());
    await sleep(50);
  }
}

function accepts(to: string | { port: number; host: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = typeof to === 'string'
      ? createConnection(to, () => { probe.destroy(); resolve(true); })
      : createConnection(to, () => { probe.destroy(); resolve(true); });
    probe.on('error', () => resolve(false));
  });
}
