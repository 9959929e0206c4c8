// The journal archive (JOURNAL-ARCHIVE, docs/FORMAT.md "Journal retirement"): where retired
// journal segments go instead of being deleted, when the admin sets one; its setting, the checks
// of a directory given for it, and the STORE-ID marker that tells the archive from an empty mount
// point (and insideStore, which import and export use too). Apart from snapshots.ts so that a
// store's open and an append do not load it.
import { join } from 'node:path';
import { MailstoreError, fromSystemError, isMailstoreError } from '../errors.js';
import type { FileStat, FileSystem } from '../fs/filesystem.js';
import { writeFileDurable } from '../fs/durable.js';
import { parseSegmentFileName } from '../journal/journal-format.js';
import { refuseOthersMayWrite } from './identity.js';
import { readSetting, writeSetting, type StoreRoot } from './setting-file.js';
import { uuidString } from './types.js';

/** The store setting naming the journal archive directory (absent: retired segments are deleted). */
export const JOURNAL_ARCHIVE_FILE = 'JOURNAL-ARCHIVE';

/** The journal archive directory, or undefined when retired segments are deleted. */
export async function readJournalArchive(fs: FileSystem, root: string): Promise<string | undefined> {
  const stored = await readSetting(fs, root, JOURNAL_ARCHIVE_FILE, 'the journal archive setting');
  if (!stored) return undefined;
  if (!stored.intact || !stored.text.startsWith('/')) {
    const path = join(root, JOURNAL_ARCHIVE_FILE);
    throw new MailstoreError('CORRUPT', `${path} is damaged; set it again with 'mailstore snapshot --journal-archive DIR' (or 'off')`, { path });
  }
  return stored.text;
}

/**
 * Sets (an absolute path to an existing directory outside the store) or clears (undefined) the
 * journal archive. Marks the directory as this store's archive (ARCHIVE_MARKER) first.
 */
export async function writeJournalArchive(store: StoreRoot, dir: string | undefined, storeId: Buffer): Promise<void> {
  const { fs, root } = store;
  if (dir !== undefined) {
    await checkJournalArchive(fs, dir);
    if (await insideStore(fs, root, dir)) throw new MailstoreError('INVALID', `the journal archive ${dir} is inside the store ${root}: give it a directory outside (journal/ would keep or lose the segments, index/ and the rest are replaced by rebuilds)`, { path: dir });
    const marked = await archiveMarker(fs, dir);
    if (marked && marked !== uuidString(storeId)) throw new MailstoreError('INVALID', `the journal archive ${dir} is the archive of store ${marked} (its ${ARCHIVE_MARKER}): give each store a directory of its own`, { path: dir });
    await markJournalArchive(fs, dir, storeId);
  }
  await writeSetting(store, JOURNAL_ARCHIVE_FILE, dir, 'the journal archive setting');
}

/**
 * The file in a journal archive naming its store, as packs/ and journal/ hold one: a directory
 * without it is an empty mount point (the archive's file system not mounted), not the archive.
 * Before session 48 a retirement moved segments into such a directory, on the file system below,
 * where the mounted archive hides them.
 */
export const ARCHIVE_MARKER = 'STORE-ID';

/** Why the journal may not be retired into the archive now, and what the admin does about it. */
export interface ArchiveProblem {
  why: string;
  todo: string;
}

/**
 * Why the journal may not be retired into `archive` now, or undefined: it is not a directory (not
 * mounted?), it is inside the store (set by an older mailstore, which did not refuse it), it holds
 * another store's marker, or neither this store's marker nor any segment (an empty mount point).
 * Reads only: scrub asks it too.
 */
export async function journalArchiveProblem(fs: FileSystem, root: string, archive: string, storeId: Buffer): Promise<ArchiveProblem | undefined> {
  const another = `or set another ('mailstore snapshot --journal-archive DIR', or 'off' to delete retired segments)`;
  const stat = await fs.statIfExists(archive).catch((e) => { throw fromSystemError(e, 'looking at the journal archive', archive); });
  if (!stat?.isDirectory) return { why: `the journal archive ${archive} is not a directory (not mounted?)`, todo: `mount it (or create it), ${another}` };
  if (await insideStore(fs, root, archive)) return { why: `the journal archive ${archive} is inside the store`, todo: `set one outside it ('mailstore snapshot --journal-archive DIR' or 'off')` };
  const marked = await archiveMarker(fs, archive);
  if (marked === uuidString(storeId)) return undefined;
  if (marked) return { why: `the journal archive ${archive} is the archive of store ${marked} (its ${ARCHIVE_MARKER}), not of this one`, todo: `mount this store's archive there, ${another}` };
  const names = await fs.readdir(archive).catch((e) => { throw fromSystemError(e, 'listing the journal archive', archive); });
  if (names.some((name) => parseSegmentFileName(name) !== undefined)) return undefined; // set by an older mailstore: marked at its next retirement
  return {
    why: `the journal archive ${archive} holds no ${ARCHIVE_MARKER} of this store (an empty mount point: its file system not mounted?)`,
    todo: `mount it; if it is this store's archive, set it again to mark it ('mailstore snapshot --journal-archive ${archive}'), ${another}`,
  };
}

/** The store id an archive's marker names, or undefined when it has none. */
async function archiveMarker(fs: FileSystem, archive: string): Promise<string | undefined> {
  const path = join(archive, ARCHIVE_MARKER);
  const bytes = await fs.readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw fromSystemError(error, 'reading the journal archive\'s marker', path);
  });
  return bytes?.toString('utf8').trim();
}

export async function markJournalArchive(fs: FileSystem, archive: string, storeId: Buffer): Promise<void> {
  if ((await archiveMarker(fs, archive)) === uuidString(storeId)) return;
  const path = join(archive, ARCHIVE_MARKER);
  await writeFileDurable(fs, path, Buffer.from(`${uuidString(storeId)}\n`)).catch((e) => { throw fromSystemError(e, 'marking the journal archive', path); });
}


/**
 * What a journal archive must be, whatever the store: an absolute path to an existing directory
 * only its owner may write. init asks before it makes the store: refused after, it left a store
 * without the setting (or its --object-store), and the same init again failed EXISTS.
 */
export async function checkJournalArchive(fs: FileSystem, dir: string): Promise<void> {
  if (!dir.startsWith('/')) throw new MailstoreError('INVALID', `the journal archive must be an absolute path, got ${dir}`);
  // a directory on the way the store's user may not search (EACCES) was INTERNAL, "a bug", exit 70
  const stat = await fs.statIfExists(dir).catch((e) => { throw fromSystemError(e, 'looking at the journal archive', dir); });
  if (!stat?.isDirectory) throw new MailstoreError('NOT_FOUND', `the journal archive ${dir} is not an existing directory`, { path: dir });
  // whoever else may write it could remove the archived history, or take a segment's name first (EXISTS: nothing retires)
  refuseOthersMayWrite(stat, dir, 'the archived segments');
}

/**
 * Whether `dir` is the store's root or below it, by device and inode, climbing through `..` (the
 * kernel's, after links: a link into the store counts, as does a path spelled another way).
 */
export async function insideStore(fs: FileSystem, root: string, dir: string): Promise<boolean> {
  const store = await fs.stat(root);
  let at = dir;
  let below: FileStat | undefined;
  for (;;) {
    const here = await fs.statIfExists(at);
    if (!here) return false;
    if (here.dev === store.dev && here.ino === store.ino) return true;
    if (below && here.dev === below.dev && here.ino === below.ino) return false; // '/': its own parent
    below = here;
    at = `${at}/..`; // not path.join: that would drop a link's '..' lexically
  }
}

/** stats' journalArchive (StoreStats): where retired segments go, and why none can go there now. */
export async function journalArchiveState(fs: FileSystem, root: string, storeId: Buffer): Promise<{ journalArchive?: { path: string; retirementHeld?: string } }> {
  const path = await readJournalArchive(fs, root).catch((error: unknown) => {
    if (isMailstoreError(error, 'CORRUPT')) return undefined; // scrub's store-file-damage
    throw error;
  });
  if (path === undefined) return {};
  const problem = await journalArchiveProblem(fs, root, path, storeId);
  return { journalArchive: { path, ...(problem ? { retirementHeld: `${problem.why}: nothing is retired (nor deleted) until then; ${problem.todo}` } : {}) } };
}
