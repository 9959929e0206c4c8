// `mailstore messages MAILBOX [UIDSET]`: one line per message from the index (no body is read):
// uid, size, internal date, modseq, hash, flags. doveadm fetch's metadata fields, for scripts too.
import type { Command } from 'commander';
import type { MessageInfo } from '../../store/store.js';
import { wantsJson, withReadStore } from '../context.js';
import { StdoutPieces, printJsonItems } from '../stdout-pieces.js';
import { messagesInSet } from '../uids.js';

export function register(program: Command): void {
  program
    .command('messages <mailbox> [uids]')
    .description('list the messages of MAILBOX (or of a UID set, e.g. 1:5,9,12:*), a line each, tab-separated: uid, size, internal date, modseq, hash, flags. Reads the index only; changes nothing')
    .option('--json', 'print an array of {uid, size, internalDate, flags, modseq, hash} (plus envelopeFrom, dateZoneMinutes, recent when stored)')
    .action(async (mailbox: string, uidText: string | undefined, _options: unknown, command: Command) => {
      await withReadStore(command, (store) => printMessages(uidText === undefined ? store.messages(mailbox) : messagesInSet(store, mailbox, uidText), wantsJson(command)));
    });
}

/**
 * Each message's line (or --json array item) written as it is read, never the whole list held:
 * `messages INBOX 1:*` of 1M messages took the CLI to 670 MB that way (the bound is 256 MB).
 */
export async function printMessages(infos: AsyncIterable<MessageInfo>, json: boolean, out = new StdoutPieces()): Promise<void> {
  if (json) return printJsonItems(infos, out);
  for await (const info of infos) await out.line(formatMessageLine(info));
  await out.flush();
}

/** "UID SIZE DATE MODSEQ HASH FLAGS", tab-separated: flags last since there may be none. */
export function formatMessageLine(info: MessageInfo): string {
  return [info.uid, info.size, info.internalDate.toISOString(), info.modseq, info.hash, info.flags.join(' ')].join('\t');
}
