// What the benchmark programs share: the result line every measurement prints, peak RSS, a
// FileSystem that counts syncs (so "why is it slow" starts from numbers), and percentiles.
// Each mailstore measurement (measure/*.ts) runs as its own child process and prints one JSON
// line per result; `npm run bench` and `mailstore bench` read them the same way (engine.ts).
import { StringDecoder } from 'node:string_decoder';
import type { FileHandle, FileSystem, OpenMode } from '../fs/filesystem.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { favourMainThread } from '../thread-priority.js';

/** One measured figure; the same shape as the peers' JSON lines, plus mailstore's extras. */
export interface BenchResult {
  peer: string;
  measurement: string;
  messages?: number;
  bytes?: number;
  seconds?: number;
  p50_ms?: number;
  p99_ms?: number;
  max_ms?: number;
  p50_us?: number;
  p99_us?: number;
  peak_rss_bytes?: number;
  fsyncs?: number;
  dir_fsyncs?: number;
  note?: string;
  error?: string;
  command?: string;
  [extra: string]: unknown;
}

export function emit(result: BenchResult): void {
  // a result that carries its own (a harness reporting its children's peaks) keeps them
  const line = result.peak_rss_bytes && peakAnon > 0 ? { peak_rss_anon_bytes: peakAnon * 1024, peak_rss_file_bytes: peakFile * 1024, ...result } : result;
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/**
 * Peak anonymous and peak file-backed resident memory (RssAnon, RssFile, KiB), sampled every 25 ms
 * from /proc/self/status. maxRSS counts both: LevelDB maps its table files, so reading a large
 * index puts up to the mapped tables' size into RSS as reclaimable page cache (node's own text is
 * ~40 MB of it). All three are reported.
 */
let peakAnon = 0;
let peakFile = 0;
/**
 * /proc/self/status is held open and read again at offset 0 (one in-thread pread): a readFile
 * every 25 ms (open, fstat, read, close through the thread pool) cost the measured program ~3% of
 * its JS thread (~90 ms of a 3 s import).
 */
let statusFile: FileHandle | undefined;
const statusBytes = Buffer.alloc(8192);
function sampleAnon(): void {
  statusFile?.read(statusBytes, 0, statusBytes.length, 0).then((length) => {
    const text = statusBytes.toString('latin1', 0, length);
    const anon = Number(/RssAnon:\s+(\d+)/.exec(text)?.[1] ?? 0);
    const file = Number(/RssFile:\s+(\d+)/.exec(text)?.[1] ?? 0);
    if (anon > peakAnon) peakAnon = anon;
    if (file > peakFile) peakFile = file;
  }, () => undefined);
}
let sampling = false;
/** Starts the RssAnon sampler (in a measurement's own process; runMeasurement does it). */
async function startSampling(): Promise<void> {
  if (sampling) return;
  sampling = true;
  statusFile = await nodeFileSystem.open('/proc/self/status', 'read').catch(() => undefined); // not Linux: maxRSS only
  if (!statusFile) return;
  sampleAnon();
  setInterval(sampleAnon, 25).unref();
}

export function progress(text: string): void {
  process.stderr.write(`[bench] ${text}\n`);
}

/** Peak resident set of this process so far, bytes (getrusage ru_maxrss is KiB on Linux). */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

export interface SyncCounts {
  fileSyncs: number;
  dirSyncs: number;
  /** Bytes written to journal segments (*.jnl): a delivery that wrote more than its record also wrote the segment's next filler. */
  journalBytes: number;
}

/**
 * Wraps a FileSystem and counts fdatasync (FileHandle.sync, writevDurable) and directory fsync
 * calls, and the bytes written to journal segments. Every call goes on with all its arguments.
 */
export function countingFileSystem(base: FileSystem = nodeFileSystem): { fs: FileSystem; counts: SyncCounts } {
  const counts: SyncCounts = { fileSyncs: 0, dirSyncs: 0, journalBytes: 0 };
  const bytesOf = (parts: Buffer[]): number => parts.reduce((n, part) => n + part.length, 0);
  const wrapHandle = (handle: FileHandle, path: string): FileHandle => {
    const journal = path.endsWith('.jnl');
    return new Proxy(handle, {
      get(target, property, receiver) {
        if (property === 'sync') return () => { counts.fileSyncs++; return target.sync(); };
        // a write and its fdatasync in one call (the journal's commit of an inline delivery); its
        // `written` too: a synchronous replica's round goes out there, and the journal's retry of
        // a write that found no room for its filler asks whether the bytes were written
        if (property === 'writevDurable') {
          return (parts: Buffer[], position: number, written?: () => void) => {
            counts.fileSyncs++;
            if (journal) counts.journalBytes += bytesOf(parts);
            return target.writevDurable(parts, position, written);
          };
        }
        if (journal && property === 'writev') return (parts: Buffer[], position: number) => { counts.journalBytes += bytesOf(parts); return target.writev(parts, position); };
        if (journal && property === 'write') return (data: Buffer, position: number) => { counts.journalBytes += data.length; return target.write(data, position); };
        const value = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  };
  const fs = new Proxy(base, {
    get(target, property, receiver) {
      if (property === 'open') return async (path: string, mode: OpenMode) => wrapHandle(await target.open(path, mode), path);
      if (property === 'syncDir') return async (path: string) => { counts.dirSyncs++; return target.syncDir(path); };
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { fs, counts };
}

/** Nearest-rank percentile of an unsorted list (copied and sorted here). */
export function percentile(values: number[], fraction: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))]!;
}

export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** `--name value` pairs and bare `--switch`es of a child's command line. */
export function parseFlags(argv: string[]): { values: Map<string, string>; switches: Set<string> } {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) continue;
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith('--')) { values.set(arg.slice(2), next); i++; } else switches.add(arg.slice(2));
  }
  return { values, switches };
}

export function required(values: Map<string, string>, name: string): string {
  const value = values.get(name);
  if (value === undefined) throw new Error(`--${name} is required`);
  return value;
}

/** Runs `main`, turning an exception into an error line for `peer`/`measurement` (never a silent gap). */
export async function runMeasurement(peer: string, measurement: string, main: () => Promise<void>): Promise<void> {
  // as a server embedding the library is told to (README.md, "The library"), and the CLI does: the
  // measured thread before V8's compiler and the helper threads, floors and mailstore alike
  favourMainThread();
  await startSampling();
  try {
    await main();
  } catch (error) {
    const text = error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : String(error);
    emit({ peer, measurement, error: text });
    process.exitCode = 1;
  }
}

/**
 * The paths of a corpus's list.txt, read a chunk at a time (a list of millions of messages is
 * hundreds of MB), up to `max` of them.
 */
export async function* listedFiles(list: string, max = Infinity): AsyncGenerator<string> {
  const handle = await nodeFileSystem.open(list, 'read');
  try {
    const chunk = Buffer.alloc(1 << 20);
    const decoder = new StringDecoder('utf8'); // a path's character may straddle two chunks
    let carry = '', position = 0, count = 0;
    for (;;) {
      const n = await handle.read(chunk, 0, chunk.length, position);
      position += n;
      const lines = (carry + (n === 0 ? decoder.end() : decoder.write(chunk.subarray(0, n)))).split('\n');
      carry = n === 0 ? '' : lines.pop()!;
      for (const line of lines) {
        if (!line) continue;
        if (count++ >= max) return;
        yield line;
      }
      if (n === 0) return;
    }
  } finally {
    await handle.close();
  }
}

/** The first `max` paths of a list. */
export async function firstListed(list: string, max: number): Promise<string[]> {
  const out: string[] = [];
  for await (const path of listedFiles(list, max)) out.push(path);
  return out;
}

/**
 * The timed messages of a list (its first `messages`) and the warm-up's (the `warmup` after them,
 * fewer when the list is shorter): a warm-up of distinct messages, so nothing deduplicates.
 */
export async function timedAndWarmup(list: string, messages: number, warmup: number): Promise<{ timed: string[]; warm: string[] }> {
  const files = await firstListed(list, messages + warmup);
  return { timed: files.slice(0, messages), warm: files.slice(messages) };
}

/** The warm-up's figures in a result line (as lmtp-client.mjs --warmup reports them): empty without one. */
export function coldFields(latencies: number[], seconds: number): Record<string, number> {
  if (latencies.length === 0) return {};
  return {
    warmup: latencies.length, cold_messages: latencies.length, cold_seconds: round(seconds), cold_msg_per_s: round(latencies.length / seconds, 1),
    cold_p50_ms: round(percentile(latencies, 0.5)), cold_p99_ms: round(percentile(latencies, 0.99)),
  };
}

/** One group of a latency tail: how many, their total seconds, mean and p50, and how many took over 1 ms. */
function tailGroup(latencies: number[]): Record<string, number> {
  const sum = latencies.reduce((n, ms) => n + ms, 0);
  return {
    messages: latencies.length, seconds: round(sum / 1000, 4), mean_ms: round(latencies.length ? sum / latencies.length : 0),
    p50_ms: round(percentile(latencies, 0.5)), over_1ms: latencies.filter((ms) => ms > 1).length,
  };
}

/**
 * Where a delivery row's mean goes beyond its median (issue 12: inline p50 0.29 ms against a mean
 * of 0.49): the mean, the count over 1 ms, and the latencies split into the bodies over
 * `inlineBytesMax` (mailstore takes the two-file commit for those; the floor writes them into its
 * one file), the deliveries that also wrote the journal's next filler (`extended`, mailstore
 * only), and the rest. The groups' seconds add up to the row's time spent in deliveries.
 */
export function latencyTail(latencies: number[], sizes: number[], inlineBytesMax: number, extended: boolean[] = []): Record<string, unknown> {
  const over: number[] = [], extension: number[] = [], rest: number[] = [];
  latencies.forEach((ms, i) => (sizes[i]! > inlineBytesMax ? over : extended[i] ? extension : rest).push(ms));
  const all = tailGroup(latencies);
  return {
    mean_ms: all.mean_ms, over_1ms: all.over_1ms,
    tail: { inline_bytes_max: inlineBytesMax, over_inline: tailGroup(over), journal_extension: tailGroup(extension), rest: tailGroup(rest) },
  };
}
