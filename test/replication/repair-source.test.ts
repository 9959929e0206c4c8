// scrub --repair --source HOST:PORT: a primary heals a damaged blob from its replica's listener
// (fetched by hash, verified before use); the repair is an ordinary record, so the replica stays
// identical. A peer that does not have the blob restores nothing and the damage stays reported.
import { describe, expect, it } from 'vitest';
import { openSync, readSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
// every body in a pack: these tests move, lose or repair pack records (helpers/packed.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { keys } from '../../src/keys/index-keys.js';
import { packFileName, RECORD_HEADER_BYTES } from '../../src/blob/pack-format.js';
import type { BlobRecord } from '../../src/store/records.js';
import { msg, startPair, until } from './helpers.js';

function flipBodyByte(root: string, blob: BlobRecord): void {
  const fd = openSync(join(root, 'packs', packFileName(blob.p)), 'r+');
  const b = Buffer.alloc(1);
  const at = blob.o + RECORD_HEADER_BYTES + 3;
  readSync(fd, b, 0, 1, at);
  b[0] ^= 0x20;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

describe('repair from a replica', () => {
  it('heals a damaged blob on the primary from the replica, verified, and the replica stays identical', async () => {
    const pair = await startPair({
      open: (dir) => Store.open(dir, { create: true }),
      fill: async (store) => { for (let i = 1; i <= 5; i++) await store.append('INBOX', msg(i)); },
      replica: { listen: '127.0.0.1:0' },
    });
    const { key, primaryStore, replica } = pair;
    try {
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
      const info = await primaryStore.messageInfo('INBOX', 3);
      flipBodyByte(primaryStore.root, primaryStore.replication().db.getNow<BlobRecord>(keys.blob(Buffer.from(info.hash, 'hex')))!);
      await expect(primaryStore.fetch('INBOX', 3)).rejects.toMatchObject({ code: 'CORRUPT' });
      const report = await scrub(primaryStore);
      expect(report.summary.damage).toBeGreaterThan(0);
      const result = await repair(primaryStore, report, { sources: [`127.0.0.1:${replica.port}`], replicationKey: key });
      expect(result.blobsRestored).toBe(1);
      expect(await primaryStore.fetch('INBOX', 3)).toEqual(msg(3));
      expect((await scrub(primaryStore)).summary.damage).toBe(0);
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
      expect(await replica.store.fetch('INBOX', 3)).toEqual(msg(3));
      await pair.expectIdentical();
    } finally {
      await pair.close();
    }
  }, 30_000);
});
