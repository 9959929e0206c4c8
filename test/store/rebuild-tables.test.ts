// An index rebuilt from a snapshot writes its LevelDB tables uncompressed (issue 16: Snappy was ~10 %
// of a rebuild's instructions a message): the tables must still be sound for scrub's check, every
// message must read back, and an open of the rebuilt index must find them all. The loaded snapshot
// is written into tables while the open reads the journal's tail (issue 16: LevelDB's background
// thread did it alone at the rebuild's end), and the records after it still land in the index.
import { readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { loadCrc32c } from '../../src/index/crc32c.js';
import { checkIndexFiles, readTableLayout } from '../../src/index/table-check.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { IndexDb } from '../../src/index/index-db.js';
import { Journal } from '../../src/journal/journal.js';
import { Store } from '../../src/store/store.js';
import { indexDifferences } from '../helpers/index-diff.js';
import { tmpDir } from '../helpers/tmp.js';

const MESSAGES = 300;

describe('a rebuilt index', () => {
  it('writes uncompressed tables that scrub finds sound and every open reads', async () => {
    const root = join(tmpDir(), 'store');
    const store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    // text LevelDB would compress: the same words in every message and flag
    for (let i = 0; i < MESSAGES; i++) await store.append('INBOX', Buffer.from(`Subject: message ${i}\r\n\r\n${'the same words again '.repeat(8)}${i}\r\n`), { flags: ['$Label1', '\\Seen'] });
    await store.snapshot();
    await store.close();

    rmSync(join(root, 'index'), { recursive: true });
    const rebuilt = await Store.open(root);
    expect(rebuilt.health.rebuiltFrom).toMatch(/^snapshot /);
    await rebuilt.close();

    const crc = await loadCrc32c();
    const tables = readdirSync(join(root, 'index')).filter((name) => name.endsWith('.ldb'));
    expect(tables.length).toBeGreaterThan(0);
    for (const name of tables) {
      const table = readFileSync(join(root, 'index', name));
      const layout = readTableLayout(table, crc);
      expect(layout, name).toBeDefined();
      // a block's trailer starts with its compression type: 0 none, 1 Snappy
      expect(layout!.data.map(({ offset, size }) => table[offset + size]), name).toEqual(layout!.data.map(() => 0));
    }
    expect((await checkIndexFiles(nodeFileSystem, join(root, 'index'))).damage).toEqual([]);

    const again = await Store.open(root);
    try {
      expect((await again.status('INBOX')).messages).toBe(MESSAGES);
      for (let uid = 1; uid <= MESSAGES; uid++) expect((await again.fetch('INBOX', uid)).toString()).toContain(`message ${uid - 1}\r\n`);
    } finally {
      await again.close();
    }
  });

  it('writes the loaded snapshot into tables before the journal\'s tail is read, and holds the records after the snapshot', async () => {
    const root = join(tmpDir(), 'store');
    const store = await Store.open(root, { create: true, autoSnapshot: false });
    await store.createMailbox('INBOX');
    for (let i = 0; i < 40; i++) await store.append('INBOX', Buffer.from(`Subject: before ${i}\r\n\r\nbody\r\n`));
    await store.snapshot();
    for (let i = 0; i < 5; i++) await store.append('INBOX', Buffer.from(`Subject: after ${i}\r\n\r\nbody\r\n`));
    await store.setFlags('INBOX', [1, 41], { add: ['\\Seen'] });
    await store.close();

    renameSync(join(root, 'index'), join(root, 'index.live'));
    const flushes = vi.spyOn(IndexDb.prototype, 'flushMemtable');
    const tailReads = vi.spyOn(Journal.prototype, 'findTail');
    try {
      const rebuilt = await Store.open(root, { autoSnapshot: false });
      expect(rebuilt.health.rebuiltFrom).toMatch(/^snapshot .* and 6 journal records after it$/);
      await rebuilt.close();
      // the load's flush started before the open's tail check (resolveTail, the last findTail)
      // read the journal's end; the final flush after the replay (failed before: one flush, after it)
      expect(flushes).toHaveBeenCalledTimes(2);
      expect(flushes.mock.invocationCallOrder[0]).toBeLessThan(Math.max(...tailReads.mock.invocationCallOrder));
    } finally {
      flushes.mockRestore();
      tailReads.mockRestore();
    }
    expect(await indexDifferences(join(root, 'index.live'), join(root, 'index'))).toEqual([]);
    expect((await checkIndexFiles(nodeFileSystem, join(root, 'index'))).damage).toEqual([]);
  });
});
