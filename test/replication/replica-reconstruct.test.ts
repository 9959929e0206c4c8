// reconstruct --check on a replica: it changes nothing, so a replica takes it as it takes a
// check-only scrub; a recovery (without --check) is still refused there, since a replica's index is
// rebuilt from its primary.
import { describe, expect, it } from 'vitest';
import { reconstruct } from '../../src/scrub/reconstruct.js';
import { requireBuilt, run } from '../cli/helpers.js';
import { codeOf, msg, startPair, until } from './helpers.js';

describe('reconstruct on a replica', () => {
  // Found by the outside test tools/chaos-all.ts (session 52): the check ended in READ_ONLY_REPLICA
  // ("write to the primary"), so the replica's index could not be checked against its journal at all.
  it('checks (--check, exit 0) and still refuses a recovery', async () => {
    requireBuilt();
    const pair = await startPair({ fill: async (store) => { for (let i = 0; i < 5; i++) await store.append('INBOX', msg(i, 2000)); } });
    try {
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica to catch up');
      await pair.replica.close(); // the CLI opens the directory itself
      const checked = await run(['reconstruct', '--check', '--json'], { store: pair.replicaDir });
      expect(checked.stderr.toString()).toBe('');
      expect(checked.code).toBe(0);
      expect(JSON.parse(checked.stdout.toString())).toMatchObject({ differences: 0, journalIntact: true });
      expect(await codeOf(reconstruct(pair.replicaDir, { from: 'journal' }))).toBe('READ_ONLY_REPLICA');
    } finally {
      await pair.close();
    }
  });
});
