// Runs the built `mailstore` binary the way a user does: a child process, real exit codes,
// stdout as bytes. Build first (`npx tsc -p .`); these tests never import the CLI's source.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll } from 'vitest';

export const repoRoot = resolve(import.meta.dirname, '../..');
/** package.json's bin, the CommonJS entry (it runs main.js's program, bundled or not). */
export const bin = join(repoRoot, 'dist/src/cli/main.cjs');
export const corporaDir = resolve(repoRoot, '../shared/corpora');

export function requireBuilt(): void {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run 'npx tsc -p .' (or npm run build) before these tests`);
}

const tempDirs: string[] = [];
// Each test file imports this module afresh, so each removes its own directories when done.
afterAll(() => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix = 'mailstore-cli-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export interface RunOptions {
  store?: string;
  input?: Buffer | string;
  env?: Record<string, string>;
}

/** Starts `mailstore ARGS` with MAILSTORE_DIR set; the caller reads or kills it. */
export function start(args: string[], options: RunOptions = {}): ChildProcess {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...(options.store ? { MAILSTORE_DIR: options.store } : {}), ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (options.input !== undefined) child.stdin!.end(options.input);
  else child.stdin!.end();
  return child;
}

export function finish(child: ChildProcess): Promise<RunResult> {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk));
  return new Promise((done, failed) => {
    child.on('error', failed);
    child.on('close', (code, signal) => done({ code, signal, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr).toString('utf8') }));
  });
}

export function run(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return finish(start(args, options));
}

/**
 * `ok` (runs and expects exit 0; returns stdout as text), `json` and `newStore` (`mailstore init`
 * in a directory of its own, with these mailboxes created) over a way to run a command line.
 */
export function expectingSuccess(runner: (args: string[], options?: RunOptions) => Promise<RunResult>) {
  const ok = async (args: string[], options: RunOptions = {}): Promise<string> => {
    const result = await runner(args, options);
    if (result.code !== 0) throw new Error(`mailstore ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    return result.stdout.toString('utf8');
  };
  const json = async <T = any>(args: string[], options: RunOptions = {}): Promise<T> => JSON.parse(await ok([...args, '--json'], options)) as T;
  const newStore = async (mailboxes: string[], prefix?: string): Promise<string> => {
    const store = join(tempDir(prefix), 'store');
    await ok(['init'], { store });
    for (const mailbox of mailboxes) await ok(['mailbox', 'create', mailbox], { store });
    return store;
  };
  return { ok, json, newStore };
}

export const { ok, json, newStore } = expectingSuccess(run);

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Every regular file under dir (recursively), skipping names that start with '.' when asked. */
export function filesUnder(dir: string, options: { skipHidden?: boolean } = {}): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (options.skipHidden && name.startsWith('.')) continue;
    const path = join(dir, name);
    const stat = statSync(path);
    if (stat.isDirectory()) out.push(...filesUnder(path, options));
    else if (stat.isFile()) out.push(path);
  }
  return out;
}

/** A multiset as a sorted list, so two can be compared with toEqual and a diff shows what differs. */
export function sortedList(values: Iterable<string>): string[] {
  return [...values].sort();
}
