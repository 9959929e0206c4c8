// The move policy (src/store/tier-policy.ts) as a pure decision: budget and age, oldest first, the
// open pack never moved; and the default policy's promise: local share <= 0.15 at steady state.
import { describe, expect, it } from 'vitest';
import { checkPolicy, localBudgetBytes, parseDuration, parseSize, planMoves, type LocalPack } from '../../src/store/tier-policy.js';
import { limits } from '../../src/limits.js';
import { codeOf } from '../helpers/errors.js';

const MiB = 1024 * 1024;
const now = Date.UTC(2026, 11, 1);
const packs = (n: number, bytes: number, ageMs = 0): LocalPack[] => Array.from({ length: n }, (_, i) => ({ pack: i + 1, bytes, modifiedMs: now - ageMs }));

describe('tier move policy', () => {
  it('over the budget the oldest sealed packs move until the local ones (the open pack included) fit', () => {
    const moving = planMoves({ localBytesMax: 30 * MiB }, { sealed: packs(10, 8 * MiB), pinnedBytes: 4 * MiB, remoteBytes: 0, nowMs: now });
    expect(moving.map((p) => p.pack)).toEqual([1, 2, 3, 4, 5, 6, 7]); // 3 x 8 + 4 = 28 MiB stay
  });

  it('within the budget nothing moves until a pack is cold; cold packs move whatever the budget', () => {
    expect(planMoves({ localBytesMax: 1024 * MiB }, { sealed: packs(5, MiB), pinnedBytes: 0, remoteBytes: 0, nowMs: now })).toEqual([]);
    const sealed = [...packs(2, MiB, 8 * 86_400_000), { pack: 3, bytes: MiB, modifiedMs: now }];
    expect(planMoves({ localBytesMax: 1024 * MiB }, { sealed, pinnedBytes: 0, remoteBytes: 0, nowMs: now }).map((p) => p.pack)).toEqual([1, 2]);
    expect(planMoves({ moveAfterMs: 0 }, { sealed: packs(3, MiB), pinnedBytes: 0, remoteBytes: 0, nowMs: now })).toHaveLength(3);
  });

  it('a pack written while the clock was more than --move-after ahead (a wrong RTC, put right since) is cold: its age cannot be told; one dated ahead by less waits', () => {
    const day = 86_400_000;
    // packs 1 and 2 sealed while the clock was a year ahead; 3 a week ago; 4 today
    const sealed = [{ pack: 1, bytes: MiB, modifiedMs: now + 365 * day }, { pack: 2, bytes: MiB, modifiedMs: now + 3 * day }, ...[3, 4].map((pack) => ({ pack, bytes: MiB, modifiedMs: now - (pack === 3 ? 8 * day : 0) }))];
    expect(planMoves({ localBytesMax: 1024 * MiB }, { sealed, pinnedBytes: 0, remoteBytes: 0, nowMs: now }).map((p) => p.pack)).toEqual([1, 3]);
  });

  it('the default budget is a share of all pack bytes (in the bucket too), newest kept', () => {
    expect(localBudgetBytes({}, 1000 * MiB)).toBe(Math.floor(1000 * MiB * limits.tierLocalShareDefault));
    // 20 x 8 + 2 + 300 = 462 MiB in all: a budget of 46.2 MiB keeps the 5 newest sealed packs and the open one
    const moving = planMoves({}, { sealed: packs(20, 8 * MiB), pinnedBytes: 2 * MiB, remoteBytes: 300 * MiB, nowMs: now });
    expect(moving.map((p) => p.pack)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
  });

  it('steady state under the default policy: local share <= 0.15 after every round of a growing store', () => {
    // mail arrives, packs rotate at tierPackBytesMax, the mover runs after each rotation
    let local: LocalPack[] = [];
    let remoteBytes = 0, pack = 0, worst = 0;
    for (let round = 0; round < 400; round++) {
      local.push({ pack: ++pack, bytes: limits.tierPackBytesMax, modifiedMs: now });
      const openBytes = (round * 7919) % limits.tierPackBytesMax; // the open pack, anywhere in its fill
      const moving = new Set(planMoves({}, { sealed: local, pinnedBytes: openBytes, remoteBytes, nowMs: now }).map((p) => p.pack));
      remoteBytes += local.filter((p) => moving.has(p.pack)).reduce((s, p) => s + p.bytes, 0);
      local = local.filter((p) => !moving.has(p.pack));
      const localBytes = local.reduce((s, p) => s + p.bytes, 0) + openBytes;
      if (round >= 20) worst = Math.max(worst, localBytes / (localBytes + remoteBytes));
    }
    expect(worst).toBeLessThanOrEqual(0.15);
    expect(worst).toBeGreaterThan(0.05); // hot mail does stay local
  });

  it('parses sizes and durations; refuses nonsense with INVALID', async () => {
    expect(parseSize('2G', 'x')).toBe(2 * 1024 * MiB);
    expect(parseSize('500m', 'x')).toBe(500 * MiB);
    expect(parseDuration('30d', 'x')).toBe(30 * 86_400_000);
    expect(parseDuration('90m', 'x')).toBe(90 * 60_000);
    expect(await codeOf(async () => parseSize('lots', '--local-bytes-max'))).toBe('INVALID');
    expect(await codeOf(async () => parseDuration('3 weeks', '--move-after'))).toBe('INVALID');
    expect(await codeOf(async () => checkPolicy({ localBytesMax: -1 }))).toBe('INVALID');
    expect(await codeOf(async () => checkPolicy({ keepAll: 1 } as never))).toBe('INVALID');
  });
});
