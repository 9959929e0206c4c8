// After the local disk of a store with an object store is lost and the bucket is intact
// (RECOVERY.md, "the local disk lost, the bucket intact"): a new store directory is assembled from
// a copy of the store's journal (STORE and journal/, and snapshots/ when the copy has them), the
// object-store settings and an empty packs/. Opening it rebuilds the index from the journal; the
// packs that had moved are read from the bucket, and a full scrub reads and re-hashes every one of
// them. The packs that never moved were on the lost disk: their messages stay in the index and are
// reported missing (scrub's blob-missing, with mailbox and UID), never dropped; their pack numbers
// are recorded (tier.ts TIER_LOST) so no new pack takes one.
import { join } from 'node:path';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { ensureDir, writeFileDurable } from '../fs/durable.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import type { MessageRef } from '../scrub/findings.js';
import { scrub, type ScrubOptions, type ScrubSummary } from '../scrub/scrub.js';
import { LAYOUT } from './identity.js';
import { Store } from './store.js';
import { TIER_SETTINGS_FILE, checkTierSettings, writeTierSettings, type TierSettings } from './tier.js';
import { unopenedRoot } from './unopened-root.js';

export interface RebuildFromBucketOptions {
  /** A directory holding a copy of the lost store's STORE and journal/ (a replica's, or a file copy). */
  journalCopy: string;
  /** The lost store's object store: the same URL (and prefix) and credentials. */
  settings: TierSettings;
  fs?: FileSystem;
  /** The scrub of every moved pack (it reads the whole bucket prefix): its progress. */
  onProgress?: ScrubOptions['onProgress'];
}

export interface RebuildFromBucketResult {
  storeId: string;
  /** Messages in the rebuilt index. */
  messages: number;
  /** Messages whose body read back from the bucket, verified by hash. */
  messagesRecovered: number;
  /** Messages whose body was in a pack that never moved (lost with the disk) or is damaged: still listed, reported. */
  messagesLost: number;
  /** Up to 1000 of the lost messages, by mailbox and UID. */
  lost: MessageRef[];
  packsInBucket: number;
  /** Pack numbers the index refers to that are neither in the bucket nor local: lost with the disk. */
  packsLost: number[];
  /** What opening said (the index rebuilt from the journal, anything cut or kept). */
  openFindings: string[];
  scrub: ScrubSummary;
}

/** Assembles the new store at `target` (missing or empty) and reports what came back and what is lost. */
export async function rebuildFromBucket(target: string, options: RebuildFromBucketOptions): Promise<RebuildFromBucketResult> {
  const fs = options.fs ?? nodeFileSystem;
  const source = options.journalCopy;
  for (const name of [LAYOUT.identity, join(LAYOUT.journal, LAYOUT.marker)]) {
    // a journal copy the caller may not read (EACCES) was INTERNAL, "a bug", exit 70
    if (!(await fs.statIfExists(join(source, name)).catch((e) => { throw fromSystemError(e, 'looking at the journal copy', join(source, name)); }))) {
      throw new MailstoreError('NOT_FOUND', `${join(source, name)} is missing: the journal copy must hold the store's STORE and journal/ (with its ${LAYOUT.marker})`, { path: join(source, name) });
    }
  }
  await prepareTarget(fs, target);
  await checkTierSettings(fs, options.settings); // the bucket answers, the credentials work: before anything is created
  await ensureDir(fs, target);
  // first: until it is removed at the very end, no other open uses this directory (open.ts), and a
  // second run starts over
  await writeFileDurable(fs, join(target, LAYOUT.rebuilding), Buffer.from(`${source}\n`));
  for (const dir of [LAYOUT.packs, LAYOUT.journal, LAYOUT.quarantine, LAYOUT.tmp]) await ensureDir(fs, join(target, dir));
  await copyDir(fs, join(source, LAYOUT.journal), join(target, LAYOUT.journal));
  if (await fs.statIfExists(join(source, SNAPSHOTS))) {
    await ensureDir(fs, join(target, SNAPSHOTS));
    await copyDir(fs, join(source, SNAPSHOTS), join(target, SNAPSHOTS));
  }
  // packs/ holds nothing yet; its marker is the journal's (both name the store id)
  await copyFile(fs, join(source, LAYOUT.journal, LAYOUT.marker), join(target, LAYOUT.packs, LAYOUT.marker));
  // a target whose file system left it meanwhile (umount -l) no longer holds the marker: UNMOUNTED,
  // and neither the settings nor STORE (which would make it a store) land in the empty mount point
  const assembling = unopenedRoot(fs, target, LAYOUT.rebuilding);
  await writeTierSettings(assembling, options.settings);
  await assembling.checkMounted(join(target, LAYOUT.identity));
  await copyFile(fs, join(source, LAYOUT.identity), join(target, LAYOUT.identity));
  const store = await Store.open(target, { fs, packsLost: true, probeIndex: 'never' });
  let result: RebuildFromBucketResult;
  try {
    result = await verifyAndRecord(store, options.onProgress);
  } finally {
    await store.close();
  }
  await fs.unlink(join(target, LAYOUT.rebuilding)).catch((e) => { throw fromSystemError(e, 'finishing the rebuild', join(target, LAYOUT.rebuilding)); });
  await fs.syncDir(target);
  return result;
}

async function verifyAndRecord(store: Store, onProgress: ScrubOptions['onProgress']): Promise<RebuildFromBucketResult> {
  const openFindings = [...store.health.findings];
  const report = await scrub(store, { onProgress });
  const present = new Set(await store.maintenance().packs.listPacks());
  const lostPacks = new Set<number>();
  const lost: MessageRef[] = [];
  let messagesLost = 0;
  for (const f of report.findings) {
    if (f.kind !== 'blob-missing' && f.kind !== 'blob-corrupt') continue;
    if (f.kind === 'blob-missing' && !present.has(f.pack)) lostPacks.add(f.pack);
    messagesLost += f.refs.length;
    for (const ref of f.refs) if (lost.length < 1000) lost.push(ref);
  }
  const packsLost = [...lostPacks].sort((a, b) => a - b);
  await store.tierRecordLostPacks(packsLost);
  const { messages } = await store.stats();
  const status = await store.tierStatus();
  return {
    storeId: store.identity.storeId, messages, messagesRecovered: messages - messagesLost, messagesLost, lost,
    packsInBucket: status.remotePacks, packsLost, openFindings, scrub: report.summary,
  };
}

const SNAPSHOTS = 'snapshots';
/** What a run creates in its target: a run that stopped part-way left only these (and its marker). */
const CREATED = new Set<string>([LAYOUT.rebuilding, LAYOUT.identity, LAYOUT.lock, LAYOUT.lockDb, LAYOUT.packs, LAYOUT.journal,
  LAYOUT.index, 'index.rebuild', LAYOUT.quarantine, LAYOUT.tmp, SNAPSHOTS, TIER_SETTINGS_FILE]);

/**
 * The target must be missing or empty (EXISTS otherwise); one holding a run that stopped part-way
 * (its marker present) is cleared of what that run created, and nothing else, to start over: all of
 * it was copied or derived from the journal copy, and no open but the rebuild's could write there.
 */
async function prepareTarget(fs: FileSystem, target: string): Promise<void> {
  const stat = await fs.statIfExists(target).catch((e) => { throw fromSystemError(e, 'reading', target); });
  if (!stat) return;
  if (!stat.isDirectory) throw new MailstoreError('INVALID', `${target} exists and is not a directory`, { path: target });
  const names = (await fs.readdir(target)).filter((n) => n !== 'lost+found');
  if (names.length === 0) return;
  const unfinished = names.includes(LAYOUT.rebuilding);
  const foreign = names.filter((n) => !unfinished || !CREATED.has(n));
  if (foreign.length > 0) {
    throw new MailstoreError('EXISTS', `${target} is not empty (found ${foreign.slice(0, 3).join(', ')}); the rebuilt store goes into a new, empty directory`, { path: target });
  }
  for (const name of names) if (name !== LAYOUT.rebuilding) await fs.removeTree(join(target, name)).catch((e) => { throw fromSystemError(e, 'clearing an unfinished rebuild', join(target, name)); });
  await fs.syncDir(target);
}

/** Copies the regular files of `from` into `to` (journal segments, snapshots: flat directories). */
async function copyDir(fs: FileSystem, from: string, to: string): Promise<void> {
  for (const name of await fs.readdir(from)) {
    if (name.endsWith('.tmp')) continue; // a snapshot or segment being written when the copy was taken
    const stat = await fs.stat(join(from, name));
    if (stat.isDirectory) continue;
    await copyFile(fs, join(from, name), join(to, name));
  }
}

async function copyFile(fs: FileSystem, from: string, to: string): Promise<void> {
  const bytes = await fs.readFile(from).catch((e) => { throw fromSystemError(e, 'reading the journal copy', from); });
  await writeFileDurable(fs, to, bytes);
}
