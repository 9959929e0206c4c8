// `mailstore init`: create a store. Refuses a directory that holds anything but a store.
import type { Command } from 'commander';
import { Store } from '../../store/store.js';
import { printJson, printLine, storeDir, wantsJson } from '../context.js';

export function register(program: Command): void {
  program
    .command('init')
    .description('create a new store in --store DIR (refuses a non-empty directory that is not a store); its files and directories are fsynced when it returns')
    .option('--json', 'print the result as JSON')
    .action(async (_options: unknown, command: Command) => {
      const dir = storeDir(command);
      const store = await Store.init(dir);
      const { storeId, created } = store.identity;
      await store.close();
      if (wantsJson(command)) await printJson({ path: dir, storeId, created });
      else await printLine(`initialised store ${storeId} at ${dir}`);
    });
}
