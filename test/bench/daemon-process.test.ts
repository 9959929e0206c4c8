// The daemon bench's CPU reading from /proc agrees with the kernel's own accounting of this process.
import { describe, expect, it } from 'vitest';
import { readCpuMs } from '../../src/bench/daemon-process.js';

describe('readCpuMs', () => {
  it('reads user + system time of a process from /proc (agrees with getrusage within two clock ticks)', async () => {
    let spin = 0;
    for (let i = 0; i < 5_000_000; i++) spin += i % 7; // some CPU of our own, so both readings are well above zero
    const before = process.cpuUsage();
    const fromProc = await readCpuMs(process.pid);
    const after = process.cpuUsage();
    expect(spin).toBeGreaterThan(0);
    expect(Number.isFinite(fromProc)).toBe(true);
    expect(fromProc).toBeGreaterThanOrEqual((before.user + before.system) / 1000 - 20);
    expect(fromProc).toBeLessThanOrEqual((after.user + after.system) / 1000 + 20);
  });
});
