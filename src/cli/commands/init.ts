// `mailstore init`: create a store. Refuses a directory that holds anything but a store.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Store } from '../../store/store.js';
import { printJson, printLine, storeDir, wantsJson } from '../context.js';

export function register(program: Command): void {
  program
    .command('init')
    .description('create a new store in --store DIR (refuses a non-empty directory that is not a store); its files and directories are fsynced when it returns')
    .option('--journal-archive <dir>', 'move retired journal segments into DIR (an existing directory) instead of deleting them (see mailstore snapshot)')
    .option('--json', 'print the result as JSON')
    .action(async (options: { journalArchive?: string }, command: Command) => {
      const dir = storeDir(command);
      const store = await Store.init(dir, { autoSnapshot: false });
      if (options.journalArchive !== undefined) {
        try {
          await store.setJournalArchive(resolve(options.journalArchive));
        } catch (error) {
          await store.close();
          throw error;
        }
      }
      const { storeId, created } = store.identity;
      await store.close();
      if (wantsJson(command)) await printJson({ path: dir, storeId, created });
      else await printLine(`initialised store ${storeId} at ${dir}`);
    });
}
