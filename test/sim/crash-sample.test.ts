// The crash-point sample `npm test` explores (crash-sample.ts): it must keep every kind of crash
// point in every mode, every acknowledgement point in the losing modes, and be a subset of the whole
// sweep (the same states at the same ordinals), or the explorers would prove less than they say.
import { afterAll, describe, expect, it } from 'vitest';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { FaultFileSystem } from './faultfs.js';
import { runWorkload } from './workload.js';
import { fastTmpRoot } from './explorer.js';
import { ACK_STRIDE, STRIDE, boundaryKind, crashPointsFromEnv, crashSpecs, opKindsAt, pointKinds, samplePointsForMode, uncoveredKinds } from './crash-sample.js';
import type { OpTrace } from './workload.js';

const ROOT = '/x/store';
const op = (kind: string, path: string) => ({ kind, path: `${ROOT}/${path}` }) as const;

describe('crash-point kinds', () => {
  it('CRASH_POINTS: unset or sample is the sample, all the whole sweep, anything else an error', () => {
    expect(crashPointsFromEnv({})).toBe('sample');
    expect(crashPointsFromEnv({ CRASH_POINTS: 'sample' })).toBe('sample');
    expect(crashPointsFromEnv({ CRASH_POINTS: 'all' })).toBe('all');
    expect(() => crashPointsFromEnv({ CRASH_POINTS: 'everything' })).toThrow(/CRASH_POINTS=everything/);
  });

  it('a boundary is the call and the file class, numbers and hashes folded', () => {
    expect(boundaryKind(op('sync', 'journal/000012.jnl') as never, ROOT)).toBe('sync journal/#.jnl');
    expect(boundaryKind(op('rename', 'snapshots/.00000000000000a1.snap.4242.tmp') as never, ROOT)).toBe('rename snapshots/.#.snap.#.tmp');
    expect(boundaryKind(op('syncDir', '') as never, ROOT)).toBe('syncDir .');
  });

  it('an entry belongs to every op in flight when it completed; none is "between ops"', () => {
    const traces: OpTrace[] = [
      { label: 'append INBOX', submittedAt: 2, ackedAt: 5 },
      { label: 'flags INBOX 1', submittedAt: 2, ackedAt: 5 },
      { label: 'compact', submittedAt: 7, ackedAt: 9 },
    ];
    expect(opKindsAt(2, traces)).toEqual(['between ops']);
    expect(opKindsAt(3, traces)).toEqual(['append', 'flags']);
    expect(opKindsAt(5, traces)).toEqual(['append', 'flags']);
    expect(opKindsAt(6, traces)).toEqual(['between ops']);
    expect(opKindsAt(8, traces)).toEqual(['compact']);
  });
});

describe('the sample of one mode', () => {
  // 100 entries: a long run of one kind with a few rare kinds in it, and three acknowledged ops
  const log = Array.from({ length: 100 }, (_, i) => (i === 40 ? op('rename', 'LOCK.1.tmp') : i === 77 ? op('unlink', 'journal/3.jnl') : op(i % 2 ? 'sync' : 'write', 'packs/1.pack')));
  const traces: OpTrace[] = [
    { label: 'append A', submittedAt: 10, ackedAt: 20 },
    { label: 'expunge A 1', submittedAt: 50, ackedAt: 61 },
    { label: 'delete B', submittedAt: 76, ackedAt: 78 },
  ];
  const kinds = pointKinds(log as never, traces, ROOT);

  it('has the empty and the whole log, every kind, and one point in STRIDE', () => {
    for (const [m, mode] of (['all-lost', 'random', 'all-kept'] as const).entries()) {
      const points = samplePointsForMode(kinds, traces, mode, m, 3);
      expect(points).toContain(0);
      expect(points).toContain(100);
      expect(points).toContain(41); // the only rename
      expect(points).toContain(78); // the only unlink, during the delete
      const specs = points.map((p) => ({ spec: { afterOp: p, seed: 1, mode }, ordinal: p }));
      expect(uncoveredKinds(kinds, specs)).toEqual([]);
      expect(points.length).toBeGreaterThanOrEqual(Math.floor(101 / STRIDE));
      expect(points.length).toBeLessThan(40);
      expect(points).toEqual([...points].sort((a, b) => a - b));
    }
  });

  it('has every acknowledgement point in the modes that lose un-synced data, not necessarily in the others', () => {
    expect(samplePointsForMode(kinds, traces, 'all-lost', 0, 1)).toEqual(expect.arrayContaining([20, 61, 78]));
    expect(samplePointsForMode(kinds, traces, 'data-lost', 0, 1)).toEqual(expect.arrayContaining([20, 61, 78]));
    expect(samplePointsForMode(kinds, traces, 'all-kept', 2, 3)).not.toContain(61);
  });

  it('in those modes, the first acknowledgement of each op kind and one in ACK_STRIDE of the rest', () => {
    const appends: OpTrace[] = Array.from({ length: 8 }, (_, i) => ({ label: `append A`, submittedAt: 10 * i + 1, ackedAt: 10 * i + 5 }));
    const acks = [...appends, { label: 'expunge A 1', submittedAt: 85, ackedAt: 87 }];
    const sampled = samplePointsForMode(kinds, acks, 'all-lost', 0, 1);
    const ackPoints = acks.map((t) => t.ackedAt).filter((p) => sampled.includes(p));
    expect(ackPoints).toEqual(expect.arrayContaining([5, 87])); // the first append's and the only expunge's
    expect(ackPoints.length).toBeGreaterThanOrEqual(Math.ceil(appends.length / ACK_STRIDE));
  });

  it('uncoveredKinds names a kind a mode never crashed at', () => {
    const specs = [0, 1, 2].map((p) => ({ spec: { afterOp: p, seed: 1, mode: 'random' as const }, ordinal: p }));
    expect(uncoveredKinds(kinds, specs)).toContain('random: rename LOCK.#.tmp | between ops');
  });
});

describe('the sample of a recorded workload', () => {
  const work = fsp.mkdtemp(join(fastTmpRoot(), 'crash-sample-'));
  afterAll(async () => fsp.rm(await work, { recursive: true, force: true }));

  it('is a strict subset of the whole sweep, state for state, that crashes every kind in every mode', async () => {
    const dir = await work;
    const ffs = new FaultFileSystem({ seed: 0x5a3b1e });
    const root = join(dir, 'store');
    const run = await runWorkload({ dir: root, ffs, seed: 0x5a3b1e, steps: 25, snapshotRoot: join(dir, 'snapshots'), compact: true, packBytesMax: 8 * 1024, journalSegmentBytesMax: 1024 });
    const modes = ['all-lost', 'random', 'all-kept'] as const;
    const whole = crashSpecs(ffs, run.ops, root, { seed: 7, modes: [...modes], points: 'all' });
    expect(whole.map((s) => s.spec)).toEqual(ffs.crashStates({ seed: 7, modes: [...modes] }));
    const sample = crashSpecs(ffs, run.ops, root, { seed: 7, modes: [...modes], points: 'sample' });
    for (const s of sample) expect(s.spec).toEqual(whole[s.ordinal].spec);
    expect(new Set(sample.map((s) => s.ordinal)).size).toBe(sample.length);
    expect(sample.length).toBeLessThan(whole.length);
    expect(new Set(sample.map((s) => s.spec.mode))).toEqual(new Set(modes));
    const kinds = pointKinds(ffs.ops(), run.ops, root);
    expect(new Set(kinds.flat()).size, 'the workload has several kinds of crash point').toBeGreaterThan(10);
    expect(uncoveredKinds(kinds, sample)).toEqual([]);
  });
});
