// `mailstore append MAILBOX [FILE|-]`: store one message; the uid is printed only once it is durable.
import type { Command } from 'commander';
import { MailstoreError, fromSystemError } from '../../errors.js';
import { readFileUpTo } from '../../fs/node-fs.js';
import { limits } from '../../limits.js';
import { parseDateOption, parseFlagList, printJson, printLine, readStdin, wantsJson, withStore } from '../context.js';

export function register(program: Command): void {
  program
    .command('append <mailbox> [file]')
    .description('append one message from FILE, or from stdin when FILE is "-" or absent; prints its uid once durable')
    .option('--flags <flags>', 'flags, comma or space separated, e.g. "\\Seen,\\Flagged,$Label1"')
    .option('--date <date>', 'internal date: ISO 8601 (2024-02-29T10:00:00Z), RFC 5322 or epoch seconds; a real calendar date from 1970 to 9999 (else exit 5); default now')
    .option('--json', 'print {uid, uidValidity, hash, size, deduplicated} as JSON')
    .action(async (mailbox: string, file: string | undefined, options: { flags?: string; date?: string }, command: Command) => {
      const flags = parseFlagList(options.flags);
      const internalDate = parseDateOption(options.date);
      const bytes = file === undefined || file === '-'
        ? await readStdin()
        : await readMessageArgument(file);
      const result = await withStore(command, (store) => store.append(mailbox, bytes, { flags, internalDate }));
      if (wantsJson(command)) await printJson({ mailbox, ...result });
      else await printLine(String(result.uid));
    });
}

/**
 * FILE as the user named it (a link, a pipe such as /dev/stdin or <(command), or a device are
 * read), but never more than one byte past the message limit: /dev/zero is refused at once.
 */
async function readMessageArgument(file: string): Promise<Buffer> {
  const bytesMax = limits.messageBytesMax;
  const bytes = await readFileUpTo(file, bytesMax + 1).catch((error) => {
    if ((error as NodeJS.ErrnoException).code === 'EISDIR') throw new MailstoreError('INVALID', `${file} is a directory, not a message`, { path: file });
    throw fromSystemError(error, 'reading message', file);
  });
  if (bytes.length > bytesMax) throw new MailstoreError('TOO_LARGE', `${file} holds more than the message limit of ${bytesMax} bytes`, { path: file });
  return bytes;
}
