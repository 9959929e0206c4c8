// `mailstore import SOURCE --mailbox NAME`: mbox, Maildir(++), .eml files or a public-inbox archive in, resumable, in batches.
import { dirname, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { MailstoreError } from '../../errors.js';
import type { FileSystem } from '../../fs/filesystem.js';
import { nodeFileSystem } from '../../fs/node-fs.js';
import type { MailFormat } from '../../formats/detect.js';
import type { MboxStyle } from '../../formats/mbox.js';
import { importMail, type ImportLayout, type ImportOptions, type ImportSummary } from '../../import/importer.js';
import { importLimits, limits } from '../../limits.js';
import { insideStore } from '../../store/journal-archive.js';
import { EXIT } from '../exit-codes.js';
import { catchInterrupt, type Interrupt } from '../interrupt.js';
import { createProgress, formatBytes, type Progress } from '../progress.js';
import { absolutePath, parsePositiveInteger, printJson, printLine, storeDir, wantsJson, warn, withStore } from '../context.js';

interface ImportCommandOptions {
  mailbox: string;
  format?: MailFormat | 'detect';
  mboxStyle?: MboxStyle;
  owner?: string;
  layout?: ImportLayout;
  flatten?: boolean;
  batchMessages?: number;
  batchBytes?: number;
  restart?: boolean;
  verbose?: boolean;
}

export function register(program: Command): void {
  program
    .command('import <source>')
    .description('import an mbox file, a Maildir (or Maildir++ tree), a directory of .eml files or a public-inbox archive into a mailbox')
    .requiredOption('--mailbox <name>', 'target mailbox or user tree (created if missing); see "Layout" below')
    .addOption(new Option('--layout <layout>', 'where the source\'s folders go (default: user for --mailbox user/NAME, else flat)').choices(['user', 'flat']))
    .addOption(new Option('--format <format>', 'source format (default: detect)').choices(['detect', 'mbox', 'maildir', 'eml', 'public-inbox']))
    .addOption(new Option('--mbox-style <style>', 'how the mbox quotes From_ lines (auto reads mboxrd)').choices(['auto', 'mboxrd', 'mboxo']).default('auto'))
    .option('--owner <user>', 'owner of the mailboxes the import creates (default: NAME under user/NAME)')
    .option('--flatten', 'a directory of message files: every file below it into the one mailbox, subdirectories not kept')
    .option('--batch-messages <n>', `messages per batch (default ${importLimits.batchMessagesMax})`, parsePositiveInteger('--batch-messages'))
    .option('--batch-bytes <n>', `message bytes per batch (default ${importLimits.batchBytesMax})`, parsePositiveInteger('--batch-bytes'))
    .option('--restart', 'ignore the resume point of an earlier run and import everything again (imports duplicates)')
    .option('--verbose', 'print a line to stderr as each batch becomes durable')
    .option('--json', 'print the summary as JSON')
    .addHelpText('after', `
Layout: a Maildir's root (cur/, new/) is its INBOX; its folders are Maildir++ dot-directories
(.Sent, .Lists.kernel) or plain subdirectories that are Maildirs (Sent/cur, Lists/kernel/cur, as
Dovecot's LAYOUT=fs). In a directory of .eml files each subdirectory holding files is a folder
(unless --flatten). An mbox file is one folder, the root; so is a public-inbox archive (GITDIR: a
v1 git repository, or a v2 directory of git/N.git epochs), read with the git command in commit
order, each message byte for byte with the commit's author date (the message's Date) as its date;
messages the archive removed are left out.
  --layout user  (default when --mailbox is a user's tree user/NAME) as Dovecot and Cyrus lay out a
                 user: the root goes to NAME/INBOX and each folder beside it: user/bob/INBOX,
                 user/bob/Sent, user/bob/Lists/kernel. NAME itself is not made a mailbox.
  --layout flat  (default otherwise) the root goes to NAME itself and each folder below it:
                 archive, archive/Sent, archive/Lists/kernel.
The mailboxes the import creates belong to --owner (all rights), by default to the user whose tree
they are in (user/NAME/...); without one they have an empty ACL. Mailboxes that exist keep their ACL.
SOURCE may not be the store's directory, lie inside it or hold it (INVALID): its packs, journal
and index are no mail. A directory in the source that is no folder (a dot-directory without cur/ or new/, a subdirectory
with no Maildir in or below it) is not imported and is reported (notFolder below).

Resumable: a re-run of the same import (same SOURCE and --mailbox) after a crash or Ctrl-C skips
what is already in and adds nothing twice. Ctrl-C stops at a batch boundary (while it waits for a
store another process holds: at once, nothing done): everything reported
as imported is durable; the import then ends by the signal (exit status 130 in the shell; 143 for
SIGTERM, 129 for SIGHUP), so a script running it stops too. Two runs of the same import at once (through a
running daemon) do not both add it: the one whose resume point the other moved stops with REFUSED
(exit 3), nothing of its last batch written; run it again afterwards. Messages are stored byte for byte, malformed or
not. Maildir flags come from the ":2," suffix (and dovecot-keywords); mbox flags from Status/X-Status
and keywords from X-Keywords (as Dovecot writes them), or Thunderbird's X-Mozilla-Status and -Keys.

Skipped, reported and retried: what cannot be imported is left out and the rest goes in. Each such
entry is reported on stderr and counted by reason in the summary ("skippedReasons" in --json):
  symlink     a symbolic link inside SOURCE, file or folder: never followed (SOURCE itself may be one)
  special     a FIFO, socket, device or other non-regular file: never read
  tooLarge    a message (a file, or one inside an mbox) over ${formatBytes(limits.messageBytesMax)}, found while reading
  unreadable  the system refused or failed the read (permissions, I/O error, vanished), or a
              public-inbox message blob is missing from the repository (a partial copy) or
              does not hash to its id (CORRUPT: a damaged copy)
  badName     a folder whose name is no valid mailbox name (all names are checked first)
  notFolder   a directory in SOURCE that is no folder (see Layout), or one nested too deep
  notMail     text before an mbox's first From_ line
The same import run again retries every skipped entry (once fixed, it goes in; nothing is added
twice). An import that skipped anything exits 1 once the rest is in (0 only when nothing was skipped).
Out of file descriptors (EMFILE, ENFILE: ulimit -n) is no entry's fault: the import stops there
(IO, exit 2) with what went in durable, and the same import run again goes on. An import that
stops on any error (a full disk: NO_SPACE, an I/O error) says in it how many messages this run put
in, durable; the same import run again goes on from there (--restart would import them again).`)
    .action(runImport);
}

async function runImport(source: string, options: ImportCommandOptions, command: Command): Promise<void> {
  const interrupt = catchInterrupt('the import');
  const progress = createProgress('import');
  try {
    await refuseStoreAsSource(nodeFileSystem, absolutePath(source), storeDir(command));
    const summary = await withStore(command, (store) => importMail(store, absolutePath(source), importOptions(options, progress, interrupt)));
    progress.finish();
    await report(summary, wantsJson(command));
    if (summary.interrupted) process.exitCode = EXIT.interrupted;
    else if (summary.skipped > 0) process.exitCode = EXIT.findings; // done, but not everything is in
  } finally {
    progress.finish();
    interrupt.dispose();
  }
}

/**
 * SOURCE is the store's directory, lies inside it or holds it: its packs, journal and index are no
 * mail, and would bring every user's mail into one mailbox (a slip between two paths). insideStore
 * (as for the journal archive) compares by device and inode up through '..': a link is seen through.
 */
async function refuseStoreAsSource(fs: FileSystem, source: string, store: string): Promise<void> {
  const storeStat = await fs.statIfExists(store).catch(() => undefined);
  const sourceStat = await fs.statIfExists(source).catch(() => undefined);
  if (!storeStat || !sourceStat) return; // a missing source or store is reported as such further on
  const inside = await insideStore(fs, store, sourceStat.isDirectory ? source : dirname(source));
  if (inside || (sourceStat.isDirectory && (await insideStore(fs, source, store)))) {
    throw new MailstoreError('INVALID', `${source} is the store ${store}, inside it or holds it: the store's own files are not imported`, { path: source });
  }
}

/** The importer's options from the command line's; what it reports goes to the progress line and stderr. */
function importOptions(options: ImportCommandOptions, progress: Progress, interrupt: Interrupt): ImportOptions {
  return {
    mailbox: options.mailbox,
    format: options.format === 'detect' ? undefined : options.format,
    mboxStyle: options.mboxStyle,
    owner: options.owner,
    layout: options.layout,
    flatten: options.flatten,
    batchMessagesMax: options.batchMessages,
    batchBytesMax: options.batchBytes,
    restart: options.restart,
    shouldStop: () => interrupt.requested,
    onSkip: (path, error, reason) => { progress.finish(); warn(`skipped (${reason}) ${path}: ${error.code}: ${error.message}`); },
    onWarning: (text) => { progress.finish(); warn(text); },
    onRead: (message) => {
      progress.advance(1, message.bytes.length);
      if (message.fraction !== undefined) progress.position(message.fraction, 1);
    },
    onBatch: (batch) => {
      if (options.verbose) {
        progress.finish();
        warn(`committed ${batch.messages} messages (${batch.bytes} bytes) to ${batch.mailbox}; ${batch.importedTotal} imported so far`);
      }
    },
  };
}

async function report(summary: ImportSummary, json: boolean): Promise<void> {
  if (json) return printJson(summary);
  const lines = [
    `${summary.interrupted ? 'interrupted: ' : ''}imported ${summary.imported} message${summary.imported === 1 ? '' : 's'} ` +
      `(${formatBytes(summary.bytes)}, ${summary.deduplicated} deduplicated) from ${summary.source} (${summary.format}) ` +
      `in ${summary.batches} batch${summary.batches === 1 ? '' : 'es'}, ${summary.seconds.toFixed(1)}s`,
    `layout ${summary.layout}; ${summary.created.length} mailbox${summary.created.length === 1 ? '' : 'es'} created` +
      (summary.owner === undefined ? ' with an empty ACL (no --owner)' : `, owned by ${summary.owner}`),
  ];
  if (summary.alreadyImported) lines.push(`already imported by an earlier run: ${summary.alreadyImported}`);
  if (summary.skipped) {
    const reasons = Object.entries(summary.skippedReasons).map(([reason, count]) => `${count} ${reason}`).join(', ');
    lines.push(`skipped (reported above; the same import run again retries them): ${summary.skipped} (${reasons})`);
  }
  for (const box of summary.mailboxes) lines.push(`  ${box.mailbox}: ${box.imported} new${box.alreadyImported ? `, ${box.alreadyImported} already there` : ''}`);
  if (summary.interrupted) lines.push('everything reported is durable; run the same command again to finish');
  for (const line of lines) await printLine(line);
}
