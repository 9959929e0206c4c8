// scrub on a replica: the nightly check-only scrub (mailstore-scrub.timer) runs on every node, so a
// replica's scrub holds its writer (as a primary's does) without being taken for a client write.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scrub } from '../../src/scrub/scrub.js';
import { msg, startPair, until } from './helpers.js';

describe('scrub on a replica', () => {
  it('runs check-only, whole and scoped, and finds damage there', async () => {
    const pair = await startPair({ fill: async (store) => { for (let i = 0; i < 20; i++) await store.append('INBOX', msg(i, 40_000)); } });
    try {
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica to catch up');
      const whole = await scrub(pair.replica.store);
      expect(whole.summary.damage).toBe(0);
      expect(whole.summary.blobsVerified).toBeGreaterThanOrEqual(20);
      expect((await scrub(pair.replica.store, { mailbox: 'INBOX' })).summary.damage).toBe(0);
      // a byte of a body flipped in the replica's own copy: its scrub says so
      const pack = join(pair.replicaDir, 'packs', readdirSync(join(pair.replicaDir, 'packs')).find((n) => n.endsWith('.pack'))!);
      const bytes = readFileSync(pack);
      const at = bytes.indexOf('body 3 ');
      expect(at).toBeGreaterThan(0);
      bytes[at] ^= 0x20;
      writeFileSync(pack, bytes);
      expect((await scrub(pair.replica.store)).summary.damage).toBeGreaterThan(0);
    } finally {
      await pair.close();
    }
  });
});
