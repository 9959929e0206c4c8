// `mailstore export MAILBOX --format mbox|maildir --out PATH`: mail out, byte for byte as stored.
import { dirname, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { MailstoreError } from '../../errors.js';
import { exportMailbox, type ExportFormat, type ExportSummary } from '../../import/exporter.js';
import type { MboxStyle } from '../../formats/mbox.js';
import { EXIT } from '../exit-codes.js';
import { catchInterrupt } from '../interrupt.js';
import { createProgress, formatBytes } from '../progress.js';
import { absolutePath, printJson, printLine, storeDir, wantsJson, warn, withReadStore } from '../context.js';
import { nodeFileSystem } from '../../fs/node-fs.js';
import { insideStore } from '../../store/journal-archive.js';

interface ExportCommandOptions {
  format: ExportFormat;
  out: string;
  recursive: boolean;
  statusHeaders?: boolean;
  mboxStyle?: MboxStyle;
  mboxSender?: string;
}

export function register(program: Command): void {
  program
    .command('export <mailbox>')
    .description('export a mailbox as an mbox file or a Maildir (with its child mailboxes as Maildir++ folders)')
    .addOption(new Option('--format <format>', 'output format').choices(['mbox', 'maildir']).makeOptionMandatory())
    .requiredOption('--out <path>', 'mbox: a new file; maildir: a directory (created; existing mail there is kept)')
    .option('--no-recursive', 'maildir: leave out the mailboxes below MAILBOX')
    .option('--status-headers', 'mbox: write flags as Status/X-Status/X-Keywords headers, as Dovecot does (changes the message bytes)')
    .addOption(new Option('--mbox-style <style>', 'mbox: how From_ lines in bodies are quoted (mboxo cannot keep a body line ">From ": each such message is named on stderr)').choices(['mboxrd', 'mboxo']).default('mboxrd'))
    .option('--mbox-sender <sender>', 'mbox: the From_ line\'s sender of a message with none stored: return-path (each message\'s Return-Path) or one token (default MAILER-DAEMON)')
    .option('--json', 'print the summary as JSON')
    .addHelpText('after', `
Messages are written exactly as stored. Maildir keeps flags in the ":2," suffix (keywords through
dovecot-keywords, at most 26 a folder: a message's keywords past them are named on stderr and in
--json, and the export exits 1) and the internal date as the file's mtime (a date the file
system cannot hold, past 2038 or 2446 on ext4, is named likewise, exit 1); mbox keeps the internal date in the
From_ line, and flags only with --status-headers. An mbox import keeps each From_ line's sender
and the zone of its date, and the export writes them back ("From alice@example.org Thu Nov 28
10:45:25 2026 +0100", as Dovecot writes). For a message without them (appended, or imported from
Maildir): the date in the zone of the message's Date header when that header names the same
second, else UTC; the sender MAILER-DAEMON, or --mbox-sender (return-path: the message's
Return-Path address, what a delivery agent puts in both). A Maildir message imported from new/
(not yet seen by any client) goes back to new/ while it has no flags; every other one to cur/.
A message that fails verification is reported, left out, and the export exits 6.

A new mbox file or Maildir is written under a hidden temporary name beside --out and renamed to
--out only when complete (Ctrl-C: what was written so far), so a failed export (a full disk:
NO_SPACE, exit 2) leaves nothing at --out and the same command can run again. Into an existing
Maildir each message appears whole, and a failed export removes the messages it wrote. A child
mailbox Maildir++ cannot name (a '.' in a name, or a .A.B directory name over 255 bytes) is
refused (INVALID) before anything is written; --no-recursive leaves the children out. So is an
--out inside the store's own directory. A symbolic
link at --out, or in place of a folder of an existing Maildir, is refused (INVALID), never followed.
An export killed outright (SIGKILL, power cut) can leave a hidden .NAME.export-*.tmp beside --out,
which is safe to delete.`)
    .action(async (mailbox: string, options: ExportCommandOptions, command: Command) => {
      refuseOtherFormatOptions(options.format, command);
      // not SIGHUP: a stopped export puts what it wrote at --out, and after a hangup nobody reads the
      // summary saying it is partial; killed, it leaves only its hidden temporary file
      const interrupt = catchInterrupt('the export', ['SIGINT', 'SIGTERM']);
      try {
        await refuseOutInStore(absolutePath(options.out), storeDir(command));
        const summary = await withReadStore(command, async (store) => {
          const status = await store.status(mailbox);
          const progress = createProgress('export', { messages: options.format === 'mbox' || !options.recursive ? status.messages : undefined });
          try {
            return await exportMailbox(store, mailbox, {
              format: options.format,
              out: absolutePath(options.out),
              recursive: options.recursive,
              statusHeaders: options.statusHeaders,
              mboxStyle: options.mboxStyle,
              mboxSender: options.mboxSender,
              shouldStop: () => interrupt.requested,
              onMessage: (info) => progress.advance(1, info.size),
              onCorrupt: (box, uid, error) => { progress.finish(); warn(`not exported: ${box} uid ${uid}: ${error.code}: ${error.message}`); },
              onInexact: (box, uid) => { progress.finish(); warn(`not byte for byte: ${box} uid ${uid} has a line ">From ", which an mboxo reader takes for a quoted "From " (--mbox-style mboxrd keeps it)`); },
              onKeywordsDropped: (box, uid, keywords) => { progress.finish(); warn(`flags not kept: ${box} uid ${uid}: kept no keyword ${keywords.join(' ')} (a Maildir folder names at most 26 keywords, a-z in dovecot-keywords)`); },
              onDateNotKept: (box, uid, date, kept) => { progress.finish(); warn(`date not kept: ${box} uid ${uid}: internal date ${date.toISOString()}, but the file system holds file times only up to ${kept.toISOString()} (ext4: 2038 with 128-byte inodes, 2446 with 256), which a reader takes for its date`); },
            });
          } finally {
            progress.finish();
          }
        });
        await report(summary, wantsJson(command));
        if (summary.interrupted) process.exitCode = EXIT.interrupted;
        else if (summary.corrupt.length > 0) {
          throw new MailstoreError('CORRUPT', `${summary.corrupt.length} message${summary.corrupt.length === 1 ? '' : 's'} failed verification and were not exported; run 'mailstore scrub'`);
        } else if (summary.keywordsDropped.length > 0 || summary.datesNotKept) process.exitCode = 1;
      } finally {
        interrupt.dispose();
      }
    });
}

/** Each format's own options, as the command line names them (commander's keys first). */
const FORMAT_OPTIONS: Record<'mbox' | 'maildir', Array<[key: string, flag: string]>> = {
  mbox: [['statusHeaders', '--status-headers'], ['mboxStyle', '--mbox-style'], ['mboxSender', '--mbox-sender']],
  maildir: [['recursive', '--no-recursive']],
};

/**
 * An option of the other format was ignored without a word: --status-headers into a Maildir wrote
 * no Status header, --no-recursive on an mbox (which holds one mailbox anyway) changed nothing.
 */
function refuseOtherFormatOptions(format: 'mbox' | 'maildir', command: Command): void {
  const other = format === 'mbox' ? 'maildir' : 'mbox';
  const given = FORMAT_OPTIONS[other].filter(([key]) => command.getOptionValueSource(key) === 'cli').map(([, flag]) => flag);
  if (given.length > 0) throw new MailstoreError('INVALID', `${given.join(', ')}: for --format ${other} only; this export writes ${format} (nothing was written)`);
}

/**
 * --out in the store's directory (or below it, through a link too): the store owns the names
 * there, so the export could be taken for store data or removed by it (one written as
 * packs/00000002.pack was read as a damaged pack, and compact deleted it).
 */
async function refuseOutInStore(out: string, store: string): Promise<void> {
  if (!(await insideStore(nodeFileSystem, store, dirname(out)).catch(() => false))) return;
  throw new MailstoreError('INVALID', `--out ${out} is inside the store ${store}: export to a directory outside it`, { path: out });
}

async function report(summary: ExportSummary, json: boolean): Promise<void> {
  if (json) return printJson(summary);
  await printLine(`${summary.interrupted ? 'interrupted: ' : ''}exported ${summary.exported} message${summary.exported === 1 ? '' : 's'} ` +
    `(${formatBytes(summary.bytes)}) as ${summary.format} to ${summary.out} in ${summary.seconds.toFixed(1)}s`);
  if (summary.mailboxes.length > 1) for (const box of summary.mailboxes) await printLine(`  ${box.mailbox} -> ${box.path}: ${box.messages}`);
}
