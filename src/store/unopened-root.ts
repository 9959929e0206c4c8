// The files a store directory holds before any open takes it (a replica being made writes
// REPLICATION beside the STORE it just wrote or found): written through setting-file.ts as an open
// store's are, with the one mount check possible without an open. Apart so that an open does not load it.
import { join } from 'node:path';
import { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { LAYOUT } from './identity.js';
import type { StoreRoot } from './setting-file.js';

/** UNMOUNTED unless the directory still holds its STORE. */
export function unopenedRoot(fs: FileSystem, root: string): StoreRoot {
  return {
    fs, root, checkMounted: async (path) => {
      if (!(await fs.statIfExists(join(root, LAYOUT.identity)).catch(() => undefined))) {
        throw new MailstoreError('UNMOUNTED', `${path}: ${root} holds no STORE any more (unmounted?); nothing was written: mount it there again`, { path });
      }
    },
  };
}
