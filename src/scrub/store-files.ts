// Scrub's look at the small files beside the data that an open does not read: the change-log
// consumers' cursors and the journal archive setting. Damaged, they refuse every snapshot's
// journal retirement (CORRUPT) while reads and deliveries go on, so the journal grows with
// history and nothing else says so; before, scrub called such a store clean. So does a journal
// archive that is not there (its file system not mounted): each snapshot retires nothing. And a
// replica's damaged tentative round, which only promote or a newer primary would read.
import { isMailstoreError } from '../errors.js';
import { journalArchiveProblem, readJournalArchive, JOURNAL_ARCHIVE_FILE } from '../store/journal-archive.js';
import { CONSUMERS_DIR } from '../store/changes.js';
import { doubtfulDamage, readPendingRounds } from '../replication/pending-rounds.js';
import type { Store } from '../store/store.js';
import type { Finding } from './findings.js';

/** Adds a store-file-damage finding for each consumer cursor and setting that does not read, and one for a journal archive retirement cannot use. */
export async function checkStoreFiles(store: Store, findings: Finding[]): Promise<void> {
  const checks: [string, () => Promise<unknown>][] = (await store.changes.names()).map((name) => [`${CONSUMERS_DIR}/${name}`, () => store.changes.cursor(name)]);
  checks.push([JOURNAL_ARCHIVE_FILE, () => readJournalArchive(store.fs, store.root)]);
  for (const [file, read] of checks) {
    try {
      await read();
    } catch (error) {
      if (!isMailstoreError(error) || error.code !== 'CORRUPT') throw error;
      findings.push({ kind: 'store-file-damage', file, why: error.message });
    }
  }
  await checkPendingRounds(store, findings);
  const archive = await readJournalArchive(store.fs, store.root).catch(() => undefined); // damaged: reported above
  const problem = archive === undefined ? undefined : await journalArchiveProblem(store.fs, store.root, archive, store.storeId);
  if (archive !== undefined && problem) findings.push({ kind: 'journal-archive-unusable', archive, ...problem });
}

/** A replica's tentative rounds (REPLICATION-PENDING) with a damaged frame that may hold an acknowledged change: none is read otherwise until promote or a newer primary. */
async function checkPendingRounds(store: Store, findings: Finding[]): Promise<void> {
  const damage = doubtfulDamage(await readPendingRounds(store), store.changes.lastSeq);
  if (damage) findings.push({ kind: 'pending-round-damage', ...damage });
}
