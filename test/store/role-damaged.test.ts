// A damaged REPLICATION (role and epoch) is CORRUPT at every open, never guessed. Its message named
// 'mailstore promote' as the way to write it again, and promote opens the store, which reads the
// file first: the same CORRUPT, a dead end. It now names what works.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

describe('REPLICATION damaged', () => {
  it('is CORRUPT at open, naming the file and a remedy that does not need the store opened', async () => {
    const root = tmpDir();
    await (await Store.open(root, { create: true })).close();
    const path = join(root, 'REPLICATION');
    writeFileSync(path, '{"role":"replica","epoch":3}\ncrc32 00000000\n');
    const error = await Store.open(root).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CORRUPT', path });
    const message = (error as Error).message;
    expect(message).not.toMatch(/write it again with 'mailstore promote'/);
    expect(message).toMatch(/copy/);
    expect(message).toMatch(/empty directory/);
  });
});
