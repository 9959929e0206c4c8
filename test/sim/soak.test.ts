// SIGKILL soak (tools/soak.ts): a child with several concurrent writers appends, flags and
// expunges, printing each acknowledgement, while its background compactor rewrites packs and it
// snapshots and retires the journal (the result counts compactions and snapshots that finished before a kill); it is killed at a random moment, the store is reopened
// and every acknowledged operation is checked; then again on the same store. SOAK_CYCLES sets the
// number of kills (default 12; `npm run test:crash` 1,000). Twelve run every kind of cycle at least
// twice: killed after a retiring snapshot (cycles 0, 10), checked over a dropped index rebuilt from
// a snapshot (2, 5, 8, 11), killed at a random moment (the rest); more kills repeat these, at ~1 s
// each, and are the long form's.
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { runSoak } from '../../tools/soak.js';
import { skipReason } from './helpers.js';

const SCRIPT = new URL('../../dist/tools/soak.js', import.meta.url).pathname;
const CYCLES = Number(process.env.SOAK_CYCLES) > 0 ? Number(process.env.SOAK_CYCLES) : 12;

describe('SIGKILL soak', () => {
  it.skipIf(skipReason(!existsSync(SCRIPT), `the soak child runs from ${SCRIPT}: run \`npm run build\` first`))(
    `${CYCLES} kills of a child with 4 concurrent writers: every acknowledged append, flag and expunge survives`, async () => {
      const result = await runSoak({ cycles: CYCLES, script: SCRIPT, seed: 0x50a6 });
      console.info(`SIGKILL soak: ${JSON.stringify(result)}`);
      expect(result.cycles).toBe(CYCLES);
      expect(result.appendsAcked).toBeGreaterThan(CYCLES);
      // The child snapshots and retires beside its writers; every third check rebuilds from a snapshot.
      // Cycles 0, 10, 20, ... are killed only after a snapshot that retired a segment (runSoak), so
      // these hold however slow the machine is, and a check after one of them rebuilds from it.
      const waited = Math.ceil(CYCLES / 10);
      expect(result.snapshots).toBeGreaterThanOrEqual(waited);
      expect(result.segmentsRetired).toBeGreaterThanOrEqual(waited);
      expect(result.rebuildsFromSnapshot).toBeGreaterThan(0);
    }, 3_600_000);
});
