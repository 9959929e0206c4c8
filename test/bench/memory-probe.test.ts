// The tier step's memory probe (src/bench/measure/memory-probe.ts): on Linux its /proc figures are
// parsed (anonymous + file-backed = resident, threads counted), elsewhere they are 0, never NaN.
import { describe, expect, it } from 'vitest';
import { memoryProbe } from '../../src/bench/measure/memory-probe.js';

describe('memoryProbe', () => {
  it('every figure a finite number; on Linux RssAnon + RssFile is about the resident size and there are threads', async () => {
    const probe = await memoryProbe();
    for (const [name, value] of Object.entries(probe)) expect(Number.isFinite(value), name).toBe(true);
    expect(probe.rss_now_bytes).toBeGreaterThan(0);
    expect(probe.heap_used_bytes).toBeLessThanOrEqual(probe.heap_total_bytes);
    if (process.platform !== 'linux') return;
    expect(probe.threads).toBeGreaterThanOrEqual(1);
    expect(probe.rss_anon_bytes).toBeGreaterThan(0);
    // RssShmem is the third part; the two are read a moment after memoryUsage(): within 16 MiB
    expect(Math.abs(probe.rss_anon_bytes + probe.rss_file_bytes - probe.rss_now_bytes)).toBeLessThan(16 * 1024 * 1024);
  });
});
