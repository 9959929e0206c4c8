// Scrub's snapshot pass: every file in snapshots/ is read through and verified (snapshot-file.ts).
// A damaged one is a finding; repair moves it to quarantine/, except when it is the only cover of
// journal records that were already retired: then it stays where it is, reported loudly, since
// it is the last trace of what those records did.
import { MailstoreError } from '../errors.js';
import { listSnapshots, readSnapshotFile, type SnapshotInfo } from '../store/snapshot-file.js';
import { quarantineSnapshot } from '../store/snapshots.js';
import type { Store } from '../store/store.js';
import type { Finding } from './findings.js';

/** Verifies every snapshot; returns the verified ones, newest first, and adds a finding per damaged one. */
export async function checkSnapshots(store: Store, findings: Finding[]): Promise<SnapshotInfo[]> {
  const verified: SnapshotInfo[] = [];
  const damaged: { name: string; seq: number; why: string }[] = [];
  for (const entry of await listSnapshots(store.fs, store.root)) {
    try {
      verified.push(await readSnapshotFile(store.fs, entry.path, entry.name, store.storeId));
    } catch (error) {
      if (!(error instanceof MailstoreError) || error.code !== 'CORRUPT') throw error;
      damaged.push({ name: entry.name, seq: entry.seq, why: error.message });
    }
  }
  const firstSeq = store.maintenance().journal.firstSeq;
  const coveredByVerified = verified.some((s) => s.seq + 1 >= firstSeq);
  for (const d of damaged) {
    // Retired records (below firstSeq) need a snapshot at or above firstSeq - 1.
    const onlyCover = firstSeq > 1 && d.seq + 1 >= firstSeq && !coveredByVerified;
    findings.push({ kind: 'snapshot-damage', name: d.name, seq: d.seq, why: d.why, onlyCover });
  }
  return verified;
}

/**
 * Moves damaged snapshots to quarantine/ (the next snapshot replaces them); one that is the only
 * cover of retired journal records is kept. Returns where the moved ones went.
 */
export async function repairSnapshots(store: Store, findings: Finding[]): Promise<string[]> {
  const moved: string[] = [];
  for (const f of findings) {
    if (f.kind !== 'snapshot-damage' || f.onlyCover) continue;
    moved.push(await quarantineSnapshot(store.fs, store.root, f.name));
  }
  return moved;
}
