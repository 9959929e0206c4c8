// A replica's advertised seq (changes.lastSeq, what clients and tests wait on) must never run ahead
// of the state its readers see. The journal's own lastSeq moves when the journal fsync returns,
// while the round's pack fsync may still be running and the index is not yet applied: a pack
// fsync slowed down here (as on a loaded disk) opens that window wide, deterministically.
import { describe, expect, it } from 'vitest';
import { join, sep } from 'node:path';
import { Store } from '../../src/store/store.js';
import type { FileSystem } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { tmpDir } from '../helpers/tmp.js';
import { keyFile, msg, quiet, until } from './helpers.js';

const PACK_SYNC_DELAY_MS = 150;

/** nodeFileSystem whose fsyncs of pack files take PACK_SYNC_DELAY_MS longer. */
function slowPackSyncFs(): FileSystem {
  const packs = `${sep}packs${sep}`;
  return new Proxy(nodeFileSystem, {
    get(target, name, receiver) {
      if (name !== 'open') {
        const value = Reflect.get(target, name, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return async (path: string, mode: never) => {
        const handle = await target.open(path, mode);
        if (!path.includes(packs)) return handle;
        return new Proxy(handle, {
          get(h, key) {
            const value = Reflect.get(h, key, h);
            if (key === 'sync') return async () => { await new Promise((r) => setTimeout(r, PACK_SYNC_DELAY_MS)); return (value as () => Promise<void>).call(h); };
            return typeof value === 'function' ? value.bind(h) : value;
          },
        });
      };
    },
  }) as FileSystem;
}

describe('a replica\'s seq and what its readers see', () => {
  it('changes.lastSeq on a replica never names a round whose index is not yet readable', async () => {
    const key = keyFile();
    const primaryStore = await Store.open(tmpDir('primary'), { create: true });
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    const replica = await startReplica(join(tmpDir('replica'), 'r'), { primary: address, keyFile: key, log: quiet, fs: slowPackSyncFs() });
    try {
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 15_000, 'initial catch-up');
      for (let i = 1; i <= 5; i++) {
        await primaryStore.append('INBOX', msg(i, 300));
        const target = primaryStore.changes.lastSeq;
        // poll on every turn of the event loop: the first moment the seq is advertised, the state must be there
        while (replica.store.changes.lastSeq < target) await new Promise((r) => setImmediate(r));
        expect((await replica.store.status('INBOX')).messages).toBe(i);
        expect(await replica.store.fetch('INBOX', i)).toEqual(msg(i, 300));
      }
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 30_000);
});
