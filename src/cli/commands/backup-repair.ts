// `mailstore backup repair`: writes the index again from the data files' own record headers when
// an index file is damaged (restic's `repair index`), and moves the damaged file into damaged/.
import type { Command } from 'commander';
import { repairIndex, type RepairSummary } from '../../backup/repair.js';
import { writeNewConfig } from '../../backup/new-config.js';
import { MailstoreError } from '../../errors.js';
import { REPO_HELP, repositoryPlace, withRepository } from '../backup-repo.js';
import { printJson, printLine, wantsJson } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { createProgress } from '../progress.js';

export function register(backup: Command): void {
  backup
    .command('repair')
    .description('rebuild the index of a backup repository from its data files when an index file is damaged')
    .option('--repo <dir>', 'the backup repository')
    .option('--key-file <file>', 'the key file of an encrypted repository')
    .option('--repo-credentials <file>', 'for an s3: --repo (s3:http://host:port/bucket/prefix): a file holding ACCESS_KEY:SECRET_KEY (else $MAILSTORE_S3_ACCESS_KEY and $MAILSTORE_S3_SECRET_KEY)')
    .option('--read-data', 'also read and verify every record the index files list for a blob snapshots need, and list the blobs with no good copy for the next backup to copy again')
    .option('--new-config', 'write a new config for an unencrypted repository whose config is damaged or lost (the damaged one is kept in DIR/damaged/); only that')
    .option('--json', 'print {damagedIndexFiles, setAside, dataFilesScanned, blobsIndexed, recordsRefused, damagedStretches, newIndex?, heldTablesRemoved, readData, recordsDamaged, blobsToHeal, healList?}')
    .addHelpText('after', `${REPO_HELP}

Every blob record in a data file carries its blob id in a checksummed header, so the index can be
written again from the data files. Repair reads every index file; the data files that no index
file that reads names (those a damaged or lost index file listed, and any an interrupted run left)
are walked record by record, each record decoded and verified by its hash (and its tag when
encrypted); the records that verify are listed in one new index file, written durably before
anything else changes. Then each index file that does not read is moved into DIR/damaged/ (kept,
never deleted; nothing reads it there, 'backup check' lists it as informational), and the
held-ids tables in tips/ are removed (a cache the next backup builds again from the index as it
now is). It takes the repository's exclusive lock, as forget does. Restore and check find such
blobs without it (by the same scan, once per run); repair makes check clean again and lets later
backups see which blobs are really held. Run 'mailstore backup check --read-data' after it.

Last, the blobs snapshots need that have no good copy in the repository are listed in DIR/heal/:
those in no index file, and with --read-data those whose every listed record fails to verify (a
flipped byte in a record). Every later 'mailstore backup' copies each listed blob again from the
store while the store still has it, and says how many it healed; the list shrinks as they are.
Nothing damaged is deleted. So: 'backup check --read-data' found damage -> 'backup repair
--read-data' -> the next 'backup' heals what the store still has.

With --new-config it writes only a config, for an unencrypted repository whose config is damaged
(CORRUPT) or lost: nothing else in one depends on it (every file is named by its content, every
record names its codec), so every snapshot reads again; the repository gets a new id (a store's
next backup records it), of the repository's version as its records' codecs say it (zstd: 3,
Brotli: 2, deflate: 1; no compressed record: 1, which every mailstore reads), so the mailstore
that made an older repository still reads it. An encrypted repository's config holds the salt of its keys:
refused (REFUSED), put back its copy. With --json: {id, setAside?, version, versionFrom}.

Exit codes: 0 repaired (or nothing to repair); 1 some records did not verify or parts of a data file
held no record (they are not indexed: check names the messages they cost); 2 could not run
(locked, access, I/O); 3 an s3: repository's bucket is missing (UNMOUNTED); 4 no repository;
5 invalid (wrong key file).`)
    .action(runRepair);
}

async function runRepair(_options: unknown, command: Command): Promise<void> {
  const progress = createProgress('backup repair');
  let read = 0;
  const onProgress = (_files: number, bytes: number) => {
    progress.advance(1, bytes - read);
    read = bytes;
  };
  if (command.opts<{ newConfig?: boolean }>().newConfig) return runNewConfig(command);
  const readData = Boolean(command.opts<{ readData?: boolean }>().readData);
  const summary = await withRepository(command, false, (repo) => repairIndex(repo, { onProgress, readData })).finally(() => progress.finish());
  process.exitCode = summary.recordsRefused > 0 || summary.damagedStretches > 0 || summary.blobsToHeal > 0 ? EXIT.findings : EXIT.ok;
  if (wantsJson(command)) return printJson(summary);
  await printText(summary);
}

async function runNewConfig(command: Command): Promise<void> {
  if (command.opts<{ keyFile?: string }>().keyFile !== undefined) throw new MailstoreError('INVALID', 'an encrypted repository\'s config holds the salt of its keys, which no new config can: put back its copy (--new-config takes no --key-file)');
  const { fs, dir } = await repositoryPlace(command);
  const summary = await writeNewConfig(fs, dir);
  if (wantsJson(command)) return printJson(summary);
  if (summary.setAside) await printLine(`set aside ${summary.setAside} (the damaged config)`);
  const from = summary.versionFrom === 'records' ? 'as its records say' : 'no record tells it: the version every mailstore reads';
  await printLine(`wrote a new config: repository ${summary.id}, version ${summary.version} (${from}); run 'mailstore backup check --repo ${dir} --read-data'`);
}

async function printText(s: RepairSummary): Promise<void> {
  for (const path of s.setAside) await printLine(`set aside ${path} (an index file that does not read)`);
  if (s.newIndex) await printLine(`wrote index file ${s.newIndex.slice(0, 12)}: ${s.blobsIndexed} blobs in ${s.dataFilesScanned} data files found by their record headers, each verified`);
  if (s.recordsRefused > 0 || s.damagedStretches > 0) {
    await printLine(`DAMAGE: ${s.recordsRefused} records did not verify and ${s.damagedStretches} stretches held no record; not indexed (run 'mailstore backup check --read-data' to see which messages)`);
  }
  if (s.recordsDamaged > 0) await printLine(`${s.recordsDamaged} records the index files list did not verify (read and decoded)`);
  if (s.blobsToHeal > 0) {
    await printLine(`DAMAGE: ${s.blobsToHeal} blobs snapshots need have no good copy in the repository; listed in heal/${s.healList?.slice(0, 12)}: the next 'mailstore backup' copies each of them again from the store while it has them`);
  }
  if (!s.newIndex && s.setAside.length === 0 && s.blobsToHeal === 0) await printLine(`nothing to repair: every index file reads${s.dataFilesScanned > 0 ? ` (${s.dataFilesScanned} data files no index file names held no record that verifies)` : ' and names every data file'}`);
  else await printLine(`repaired${s.heldTablesRemoved > 0 ? ` (${s.heldTablesRemoved} held-ids tables removed; the next backup builds one again)` : ''}; run 'mailstore backup check --read-data'`);
}
