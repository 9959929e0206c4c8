// `mailstore messages MAILBOX [UIDSET]`: one line per message from the index (no body is read):
// uid, size, internal date, modseq, hash, flags. doveadm fetch's metadata fields, for scripts too.
import type { Command } from 'commander';
import type { MessageInfo } from '../../store/store.js';
import { printJson, printLine, wantsJson, withReadStore } from '../context.js';
import { messagesInSet } from '../uids.js';

export function register(program: Command): void {
  program
    .command('messages <mailbox> [uids]')
    .description('list the messages of MAILBOX (or of a UID set, e.g. 1:5,9,12:*), a line each, tab-separated: uid, size, internal date, modseq, hash, flags. Reads the index only; changes nothing')
    .option('--json', 'print an array of {uid, size, internalDate, flags, modseq, hash} (plus envelopeFrom, dateZoneMinutes, recent when stored)')
    .action(async (mailbox: string, uidText: string | undefined, _options: unknown, command: Command) => {
      const list = await withReadStore(command, async (store) => {
        const out: MessageInfo[] = [];
        for await (const info of uidText === undefined ? store.messages(mailbox) : messagesInSet(store, mailbox, uidText)) out.push(info);
        return out;
      });
      if (wantsJson(command)) return printJson(list);
      for (const info of list) await printLine(formatMessageLine(info));
    });
}

/** "UID SIZE DATE MODSEQ HASH FLAGS", tab-separated: flags last since there may be none. */
export function formatMessageLine(info: MessageInfo): string {
  return [info.uid, info.size, info.internalDate.toISOString(), info.modseq, info.hash, info.flags.join(' ')].join('\t');
}
