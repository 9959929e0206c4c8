// scrub on a replica: the nightly check-only scrub (mailstore-scrub.timer) runs on every node, so a
// replica's scrub holds its writer (as a primary's does) without being taken for a client write.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scrub } from '../../src/scrub/scrub.js';
import { msg, startPair, until } from './helpers.js';
import { requireBuilt, run } from '../cli/helpers.js';

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

describe('the scrub command on a damaged replica', () => {
  // Found by an outside test (session 48): it said "run 'mailstore scrub --repair --source COPY' to
  // heal", which a replica refuses (READ_ONLY_REPLICA, exit 3); what heals one is a new copy of its primary.
  it('names what heals a replica instead of a repair it refuses', async () => {
    requireBuilt();
    const pair = await startPair({ fill: async (store) => { for (let i = 0; i < 3; i++) await store.append('INBOX', msg(i, 40_000)); } });
    try {
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica to catch up');
      await pair.replica.close(); // the CLI opens the directory itself
      const pack = join(pair.replicaDir, 'packs', readdirSync(join(pair.replicaDir, 'packs')).find((n) => n.endsWith('.pack'))!);
      const bytes = readFileSync(pack);
      bytes[bytes.indexOf('body 1 ')] ^= 0x20;
      writeFileSync(pack, bytes);
      const checked = await run(['scrub'], { store: pair.replicaDir });
      expect(checked.code).toBe(1);
      expect(checked.stdout.toString()).toMatch(/this store is a replica, which takes no repair .*start the replica again in an empty one/);
      expect(checked.stdout.toString()).not.toMatch(/to heal/);
      const repair = await run(['scrub', '--repair', '--source', pair.address, '--replication-key', pair.key], { store: pair.replicaDir });
      expect(repair.code).toBe(3); // what the old hint led to
      expect(repair.stderr.toString()).toMatch(/READ_ONLY_REPLICA/);
      // a damaged consumer cursor too (a finding of its own): the hint asks the role alone, not the
      // replication status, which read every cursor (it failed, and the hint was left out)
      mkdirSync(join(pair.replicaDir, 'consumers'), { recursive: true });
      writeFileSync(join(pair.replicaDir, 'consumers', 'indexer'), 'garbage\n');
      const withCursor = await run(['scrub'], { store: pair.replicaDir });
      expect(withCursor.code).toBe(1);
      expect(withCursor.stdout.toString()).toMatch(/consumers\/indexer/);
      expect(withCursor.stdout.toString()).toMatch(/this store is a replica, which takes no repair/);
    } finally {
      await pair.primary.close();
      await pair.primaryStore.close();
    }
  }, 60_000);
});
