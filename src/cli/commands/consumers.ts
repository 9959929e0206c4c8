// `mailstore consumers`: the change-log consumers (DESIGN.md, "Background work"), each with its
// cursor and how far behind the newest record it is; `--remove NAME` forgets one that is gone for
// good (it then no longer holds journal segments back).
import type { Command } from 'commander';
import { procedures } from '../../daemon/procedures.js';
import { MailstoreError } from '../../errors.js';
import { printJson, printLine, wantsJson, withReadStore, withStore } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { damagedCursorLine } from './stats.js';

export function register(program: Command): void {
  program
    .command('consumers')
    .description('list the change-log consumers (cleanup, snapshots, events, replication, backup) with their cursor and lag; changes nothing unless --remove')
    .option('--remove <name>', 'forget a consumer that will not come back (it stops pinning the journal)')
    .option('--move <name>', "move an events consumer's cursor (the daemon's webhook: events-webhook) to --to")
    .option('--to <cursor>', 'with --move: the event cursor (SEQ or SEQ.SLOT as an event printed it; 0: the oldest change kept)')
    .option('--json', 'print as JSON')
    .addHelpText('after', `
A consumer reads the journal from its durable cursor and moves the cursor once its work is durable.
The journal is retired only up to the slowest cursor, so a consumer that stopped for good holds disk
space: remove it with --remove NAME. "behind" marks one more than a million records behind.

The webhook never skips a change: when its cursor names changes the journal no longer holds (it
was removed or down while they were retired) or a damaged record, it stops and says so in the
daemon's log. --move events-webhook --to CURSOR moves it on (past what it cannot send: the
receiver never gets those changes) or back (to send changes again), e.g.
  mailstore consumers --move events-webhook --to 0`)
    .action(async (options: { remove?: string; move?: string; to?: string }, command: Command) => {
      if ((options.move === undefined) !== (options.to === undefined)) throw new MailstoreError('INVALID', '--move NAME and --to CURSOR go together');
      // each is its own journaled change: one run did the move and left the removal undone, exit 0
      if (options.move !== undefined && options.remove !== undefined) throw new MailstoreError('INVALID', '--remove and --move: one at a time (run the command once for each)');
      if (options.move !== undefined) {
        const moved = await withStore(command, (store) => procedures(store).setConsumerCursor(options.to!, options.move!));
        if (wantsJson(command)) return printJson(moved);
        return printLine(`moved ${moved.consumer} from ${moved.previous} to ${moved.cursor}`);
      }
      if (options.remove !== undefined) {
        const removed = await withStore(command, (store) => procedures(store).removeConsumer(options.remove!));
        if (!removed) throw new MailstoreError('NOT_FOUND', `no consumer named ${options.remove}`);
        if (wantsJson(command)) return printJson({ removed: options.remove });
        return printLine(`removed consumer ${options.remove}`);
      }
      const result = await withReadStore(command, (store) => procedures(store).consumers());
      // a damaged cursor is a finding (exit 1, as scrub's store-file-damage), not the whole list's failure
      if (result.damaged) process.exitCode = EXIT.findings;
      if (wantsJson(command)) return printJson(result);
      await printLine(`journal: seq ${result.firstSeq}..${result.lastSeq}`);
      if (result.consumers.length === 0 && !result.damaged) return printLine('no consumers');
      for (const c of result.consumers) {
        await printLine(`${c.name.padEnd(20)} at seq ${c.seq}, ${c.lagRecords} behind${c.behind ? ' (FALLING BEHIND)' : ''}, moved ${new Date(c.updated).toISOString()}`);
      }
      for (const d of result.damaged ?? []) await printLine(`${d.name.padEnd(20)} ${damagedCursorLine(d.why)}`);
    });
}
