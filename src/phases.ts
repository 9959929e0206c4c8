// Wall-clock marks of a command's phases, for profiling a process from node's start to its exit: an
// incremental backup (docs/BACKUP.md, "Where an incremental run goes") and a compaction
// (docs/FORMAT.md, "Compaction: where the time goes"). With MAILSTORE_PHASES (or, as before,
// MAILSTORE_BACKUP_PHASES) set, `mailstore backup` and `mailstore compact` print one JSON line to
// stderr at their end, {phases: {phase: ms since the previous mark}, cpu: {phase: CPU ms of
// the process (every thread) since the previous mark}, main: {phase: CPU ms of the main thread
// alone}}, from node's own start. On a loaded machine the wall ms stretch with the load; the CPU
// ms say what the phase itself cost, and `main` what of it the main thread did (the process's
// CPU counts the workers, the thread pool and V8's helper threads too). Off, a mark is one branch.
// node's global `performance`, touched only when enabled: importing node:perf_hooks cost every
// command its load (~3-10 ms), phases or not.

import { threadCpuMs } from './fs/thread-cpu.js';

const enabled = Boolean(process.env.MAILSTORE_PHASES || process.env.MAILSTORE_BACKUP_PHASES);
const marks: [name: string, wallMs: number, cpuMs: number, mainMs: number | undefined][] = [];

const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

/** Marks the end of a phase (named by what was done). */
export function phase(name: string): void {
  if (enabled) marks.push([name, globalThis.performance.now(), cpuMs(), threadCpuMs()]);
}

/**
 * The phases as {name: ms}: node's start (to its bootstrap), then each mark's distance from the one
 * before; 'cpu': the process's CPU ms instead, 'main': the main thread's (undefined without /proc).
 */
export function phaseTimes(clock: 'wall' | 'cpu' | 'main' = 'wall'): Record<string, number> {
  const out: Record<string, number> = {};
  const start = (globalThis.performance as unknown as import('node:perf_hooks').Performance).nodeTiming.bootstrapComplete;
  let last = clock === 'wall' ? start : 0;
  out['node start'] = round(clock === 'wall' ? start : 0);
  for (const [name, at, used, main] of marks) {
    const now = clock === 'wall' ? at : clock === 'cpu' ? used : main ?? Number.NaN;
    out[name] = round((out[name] ?? 0) + now - last);
    last = now;
  }
  return out;
}

/** Writes the phases to stderr when enabled. */
export function reportPhases(): void {
  if (!enabled) return;
  const main = marks.every(([, , , ms]) => ms !== undefined) ? { main: phaseTimes('main') } : {};
  process.stderr.write(`${JSON.stringify({ phases: phaseTimes(), cpu: phaseTimes('cpu'), ...main })}\n`);
}

/** The phases line in a command's stderr as "name ms, name ms, ..." (the bench's note), or '' when there is none. */
export function phaseNote(stderr: string): string {
  const line = stderr.split('\n').find((l) => l.startsWith('{"phases":'));
  if (!line) return '';
  const phases = (JSON.parse(line) as { phases: Record<string, number> }).phases;
  return Object.entries(phases).map(([name, ms]) => `${name} ${Math.round(ms)}`).join(', ');
}

const round = (ms: number) => Math.round(ms * 10) / 10;
