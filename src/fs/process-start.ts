// Which process is which on this host, exactly: a pid is given again to another process once its
// own ends, but the boot id with the process's start (ticks since boot) names one process for good.
// Repository locks record it so staleness on one host needs no clock (src/backup/repository.ts).
import { readFile } from 'node:fs/promises';

export interface ProcessIdentity {
  /** /proc/sys/kernel/random/boot_id: new at every boot. */
  boot: string;
  /** /proc/PID/stat field 22: the process's start in clock ticks since boot. */
  started: number;
}

/** The identity of process `pid` now; undefined when there is none (or no /proc). */
export async function processIdentity(pid: number): Promise<ProcessIdentity | undefined> {
  try {
    const [boot, stat] = await Promise.all([readFile('/proc/sys/kernel/random/boot_id', 'latin1'), readFile(`/proc/${pid}/stat`, 'latin1')]);
    // the command name (field 2) is in parentheses and may hold spaces or ')': count after the last ')'
    const started = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return boot.trim() !== '' && Number.isSafeInteger(started) ? { boot: boot.trim(), started } : undefined;
  } catch {
    return undefined;
  }
}

/** This boot's id; undefined without /proc. */
export async function bootId(): Promise<string | undefined> {
  return readFile('/proc/sys/kernel/random/boot_id', 'latin1').then((text) => text.trim() || undefined, () => undefined);
}
