// `mailstore backup forget`: removes the snapshots a retention policy does not keep (restic's
// rules, per store) and with --prune reclaims the data no remaining snapshot uses, crash-safely.
import type { Command } from 'commander';
import { forgetSnapshots, type ForgetSummary } from '../../backup/forget.js';
import { MailstoreError } from '../../errors.js';
import { REPO_HELP, withRepository } from '../backup-repo.js';
import { printJson, printLine, wantsJson } from '../context.js';
import { formatBytes } from '../progress.js';

function count(name: string): (text: string) => number {
  return (text: string) => {
    if (!/^[0-9]+$/.test(text)) throw new MailstoreError('INVALID', `${name} takes a count, got ${JSON.stringify(text)}`);
    return Number(text);
  };
}

export function register(backup: Command): void {
  backup
    .command('forget')
    .description('remove the snapshots a retention policy does not keep; --prune also frees the space only they used')
    .option('--repo <dir>', 'the backup repository')
    .option('--key-file <file>', 'the key file of an encrypted repository')
    .option('--repo-credentials <file>', 'for an s3: --repo (s3:http://host:port/bucket/prefix): a file holding ACCESS_KEY:SECRET_KEY (else $MAILSTORE_S3_ACCESS_KEY and $MAILSTORE_S3_SECRET_KEY)')
    .option('--keep-last <n>', 'keep the n newest snapshots', count('--keep-last'))
    .option('--keep-daily <n>', 'keep the newest snapshot of each of the last n days that have one (UTC)', count('--keep-daily'))
    .option('--keep-weekly <n>', 'the same for ISO weeks', count('--keep-weekly'))
    .option('--keep-monthly <n>', 'the same for calendar months', count('--keep-monthly'))
    .option('--prune', 'remove data no remaining snapshot uses (rewrites partly used data files)')
    .option('--json', 'print {kept, removed, prune}')
    .addHelpText('after', `${REPO_HELP}

Each store's snapshots are counted apart, newest first by the time each run's clock gave it (as
restic; days, weeks and months are UTC). A snapshot any rule keeps is kept; at least one rule is
required. The rules count a second time with newest first by the store's journal seq (reasons
'daily by seq', ...): after a clock that was ahead is put right, the runs it dated in the future
do not push the real newest ones out, and runs of a clock that stepped back are not the oldest.

Prune writes the blobs it keeps from partly used data files into new files, then one new index,
and only then removes old index and data files: a crash at any point leaves every kept snapshot
restorable (the next prune finishes the cleanup). It refuses (exit 3) while a snapshot or
index file does not read: run 'mailstore backup check' first.`)
    .action(runForget);
}

async function runForget(options: { keepLast?: number; keepDaily?: number; keepWeekly?: number; keepMonthly?: number; prune?: boolean }, command: Command): Promise<void> {
  const summary = await withRepository(command, false, (repo) => forgetSnapshots(repo,
    { last: options.keepLast, daily: options.keepDaily, weekly: options.keepWeekly, monthly: options.keepMonthly }, { prune: options.prune }));
  if (wantsJson(command)) return printJson(summary);
  await printText(summary);
}

async function printText(s: ForgetSummary): Promise<void> {
  for (const k of s.kept) await printLine(`keep   ${k.id.slice(0, 12)} ${k.time} (${k.reasons.join(', ')})`);
  for (const r of s.removed) await printLine(`forget ${r.id.slice(0, 12)} ${r.time}`);
  if (s.healDropped) await printLine(`heal list: ${s.healDropped} blobs only forgotten snapshots needed dropped from it`);
  if (s.prune) {
    const p = s.prune;
    await printLine(`pruned: ${p.blobsRemoved} blobs, ${p.dataFilesRemoved} data files removed (${p.dataFilesRewritten} rewritten), ${formatBytes(p.bytesFreed)} freed`);
  }
}
