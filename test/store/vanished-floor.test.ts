// A mailbox's vanished floor (docs/FORMAT.md, "The vanished floor"): where the change log no longer
// lists every expunge, changesSince says so with the uid ranges that hold no message, and a QRESYNC
// client that honours them keeps no message the store does not hold. Here: an index rebuilt past a
// damaged journal record (what it did is lost, and no tombstone says so), and tombstones expiring
// after their retention (compaction, explicit and in the background), so they stop growing.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, decodeRecordHeader } from '../../src/journal/journal-format.js';
import { Store } from '../../src/store/store.js';
import { expireTombstones, type TombstoneExpiryHost } from '../../src/store/tombstone-expiry.js';
import { keys } from '../../src/keys/index-keys.js';
import { SPACE } from '../../src/keys/tuple.js';
import { resync } from '../helpers/qresync.js';
import { tmpDir } from '../helpers/tmp.js';

const body = (n: number) => Buffer.from(`Subject: ${n}\r\n\r\n${'x'.repeat(n * 10)}\r\n`);

async function cacheOf(store: Store, mailbox: string): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for await (const info of store.messages(mailbox)) out.set(info.uid, info.hash);
  return out;
}

/** Flips a byte inside the payload of journal record `seq` (in the one segment): damage in the middle. */
function damageRecord(root: string, seq: number): void {
  const [name] = readdirSync(join(root, 'journal')).filter((n) => n.endsWith('.jnl'));
  const path = join(root, 'journal', name!);
  const bytes = readFileSync(path);
  for (let at = SEGMENT_HEADER_BYTES; at + RECORD_HEADER_BYTES <= bytes.length;) {
    const header = decodeRecordHeader(bytes.subarray(at, at + RECORD_HEADER_BYTES));
    if (!header) break;
    if (header.seq === seq) {
      bytes[at + RECORD_HEADER_BYTES + 2] ^= 0xff;
      writeFileSync(path, bytes);
      return;
    }
    at += RECORD_HEADER_BYTES + header.payloadLength;
  }
  throw new Error(`no record ${seq}`);
}

describe('the vanished floor', () => {
  it('an index rebuilt past a damaged journal record: a client that saw the message that record added is told it is gone (vanished ranges), not left with it for good', async () => {
    const root = join(tmpDir('floor'), 'store');
    let store = await Store.init(root);
    await store.createMailbox('INBOX');
    await store.append('INBOX', body(1));
    await store.append('INBOX', body(2));
    const lost = store.changes.lastSeq;
    await store.append('INBOX', body(3));
    await store.append('INBOX', body(4));
    const cache = await cacheOf(store, 'INBOX'); // the client saw uids 1..4
    const synced = (await store.status('INBOX')).highestModseq;
    await store.close();
    damageRecord(root, lost); // uid 2's add
    rmSync(join(root, 'index'), { recursive: true });
    store = await Store.open(root);
    try {
      expect(store.health.degraded).toBe(true);
      const truth = await cacheOf(store, 'INBOX');
      expect([...truth.keys()]).toEqual([1, 3, 4]);
      const changes = await store.changesSince('INBOX', synced);
      expect(changes.vanishedRanges).toEqual([[2, 2]]);
      resync(cache, changes, (info) => info.hash);
      expect([...cache]).toEqual([...truth]);
      // once the mailbox changes again, a client that synced after the rebuild is told exactly
      await store.append('INBOX', body(5));
      const now = (await store.status('INBOX')).highestModseq;
      await store.expunge('INBOX', [3]);
      const after = await store.changesSince('INBOX', now);
      expect(after.vanished).toEqual([3]);
      expect(after.vanishedRanges).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it('tombstones past their retention are dropped by compact, the floor raised: clients that synced before drop what was expunged, their number stays bounded, and the floor survives a rebuild', async () => {
    const root = join(tmpDir('floor'), 'store');
    let store = await Store.init(root);
    try {
      await store.createMailbox('INBOX');
      for (let i = 1; i <= 10; i++) await store.append('INBOX', body(i));
      const early = { cache: await cacheOf(store, 'INBOX'), modseq: (await store.status('INBOX')).highestModseq };
      await store.expunge('INBOX', [1, 2, 3]);
      const middle = { cache: await cacheOf(store, 'INBOX'), modseq: (await store.status('INBOX')).highestModseq };
      await store.expunge('INBOX', [4]);
      // within the retention nothing goes (a mark is taken: tombstones hold no time)
      expect((await store.compact({ tombstoneRetentionMs: 3_600_000 })).tombstonesExpired).toBe(0);
      expect(await tombstones(store, 'INBOX')).toBe(4);
      expect((await store.compact({ tombstoneRetentionMs: 0 })).tombstonesExpired).toBe(4);
      expect(await tombstones(store, 'INBOX')).toBe(0);
      const truth = await cacheOf(store, 'INBOX');
      for (const client of [early, middle]) {
        const changes = await store.changesSince('INBOX', client.modseq);
        expect(changes.vanishedRanges).toEqual([[1, 4]]);
        resync(client.cache, changes, (info) => info.hash);
        expect([...client.cache]).toEqual([...truth]);
      }
      // a client that syncs after the expiry is told exactly
      const now = (await store.status('INBOX')).highestModseq;
      await store.expunge('INBOX', [5]);
      expect(await store.changesSince('INBOX', now)).toMatchObject({ vanished: [5] });
      // months of mail in and out: the tombstones do not grow with history
      for (let round = 0; round < 20; round++) {
        const { uid } = await store.append('INBOX', body(round));
        await store.expunge('INBOX', [uid]);
        await store.compact({ tombstoneRetentionMs: 0 });
        expect(await tombstones(store, 'INBOX')).toBe(0);
      }
      await store.close();
      rmSync(join(root, 'index'), { recursive: true });
      store = await Store.open(root);
      const rebuilt = await store.changesSince('INBOX', middle.modseq);
      expect(rebuilt.vanishedRanges?.[0]).toEqual([1, 5]);
      expect(rebuilt.vanishedFloor).toBeGreaterThan(now);
    } finally {
      await store.close();
    }
  });

  it('an expiry with nothing new to drop reads no change entry of the live messages below the floor (the background runs it every hour over every mailbox)', async () => {
    const root = join(tmpDir('floor'), 'store');
    const store = await Store.init(root);
    try {
      await store.createMailbox('INBOX');
      await store.appendBatch('INBOX', Array.from({ length: 500 }, (_, i) => ({ bytes: body(i % 7) })));
      await store.expunge('INBOX', [1, 2, 3]);
      const admin = store.administration();
      let read = 0;
      const changeSpace = keys.space(SPACE.change);
      const counting: TombstoneExpiryHost = {
        mutate: (mutation) => admin.mutate(mutation),
        index: {
          get: (key) => admin.index.get(key), getNow: (key) => admin.index.getNow(key), settle: () => admin.index.settle(), readNow: (read) => admin.index.readNow(read),
          entries: async function* <T>(range: Parameters<typeof admin.index.entries>[0]) {
            for await (const entry of admin.index.entries<T>(range)) {
              if (entry[0].subarray(0, changeSpace.length).equals(changeSpace)) read++;
              yield entry;
            }
          },
        },
      };
      const now = Date.now();
      expect((await expireTombstones(counting, 0, now)).expired).toBe(3);
      expect(await tombstones(store, 'INBOX')).toBe(0);
      read = 0;
      expect((await expireTombstones(counting, 0, now + 1)).expired).toBe(0);
      expect(read).toBeLessThan(10); // not the 497 live messages' entries
    } finally {
      await store.close();
    }
  });

  it('the background compactor expires tombstones by itself, on a store with no dead bytes to compact', async () => {
    const root = join(tmpDir('floor'), 'store');
    await (await Store.init(root)).close();
    const store = await Store.open(root, { autoCompact: { intervalMs: 10, deadBytesMin: 1 << 30, tombstoneRetentionMs: 0 } });
    try {
      await store.createMailbox('INBOX');
      for (let i = 1; i <= 3; i++) await store.append('INBOX', body(i));
      const synced = (await store.status('INBOX')).highestModseq;
      await store.expunge('INBOX', [2]);
      for (let waited = 0; await tombstones(store, 'INBOX') > 0; waited++) {
        expect(waited, 'the background expiry within 10 s').toBeLessThan(1000);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect((await store.changesSince('INBOX', synced)).vanishedRanges).toEqual([[2, 2]]);
    } finally {
      await store.close();
    }
  });
});

/** The mailbox's tombstones (C entries of value 1). */
async function tombstones(store: Store, mailbox: string): Promise<number> {
  const id = Buffer.from((await store.mailbox(mailbox)).id.replace(/-/g, ''), 'hex');
  let count = 0;
  for await (const [, value] of store.maintenance().index.entries<number>({ prefix: keys.changePrefix(id) })) if (value === 1) count++;
  return count;
}
