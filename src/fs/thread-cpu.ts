// The CPU time of the calling thread alone (node 20 has no process.threadCpuUsage): the backup's
// phase marks (src/phases.ts) say what its main thread spent in each phase, apart from the
// compression workers and V8's helper threads that process.cpuUsage() adds in. Linux's
// /proc/thread-self/schedstat: its first field is the nanoseconds this thread has run on a CPU.
import { readFileSync } from 'node:fs';

/** This thread's CPU ms so far, or undefined where there is no /proc (another platform). */
export function threadCpuMs(): number | undefined {
  try {
    const ns = Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]);
    return Number.isFinite(ns) ? ns / 1e6 : undefined;
  } catch {
    return undefined;
  }
}
