// `mailstore fetch MAILBOX UID`: the exact stored bytes on stdout (on a terminal, with what the
// terminal would obey shown escaped). The blob is verified against its hash before the first byte
// is written, so a corrupt message prints nothing and exits 6.
// `fetch MAILBOX UIDSET --info`: the metadata of each message of a UID set, from the index.
import type { Command } from 'commander';
import { MailstoreError } from '../../errors.js';
import { printableMessage } from '../../printable.js';
import type { MessageInfo } from '../../store/store.js';
import { parseUid, printJson, wantsJson, withReadStore, writeStdout } from '../context.js';
import { stdoutDirect } from '../std-streams.js';
import { messagesInSet } from '../uids.js';

export function register(program: Command): void {
  program
    .command('fetch <mailbox> <uid>')
    .description('write the exact bytes of a message to stdout (verified first: corruption prints nothing, exit 6; on a terminal, control and bidi characters shown escaped, a pipe or file gets the bytes); with --info, the metadata of a UID or UID set. Changes nothing')
    .option('--info', 'print the message metadata (flags, internal date, size, hash, modseq; envelope-from, date-zone-minutes and recent when stored) instead of its bytes; UID may be a set (1:5,9)')
    .option('--json', 'with --info: print the metadata as JSON (an array when UID is a set)')
    .action(async (mailbox: string, uidText: string, options: { info?: boolean }, command: Command) => {
      // without --info stdout is the message itself: a script asking for JSON must not get its bytes
      if (wantsJson(command) && !options.info) throw new MailstoreError('INVALID', '--json goes with --info (the metadata as JSON); without --info fetch writes the message\'s own bytes');
      if (options.info && !/^\d+$/.test(uidText)) return infoOfSet(mailbox, uidText, command);
      if (!/^\d+$/.test(uidText) && !options.info) throw new MailstoreError('INVALID', `fetch writes one message: ${JSON.stringify(uidText)} is not a UID (a set needs --info)`);
      const uid = parseUid(uidText);
      if (options.info) {
        const info = await withReadStore(command, (store) => store.messageInfo(mailbox, uid));
        if (wantsJson(command)) return printJson({ mailbox, ...info });
        return writeStdout(Buffer.from(formatInfo(info)));
      }
      const bytes = await withReadStore(command, (store) => store.fetch(mailbox, uid));
      // a message is anyone's text, and a terminal obeys the escape sequences in it (an admin
      // looking at a suspect message): shown escaped there; a pipe or a file gets the exact bytes
      // a file or /dev/null is no terminal: asking node's stream would make it (std-streams.ts)
      await writeStdout(!stdoutDirect() && process.stdout.isTTY ? Buffer.from(printableMessage(bytes)) : bytes);
    });
}

async function infoOfSet(mailbox: string, uidText: string, command: Command): Promise<void> {
  const list = await withReadStore(command, async (store) => {
    const out: MessageInfo[] = [];
    for await (const info of messagesInSet(store, mailbox, uidText)) out.push(info);
    return out;
  });
  if (wantsJson(command)) return printJson(list.map((info) => ({ mailbox, ...info })));
  await writeStdout(Buffer.from(list.map(formatInfo).join('\n')));
}

function formatInfo(info: MessageInfo): string {
  return `uid ${info.uid}\nsize ${info.size}\ninternal-date ${info.internalDate.toISOString()}\n` +
    `flags ${info.flags.join(' ')}\nmodseq ${info.modseq}\nhash ${info.hash}\n` +
    // the optional metadata only when stored: a missing line means unknown
    (info.envelopeFrom !== undefined ? `envelope-from ${info.envelopeFrom}\n` : '') +
    (info.dateZoneMinutes !== undefined ? `date-zone-minutes ${info.dateZoneMinutes}\n` : '') +
    (info.recent ? 'recent yes\n' : '');
}
