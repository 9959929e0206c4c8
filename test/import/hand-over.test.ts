// The importer hands its message buffers to the store (validate.ts handOver) instead of letting
// appendBatch copy them: every reader yields a buffer of its own, and a second copy of every batch
// in flight was ~16 MiB of the import's peak RSS (bench step tier, issue 20). The bytes stored must
// still be exactly the source's, from each format.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importMail } from '../../src/import/importer.js';
import type { Store } from '../../src/store/store.js';
import { ownCopy } from '../../src/store/validate.js';
import { tmpDir } from '../helpers/tmp.js';
import { maildir, stored, withStore } from './helpers.js';

const body = (i: number) => `Message-ID: <h${i}@example.org>\nSubject: ${i}\n\n${'x'.repeat(i * 1000)}\n`;

/** Wraps appendBatch: records whether the store would take each item's buffer as it is (no copy). */
function watchCopies(store: Store): boolean[] {
  const taken: boolean[] = [];
  const real = store.appendBatch.bind(store);
  store.appendBatch = (mailbox, items, options) => {
    // ownCopy consumes a hand-over: the real appendBatch then copies, which changes nothing stored
    for (const item of items) taken.push(ownCopy(item.bytes) === item.bytes);
    return real(mailbox, items, options);
  };
  return taken;
}

describe('import hands its buffers over to the store', () => {
  it('mbox (views of read chunks and concatenations across chunks): no copy, exact bytes', async () => {
    const dir = tmpDir('hand-over');
    const mbox = join(dir, 'in.mbox');
    // messages of up to 3 MB: several span the reader's 1 MiB chunks and are concatenated
    const texts = [1, 2, 3000, 4, 1500, 5].map(body);
    writeFileSync(mbox, texts.map((t) => `From a@example.org Mon Jan  1 00:00:00 2024\n${t}\n`).join(''));
    await withStore(async (store) => {
      const taken = watchCopies(store);
      const summary = await importMail(store, mbox, { mailbox: 'M', format: 'mbox' });
      expect(summary.imported).toBe(texts.length);
      expect(taken).toEqual(texts.map(() => true));
      expect(await stored(store, 'M')).toEqual(texts);
    });
  });

  it('mbox read chunks read into again once their batch committed: every message stored exactly', async () => {
    // ~20 MB in 1 MiB chunks, batches of 4 MiB: the reader runs up to three batches ahead of the
    // commits (the importer lets the writer in every MiB) and reuses chunks all along; a chunk read
    // into again before the batch viewing it was written would store other bytes than were hashed
    const dir = tmpDir('hand-over');
    const mbox = join(dir, 'ring.mbox');
    const texts = Array.from({ length: 3000 }, (_, i) => `Message-ID: <r${i}@example.org>\nSubject: ${i}\n\n${String(i).repeat(1 + (i * 7919) % 4000)}\n`);
    writeFileSync(mbox, texts.map((t) => `From a@example.org Mon Jan  1 00:00:00 2024\n${t}\n`).join(''));
    await withStore(async (store) => {
      const summary = await importMail(store, mbox, { mailbox: 'M', format: 'mbox' });
      expect(summary.imported).toBe(texts.length);
      expect(summary.batches).toBeGreaterThan(4);
      expect(await stored(store, 'M')).toEqual(texts);
    });
  });

  it('Maildir and .eml files: no copy, exact bytes', async () => {
    const dir = tmpDir('hand-over');
    const texts = [1, 2, 300].map(body);
    const source = maildir(join(dir, 'md'), Object.fromEntries(texts.map((t, i) => [`${i + 1}.x:2,S`, t])));
    writeFileSync(join(dir, 'one.eml'), texts[2]!);
    await withStore(async (store) => {
      const taken = watchCopies(store);
      await importMail(store, source, { mailbox: 'M' });
      await importMail(store, join(dir, 'one.eml'), { mailbox: 'E', format: 'eml' });
      expect(taken).toEqual([true, true, true, true]);
      expect((await stored(store, 'M')).sort()).toEqual([...texts].sort());
      expect(await stored(store, 'E')).toEqual([texts[2]]);
    });
  });
});
