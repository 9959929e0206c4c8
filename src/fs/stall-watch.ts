// A file system that hangs (an NFS server gone, a FUSE daemon stopped, a disk retrying each request
// for half a minute) does not fail: the thread that called into it waits in the kernel, silently,
// for as long as it takes. When that thread is the main one (small reads and writes are synchronous,
// node-fs.ts), no timer, signal handler or socket of the process runs until the call returns, so
// nothing the process does by itself can say why it stopped. This watch runs in a worker thread of
// its own, which no such call holds: every stallCheckMs it reads what each thread of the process is
// doing (/proc/self/task/*/syscall, Linux), and a thread that has stayed in one file-system call
// for the report time is reported with the call and the path, again every stallRepeatMs while it
// lasts, and once more when the call returns. It writes its lines itself (the main thread may be
// the one waiting) and tells the main thread too, for the metrics.
import { resolve } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { limits } from '../limits.js';
import { startCommonJsWorker } from '../worker-argv.js';
import { stallReportMs } from './stall-watch-later.js';
import { monotonicMs } from '../monotonic.js';

export interface StallNotice {
  event: 'io-stalled' | 'io-resumed';
  /** The system call (openat, fdatasync, write, ...). */
  call: string;
  /** The file it is on, where it can be told (an fd's file, a path argument). */
  path?: string;
  /** How long the call has been waiting (io-resumed: how long it waited in all), whole seconds. */
  seconds: number;
  /** The main thread (which then runs nothing else) or another (the thread pool, LevelDB's). */
  thread: 'main' | 'other';
  tid: number;
}

export interface StallWatchOptions {
  /** How a notice becomes a line: 'json', the daemon's log format, or 'text', a CLI's stderr line. */
  format: 'json' | 'text';
  /** A file to append the lines to (the daemon's --log); else stderr, each line after its level's prefix. */
  logPath?: string;
  /** The stderr prefix of each level (journalPrefix: the syslog priority when stderr is the journal). */
  prefixes?: { error: string; warn: string };
  /** Report a call after this long; default stallReportMs(). */
  reportMs?: number;
  checkMs?: number;
  repeatMs?: number;
  /** The main thread hears of each notice too, when it runs. */
  onNotice?: (notice: StallNotice) => void;
}

export interface StallWatch {
  /** The calls reported stalled that have not returned yet, each with its time so far. */
  ongoing(): StallNotice[];
  stop(): Promise<void>;
}

export { STALL_REPORT_ENV, stallReportMs } from './stall-watch-later.js';

type Kind = 'fd' | 'path' | 'at' | 'unix';

/** The file-system calls watched, by number, with where their file is: an fd (arg 0), a path (arg 0), a dirfd and a path (args 0, 1), a unix socket's address (arg 1). */
const CALLS: Partial<Record<string, Record<number, [string, Kind]>>> = {
  x64: {
    0: ['read', 'fd'], 1: ['write', 'fd'], 2: ['open', 'path'], 4: ['stat', 'path'], 5: ['fstat', 'fd'], 6: ['lstat', 'path'],
    17: ['pread64', 'fd'], 18: ['pwrite64', 'fd'], 19: ['readv', 'fd'], 20: ['writev', 'fd'], 21: ['access', 'path'],
    42: ['connect', 'unix'], 74: ['fsync', 'fd'], 75: ['fdatasync', 'fd'], 76: ['truncate', 'path'], 77: ['ftruncate', 'fd'],
    78: ['getdents', 'fd'], 82: ['rename', 'path'], 83: ['mkdir', 'path'], 84: ['rmdir', 'path'], 86: ['link', 'path'],
    87: ['unlink', 'path'], 89: ['readlink', 'path'], 90: ['chmod', 'path'], 91: ['fchmod', 'fd'], 92: ['chown', 'path'],
    93: ['fchown', 'fd'], 94: ['lchown', 'path'], 137: ['statfs', 'path'], 138: ['fstatfs', 'fd'], 162: ['sync', 'fd'],
    217: ['getdents64', 'fd'], 235: ['utimes', 'path'], 257: ['openat', 'at'], 258: ['mkdirat', 'at'], 260: ['fchownat', 'at'],
    262: ['newfstatat', 'at'], 263: ['unlinkat', 'at'], 264: ['renameat', 'at'], 265: ['linkat', 'at'], 267: ['readlinkat', 'at'],
    268: ['fchmodat', 'at'], 269: ['faccessat', 'at'], 277: ['sync_file_range', 'fd'], 280: ['utimensat', 'at'],
    285: ['fallocate', 'fd'], 295: ['preadv', 'fd'], 296: ['pwritev', 'fd'], 306: ['syncfs', 'fd'], 316: ['renameat2', 'at'],
    327: ['preadv2', 'fd'], 328: ['pwritev2', 'fd'], 332: ['statx', 'at'], 439: ['faccessat2', 'at'],
  },
  arm64: {
    34: ['mkdirat', 'at'], 35: ['unlinkat', 'at'], 37: ['linkat', 'at'], 38: ['renameat', 'at'], 43: ['statfs', 'path'],
    44: ['fstatfs', 'fd'], 46: ['ftruncate', 'fd'], 47: ['fallocate', 'fd'], 48: ['faccessat', 'at'], 53: ['fchmodat', 'at'],
    54: ['fchownat', 'at'], 56: ['openat', 'at'], 61: ['getdents64', 'fd'], 63: ['read', 'fd'], 64: ['write', 'fd'],
    65: ['readv', 'fd'], 66: ['writev', 'fd'], 67: ['pread64', 'fd'], 68: ['pwrite64', 'fd'], 69: ['preadv', 'fd'],
    70: ['pwritev', 'fd'], 78: ['readlinkat', 'at'], 79: ['newfstatat', 'at'], 80: ['fstat', 'fd'], 82: ['fsync', 'fd'],
    83: ['fdatasync', 'fd'], 88: ['utimensat', 'at'], 203: ['connect', 'unix'], 267: ['syncfs', 'fd'], 276: ['renameat2', 'at'],
    286: ['preadv2', 'fd'], 287: ['pwritev2', 'fd'], 291: ['statx', 'at'], 439: ['faccessat2', 'at'],
  },
};

/**
 * The worker: CommonJS, evaluated in its own thread (worker-argv.ts). A thread counts as waiting in
 * one call while its /proc syscall line (the call, its arguments, stack and instruction pointers)
 * stays the same and it was run at most twice between two looks (schedstat): a signal (a SIGTERM
 * to a daemon waiting on a hung disk) wakes the thread in the call without ending it, and the log
 * said `io-resumed` while nothing had returned; a call that returns and is made again with the
 * same arguments (a journal's fdatasync under load, caught in it at every look of the report
 * time) runs the thread many times, and was reported as stalled on a busy, healthy disk.
 */
const WORKER_SOURCE = String.raw`
const { workerData: d, parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const self = (() => { try { return Number(fs.readlinkSync('/proc/thread-self').split('/').pop()); } catch { return -1; } })();
const mem = (() => { try { return fs.openSync('/proc/self/mem', 'r'); } catch { return -1; } })();
const AT_FDCWD = 0xffffffffffffff9cn;
const threads = new Map();
const read = (path) => { try { return fs.readFileSync(path, 'latin1'); } catch { return undefined; } };
const link = (path) => { try { return fs.readlinkSync(path); } catch { return undefined; } };
function text(address) {
  if (mem < 0 || address === 0n) return undefined;
  const bytes = Buffer.alloc(8192);
  let got = 0;
  try {
    const room = 4096 - Number(address % 4096n);
    got = fs.readSync(mem, bytes, 0, room, address);
    if (got === room && !bytes.subarray(0, got).includes(0)) got += fs.readSync(mem, bytes, got, 4096, address + BigInt(room));
  } catch { if (got === 0) return undefined; }
  const end = bytes.subarray(0, got).indexOf(0);
  return end < 0 ? undefined : bytes.subarray(0, end).toString('utf8');
}
function resolved(path) {
  const held = /^\/proc\/(?:self|thread-self|[0-9]+)\/fd\/([0-9]+)(\/.*)?$/.exec(path);
  const target = held && link('/proc/self/fd/' + held[1]);
  return target ? target + (held[2] || '') : path;
}
function where(kind, args) {
  if (kind === 'fd') { const file = link('/proc/self/fd/' + Number(args[0])); return file && file.startsWith('/') ? file : undefined; }
  if (kind === 'unix') { const path = text(args[1] + 2n); return path && path.startsWith('/') ? path : undefined; }
  const path = text(kind === 'path' ? args[0] : args[1]);
  if (path === undefined) return undefined;
  if (path.startsWith('/')) return resolved(path);
  const base = kind === 'path' || args[0] === AT_FDCWD ? link('/proc/self/cwd') : link('/proc/self/fd/' + Number(args[0]));
  return base === undefined ? path : resolved(base.replace(/\/$/, '') + '/' + path);
}
function line(notice) {
  const level = notice.event === 'io-stalled' ? 'error' : 'warn';
  let out;
  if (d.format === 'json') out = JSON.stringify({ time: new Date().toISOString(), level, event: notice.event, call: notice.call, path: notice.path, seconds: notice.seconds, thread: notice.thread, ...(notice.event === 'io-stalled' ? { why: 'a file-system call has not returned: a hung mount (an NFS server not responding, a FUSE daemon stopped) or a failing disk (dmesg)' } : {}) });
  else if (notice.event === 'io-stalled') out = 'mailstore: no answer from the file system for ' + notice.seconds + ' s: ' + notice.call + (notice.path ? ' of ' + notice.path : '') + ' has not returned. A hung mount (an NFS server not responding, a FUSE daemon stopped) or a failing disk (dmesg)? Still waiting; stopping this command loses nothing it reported done (kill -9 ' + process.pid + ' if Ctrl-C does not end it)';
  else out = 'mailstore: the file system answered after ' + notice.seconds + ' s (' + notice.call + (notice.path ? ' of ' + notice.path : '') + ')';
  return { level, text: out + '\n' };
}
// The log may be on the mount that hangs (a write of it the very call reported): a synchronous
// append there held this thread for as long, the main thread never heard of the stall (the
// metrics showed none) and nothing was reported again. The main thread hears first; the log gets
// one append at a time (lines told meanwhile follow it), and while one has not returned for a look,
// or when the call is on the log itself, the lines go to stderr (the journal) instead.
let queued = '';
let appendingSince;
function append() {
  if (queued === '') return;
  const out = queued;
  queued = '';
  appendingSince = Date.now();
  fs.appendFile(d.logPath, out, { mode: 0o640 }, () => { appendingSince = undefined; append(); });
}
function tell(notice) {
  parentPort.postMessage(notice);
  const { level, text: out } = line(notice);
  if (d.logPath && notice.path !== d.logPath && (appendingSince === undefined || Date.now() - appendingSince < d.checkMs)) {
    queued += out;
    if (appendingSince === undefined) append();
    return;
  }
  try { fs.writeSync(2, (d.prefixes ? d.prefixes[level] : '') + out); } catch {}
}
function notice(event, tid, entry, now) {
  return { event, call: entry.call, path: entry.path, seconds: Math.floor((now - entry.since) / 1000), thread: tid === process.pid ? 'main' : 'other', tid };
}
function end(tid, now) {
  const entry = threads.get(tid);
  threads.delete(tid);
  if (entry && entry.reportedAt !== undefined) tell(notice('io-resumed', tid, entry, now));
}
/** How many times the thread was put on a CPU (/proc schedstat's third field); undefined where it cannot be read. */
function timesRun(tid) {
  const fields = (read('/proc/self/task/' + tid + '/schedstat') || '').trim().split(' ');
  return fields.length === 3 ? Number(fields[2]) : undefined;
}
function check() {
  const now = Date.now();
  let names;
  try { names = fs.readdirSync('/proc/self/task'); } catch { return; }
  const alive = new Set();
  for (const name of names) {
    const tid = Number(name);
    if (tid === self) continue;
    alive.add(tid);
    const sys = (read('/proc/self/task/' + tid + '/syscall') || '').trim();
    const fields = sys.split(' ');
    const call = d.calls[fields[0]];
    if (!call || fields.length < 7) { end(tid, now); continue; }
    const entry = threads.get(tid);
    const runs = timesRun(tid);
    // the same call line, but the thread ran more than a signal's wake-up or two since the last
    // look: the call returned and was made again (a journal's fdatasync under load), not one waiting
    const ranAgain = entry !== undefined && runs !== undefined && entry.runs !== undefined && runs - entry.runs > 2;
    if (entry) entry.runs = runs;
    if (!entry || entry.key !== sys || ranAgain) {
      end(tid, now);
      const path = where(call[1], fields.slice(1, 7).map((a) => BigInt(a)));
      // a pipe, socket or terminal read may wait for ever and rightly so; only files are watched
      if ((call[1] === 'fd' && path === undefined) || /^\/(dev|proc|sys)\//.test(path || '')) continue;
      threads.set(tid, { key: sys, since: now, call: call[0], path, runs });
      continue;
    }
    if (entry.reportedAt === undefined ? now - entry.since < d.reportMs : now - entry.reportedAt < d.repeatMs) continue;
    entry.reportedAt = now;
    tell(notice('io-stalled', tid, entry, now));
  }
  for (const tid of [...threads.keys()]) if (!alive.has(tid)) end(tid, now);
}
setInterval(check, d.checkMs);
`;

/** The watch running in this process, if any. */
let active: StallWatch | undefined;

/**
 * Starts the watch; undefined where it cannot run (not Linux, an architecture whose calls it does
 * not know, no worker thread could be made) or is turned off (a report time of 0).
 */
export function startStallWatch(options: StallWatchOptions): StallWatch | undefined {
  const reportMs = options.reportMs ?? stallReportMs();
  void active?.stop(); // one watch a process: serve's takes the place of the one every command starts
  const calls = CALLS[process.arch];
  if (reportMs === 0 || process.platform !== 'linux' || !calls) return undefined;
  let worker: Worker;
  try {
    worker = startCommonJsWorker(WORKER_SOURCE, {
      workerData: {
        // absolute, as the paths of the calls are told (resolved without a call on a mount that may hang)
        format: options.format, logPath: options.logPath === undefined ? undefined : resolve(options.logPath), prefixes: options.prefixes, calls, reportMs,
        checkMs: options.checkMs ?? limits.stallCheckMs, repeatMs: options.repeatMs ?? limits.stallRepeatMs,
      },
      // its own heap, small: it holds a map of a few threads (V8's default young generation alone is more)
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
    });
  } catch {
    return undefined;
  }
  worker.unref(); // a command that is done exits without stopping it
  worker.on('error', () => undefined); // a watch that died leaves the process as it was, unwatched
  const ongoing = new Map<number, { notice: StallNotice; at: number }>();
  worker.on('message', (notice: StallNotice) => {
    if (notice.event === 'io-stalled') ongoing.set(notice.tid, { notice, at: monotonicMs() });
    else ongoing.delete(notice.tid);
    options.onNotice?.(notice);
  });
  const watch: StallWatch = {
    ongoing: () => [...ongoing.values()].map(({ notice, at }) => ({ ...notice, seconds: notice.seconds + Math.floor((monotonicMs() - at) / 1000) })),
    stop: async () => {
      if (active === watch) active = undefined;
      await worker.terminate();
    },
  };
  active = watch;
  return watch;
}

/** A watch unless one runs already (serve's, started before this command's timer fired). */
export function startStallWatchIfNone(options: StallWatchOptions): StallWatch | undefined {
  return active ? undefined : startStallWatch(options);
}
