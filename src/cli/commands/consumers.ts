// `mailstore consumers`: the change-log consumers (DESIGN.md, "Background work"), each with its
// cursor and how far behind the newest record it is; `--remove NAME` forgets one that is gone for
// good (it then no longer holds journal segments back).
import type { Command } from 'commander';
import { procedures } from '../../daemon/procedures.js';
import { MailstoreError } from '../../errors.js';
import { printJson, printLine, wantsJson, withReadStore, withStore } from '../context.js';

export function register(program: Command): void {
  program
    .command('consumers')
    .description('list the change-log consumers (cleanup, snapshots, events, replication, backup) with their cursor and lag; changes nothing unless --remove')
    .option('--remove <name>', 'forget a consumer that will not come back (it stops pinning the journal)')
    .option('--json', 'print as JSON')
    .addHelpText('after', `
A consumer reads the journal from its durable cursor and moves the cursor once its work is durable.
The journal is retired only up to the slowest cursor, so a consumer that stopped for good holds disk
space: remove it with --remove NAME. "behind" marks one more than a million records behind.`)
    .action(async (options: { remove?: string }, command: Command) => {
      if (options.remove !== undefined) {
        const removed = await withStore(command, (store) => procedures(store).removeConsumer(options.remove!));
        if (!removed) throw new MailstoreError('NOT_FOUND', `no consumer named ${options.remove}`);
        if (wantsJson(command)) return printJson({ removed: options.remove });
        return printLine(`removed consumer ${options.remove}`);
      }
      const result = await withReadStore(command, (store) => procedures(store).consumers());
      if (wantsJson(command)) return printJson(result);
      await printLine(`journal: seq ${result.firstSeq}..${result.lastSeq}`);
      if (result.consumers.length === 0) return printLine('no consumers');
      for (const c of result.consumers) {
        await printLine(`${c.name.padEnd(20)} at seq ${c.seq}, ${c.lagRecords} behind${c.behind ? ' (FALLING BEHIND)' : ''}, moved ${new Date(c.updated).toISOString()}`);
      }
    });
}
