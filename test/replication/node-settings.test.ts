// Per-node settings (INLINE-BODIES, FREE-SPACE-RESERVE, JOURNAL-ARCHIVE) are not replicated: a
// replica that differs from its primary says so at connect and, from what the primary last
// announced, at promote (daemon or CLI, the replica's daemon stopped).
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { promoteStore } from '../../src/replication/promote.js';
import { PRIMARY_SETTINGS_FILE, readPrimarySettings } from '../../src/replication/node-settings.js';
import { existsSync } from 'node:fs';
import { tmpDir } from '../helpers/tmp.js';
import { keyFile, msg, quiet, until } from './helpers.js';

describe('node settings', () => {
  it("a replica names each setting that differs from its primary's at connect and at promote; nothing acknowledged is lost", async () => {
    const key = keyFile();
    const archive = tmpDir('archive');
    const primaryStore = await Store.open(tmpDir('primary'), { create: true });
    await primaryStore.setJournalArchive(archive);
    await primaryStore.setInlineBodies(0);
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const root = join(tmpDir('replica'), 'r');
    const lines: string[] = [];
    let replica = await startReplica(root, { primary: `127.0.0.1:${(await primary.status()).port}`, keyFile: key, log: (line) => lines.push(line) });
    try {
      await until(() => lines.some((line) => line.includes('connected to')));
      const acked = [(await primaryStore.append('INBOX', msg(1))).uid];
      await until(() => replica.status().seq === primaryStore.changes.lastSeq);
      const warnings = lines.filter((line) => line.includes('WARNING'));
      expect(warnings.some((line) => line.includes('JOURNAL-ARCHIVE') && line.includes(archive))).toBe(true);
      expect(warnings.some((line) => line.includes('INLINE-BODIES'))).toBe(true);
      expect(warnings.some((line) => line.includes('FREE-SPACE-RESERVE'))).toBe(false);
      await replica.close();
      // the CLI's promote: the replica's daemon is stopped, the primary's announcement is on disk
      const store = await Store.open(root);
      try {
        const promoted = await promoteStore(store, quiet);
        expect(promoted.settingWarnings?.some((line) => line.includes('JOURNAL-ARCHIVE') && line.includes(archive))).toBe(true);
        expect(promoted.settingWarnings?.some((line) => line.includes('INLINE-BODIES'))).toBe(true);
        for (const uid of acked) expect(await store.fetch('INBOX', uid)).toEqual(msg(uid));
        // the note named the old primary's settings: gone with the promote, no later promote (this
        // node a replica again, of a primary that names none) warns about them
        expect(existsSync(join(root, PRIMARY_SETTINGS_FILE))).toBe(false);
        expect(await readPrimarySettings(store.fs, root)).toBeUndefined();
      } finally {
        await store.close();
      }
      replica = undefined as never;
    } finally {
      await replica?.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 30_000);
});
