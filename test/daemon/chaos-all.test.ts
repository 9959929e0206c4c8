// Everything at once (tools/chaos-all.ts): one daemon with a synchronous replica takes LMTP
// deliveries and client changes of every kind while the CLI compacts, snapshots, backs up, forgets
// and scrubs, and the daemon, the replica and CLI commands are SIGKILLed; after each kill and at the
// end every acknowledged operation is checked, with the replica, scrub, reconstruct --check and a
// restored backup. ~30 s here (a daemon kill and a replica kill at least); the long form:
// MAILSTORE_CHAOS_MINUTES=20 npx vitest run test/daemon/chaos-all.test.ts (or node dist/tools/chaos-all.js --minutes 20).
import { describe, expect, it } from 'vitest';
import { runChaos } from '../../tools/chaos-all.js';
import { requireBuilt } from '../cli/helpers.js';

const MINUTES = Number(process.env.MAILSTORE_CHAOS_MINUTES) > 0 ? Number(process.env.MAILSTORE_CHAOS_MINUTES) : 0.5;

describe('chaos: everything at once', () => {
  it(`${MINUTES} minute(s) of deliveries, client changes, maintenance and kills lose no acknowledged operation`, async () => {
    requireBuilt();
    const result = await runChaos({ minutes: MINUTES, seed: 0xc4a05, log: () => undefined });
    console.info(`chaos: ${JSON.stringify(result)}`);
    expect(result.failures).toEqual([]);
    expect(result.kills.daemon).toBeGreaterThanOrEqual(1);
    expect(result.kills.replica).toBeGreaterThanOrEqual(MINUTES >= 0.5 ? 1 : 0);
    expect(result.checks).toBeGreaterThanOrEqual(2);
    expect(result.ops.deliver).toBeGreaterThan(0);
    expect(result.ops.append).toBeGreaterThan(0);
  }, Math.max(10, MINUTES * 3) * 60_000);
});
