// The daemon as the lmtp and daemon bench steps measure it: `mailstore serve` started as its own
// process from the CLI under test (what an admin runs, with its unit's malloc settings), its
// resident memory sampled from /proc while it works, stopped with SIGTERM (a clean stop: the store
// is closed before it exits).
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { nodeFileSystem } from '../fs/node-fs.js';

export interface RssSample {
  /** Seconds since sampling started. */
  t: number;
  /** VmRSS and RssAnon, bytes. */
  rss: number;
  anon: number;
}

export interface DaemonProcess {
  child: ChildProcess;
  /** The client socket (STORE/run/mailstore.sock). */
  socket: string;
  /** Starts sampling its RSS every `everyMs` (again: restarts); returns the samples so far on stop. */
  sampleRss(everyMs: number): () => RssSample[];
  /** SIGTERM and wait for the exit; rejects when it exits non-zero. */
  stop(): Promise<void>;
}

export interface ServeOptions {
  cli: string;
  store: string;
  /** `--lmtp` listener (unix:PATH). */
  lmtp?: string;
  /** A directory for the daemon's CPU profile (node --cpu-prof), as `--profile` asks. */
  profileDir?: string;
  /** `--metrics HOST:PORT`, to read its group-commit counters (groupCommits). */
  metrics?: string;
}

/** Starts `mailstore serve` on `store` and waits until its socket (and LMTP listener) answers. */
export async function startDaemon(options: ServeOptions): Promise<DaemonProcess> {
  const socket = join(options.store, 'run', 'mailstore.sock');
  // --expose-gc as packaging/mailstore.service gives it (NODE_OPTIONS): the give-back after a burst (give-back.ts)
  const nodeArgs = ['--expose-gc', ...(options.profileDir ? ['--cpu-prof', '--cpu-prof-dir', options.profileDir, '--cpu-prof-name', `serve-${Date.now()}.cpuprofile`] : [])];
  // the log goes to a file, as a packaged daemon's does (--log); one line per LMTP delivery
  const args = [...nodeArgs, options.cli, '--store', options.store, 'serve', '--log', join(options.store, 'serve.log'), ...(options.lmtp ? ['--lmtp', options.lmtp] : []), ...(options.metrics ? ['--metrics', options.metrics] : [])];
  // as packaging/mailstore.service runs it: two glibc malloc arenas and a fixed mmap threshold (the
  // RSS row measures the daemon as installed)
  const env = { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2', MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? '131072' };
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  const exited = new Promise<number>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : -1))));
  const paths = [socket, ...(options.lmtp?.startsWith('unix:') ? [options.lmtp.slice(5)] : [])];
  for (const path of paths) {
    const up = await Promise.race([waitForSocket(path, 30_000), exited.then(() => false)]);
    if (!up) {
      child.kill('SIGKILL');
      throw new Error(`mailstore serve did not answer on ${path}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    }
  }
  let timer: NodeJS.Timeout | undefined;
  return {
    child, socket,
    sampleRss(everyMs) {
      clearInterval(timer);
      const samples: RssSample[] = [];
      const started = performance.now();
      const sample = () => void readRss(child.pid!).then((r) => { if (r) samples.push({ t: (performance.now() - started) / 1000, ...r }); });
      sample();
      timer = setInterval(sample, everyMs);
      return () => { clearInterval(timer); sample(); return samples; };
    },
    async stop() {
      clearInterval(timer);
      child.kill('SIGTERM');
      const code = await exited;
      if (code !== 0) throw new Error(`mailstore serve exited with status ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    },
  };
}

/**
 * The daemon's group commits so far, from its /metrics (started with `metrics`): appends per
 * commit says whether concurrent clients share fdatasyncs as in-process writers do.
 */
export async function groupCommits(metrics: string): Promise<number> {
  const text = await (await fetch(`http://${metrics}/metrics`)).text();
  return Number(/^mailstore_batch_fsync_seconds_count (\S+)$/m.exec(text)?.[1] ?? NaN);
}

/** A TCP port free right now on 127.0.0.1 (for a daemon's --metrics). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** VmRSS and RssAnon of a process (Linux /proc), undefined when it is gone. */
export async function readRss(pid: number): Promise<{ rss: number; anon: number } | undefined> {
  try {
    const status = (await nodeFileSystem.readFile(`/proc/${pid}/status`)).toString('latin1');
    const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
    return { rss: kib('VmRSS'), anon: kib('RssAnon') };
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a process has used so far, ms (Linux /proc, clock ticks of 10 ms). */
export async function readCpuMs(pid: number): Promise<number> {
  const stat = (await nodeFileSystem.readFile(`/proc/${pid}/stat`)).toString('latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Resolves true once something accepts connections on the unix socket, false after `ms`. */
export async function waitForSocket(path: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const up = await new Promise<boolean>((resolve) => {
      const s = createConnection(path);
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (up) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

/**
 * The daemon's automatic snapshots from its log, as [start, end] seconds since `fromMs` (the RSS
 * sampling's start): the report starts its after-warm-up window once the first one has ended.
 */
export function snapshotTimes(log: string, fromMs: number): [number, number][] {
  const out: [number, number][] = [];
  for (const line of log.split('\n')) {
    if (!line.includes('"event":"snapshot"')) continue;
    const entry = JSON.parse(line) as { time: string; durationMs?: number };
    const end = (Date.parse(entry.time) - fromMs) / 1000;
    out.push([hundredths(end - (entry.durationMs ?? 0) / 1000), hundredths(end)]);
  }
  return out;
}

const hundredths = (n: number) => Math.round(n * 100) / 100;

/** At most `max` samples, evenly spaced (first and last kept), for the result line. */
export function thinSamples<T>(samples: T[], max: number): T[] {
  if (samples.length <= max) return samples;
  const out: T[] = [];
  for (let i = 0; i < max; i++) out.push(samples[Math.round((i * (samples.length - 1)) / (max - 1))]!);
  return out;
}
