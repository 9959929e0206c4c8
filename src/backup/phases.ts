// Wall-clock marks of a backup's phases, for profiling an incremental run (docs/BACKUP.md, "Where
// an incremental run goes"): with MAILSTORE_BACKUP_PHASES set, `mailstore backup` prints one JSON
// line to stderr at its end, {phases: {phase: ms since the previous mark}, cpu: {phase: CPU ms of
// the process (every thread) since the previous mark}}, from node's own start. On a loaded machine
// the wall ms stretch with the load; the CPU ms say what the phase itself cost. Off, a mark is one
// branch.
// node's global `performance`, touched only when enabled: importing node:perf_hooks cost every
// backup its load (~3-10 ms), phases or not.

const enabled = Boolean(process.env.MAILSTORE_BACKUP_PHASES);
const marks: [string, number, number][] = [];

const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

/** Marks the end of a phase (named by what was done). */
export function phase(name: string): void {
  if (enabled) marks.push([name, globalThis.performance.now(), cpuMs()]);
}

/** The phases as {name: ms}: node's start (to its bootstrap), then each mark's distance from the one before; `cpu`: the process's CPU ms instead. */
export function phaseTimes(cpu = false): Record<string, number> {
  const out: Record<string, number> = {};
  const start = (globalThis.performance as unknown as import('node:perf_hooks').Performance).nodeTiming.bootstrapComplete;
  let last = cpu ? 0 : start;
  out['node start'] = round(cpu ? 0 : start);
  for (const [name, at, used] of marks) {
    const now = cpu ? used : at;
    out[name] = round((out[name] ?? 0) + now - last);
    last = now;
  }
  return out;
}

/** Writes the phases to stderr when enabled. */
export function reportPhases(): void {
  if (enabled) process.stderr.write(`${JSON.stringify({ phases: phaseTimes(), cpu: phaseTimes(true) })}\n`);
}

/** The phases line in a backup's stderr as "name ms, name ms, ..." (the bench's note), or '' when there is none. */
export function phaseNote(stderr: string): string {
  const line = stderr.split('\n').find((l) => l.startsWith('{"phases":'));
  if (!line) return '';
  const phases = (JSON.parse(line) as { phases: Record<string, number> }).phases;
  return Object.entries(phases).map(([name, ms]) => `${name} ${Math.round(ms)}`).join(', ');
}

const round = (ms: number) => Math.round(ms * 10) / 10;
