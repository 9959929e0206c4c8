// Replication of inline bodies (docs/FORMAT.md, "Inline bodies"): the replica gets the records
// that hold them and reads them from its own journal; when the primary moves them into packs
// (before retiring its journal), the pack bytes travel with the relocating records like any
// append, so the replica's packs stay byte-identical and every message still reads back.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { INLINE_PACK } from '../../src/blob/pack-store.js';
import { keys } from '../../src/keys/index-keys.js';
import { hashBytes } from '../../src/hash/blake3.js';
import type { BlobRecord } from '../../src/store/records.js';
import { tmpDir } from '../helpers/tmp.js';
import { keyFile, logicalState, msg, quiet, samePacks, until } from './helpers.js';

describe('replication of inline bodies', () => {
  it('a replica serves inline bodies, and follows their move into packs byte for byte', async () => {
    const key = keyFile();
    const p = tmpDir('primary');
    const primaryStore = await Store.open(p, { create: true, inlineBodyBytesMax: 4096, journalSegmentBytesMax: 4096, autoSnapshot: false });
    await primaryStore.createMailbox('INBOX');
    for (let i = 1; i <= 30; i++) await primaryStore.append('INBOX', msg(i));
    await primaryStore.append('INBOX', msg(31, 10_000)); // too big: a pack
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const r = join(tmpDir('replica'), 'r');
    const replica = await startReplica(r, { primary: `127.0.0.1:${(await primary.status()).port}`, keyFile: key, log: quiet });
    const inlineOn = async (store: Store, i: number) => (await store.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(msg(i)))))?.p === INLINE_PACK;
    try {
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 15_000, 'catch-up');
      expect(await inlineOn(replica.store, 5)).toBe(true);
      for (let i = 1; i <= 30; i++) expect(await replica.store.fetch('INBOX', i)).toEqual(msg(i));
      expect((await primaryStore.snapshot()).retired.segments, 'the first generation retires (and moves) nothing').toEqual([]);
      await primaryStore.append('INBOX', msg(32));
      const snapshot = await primaryStore.snapshot(); // the second: moves the bodies at or below the first, then retires
      expect(snapshot.retired.segments.length).toBeGreaterThan(0);
      for (let i = 33; i <= 35; i++) await primaryStore.append('INBOX', msg(i));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 15_000, 'the move');
      expect(await inlineOn(primaryStore, 5)).toBe(false);
      expect(await inlineOn(replica.store, 5)).toBe(false);
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
      for (let i = 1; i <= 35; i++) expect(await replica.store.fetch('INBOX', i)).toEqual(msg(i, i === 31 ? 10_000 : 0));
      samePacks(p, r);
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 60_000);
});
