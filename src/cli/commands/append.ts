// `mailstore append MAILBOX [FILE|-]`: store one message; the uid is printed only once it is durable.
// --sysexits (or MAILSTORE_SYSEXITS=1) maps failures to sysexits.h for an MTA's mailbox_command.
import type { Command } from 'commander';
import { CommanderError } from 'commander';
import { MailstoreError, fromSystemError, isMailstoreError } from '../../errors.js';
import { readFileUpTo } from '../../fs/node-fs.js';
import { limits } from '../../limits.js';
import { printable } from '../../printable.js';
import { parseDateOption, parseFlagList, printJson, printJsonError, printLine, readStdin, wantsJson, withStore } from '../context.js';
import { SYSEXITS, sysexitFor, sysexitsHelp, sysexitsWanted, type AppendStage } from '../sysexits.js';

interface AppendCliOptions { flags?: string; date?: string; sysexits?: boolean }

/** How far an append got: what a failure is about (sysexitFor); why a NOT_FOUND is to be retried. */
interface AppendProgress { stage: AppendStage; retry?: string }

export function register(program: Command): void {
  program
    .command('append <mailbox> [file]')
    .description('append one message from FILE, or from stdin when FILE is "-" or absent (an empty one is refused: INVALID). The uid is printed only once the message is durable (blob and journal fsynced); on any error nothing was acknowledged')
    .option('--flags <flags>', 'flags, comma or space separated, e.g. "\\Seen,\\Flagged,$Label1"')
    .option('--date <date>', 'internal date: ISO 8601 (2024-02-29T10:00:00Z), RFC 5322 or epoch seconds, a time without a zone in UTC; a real calendar date from 1970 to 9999 (else exit 5); default now')
    .option('--sysexits', 'exit with sysexits.h codes (67 no mailbox, 65 bad message, 75 anything else: retry) for an MTA; also MAILSTORE_SYSEXITS=1')
    .option('--json', 'print {uid, uidValidity, hash, size, deduplicated} as JSON')
    .addHelpText('after', `\n${sysexitsHelp()}`)
    .action(async (mailbox: string, file: string | undefined, options: AppendCliOptions, command: Command) => {
      const progress: AppendProgress = { stage: 'message' };
      if (!sysexitsWanted(options.sysexits)) return appendOne(mailbox, file, options, command, progress);
      try {
        await appendOne(mailbox, file, options, command, progress);
      } catch (error) {
        if (error instanceof CommanderError) throw error;
        process.stderr.write(`mailstore: ${isMailstoreError(error) ? error.code : 'INTERNAL'}: ${printable(error instanceof Error ? error.message : String(error))}\n`);
        // NOT_FOUND while the mailbox's parent holds others (an INBOX renamed away by a rotation), or cannot be read: not "no such user"
        if (progress.retry !== undefined) process.stderr.write(`mailstore: ${progress.retry}\n`);
        process.exitCode = progress.retry !== undefined ? SYSEXITS.tempFail : sysexitFor(error, progress.stage, file === '-' ? undefined : file);
        if (wantsJson(command)) await printJsonError(error, process.exitCode);
      }
    });
}

async function appendOne(mailbox: string, file: string | undefined, options: AppendCliOptions, command: Command, progress: AppendProgress): Promise<void> {
  const flags = parseFlagList(options.flags);
  const internalDate = parseDateOption(options.date);
  const bytes = file === undefined || file === '-'
    ? await readStdin()
    : await readMessageArgument(file);
  refuseEmpty(bytes, file);
  progress.stage = 'store';
  const result = await withStore(command, (store) => {
    progress.stage = 'append';
    return store.append(mailbox, bytes, { flags, internalDate }).catch(async (error: unknown) => {
      if (isMailstoreError(error, 'NOT_FOUND') && sysexitsWanted(options.sysexits)) {
        progress.retry = await (await import('../../store/missing-mailbox.js')).retryAfterMissing(store, mailbox); // loaded on this failure only
      }
      throw error;
    });
  });
  process.exitCode = SYSEXITS.ok; // durable: a reader gone before the uid is printed fails nothing (an MTA would bounce it)
  if (wantsJson(command)) await printJson({ mailbox, ...result });
  else await printLine(String(result.uid));
}

/**
 * Zero bytes are no message but a sign that nothing came: stdin /dev/null or closed (cron, a
 * service), or the command piping into append failed before it wrote a byte, which the pipeline's
 * status (append's 0) hid while an empty message went into the mailbox. The library still takes
 * one (an IMAP APPEND of {0}); the command line refuses it.
 */
function refuseEmpty(bytes: Buffer, file: string | undefined): void {
  if (bytes.length > 0) return;
  const from = file === undefined || file === '-' ? 'stdin is empty (/dev/null, closed, or whatever pipes into append wrote nothing)' : `${file} is empty`;
  throw new MailstoreError('INVALID', `${from}: an empty message is not appended`); // no path: with --sysexits 65 (the message), not 66 (FILE unreadable)
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
