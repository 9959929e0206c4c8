// `mailstore backup check`: finds every missing or damaged byte of a repository, one typed
// finding per kind (restic's checker). Structure always: every index and snapshot file reads
// back (name = content hash, checksums, authentication), every data file an index lists exists
// and is long enough, every blob of every snapshot is listed. With --read-data, every byte:
// each data file's content hash, and every record decoded and verified against its hash.
import { MailstoreError, fromSystemError, isMailstoreError } from '../errors.js';
import { formatMailboxName } from '../store/validate.js';
import { blobIdOf } from './crypto.js';
import { DATA_HEADER_BYTES, RECORD_STORED_BYTES_MAX, checkDataHeader, contentName, decodeRecord, recordBytes, sealedUnderOtherKeys } from './format.js';
import { scanUnnamed } from './scan.js';
import { readRepositoryFile } from './repository-read.js';
import { backupLimits } from '../limits.js';
import { readHealLists } from './heal-list.js';
import { addToIndex, listIn, lockRepository, type BlobEntry, type IndexFile, type Repository, type SnapshotCache, type SnapshotFile, byTime } from './repository.js';

export type BackupFindingKind =
  | 'damaged-index' | 'damaged-snapshot' | 'missing-data' | 'truncated-data' | 'damaged-data' | 'damaged-blob' | 'missing-blob'
  | 'scanned-data' | 'unindexed-data' | 'leftover-temp' | 'set-aside-index' | 'damaged-copy' | 'heal-pending'
  | 'foreign-file' | 'config-mismatch';

export interface BackupFinding {
  kind: BackupFindingKind;
  /** Damage makes the check exit 1; the others (left by interrupted runs, removed by prune) do not. */
  damage: boolean;
  path: string;
  message: string;
}

export interface BackupCheckReport {
  findings: BackupFinding[];
  summary: {
    snapshots: number; indexFiles: number; dataFiles: number; blobs: number; bytesRead: number; damage: number; informational: number; readData: boolean;
    /** Blobs snapshots need that no index file that reads lists, found by scanning the data files none of them names. */
    blobsFoundByScan: number;
  };
}

export interface BackupCheckOptions {
  readData?: boolean;
  onProgress?: (files: number, bytes: number) => void;
}

const INFORMATIONAL: BackupFindingKind[] = ['unindexed-data', 'leftover-temp', 'set-aside-index', 'heal-pending'];

/** The first message (snapshot, mailbox, uid) that uses each blob id: findings name it. */
/**
 * Blob id -> its hash, size, and the snapshots that need it: the oldest's message, and the newest's
 * with their count, so a damaged blob is named in the snapshot an admin would restore, not only in
 * the oldest (which a forget removes first).
 */
interface BlobUser { hash: Buffer; size: number; oldest: string; newest: string; what: string; snapshots: number }
type Users = Map<string, BlobUser>;

export async function checkRepository(repo: Repository, options: BackupCheckOptions = {}): Promise<BackupCheckReport> {
  const lock = await lockRepository(repo, false, { readOnly: true });
  try {
    const findings: BackupFinding[] = [];
    const add = (kind: BackupFindingKind, path: string, message: string) => findings.push({ kind, damage: !INFORMATIONAL.includes(kind), path, message });
    const { index, extents, indexFiles, named } = await checkIndexFiles(repo, add);
    const { users, snapshots, unlisted } = await checkSnapshots(repo, index, add);
    const mismatch = configMismatch(repo, findings, indexFiles + snapshots);
    const scanned = mismatch ? { byFile: new Map(), found: 0 } : await findUnlisted(repo, named, unlisted, add);
    const present = await checkDataFiles(repo, extents, scanned.byFile, add, findings, mismatch);
    const dataFiles = present.size;
    const bytesRead = options.readData ? await readAllData(repo, index, extents, scanned, users, add, options, present) : 0;
    for (const area of ['data', 'index', 'snapshots'] as const) {
      for (const name of await repo.leftovers(area)) add('leftover-temp', repo.path(area, name), 'a file an interrupted run was writing (prune removes it)');
    }
    const heal = await readHealLists(repo);
    for (const name of heal.names) add('heal-pending', repo.path('heal', name), `'backup repair' listed ${heal.entries.length} blobs with no good copy here; the next backup copies each again from the store while it has them`);
    for (const name of heal.unreadable) add('heal-pending', repo.path('heal', name), "a heal list that does not read (damaged): run 'mailstore backup repair --read-data' to list the damage again");
    for (const name of await setAsideIndexFiles(repo)) {
      const what = name.startsWith('config.') ? "a config 'backup repair --new-config' replaced because it did not read" : "an index file 'backup repair' set aside because it did not read";
      add('set-aside-index', repo.path('damaged', name), `${what} (kept for inspection; nothing reads it)`);
    }
    const damage = findings.filter((f) => f.damage).length;
    return {
      findings,
      summary: { snapshots, indexFiles, dataFiles, blobs: index.size, bytesRead, damage, informational: findings.length - damage, readData: Boolean(options.readData), blobsFoundByScan: scanned.found },
    };
  } finally {
    await lock.release();
  }
}

type Add = (kind: BackupFindingKind, path: string, message: string) => void;

/**
 * Only damage becomes a finding: bytes that do not verify (CORRUPT) or a file gone (NOT_FOUND). A
 * read that did not happen (IO: an s3: repository's 503 or timeout; ACCESS, UNMOUNTED) says nothing
 * of the file and stops the check with its code, as `backup repair` does; a bug still throws.
 */
/** The snapshot and message a blob's finding names: the newest that needs it, and how many do. */
function userName(user: BlobUser): string {
  const others = user.snapshots > 1 ? ` (the newest of ${user.snapshots} that need it, the oldest ${user.oldest.slice(0, 8)})` : '';
  return `snapshot ${user.newest.slice(0, 8)}${others} ${user.what}`;
}

/**
 * A whole index or snapshot file sealed under other keys is `foreign-file`, not damage to its
 * bytes; when no index or snapshot file at all fits the config (every one of them foreign), the
 * config is what is wrong (another repository's, made with the same key file: its key check
 * passes), and one `config-mismatch` says so. Then nothing is called unindexed or missing: the
 * files' own config would read them (an admin who pruned on such a report lost the data).
 */
function configMismatch(repo: Repository, findings: BackupFinding[], files: number): boolean {
  const foreign = findings.filter((f) => f.kind === 'foreign-file').length;
  if (foreign === 0 || foreign < files) return false;
  findings.push({
    kind: 'config-mismatch', damage: true, path: repo.path('config'),
    message: `none of the ${foreign} index and snapshot files is sealed under this config's keys (each is whole: its name is its content's hash): this config is another repository's, or the repository was pointed at the wrong one. Put back the repository's own config (a copy of it, e.g. from a backup of the repository); nothing here is damaged or unindexed, and forget, prune and repair refuse until it fits`,
  });
  return true;
}

/** The finding of an index or snapshot file that does not read: damage, or whole but sealed under other keys. */
function unreadable(add: Add, kind: 'damaged-index' | 'damaged-snapshot', path: string, error: unknown): void {
  if (sealedUnderOtherKeys(error)) add('foreign-file', path, (error as Error).message);
  else add(kind, path, why(error));
}

function why(error: unknown): string {
  if (isMailstoreError(error, 'CORRUPT') || isMailstoreError(error, 'NOT_FOUND')) return error.message;
  throw error;
}

async function checkIndexFiles(repo: Repository, add: Add): Promise<{ index: Map<string, BlobEntry[]>; extents: Map<string, number>; indexFiles: number; named: Set<string> }> {
  const index = new Map<string, BlobEntry[]>();
  const extents = new Map<string, number>();
  const named = new Set<string>();
  const names = await repo.list('index');
  for (const name of names) {
    try {
      const file = await repo.readMetadata<IndexFile>('index', name);
      addToIndex(index, file);
      for (const { file: data, blobs } of file.files) {
        named.add(data);
        for (const [, offset, length] of blobs) extents.set(data, Math.max(extents.get(data) ?? 0, offset + recordBytes(length)));
      }
    } catch (error) {
      if (isMailstoreError(error, 'INVALID')) throw error; // a key that does not fit is the caller's, not damage
      unreadable(add, 'damaged-index', repo.path('index', name), error);
    }
  }
  return { index, extents, indexFiles: names.length, named };
}

/** A blob snapshots need that no index file that reads lists: each snapshot and message that needs it. */
type Unlisted = Map<string, { snapshot: string; id: string; what: string }[]>;

async function checkSnapshots(repo: Repository, index: Map<string, BlobEntry[]>, add: Add): Promise<{ users: Users; snapshots: number; unlisted: Unlisted }> {
  const users: Users = new Map();
  const unlisted: Unlisted = new Map();
  const names = await repo.list('snapshots');
  // every file read first for its time (deltas kept: small; a whole one is read again in its turn,
  // so one at a time is held), then each read whole oldest first: a delta's parent was just read
  const times = new Map<string, SnapshotFile>();
  const cache: SnapshotCache = { whole: new Map(), files: new Map() };
  for (const name of names) {
    try {
      const file = await repo.readMetadata<SnapshotFile>('snapshot', name);
      times.set(name, file.parent === undefined ? { ...file, ops: [] } : file);
      if (file.parent !== undefined) cache.files!.set(name, file);
    } catch (error) {
      if (isMailstoreError(error, 'INVALID')) throw error;
      unreadable(add, 'damaged-snapshot', repo.path('snapshots', name), error);
    }
  }
  for (const name of byTime(times)) {
    let snapshot: SnapshotFile;
    try {
      snapshot = await repo.readSnapshot(name, cache);
    } catch (error) {
      if (isMailstoreError(error, 'INVALID')) throw error;
      unreadable(add, 'damaged-snapshot', repo.path('snapshots', name), error);
      continue;
    }
    const missing = new Set<string>();
    for (const { id, hash, size, what } of snapshotBlobs(snapshot)) {
      const key = blobIdOf(hash, repo.keys).toString('hex');
      const user = users.get(key);
      if (!user) users.set(key, { hash, size, oldest: name, newest: name, what, snapshots: 1 });
      else if (user.newest !== name) Object.assign(user, { newest: name, what, snapshots: user.snapshots + 1 });
      if (!index.has(key) && !missing.has(key)) {
        missing.add(key);
        listIn(unlisted, key).push({ snapshot: name, id, what });
      }
    }
  }
  return { users, snapshots: names.length, unlisted };
}

/** Where a scan found the blobs no readable index file lists (by data file), and how many it found. */
interface Scanned {
  byFile: Map<string, [string, BlobEntry][]>;
  found: number;
}

/**
 * The blobs snapshots need that no index file that reads lists, looked for in the data files none
 * of them names (scan.ts, as a restore does): one found there is `scanned-data` for its file (the
 * map is damaged, the message is not lost: a restore reads it there, `backup repair` indexes it);
 * one not found is `missing-blob` for each snapshot that needs it.
 */
async function findUnlisted(repo: Repository, named: Set<string>, unlisted: Unlisted, add: Add): Promise<Scanned> {
  const scanned: Scanned = { byFile: new Map(), found: 0 };
  if (unlisted.size === 0) return scanned;
  const scan = await scanUnnamed(repo, named);
  for (const [key, needs] of unlisted) {
    const places = scan.places.get(key);
    if (places) {
      scanned.found++;
      for (const place of places) listIn(scanned.byFile, place.file).push([key, place]);
      continue;
    }
    for (const { snapshot, id, what } of needs) add('missing-blob', repo.path('snapshots', snapshot), `snapshot ${snapshot.slice(0, 8)}: ${what} (blob ${id}) is in no index file${scan.files.length > 0 ? ` that reads, nor in the ${scan.files.length} data files none names (scanned)` : ''}`);
  }
  for (const [file, blobs] of scanned.byFile) {
    const count = new Set(blobs.map(([key]) => key)).size;
    add('scanned-data', repo.path('data', file), `no index file that reads lists this data file, but ${count} blobs snapshots need were found in it by its record headers (a restore reads them there, verified; 'mailstore backup repair' writes its index)`);
  }
  return scanned;
}

/** Index files `backup repair` moved into damaged/ (repair.ts). */
async function setAsideIndexFiles(repo: Repository): Promise<string[]> {
  return (await repo.fs.readdir(repo.path('damaged')).catch(() => [] as string[])).filter((name) => !name.startsWith('.'));
}

/** Every message blob a snapshot needs (mailboxes being deleted are not restored, so not needed). */
export function* snapshotBlobs(snapshot: SnapshotFile): Generator<{ id: string; hash: Buffer; size: number; what: string }> {
  const names = new Map<string, string>();
  for (const op of snapshot.ops) {
    if (op.op === 'state.mailbox' && !op.info.deleting) names.set(Buffer.from(op.info.id).toString('hex'), formatMailboxName(op.info.name));
    if (op.op !== 'state.messages') continue;
    const name = names.get(Buffer.from(op.id).toString('hex'));
    if (name === undefined) continue;
    for (const [uid, hash, size] of op.messages) yield { id: Buffer.from(hash).toString('hex').slice(0, 16), hash: Buffer.from(hash), size, what: `${name} uid ${uid}` };
  }
}

/** The data files present (those an index file lists and are not: `missing-data`). */
async function checkDataFiles(repo: Repository, extents: Map<string, number>, scanned: Map<string, unknown>, add: Add, findings: BackupFinding[], mismatch: boolean): Promise<Set<string>> {
  const present = new Set(await repo.list('data'));
  for (const [file, extent] of extents) {
    const path = repo.path('data', file);
    if (!present.has(file)) { add('missing-data', path, 'an index file lists this data file, which is missing'); continue; }
    const stat = await repo.fs.stat(path).catch(() => undefined);
    if (stat && stat.size < extent) add('truncated-data', path, `${stat.size} bytes, but its records reach ${extent}`);
  }
  if (mismatch) return present; // the index files that list them do not fit this config: not unindexed
  // an index file that does not read may be the one that lists it: prune refuses while one does not
  const unread = findings.filter((f) => f.kind === 'damaged-index' || (f.kind === 'foreign-file' && f.path.startsWith(repo.path('index')))).length;
  const unindexed = unread > 0
    ? `no index file that reads lists this data file (${unread} index files do not read: it may be theirs; prune refuses until they do or 'mailstore backup repair' has indexed it)`
    : 'no index file lists this data file (left by an interrupted backup or prune; prune removes it)';
  for (const file of present) if (!extents.has(file) && !scanned.has(file)) add('unindexed-data', repo.path('data', file), unindexed);
  return present;
}

/**
 * The most bytes a data file is read to: dataFileBytesMax, or as far as its index lists records,
 * or a scan found them (up to what one can hold: closed past packBytesTarget after a batch whose
 * last blob is the largest message a store takes, 2 GiB). A store opened with a larger
 * messageBytesMax backs up one incompressible message past dataFileBytesMax, and its healthy data
 * file was called damaged.
 */
function dataFileBytesMax(extent = 0): number {
  const holdsMax = DATA_HEADER_BYTES + backupLimits.packBytesTarget + backupLimits.compressBatchBytes + recordBytes(RECORD_STORED_BYTES_MAX);
  return Math.max(backupLimits.dataFileBytesMax, Math.min(extent, holdsMax));
}

/** Reads every listed data file whole: its content hash, its header, every record it should hold. */
async function readAllData(repo: Repository, index: Map<string, BlobEntry[]>, extents: Map<string, number>, scanned: Scanned, users: Users, add: Add, options: BackupCheckOptions, present: Set<string>): Promise<number> {
  const byFile = new Map<string, [string, BlobEntry][]>(scanned.byFile); // the scanned files' needed records are verified too
  for (const [id, entries] of index) for (const entry of entries) listIn(byFile, entry.file).push([id, entry]);
  let bytes = 0;
  let files = 0;
  // a damaged record is reported once every record is read: whether another copy of its blob verifies
  const good = new Set<string>();
  const failed: { id: string; path: string; message: string }[] = [];
  for (const file of new Set([...extents.keys(), ...scanned.byFile.keys()])) {
    const path = repo.path('data', file);
    let content: Buffer;
    try {
      // a file no index lists that far (lost): as far as the records its scan found reach
      const reach = extents.get(file) ?? (scanned.byFile.get(file) ?? []).reduce((most, [, place]) => Math.max(most, place.offset + recordBytes(place.length)), 0);
      content = await readRepositoryFile(repo.fs, path, dataFileBytesMax(reach));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        if (present.has(file)) add('missing-data', path, 'an index file lists this data file, which went missing while the check ran');
        continue; // listed as missing already otherwise
      }
      if (isMailstoreError(error, 'CORRUPT')) { add('damaged-data', path, why(error)); continue; }
      // not read is not verified: the check cannot say, as repair does not (an object store's 503, EIO)
      throw fromSystemError(error, 'reading the data file', path);
    }
    bytes += content.length;
    options.onProgress?.(++files, bytes);
    if (contentName(content) !== file) add('damaged-data', path, 'content does not match its name (bytes changed)');
    try {
      checkDataHeader(content, path);
    } catch (error) {
      add('damaged-data', path, why(error));
    }
    for (const [id, entry] of byFile.get(file) ?? []) {
      const user = users.get(id);
      try {
        const record = content.subarray(entry.offset, entry.offset + recordBytes(entry.length));
        if (record.length < recordBytes(entry.length)) throw new MailstoreError('CORRUPT', `${path}: the record at ${entry.offset} is cut off`, { path });
        await decodeRecord(record, Buffer.from(id, 'hex'), user?.hash, repo.keys, path, user?.size);
        good.add(id);
      } catch (error) {
        failed.push({ id, path, message: `${user ? `${userName(user)}: ` : ''}${why(error)}` });
      }
    }
  }
  for (const { id, path, message } of failed) {
    if (good.has(id)) add('damaged-copy', path, `${message}; another record of the same blob verifies, so the message restores from it (this damaged record is only a lost copy; prune drops it)`);
    else add('damaged-blob', path, message);
  }
  return bytes;
}
