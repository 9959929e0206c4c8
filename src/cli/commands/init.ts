// `mailstore init`: create a store. Refuses a directory that holds anything but a store.
// With --object-store, sealed packs may later move to that bucket (`mailstore tier`).
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { nodeFileSystem } from '../../fs/node-fs.js';
import { Store } from '../../store/store.js';
import { refuseExistingStore } from '../../store/identity.js';
import { checkTierSettings, writeTierSettings, type TierSettings } from '../../store/tier.js';
import { checkJournalArchive } from '../../store/journal-archive.js';
import { parseSize } from '../../store/tier-policy.js';
import { MailstoreError } from '../../errors.js';
import { absolutePath, printJson, printLine, refuseRootInOthersStore, storeDir, wantsJson } from '../context.js';
import { limits } from '../../limits.js';
import { parseInlineBytes } from './config.js';

export function register(program: Command): void {
  program
    .command('init')
    .description('create a new store in --store DIR (refuses a non-empty directory that is not a store); its files and directories are fsynced when it returns')
    .option('--object-store <url>', 'keep sealed packs in this S3 bucket (http://host:port/bucket[/prefix]); checked before anything is created')
    .option('--object-store-credentials <file>', 'a file holding ACCESS_KEY:SECRET_KEY (else $MAILSTORE_S3_ACCESS_KEY and $MAILSTORE_S3_SECRET_KEY)')
    .option('--local-bytes-max <size>', 'with --object-store: keep at most this much of the packs on the local disk, newest kept (e.g. 20G); default: 10 % of all pack bytes', (text) => parseSize(text, '--local-bytes-max'))
    .option('--inline-bytes-max <bytes>', `store messages up to this many bytes, delivered one at a time, inside their journal record (one file, one fdatasync); 0: every body to a pack (default ${limits.inlineBodyBytesDefault}; see mailstore config)`, (text) => parseInlineBytes(text))
    .option('--journal-archive <dir>', 'move retired journal segments into DIR (an existing directory outside the store that only its owner may write; a directory of its own per store) instead of deleting them (see mailstore snapshot)')
    .option('--json', 'print the result as JSON')
    .action(async (options: { objectStore?: string; objectStoreCredentials?: string; journalArchive?: string; localBytesMax?: number; inlineBytesMax?: number | 'default' }, command: Command) => {
      const dir = storeDir(command);
      refuseRootInOthersStore(dir); // a mount point made the service user's: the store must be theirs too
      await refuseExistingStore(nodeFileSystem, dir); // before the bucket's and the archive's checks (identity.ts)
      let tier: TierSettings | undefined;
      if (options.localBytesMax !== undefined && options.objectStore === undefined) throw new MailstoreError('INVALID', '--local-bytes-max is the budget of an object store: give --object-store too');
      if (options.objectStore !== undefined) {
        tier = { url: options.objectStore, ...(options.objectStoreCredentials ? { credentials: absolutePath(options.objectStoreCredentials) } : {}) };
        if (options.localBytesMax !== undefined) tier.policy = { localBytesMax: options.localBytesMax };
        await checkTierSettings(nodeFileSystem, tier);
      }
      const archive = options.journalArchive === undefined ? undefined : absolutePath(options.journalArchive);
      if (archive !== undefined) await checkJournalArchive(nodeFileSystem, archive); // before the store exists: refused after, init left a store without it
      const store = await Store.init(dir, { autoSnapshot: false });
      try {
        if (archive !== undefined) await store.setJournalArchive(archive);
        if (options.inlineBytesMax !== undefined) await store.setInlineBodies(options.inlineBytesMax === 'default' ? undefined : options.inlineBytesMax);
        // while open: through its mount check (a partition gone since the init is UNMOUNTED, not an OBJECT-STORE in the empty mount point)
        if (tier) await writeTierSettings(store, tier);
      } catch (error) {
        await store.close();
        throw error;
      }
      const { storeId, created } = store.identity;
      await store.close();
      if (wantsJson(command)) await printJson({ path: dir, storeId, created, ...(tier ? { objectStore: tier.url } : {}) });
      else await printLine(`initialised store ${storeId} at ${dir}${tier ? `, sealed packs move to ${tier.url}` : ''}`);
    });
}
