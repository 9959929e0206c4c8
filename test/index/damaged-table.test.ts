// A truncated LevelDB table is damage, not an I/O error: LevelDB reports its read past the end as
// "IO error: <file>: Invalid argument", and the store must rebuild the index from the journal
// instead of refusing to open (IO) until an admin runs reconstruct.
import { readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { classifyLevelError } from '../../src/index/level-errors.js';
import { tmpDir } from '../helpers/tmp.js';

describe('a truncated index table', () => {
  it('is classified as damage', () => {
    const error = Object.assign(new Error('IO error: /s/index/000005.ldb: Invalid argument'), { code: 'LEVEL_IO_ERROR' });
    expect(classifyLevelError(error).kind).toBe('damage');
    const eio = Object.assign(new Error('IO error: /s/index/000005.ldb: Input/output error'), { code: 'LEVEL_IO_ERROR' });
    expect(classifyLevelError(eio)).toMatchObject({ kind: 'system', code: 'IO' });
  });

  it('is rebuilt from the journal at open, every message kept', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    for (let i = 0; i < 3000; i++) await store.append('INBOX', Buffer.from(`Subject: ${i}\r\n\r\n${'x'.repeat(200)}\r\n`));
    await store.close();
    store = await Store.open(dir); // LevelDB writes its log out as a table on reopen
    await store.close();
    const tables = readdirSync(join(dir, 'index')).filter((name) => name.endsWith('.ldb'));
    expect(tables.length).toBeGreaterThan(0);
    for (const name of tables) truncateSync(join(dir, 'index', name), Math.floor(statSync(join(dir, 'index', name)).size / 2));
    store = await Store.open(dir);
    try {
      expect(store.health.rebuilt).toMatch(/damaged|could not be opened|probe/);
      expect((await store.status('INBOX')).messages).toBe(3000);
      expect((await store.fetch('INBOX', 2999)).toString()).toContain('Subject: 2998');
    } finally {
      await store.close();
    }
  });
});
