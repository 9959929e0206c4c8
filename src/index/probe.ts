// LevelDB (1.20) can abort the whole process on some damaged table files instead of returning an
// error (RECOVERY.md). Where that risk is real — after a crash, or when asked — the index is
// first opened in a child process; if that child dies or fails, the index is set aside and rebuilt.
import type { spawnSync as SpawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import type { ErrorCode } from '../errors.js';
import { classifyLevelError, systemAdvice } from './level-errors.js';
import { limits } from '../limits.js';

export interface ProbeResult {
  ok: boolean;
  /** The index is held by another process: not damage, never a reason to set it aside. */
  locked?: boolean;
  /** The operating system refused (disk full, permissions, I/O error, no process to spare): not damage either. */
  system?: ErrorCode;
  detail: string;
}

/** Opens the index read-mostly in a child process and reads a little of it. */
export function probeIndex(path: string, timeoutMs = limits.indexProbeTimeoutMs): ProbeResult {
  const level = createRequire(import.meta.url).resolve('classic-level');
  // LevelDB's message and code on stderr, exit 3 (4: locked) when the open fails, 5 when a read
  // after it does (a damaged data block): before, that read's failure was an uncaught rejection,
  // and node's dump of it (its source line, a caret, its version) became the admin's message
  const script = `
    const { ClassicLevel } = require(${JSON.stringify(level)});
    const fail = (status) => (e) => {
      const c = (e && e.cause) || e;
      process.stderr.write(String((c && c.message) || c) + (c && c.code ? ' (' + c.code + ')' : ''));
      process.exit(c && c.code === 'LEVEL_LOCKED' ? 4 : status);
    };
    const db = new ClassicLevel(process.argv[1], { createIfMissing: false, keyEncoding: 'buffer', valueEncoding: 'buffer' });
    db.open().then(async () => {
      let n = 0;
      for await (const _ of db.keys({ limit: ${limits.indexProbeKeys} })) n++;
      await db.close();
      process.exit(0);
    }, fail(3)).catch(fail(5));`;
  // loaded here, not at the top: only an open after a crash probes, and child_process costs every CLI start ~3 ms
  const { spawnSync } = createRequire(import.meta.url)('node:child_process') as { spawnSync: typeof SpawnSync };
  const child = spawnSync(process.execPath, ['-e', script, path], { encoding: 'utf8', timeout: timeoutMs });
  const timedOut = (child.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  // A probe that could not start says nothing about the index (EAGAIN, EMFILE: system, below)
  if (child.error && !timedOut) return { ok: false, system: 'IO', detail: `the probe could not run: ${child.error.message}` };
  if (child.signal || timedOut) {
    // Killed or past its time: LevelDB aborting or looping on a damaged file, unless a child node
    // cannot run here at all (a thread limit, ulimit -u or a cgroup's pids.max, or memory: node
    // aborts or hangs at its start), which a child without LevelDB shows; then it is the system's
    const plain = plainChildFails(spawnSync, Math.min(timeoutMs, limits.indexProbeControlTimeoutMs));
    if (plain) return { ok: false, system: 'IO', detail: `the probe could not run: a node child process without LevelDB ${plain} too (a limit on threads or processes, ulimit -u or a cgroup's pids.max, or on memory?)${systemAdvice('IO')}` };
    if (timedOut) return { ok: false, detail: `the probe could not run: ${child.error!.message}` };
    return { ok: false, detail: `LevelDB killed the probe process (${child.signal}) opening ${path}: ${child.stderr.trim().slice(0, 300)}` };
  }
  if (child.status === 4) return { ok: false, locked: true, detail: child.stderr.trim().slice(0, 300) };
  if (child.status !== 0) {
    const text = child.stderr.trim().slice(0, 300);
    const failure = classifyLevelError(new Error(text));
    if (failure.kind === 'system') return { ok: false, system: failure.code, detail: `opening the index at ${path} in a probe: ${text}${systemAdvice(failure.code)}` };
    return { ok: false, detail: `${child.status === 5 ? 'the index opens, but a read of it fails' : 'the index does not open'}: ${text}` };
  }
  return { ok: true, detail: 'ok' };
}

/** How a child node that only starts its threads (libuv's pool: an fs call) fails here, if it does. */
function plainChildFails(spawnSync: typeof SpawnSync, timeoutMs: number): string | undefined {
  const child = spawnSync(process.execPath, ['-e', "require('node:fs').stat('/', () => process.exit(0));"], { encoding: 'utf8', timeout: timeoutMs });
  if (child.error) return `failed (${(child.error as NodeJS.ErrnoException).code ?? child.error.message})`;
  if (child.signal) return `was killed (${child.signal})`;
  if (child.status !== 0) return `exited ${child.status}`;
  return undefined;
}
