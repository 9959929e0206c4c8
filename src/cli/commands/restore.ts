// `mailstore restore`: a snapshot of a backup repository back into a store: a whole store, one
// user or one mailbox, into a new directory (exactly as it was), or one user or mailbox into a
// live store as new mailboxes (--as for a name that is free there).
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { restoreIntoStore, restoreToNewStore, type RestoreSummary } from '../../backup/restore.js';
import { MailstoreError, isMailstoreError } from '../../errors.js';
import { nodeFileSystem } from '../../fs/node-fs.js';
import { LAYOUT } from '../../store/identity.js';
import type { MailStore } from '../../store/api.js';
import type { QuotaLimits } from '../../store/quota.js';
import { REPO_HELP, withRepository } from '../backup-repo.js';
import { absolutePath, refuseRootInOthersStore, wantsJson, warn, withStoreAt } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { lmtpCaseWarnings, reportWithWarnings } from '../lmtp-case.js';
import { createProgress, formatBytes } from '../progress.js';

interface RestoreCliOptions {
  repo?: string;
  snapshot: string;
  user?: string;
  mailbox?: string;
  as?: string;
  to?: string;
  newUidvalidity?: boolean;
}

export function register(program: Command): void {
  program
    .command('restore')
    .description('restore a snapshot (whole store, --user or --mailbox) from a backup repository')
    .option('--repo <dir>', 'the backup repository')
    .option('--key-file <file>', 'the key file of an encrypted repository')
    .option('--repo-credentials <file>', 'for an s3: --repo (s3:http://host:port/bucket/prefix): a file holding ACCESS_KEY:SECRET_KEY (else $MAILSTORE_S3_ACCESS_KEY and $MAILSTORE_S3_SECRET_KEY)')
    .option('--snapshot <id>', "the snapshot: an id (or a unique prefix of one) or 'latest' (the newest of any store: in a repository several stores share, name an id from 'mailstore backups'; refused when one of its store dated earlier has a higher seq: a clock stepped back)", 'latest')
    .option('--user <name>', 'only user/NAME and the mailboxes below it')
    .option('--mailbox <name>', 'only this mailbox')
    .option('--as <name>', 'restore the --mailbox or --user under this name')
    .option('--to <dir>', 'the target: a new (missing or empty) directory, or a live store for --user/--mailbox')
    .option('--new-uidvalidity', "into a new directory: give each mailbox a new uidValidity, so IMAP clients read every mailbox again (after a lost disk: the store took mail after the snapshot)")
    .option('--json', 'print {snapshot, to, mailboxes, messages, bytes, bytesRead, durationMs, uidValidity?, blobsFoundByScan?, damagedIndexFiles?, leftOut?: [{mailbox, uid, blob, dataFiles, why}]}')
    .addHelpText('after', `${REPO_HELP}

Into a new directory (missing, or empty like a fresh mount point) the store comes back as it was:
uids, uidValidity, uidNext, modseqs, flags, dates, ACLs and owners (it is built inside the target
and appears, STORE last, only when complete; an interrupted restore is cleared by the next one).
When the store took mail after the snapshot (a nightly backup restored after the disk was lost),
give --new-uidvalidity: the lost store gave uids from the snapshot's uidNext on to mail the
snapshot does not hold, IMAP clients cached them, and under the old uidValidity the restored store
would give those uids to other mail (a client shows its cached message, and a delete the user makes
there removes the other one). With it each mailbox gets a new uidValidity (uidValidity: new) and
clients read every mailbox again; without it the summary says so (uidValidity: kept).
Into a live store (--to names one) only --user or --mailbox, as new mailboxes by ordinary appends
(new uids, flags and dates kept); a name that exists is refused (exit 5, EXISTS): give --as.
When \`mailstore serve\` runs on that store, the restore goes through it (its clients see the new
mailbox fill up); otherwise the store is opened here.
Every message is verified by its hash as it is read, and wrong bytes are never written. A message
whose blob is damaged or missing in the repository is left out and everything else is restored:
each one left out is listed (mailbox, uid, blob, the data files that hold it; --json: leftOut) and
the restore exits 1. Its uid stays given out (never reused; IMAP clients are told it is gone). Get
it from another snapshot that has it ('mailstore backups'; 'restore --snapshot ID --mailbox NAME
--to STORE --as NEW'), see every damaged byte with 'mailstore backup check --read-data', and let
'backup repair --read-data' list it for the next backup to copy again while the store has it. bytesRead is what was read of the
repository's data files (a one-mailbox restore reads only that mailbox's blobs).
A blob in no index file that reads (an index file is damaged or lost) is looked for in the data
files no readable index file names, by their records' own headers (one scan per restore), and
verified as any other; the summary says how many were found so (blobsFoundByScan), and
'mailstore backup repair' writes the index again.

Exit codes: 0 restored; 1 restored, but messages damaged in the repository were left out (listed); 2 could not run; 3 refused; 4 no repository, snapshot or mailbox;
5 invalid (wrong key file, EXISTS); 6 damaged data in the repository that stops the restore (its
snapshot file).`)
    .action(runRestore);
}

async function runRestore(options: RestoreCliOptions, command: Command): Promise<void> {
  if (!options.to) throw new MailstoreError('INVALID', '--to DIR is required: where to restore');
  const to = absolutePath(options.to);
  const selection = { user: options.user, mailbox: options.mailbox, as: options.as };
  const progress = createProgress('restore');
  let done = { messages: 0, bytes: 0 };
  const onProgress = (messages: number, bytes: number) => {
    progress.advance(messages - done.messages, bytes - done.bytes);
    done = { messages, bytes };
  };
  const live = Boolean(await nodeFileSystem.statIfExists(join(to, LAYOUT.identity)));
  if (!live) refuseRootInOthersStore(to); // a mount point made the service user's: the new store must be theirs too
  const summary = await withRepository(command, false, async (repo) => {
    if (!live) return restoreToNewStore(nodeFileSystem, repo, options.snapshot, to, { selection, onProgress, newUidValidity: options.newUidvalidity === true, leaveOutDamaged: true });
    // through the daemon when `serve` runs on the target (its lock would refuse an open here)
    // loaded only for a live store (a new store's restore does not need the daemon's modules)
    const { procedures } = await import('../../daemon/procedures.js');
    return withStoreAt(to, command, (store) => {
      const target = {
        hasMailbox: (name: string) => store.status(name).then(() => true, (error: unknown) => { if (isMailstoreError(error, 'NOT_FOUND')) return false; throw error; }),
        createMailbox: (name: string, o: { owner?: string; acl?: Record<string, string> }) => store.createMailbox(name, o),
        appendBatch: (name: string, items: Parameters<MailStore['appendBatch']>[1], o: { mailboxId: string }) => store.appendBatch(name, items, o),
        getQuota: (root: string) => procedures(store).getQuota(root),
        setQuota: (root: string, limits: QuotaLimits) => procedures(store).setQuota(root, limits),
      };
      return restoreIntoStore(target, to, repo, options.snapshot, { selection, onProgress, leaveOutDamaged: true });
    });
  }).finally(() => progress.finish());
  // bob restored --as Bob: LMTP lower-cases recipients, so the restored tree would get no mail
  const restoredAs = options.as === undefined ? undefined : options.user !== undefined ? `user/${options.as}` : options.as;
  if (summary.leftOut) {
    process.exitCode = EXIT.findings;
    if (!wantsJson(command)) reportLeftOut(summary, options.repo ?? 'REPO');
  }
  await reportWithWarnings(summary, restoredAs === undefined ? [] : lmtpCaseWarnings(restoredAs), wantsJson(command), describe(summary, live));
}

/** On stderr (cron mails it): each message left out, and how to get it back. */
function reportLeftOut(s: RestoreSummary, repo: string): void {
  for (const m of s.leftOut ?? []) {
    warn(`LEFT OUT ${m.mailbox} uid ${m.uid}: blob ${m.blob.slice(0, 16)} ${m.dataFiles.length > 0 ? `in ${m.dataFiles.join(', ')}` : 'in no data file'} (${m.why})`);
  }
  warn(`DAMAGE: ${s.leftOut!.length} messages were left out (damaged or missing in the repository; nothing wrong was written): restore them from another snapshot that has them ('mailstore backups --repo ${repo}', then 'mailstore restore --repo ${repo} --snapshot ID --mailbox NAME --as NEW --to STORE'); 'mailstore backup check --repo ${repo} --read-data' lists every damaged byte, and 'mailstore backup repair --read-data' lists them for the next backup to copy again while the store still has them`);
}

function describe(s: RestoreSummary, live: boolean): string {
  return `restored snapshot ${s.snapshot.slice(0, 12)} (seq ${s.seq}) ${live ? 'into the live store' : 'as a new store'} at ${s.to}: ` +
    `${s.mailboxes} mailboxes, ${s.messages} messages (${formatBytes(s.bytes)})` + (s.leftOut ? ` (${s.leftOut.length} left out: damaged in the repository, listed above)` : '') +
    (s.uidValidity === 'new' ? ', each mailbox with a new uidValidity (IMAP clients read it again)' : s.uidValidity === 'kept' ? ", each mailbox's uidValidity as the snapshot had it (if the store took mail after this snapshot, restore again with --new-uidvalidity before the mail server starts on it: IMAP clients cached uids this store would give to other mail)" : '') + `; read ${formatBytes(s.bytesRead)} of the repository's data in ${(s.durationMs / 1000).toFixed(1)} s` +
    (s.damagedIndexFiles ? `; ${s.damagedIndexFiles.length} index files do not read (damaged)` : '') +
    (s.blobsFoundByScan ? `; ${s.blobsFoundByScan} blobs found by scanning the data files no readable index file names, each verified by its hash (run 'mailstore backup repair')` : '');
}
