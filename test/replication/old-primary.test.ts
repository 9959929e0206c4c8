// A replica of a primary older than session 36 (its rounds name no `kept`, the oldest seq its
// journal holds) retires nothing of its own journal: never silently.
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { connect, listen, type Connection, type Listener } from '../../src/replication/transport.js';
import { readKeyFile } from '../../src/replication/key.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { PRIMARY_SETTINGS_FILE, notePrimarySettings } from '../../src/replication/node-settings.js';
import { existsSync } from 'node:fs';
import { tmpDir } from '../helpers/tmp.js';
import { keyFile, msg, quiet, until } from './helpers.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';

let relay: Listener | undefined;
afterEach(async () => {
  await relay?.close();
  relay = undefined;
});

/** Forwards each way between a replica and `primary`, dropping `kept` (and `settings`) from what the primary sends: an older primary. */
async function olderPrimary(key: string, primary: string): Promise<string> {
  const psk = await readKeyFile(nodeFileSystem, key);
  const pump = async (from: Connection, to: Connection, strip: boolean) => {
    for (let m = await from.next(); m; m = await from.next()) {
      if (strip) { delete m.kept; delete m.settings; }
      await to.send(m);
    }
    to.close();
  };
  relay = await listen('127.0.0.1:0', psk, (replica) => {
    void connect(primary, psk).then((upstream) => Promise.all([pump(replica, upstream, false), pump(upstream, replica, true)])).catch(() => replica.close());
  }, quiet);
  return `127.0.0.1:${relay.port}`;
}

describe('a replica of an older primary', () => {
  it('logs once per connection that it keeps its journal until the primary is upgraded; every acknowledged change arrives', async () => {
    const key = keyFile();
    const primaryStore = await Store.open(tmpDir('primary'), { create: true });
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const lines: string[] = [];
    const replica = await startReplica(join(tmpDir('replica'), 'r'), { primary: await olderPrimary(key, `127.0.0.1:${(await primary.status()).port}`), keyFile: key, log: (line) => lines.push(line) });
    try {
      const acked: number[] = [];
      for (let i = 1; i <= 5; i++) {
        acked.push((await primaryStore.append('INBOX', msg(i))).uid);
        await until(() => replica.status().seq === primaryStore.changes.lastSeq);
      }
      for (const uid of acked) expect(await replica.store.fetch('INBOX', uid)).toEqual(msg(uid));
      const warnings = lines.filter((line) => /WARNING.*older/.test(line));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/keeps its journal until the primary is upgraded/);
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 30_000);

  it('forgets the settings a newer primary it followed before named: a later promote warns of none', async () => {
    const key = keyFile();
    const primaryStore = await Store.open(tmpDir('primary'), { create: true });
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const root = join(tmpDir('replica'), 'r');
    const address = await olderPrimary(key, `127.0.0.1:${(await primary.status()).port}`);
    const first = await startReplica(root, { primary: address, keyFile: key, log: quiet });
    const acked = (await primaryStore.append('INBOX', msg(1))).uid;
    await until(() => first.status().seq === primaryStore.changes.lastSeq);
    await first.close();
    // as if a newer primary it followed before had named a journal archive
    await notePrimarySettings(unopenedRoot(nodeFileSystem, root), { 'JOURNAL-ARCHIVE': '/srv/archive' });
    const replica = await startReplica(root, { primary: address, keyFile: key, log: quiet });
    try {
      await until(() => !existsSync(join(root, PRIMARY_SETTINGS_FILE)));
      expect(await replica.store.fetch('INBOX', acked)).toEqual(msg(1));
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 30_000);
});
