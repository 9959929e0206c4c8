// An index rebuilt from a snapshot writes its LevelDB tables uncompressed (issue 16: Snappy was ~10 %
// of a rebuild's instructions a message): the tables must still be sound for scrub's check, every
// message must read back, and an open of the rebuilt index must find them all.
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCrc32c } from '../../src/index/crc32c.js';
import { checkIndexFiles, readTableLayout } from '../../src/index/table-check.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
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
});
