// The built CLI's command lines run in the test's own process, through the entry main.ts calls
// (dist/src/cli/program.js `main`), for files whose subject is what commands do: a spawned
// `mailstore` costs ~0.15 s of CPU before the command starts, and such files run a hundred.
// What only a process shows (its exit status, stdout drained before exit, signals, a pipe gone)
// stays with the spawned helpers (helpers.ts; commands.test.ts, environment.test.ts). A sample is
// checked against the spawned command: the first read-only command line of each kind in a file
// runs both ways and must give the same exit code, stdout and stderr.
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type RunOptions, type RunResult, expectingSuccess, repoRoot, run as spawned } from './helpers.js';

type Main = (argv: string[]) => Promise<number>;

const programUrl = pathToFileURL(join(repoRoot, 'dist/src/cli/program.js')).href;
let loaded: Promise<Main> | undefined;
/** One command line at a time: stdout, stderr, stdin and the environment are the process's. */
let queue: Promise<unknown> = Promise.resolve();

/**
 * Command lines (their first words) that change nothing, so the spawned sample can run them again
 * (not `stats` nor `config`: they show the file system's free bytes, which change between the two).
 */
const READ_ONLY = new Set(['messages', 'search', 'fetch', 'usage', 'quota get', 'quota list', 'acl get', 'acl list',
  'mailbox status', 'mailbox list', 'mailbox dump', 'consumers']);
/** ...but with an option these change what they show. */
const CHANGED_BY_OPTIONS = new Set(['consumers']);
const sampled = new Set<string>();

/** As helpers.ts `run`, in this process. */
export function run(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const result = queue.then(() => runSampled(args, options));
  queue = result.catch(() => undefined);
  return result;
}

export const { ok, json, newStore } = expectingSuccess(run);

async function runSampled(args: string[], options: RunOptions): Promise<RunResult> {
  const here = await runHere(args, options);
  const kind = sampleKind(args);
  if (kind !== undefined && !sampled.has(kind)) {
    sampled.add(kind);
    const there = await spawned(args, options);
    const differs = (['code', 'signal', 'stderr'] as const).filter((key) => here[key] !== there[key]);
    if (!here.stdout.equals(there.stdout)) differs.push('stdout' as never);
    if (differs.length > 0) {
      throw new Error(`mailstore ${args.join(' ')} in this process differs from the spawned command in ${differs.join(', ')}:\n`
        + `here:  ${JSON.stringify({ ...here, stdout: here.stdout.toString('utf8') })}\nthere: ${JSON.stringify({ ...there, stdout: there.stdout.toString('utf8') })}`);
    }
  }
  return here;
}

/** The kind of a read-only command line (`mailbox status`), or undefined for one that may change the store. */
function sampleKind(args: string[]): string | undefined {
  const words: string[] = [];
  let options = false; // beyond --json and --no-wait
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--store' || arg === '--wait') i++;
    else if (arg.startsWith('-')) options ||= arg !== '--json' && arg !== '--no-wait';
    else words.push(arg);
  }
  if (args.includes('--help')) return `help ${words[0]}`;
  const kind = [words.slice(0, 2).join(' '), words[0] ?? ''].find((candidate) => READ_ONLY.has(candidate));
  if (kind === undefined || (CHANGED_BY_OPTIONS.has(kind) && options)) return undefined;
  return `${kind}${args.includes('--json') ? ' --json' : ''}`;
}

async function runHere(args: string[], options: RunOptions): Promise<RunResult> {
  const main = await (loaded ??= import(programUrl).then((module: { main: Main }) => module.main));
  if (process.cwd() !== repoRoot) throw new Error(`in-process commands run in ${repoRoot} (as spawned ones), not ${process.cwd()}`);
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const restore = [
    capture(process.stdout, stdout),
    capture(process.stderr, stderr),
    replaceStdin(options.input),
    setEnv({ ...(options.store ? { MAILSTORE_DIR: options.store } : {}), ...options.env }),
  ];
  const exitCode = process.exitCode;
  process.exitCode = undefined;
  try {
    const code = await main([process.execPath, join(repoRoot, 'dist/src/cli/main.js'), ...args]);
    return { code, signal: null, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr).toString('utf8') };
  } finally {
    process.exitCode = exitCode;
    for (const undo of restore.reverse()) undo();
  }
}

type Write = NodeJS.WriteStream['write'];

/** Collects what is written to `stream` (as a pipe: no TTY) and drops the listeners the command added. */
function capture(stream: NodeJS.WriteStream, into: Buffer[]): () => void {
  const write = stream.write;
  const tty = Object.getOwnPropertyDescriptor(stream, 'isTTY');
  const columns = Object.getOwnPropertyDescriptor(stream, 'columns');
  const listeners = stream.listeners('error');
  stream.write = ((chunk: string | Uint8Array, encoding?: BufferEncoding | ((error?: Error | null) => void), callback?: (error?: Error | null) => void) => {
    const done = typeof encoding === 'function' ? encoding : callback;
    into.push(typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8') : Buffer.from(chunk));
    if (done) process.nextTick(done);
    return true;
  }) as Write;
  Object.defineProperty(stream, 'isTTY', { value: undefined, configurable: true, writable: true });
  Object.defineProperty(stream, 'columns', { value: undefined, configurable: true, writable: true });
  return () => {
    stream.write = write;
    for (const [name, descriptor] of [['isTTY', tty], ['columns', columns]] as const) {
      if (descriptor) Object.defineProperty(stream, name, descriptor);
      else delete (stream as unknown as Record<string, unknown>)[name];
    }
    for (const listener of stream.listeners('error')) if (!listeners.includes(listener)) stream.off('error', listener as (error: Error) => void);
  };
}

/** stdin as the spawned helpers give it: the input, then its end (an empty one without input). */
function replaceStdin(input: Buffer | string | undefined): () => void {
  const descriptor = Object.getOwnPropertyDescriptor(process, 'stdin')!;
  const stdin = Readable.from(input === undefined ? [] : [Buffer.from(input)]);
  Object.defineProperty(process, 'stdin', { configurable: true, enumerable: true, get: () => stdin });
  return () => Object.defineProperty(process, 'stdin', descriptor);
}

function setEnv(values: Record<string, string>): () => void {
  const before = Object.fromEntries(Object.keys(values).map((key) => [key, process.env[key]]));
  Object.assign(process.env, values);
  return () => {
    for (const [key, value] of Object.entries(before)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
}
