// `mailstore backup check`: every missing or damaged byte of a backup repository, as scrub does
// for a store: exit 0 clean, 1 damage found (informational findings do not count).
import type { Command } from 'commander';
import { checkRepository, type BackupCheckReport } from '../../backup/check.js';
import { REPO_HELP, withRepository } from '../backup-repo.js';
import { printJson, printLine, wantsJson } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { createProgress, formatBytes } from '../progress.js';

export function register(backup: Command): void {
  backup
    .command('check')
    .description('check a backup repository: structure always, every byte with --read-data')
    .option('--repo <dir>', 'the backup repository')
    .option('--key-file <file>', 'the key file of an encrypted repository')
    .option('--repo-credentials <file>', 'for an s3: --repo (s3:http://host:port/bucket/prefix): a file holding ACCESS_KEY:SECRET_KEY (else $MAILSTORE_S3_ACCESS_KEY and $MAILSTORE_S3_SECRET_KEY)')
    .option('--read-data', 'read every data file: content hashes, every record decoded and verified by its hash')
    .option('--json', 'print {findings, summary}')
    .addHelpText('after', `${REPO_HELP}

Without --read-data: every index and snapshot file reads back and verifies; every data file an
index lists exists and is long enough; every blob every snapshot needs is listed. With
--read-data: also every byte of every data file (its name is the hash of its content) and every
record (checksums, authentication, the message's BLAKE3).
A blob in no index file that reads (one is damaged or lost) is looked for in the data files none
of them names, by their records' headers, as a restore does: found, it is not reported lost; its
data file is (scanned-data), and 'mailstore backup repair' writes its index again.

Exit codes: 0 clean; 1 damage found (the findings say which file, and which message it holds);
2 could not run (locked, access, I/O); 3 an s3: repository's bucket is missing (UNMOUNTED); 4 no
repository; 5 invalid (wrong key file).
Informational findings (data an interrupted run left, which 'backup forget --prune' removes) do
not change the exit code. A whole index or snapshot file sealed under other keys is foreign-file
(another repository's); when none fits, config-mismatch: the config is another repository's (one
made with the same key file), put back the repository's own; nothing is then called unindexed,
and forget, prune and repair refuse.`)
    .action(runCheck);
}

async function runCheck(options: { readData?: boolean }, command: Command): Promise<void> {
  const progress = createProgress('backup check');
  let read = 0;
  const onProgress = (_files: number, bytes: number) => {
    progress.advance(1, bytes - read); // one data file more, and its bytes
    read = bytes;
  };
  const report = await withRepository(command, false, (repo) => checkRepository(repo, { readData: options.readData, onProgress }))
    .finally(() => progress.finish());
  process.exitCode = report.summary.damage > 0 ? EXIT.findings : EXIT.ok;
  if (wantsJson(command)) return printJson(report);
  await printText(report);
}

async function printText(report: BackupCheckReport): Promise<void> {
  for (const f of report.findings) await printLine(`${f.damage ? 'DAMAGE' : 'info'} ${f.kind}: ${f.message} (${f.path})`);
  const s = report.summary;
  await printLine(`${s.damage === 0 ? 'clean' : `${s.damage} damage findings`}: ${s.snapshots} snapshots, ${s.indexFiles} index files, ${s.dataFiles} data files, ${s.blobs} blobs` +
    (s.readData ? `, ${formatBytes(s.bytesRead)} read` : ' (structure only; --read-data reads every byte)') + (s.informational > 0 ? `; ${s.informational} informational` : ''));
}
