// A damaged OBJECT-STORE (the bucket settings) is CORRUPT at open, and its message names a way to
// write it again that works: 'tier set', which it named before, opens the store and reads the
// same file first, and could not have written the URL anyway. The file holds nothing of the store
// itself, so the one `init --object-store` writes in an empty directory serves.
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { TIER_SETTINGS_FILE, writeTierSettings } from '../../src/store/tier.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';
import { initStore } from '../../src/store/identity.js';
import { tmpDir } from '../helpers/tmp.js';

describe('OBJECT-STORE damaged', () => {
  it('is CORRUPT at open naming the file and init --object-store in an empty directory; that file copied in, the store opens with every message', async () => {
    const root = tmpDir();
    const store = await Store.open(root, { create: true });
    await store.createMailbox('in');
    await store.append('in', Buffer.from('Subject: kept\r\n\r\nbody\r\n'));
    await store.close();
    const path = join(root, TIER_SETTINGS_FILE);
    writeFileSync(path, '{"url":"http://rgw.example:7480/mail"}\ncrc32 00000000\n');

    const error = await Store.open(root).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CORRUPT', path });
    expect((error as Error).message).toMatch(/init --object-store URL/);
    expect((error as Error).message).not.toMatch(/write it again with 'mailstore tier set'/);

    // what init --object-store writes in an empty directory (it also checks the bucket answers, which needs one)
    const fresh = join(tmpDir(), 'new');
    await initStore(nodeFileSystem, fresh);
    const credentials = join(fresh, '..', 's3');
    writeFileSync(credentials, 'ACCESS:SECRET\n', { mode: 0o600 });
    await writeTierSettings(unopenedRoot(nodeFileSystem, fresh), { url: 'http://rgw.example:7480/mail', credentials });
    copyFileSync(join(fresh, TIER_SETTINGS_FILE), path);
    const mended = await Store.open(root);
    try {
      expect((await mended.fetch('in', 1)).toString()).toContain('Subject: kept');
    } finally {
      await mended.close();
    }
  });
});
