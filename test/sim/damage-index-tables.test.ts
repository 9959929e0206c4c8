// Damage explorer, index tables only: every single-bit flip of one shape's LevelDB tables
// (index/*.ldb), each observed in a child process as the damage explorer's index/ cases are (open
// as the CLI's scrub opens, every message fetched, metadata listed, scrub). The proof that scrub's
// file-level check of the tables (src/index/table-check.ts: every block's CRC32C) finds what its
// per-entry lookups found before: no case may end "scrub clean but not intact" (a flip in a
// table's bloom filter or index block hides entries from fetch while iteration still sees them).
//
// Long (a child per 8 cases, ~2,000 cases for the dedup shape): runs only when asked,
//   DAMAGE_TABLE_SHAPE=dedup npx vitest run test/sim/damage-index-tables.test.ts
// (DAMAGE_TABLE_CASES=N: a seeded sample of N of that shape's flips instead of all of them).
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SHAPES, buildShape } from './damage-shapes.js';
import { casesForFile, describeCase, type DamageCase } from './damage-cases.js';
import { judge } from './damage-run.js';
import { haveDist, observeIndexCases } from './damage-index.js';
import { prng } from '../helpers/prng.js';

const SHAPE = process.env.DAMAGE_TABLE_SHAPE;
const CASES = Number(process.env.DAMAGE_TABLE_CASES ?? Infinity);

const root = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'damage-tables-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A seeded sample of `count` (all of them, in order, when there are fewer). */
function sample(cases: DamageCase[], count: number): DamageCase[] {
  if (count >= cases.length) return cases;
  const rand = prng(0x7ab1e);
  const list = [...cases];
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list.slice(0, count);
}

describe.skipIf(!SHAPE || !haveDist)('damage explorer: every bit flip of one shape\'s index tables', () => {
  it(`${SHAPE}: no flip leaves scrub clean while a read or the metadata is not intact`, async () => {
    const spec = SHAPES.find((s) => s.name === SHAPE);
    expect(spec, `no shape named ${SHAPE}`).toBeDefined();
    const shape = await buildShape(spec!, join(root, 'pristine'));
    const flips: DamageCase[] = [];
    for (const [path, bytes] of shape.files) {
      if (bytes && /^index\/\d+\.ldb$/.test(path)) flips.push(...casesForFile(shape.name, path, bytes).filter((c) => c.kind === 'flip'));
    }
    const chosen = sample(flips, CASES);
    const observed = observeIndexCases(shape, chosen, root);
    const outcomes: Record<string, number> = {};
    const failures: string[] = [];
    const cleanAt: string[] = [];
    chosen.forEach((c, k) => {
      const obs = observed[k];
      const verdict = obs.died ? { outcome: 'FAIL', failure: 'child-died', detail: obs.died } : judge(shape, c, obs, { index: true });
      const rebuilt = obs.rebuilt ? ' (index rebuilt on open)' : '';
      const outcome = verdict.failure ? `FAIL ${verdict.failure}` : `${verdict.outcome}${rebuilt}${obs.scrubKinds?.length ? ` [${obs.scrubKinds.join(', ')}]` : ''}`;
      // a flip neither open's probe nor scrub noticed: where in its table (only the footer's padding may be)
      if (!verdict.failure && !obs.rebuilt && !obs.scrubDamage) cleanAt.push(`${c.path}@${c.at} of ${shape.files.get(c.path)!.length}`);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      if (verdict.failure) failures.push(`${describeCase(c)}: ${verdict.failure} (${verdict.detail})`);
    });
    const lines = Object.entries(outcomes).sort((a, b) => b[1] - a[1]).map(([o, n]) => `    ${n}  ${o}`).join('\n');
    console.info(`damage explorer, ${SHAPE} index tables: ${chosen.length} of ${flips.length} flips\n${lines}\n  clean and not rebuilt: ${cleanAt.join(' ')}`);
    expect(chosen.length).toBeGreaterThan(0);
    expect(failures.slice(0, 30), `${failures.length} failing cases`).toEqual([]);
  }, 4 * 3_600_000);
});
