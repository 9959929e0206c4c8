// What Linux tells of this boot, for judging the wall clock (src/store/clock.ts): the boot's id and
// when it booted by the wall clock now, which moves when the wall clock is stepped and only then
// (the kernel counts uptime on a clock no step touches). Without /proc: undefined.
import { readFile } from 'node:fs/promises';

export interface HostClock {
  /** /proc/sys/kernel/random/boot_id: new at every boot. */
  boot: string;
  /** The wall clock now less the uptime (CLOCK_BOOTTIME, suspend included): steady unless the wall clock is stepped. */
  bootTimeMs: number;
}

export async function readHostClock(): Promise<HostClock | undefined> {
  try {
    const [boot, uptime] = await Promise.all([readFile('/proc/sys/kernel/random/boot_id', 'latin1'), readFile('/proc/uptime', 'latin1')]);
    const seconds = Number(uptime.split(' ')[0]);
    if (!Number.isFinite(seconds) || boot.trim() === '') return undefined;
    return { boot: boot.trim(), bootTimeMs: Math.round(Date.now() - seconds * 1000) };
  } catch {
    return undefined;
  }
}
