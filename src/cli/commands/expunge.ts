// `mailstore expunge MAILBOX UIDS`: remove messages for good (their blobs are freed by cleanup).
import type { Command } from 'commander';
import { formatUidSet } from '../../formats/uidset.js';
import { printJson, printLine, wantsJson, withStore } from '../context.js';
import { resolveUidSet } from '../uids.js';

export function register(program: Command): void {
  program
    .command('expunge <mailbox> <uids>')
    .description('permanently remove the messages of a UID set (e.g. 1:5,9,12:*)')
    .option('--json', 'print {expunged, modseq} as JSON')
    .action(async (mailbox: string, uidText: string, _options: unknown, command: Command) => {
      const result = await withStore(command, async (store) => {
        const uids = await resolveUidSet(store, mailbox, uidText);
        if (uids.length === 0) return { expunged: [] as number[], modseq: (await store.status(mailbox)).highestModseq };
        return store.expunge(mailbox, uids);
      });
      if (wantsJson(command)) return printJson({ mailbox, ...result });
      const n = result.expunged.length;
      await printLine(`expunged ${n} message${n === 1 ? '' : 's'}${n ? ` (${formatUidSet(result.expunged)})` : ''}`);
    });
}
