// `mailstore expunge MAILBOX UIDS`: remove messages for good (their blobs are freed by cleanup).
// `mailstore expunge MAILBOX --before 30d [--seen] [--dry-run] [--recursive]`: retention, like
// doveadm expunge savedbefore and cyr_expire (src/store/retention.ts).
import type { Command } from 'commander';
import { MailstoreError } from '../../errors.js';
import { limits } from '../../limits.js';
import { formatUidSet } from '../../formats/uidset.js';
import { expungeBefore } from '../../store/retention.js';
import type { MailStore } from '../../store/api.js';
import { printJson, printLine, wantsJson, withStore } from '../context.js';
import { parseAgeOrDate } from '../dates.js';
import { inUidRuns, resolveUidSet } from '../uids.js';

interface ExpungeOptions { before?: string; seen?: boolean; dryRun?: boolean; recursive?: boolean }

export function register(program: Command): void {
  program
    .command('expunge <mailbox> [uids]')
    .description(`permanently remove the messages of a UID set (e.g. 1:5,9,12:*), or with --before those older than an age or date. Durable (journaled, in records of at most ${limits.uidChangePartMessages} messages) when it returns`)
    .option('--before <age|date>', 'retention: messages whose internal (arrival) date is before DATE (without a zone: UTC), or older than an age: 30d, 12h, 2w')
    .option('--seen', 'with --before: only messages with \\Seen')
    .option('--dry-run', 'with --before: list what would be expunged, change nothing')
    .option('--recursive', 'with --before: MAILBOX and every mailbox below it')
    .option('--json', 'print {expunged, modseq} as JSON (with --before: {dryRun, mailboxes: [{mailbox, uids, bytes}]})')
    .action(async (mailbox: string, uidText: string | undefined, options: ExpungeOptions, command: Command) => {
      if (options.before !== undefined) return retention(mailbox, uidText, options, command);
      if (options.seen || options.dryRun || options.recursive) throw new MailstoreError('INVALID', '--seen, --dry-run and --recursive go with --before');
      if (uidText === undefined) throw new MailstoreError('INVALID', 'give a UID set or --before AGE');
      const result = await withStore(command, (store) => expungeUidSet(store, mailbox, uidText));
      if (wantsJson(command)) return printJson({ mailbox, ...result });
      const n = result.expunged.length;
      await printLine(`expunged ${n} message${n === 1 ? '' : 's'}${n ? ` (${formatUidSet(result.expunged)})` : ''}`);
    });
}

/**
 * The UID set as the mailbox holds it, expunged in runs, each only in the mailbox the set was read
 * from: one renamed away meanwhile and a new one made under the name had the uids of the set
 * expunged in it (`1:*` of a Trash a mail client had just renamed: the new Trash's mail gone).
 */
export async function expungeUidSet(store: MailStore, mailbox: string, uidText: string): Promise<{ expunged: number[]; modseq: number }> {
  const { id: mailboxId } = await store.mailbox(mailbox);
  const uids = await resolveUidSet(store, mailbox, uidText);
  if (uids.length === 0) return { expunged: [], modseq: (await store.status(mailbox)).highestModseq };
  const runs = await inUidRuns(uids, (run) => store.expunge(mailbox, run, { mailboxId }));
  return { expunged: runs.flatMap((r) => r.expunged), modseq: runs.at(-1)!.modseq };
}

async function retention(mailbox: string, uidText: string | undefined, options: ExpungeOptions, command: Command): Promise<void> {
  if (uidText !== undefined) throw new MailstoreError('INVALID', 'give either a UID set or --before, not both');
  const before = parseAgeOrDate(options.before!, '--before');
  const results = await withStore(command, (store) => expungeBefore(store, mailbox, { before, seen: options.seen, dryRun: options.dryRun, recursive: options.recursive }));
  if (wantsJson(command)) return printJson({ dryRun: Boolean(options.dryRun), before: before.toISOString(), mailboxes: results });
  const verb = options.dryRun ? 'would expunge' : 'expunged';
  for (const r of results) {
    const n = r.uids.length;
    await printLine(`${r.mailbox}: ${verb} ${n} message${n === 1 ? '' : 's'} (${r.bytes} bytes)${n ? ` uids ${formatUidSet(r.uids)}` : ''}`);
  }
}
