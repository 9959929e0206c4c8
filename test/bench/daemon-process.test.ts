// The daemon bench's CPU reading from /proc agrees with the kernel's own accounting of this process;
// its daemon starts as the unit starts it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readCpuMs, startDaemon } from '../../src/bench/daemon-process.js';
import { bin, requireBuilt } from '../cli/helpers.js';
import { freshStore } from '../daemon/processes.js';

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

describe('startDaemon', () => {
  requireBuilt();
  it('starts `mailstore serve` as packaging/mailstore.service does: node with --expose-gc (the give-back: src/daemon/give-back.ts)', async () => {
    const daemon = await startDaemon({ cli: bin, store: await freshStore() });
    try {
      const cmdline = readFileSync(`/proc/${daemon.child.pid}/cmdline`, 'utf8').split('\0');
      expect(cmdline.slice(1, 2)).toEqual(['--expose-gc']);
      expect(cmdline).toContain('serve');
    } finally {
      await daemon.stop();
    }
  });
});
