// A journal record holding an op this mailstore does not know (one written by a newer version,
// then the binary downgraded) is refused, never skipped: skipping would drop its effect (a
// compaction's relocations, say) silently and leave the index pointing at removed packs.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { IndexDb, IndexView } from '../../src/index/index-db.js';
import { applyOpsNow } from '../../src/store/apply.js';
import { encodeCbor } from '../../src/index/codec.js';
import { rm } from 'node:fs/promises';
import { Store } from '../../src/store/store.js';
import type { Op } from '../../src/store/records.js';
import { tmpDir } from '../helpers/tmp.js';

const FUTURE = { op: 'blob.teleport', hash: Buffer.alloc(32, 1) } as unknown as Op;

describe('an op from a newer version', () => {
  it('applying it throws INVALID naming the op', async () => {
    const db = await IndexDb.open(join(tmpDir('unknown-op'), 'index'), true);
    try {
      const view = new IndexView(db);
      expect(() => applyOpsNow(view, 1, [FUTURE], () => undefined)).toThrow(/blob\.teleport.*newer version/);
    } finally {
      await db.close();
    }
  });

  it('a store whose journal holds one refuses to open (INVALID), and keeps its mail and journal', async () => {
    const dir = tmpDir('unknown-op-store');
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', Buffer.from('Subject: kept\r\n\r\nbody\r\n'));
    const seq = store.changes.lastSeq;
    // this version cannot commit it (the op is applied to the batch's view before anything is written)
    await expect(store.replication().commitOps(async () => ({ ops: [FUTURE], result: 0 }))).rejects.toThrow(/blob\.teleport/);
    expect(store.changes.lastSeq).toBe(seq);
    await store.close();
    // a newer mailstore's commit: the record durable in the journal, the index not yet updated
    const writer = await Store.open(dir);
    const log = writer.replication().journal;
    await log.write([{ seq: seq + 1, payload: encodeCbor({ ops: [FUTURE], end: true }) }]);
    await log.sync();
    await writer.close();
    await rm(join(dir, 'index'), { recursive: true, force: true }); // rebuilt from the journal at open
    const reopened = Store.open(dir);
    await expect(reopened).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(/blob\.teleport/) });
    // nothing was cut or quarantined: the record is still there for the newer version
    const { readdirSync, statSync } = await import('node:fs');
    const journal = readdirSync(join(dir, 'journal')).map((f) => statSync(join(dir, 'journal', f)).size).reduce((a, b) => a + b, 0);
    expect(journal).toBeGreaterThan(0);
    expect(seq).toBeGreaterThan(0);
  });
});
