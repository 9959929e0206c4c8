// `mailstore backup repair`: a damaged index file made whole again from the data files' own record
// headers (restic's `repair index`; docs/BACKUP.md, "Damaged index files"). Restore and check
// already find such blobs by scanning, once per run; repair writes the map down, so check is clean
// again and later backups look their blobs up in an index that says the truth. Nothing is deleted:
// the index file that does not read is moved into damaged/, and only verified records are listed.
import { join } from 'node:path';
import { MailstoreError, fromSystemError, isMailstoreError } from '../errors.js';
import { ensureDir } from '../fs/durable.js';
import { hashBytes } from '../hash/blake3.js';
import { blobIdOf } from './crypto.js';
import { contentName, decodeRecord, encodeMetadataFile, recordBytes, sealedUnderOtherKeys } from './format.js';
import { HELD_PREFIX } from './held-ids.js';
import { snapshotBlobs } from './check.js';
import { readHealLists, writeHealList, type HealEntry } from './heal-list.js';
import { lockRepository, newSnapshotCache, type IndexFile, type Repository, type SnapshotCache } from './repository.js';
import { scanRecords } from './scan.js';
import { openRepositoryFile } from './repository-read.js';
import { listTips } from './tip.js';

export interface RepairSummary {
  /** Index files that did not read (CORRUPT), each moved into damaged/. */
  damagedIndexFiles: string[];
  /** Where they are now (paths inside the repository's damaged/). */
  setAside: string[];
  /** Data files no index file that reads named, walked record by record. */
  dataFilesScanned: number;
  /** Records found there that verified (header, length, GCM tag, BLAKE3) and that the new index lists. */
  blobsIndexed: number;
  /** Records whose header checked but whose bytes did not verify: left out of the index (a later backup copies such a blob again when its store still has it). */
  recordsRefused: number;
  /** Stretches of those files where no record header checked (damage). */
  damagedStretches: number;
  /** The new index file (absent: nothing to index). */
  newIndex?: string;
  /** Held-ids tables (held-ids.ts) removed: they covered the index as it was. */
  heldTablesRemoved: number;
  /** --read-data: every record the index files list for a blob snapshots need was read and verified. */
  readData: boolean;
  /** Of those, records that did not verify (their blob may still have a good copy elsewhere). */
  recordsDamaged: number;
  /**
   * Blobs snapshots need that have no good copy in the repository (damaged or missing), listed in
   * heal/ for the next backups to copy again from the store (heal-list.ts).
   */
  blobsToHeal: number;
  /** The heal list now in heal/ (absent: nothing to heal). */
  healList?: string;
}

export interface RepairOptions {
  onProgress?: (files: number, bytes: number) => void;
  /** Verify every record the index files list for a blob snapshots need, not only the unindexed data files' records. */
  readData?: boolean;
}

export async function repairIndex(repo: Repository, options: RepairOptions = {}): Promise<RepairSummary> {
  const lock = await lockRepository(repo, true); // backups look blobs up in the index: none runs meanwhile
  try {
    const { damaged, named } = await readIndexFiles(repo);
    const summary: RepairSummary = {
      damagedIndexFiles: damaged, setAside: [], dataFilesScanned: 0, blobsIndexed: 0, recordsRefused: 0, damagedStretches: 0, heldTablesRemoved: 0,
      readData: Boolean(options.readData), recordsDamaged: 0, blobsToHeal: 0,
    };
    const index = await indexUnnamed(repo, named, summary, options.onProgress);
    const encoded = index.files.length > 0 ? encodeMetadataFile('index', index, repo.keys) : undefined;
    const name = encoded && contentName(encoded);
    // Unencrypted, the map of the same records is the damaged file's own bytes, so its very name:
    // that file goes aside first (the name must hold the good bytes). Otherwise the new index is
    // durable (temp, fsync, rename, directory fsync) before a damaged file goes aside. Either way
    // every verified record is at every instant listed by an index file that reads or found by a
    // scan (restore's and check's), which a crash between the steps leaves to the next repair.
    if (name && damaged.includes(name)) summary.setAside.push(await setAside(repo, name));
    if (encoded) summary.newIndex = await repo.writeContent('index', encoded);
    for (const other of damaged) if (other !== name) summary.setAside.push(await setAside(repo, other));
    // the tables name the files they were built from, the damaged one among them: unusable now,
    // and removed so the next backup builds its table from the index files as they are
    summary.heldTablesRemoved = await removeHeldTables(repo);
    // last: the blobs no index file that reads lists a good copy of, for the next backups to heal
    await recordHeal(repo, summary);
    return summary;
  } finally {
    await lock.release();
  }
}

/**
 * Writes heal/ (heal-list.ts): every blob a snapshot that reads needs and no index file that reads
 * lists (missing: its record was refused above, or its data file is lost), and with --read-data
 * every one whose listed records all fail to verify (each read whole and decoded, its message's
 * BLAKE3 checked against the snapshot's hash). Without --read-data the entries of the lists there
 * that snapshots still need are kept (only a read can tell they are healed; a backup that heals one
 * writes the shorter list itself). The new list is durable before the old ones are removed.
 */
async function recordHeal(repo: Repository, summary: RepairSummary): Promise<void> {
  const index = await repo.loadIndex();
  const needed = await neededBlobs(repo);
  const before = await readHealLists(repo);
  const heal = new Map<string, HealEntry>();
  for (const [key, entry] of needed) {
    const places = index.places.get(key) ?? [];
    if (places.length === 0) { heal.set(key, entry); continue; }
    if (!summary.readData) continue;
    let good = false;
    for (const place of places) {
      try {
        const record = await repo.readRecord(place, recordBytes(place.length));
        await decodeRecord(record, entry.id, entry.hash, repo.keys, repo.path('data', place.file));
        good = true;
      } catch (error) {
        if (!isMailstoreError(error, 'CORRUPT')) throw error;
        summary.recordsDamaged++;
      }
    }
    if (!good) heal.set(key, entry);
  }
  if (!summary.readData) for (const entry of before.entries) if (needed.has(entry.id.toString('hex'))) heal.set(entry.id.toString('hex'), heal.get(entry.id.toString('hex')) ?? entry);
  summary.blobsToHeal = heal.size;
  const name = await writeHealList(repo, [...heal.values()], before.names);
  if (name) summary.healList = name;
}

/** Every blob the snapshots that read need, by id (hex): its id, hash and the first message that needs it. */
async function neededBlobs(repo: Repository): Promise<Map<string, HealEntry>> {
  const needed = new Map<string, HealEntry>();
  const cache: SnapshotCache = newSnapshotCache();
  for (const name of await repo.list('snapshots')) {
    let snapshot;
    try {
      snapshot = await repo.readSnapshot(name, cache);
    } catch (error) {
      if (!isMailstoreError(error, 'CORRUPT')) throw error;
      continue; // check reports it; nothing of it can be healed from here
    }
    for (const { hash, what } of snapshotBlobs(snapshot)) {
      const id = repo.keys ? blobIdOf(hash, repo.keys) : hash;
      const key = id.toString('hex');
      if (!needed.has(key)) needed.set(key, { id, hash, what: `snapshot ${name.slice(0, 8)} ${what}` });
    }
  }
  return needed;
}

/**
 * Which index files do not read (CORRUPT; a wrong key or a newer format stops the repair) and the
 * data files the others name. REFUSED when there are some and none fits the config (each whole
 * but sealed under other keys): the config is another repository's, and repair would set aside
 * every index file and index none of the records (check: config-mismatch).
 */
async function readIndexFiles(repo: Repository): Promise<{ damaged: string[]; named: Set<string> }> {
  const damaged: string[] = [];
  const named = new Set<string>();
  const names = await repo.list('index');
  let foreign = 0;
  for (const name of names) {
    try {
      for (const { file } of (await repo.readMetadata<IndexFile>('index', name)).files) named.add(file);
    } catch (error) {
      if (!isMailstoreError(error, 'CORRUPT')) throw error;
      if (sealedUnderOtherKeys(error)) foreign++;
      damaged.push(name);
    }
  }
  if (foreign > 0 && foreign === names.length) {
    throw new MailstoreError('REFUSED', `none of the ${foreign} index files of ${repo.dir} is sealed under this config's keys (each is whole): the config is another repository's, or the repository was pointed at the wrong one; put back its own config. Nothing was changed`, { path: repo.path('config') });
  }
  return { damaged, named };
}

/**
 * Every record of the data files no readable index file names that verifies, as an index: each
 * record read whole, one at a time, and decoded (unsealed when encrypted, its id checked against
 * the HMAC of its bytes' BLAKE3). A record that does not verify is left out, never listed.
 */
async function indexUnnamed(repo: Repository, named: Set<string>, summary: RepairSummary, onProgress?: (files: number, bytes: number) => void): Promise<IndexFile> {
  const index: IndexFile = { files: [] };
  let bytes = 0;
  for (const file of await repo.list('data')) {
    if (named.has(file)) continue;
    const path = repo.path('data', file);
    let handle;
    try {
      handle = await openRepositoryFile(repo.fs, path);
    } catch (error) {
      throw fromSystemError(error, 'opening the data file', path);
    }
    const blobs: IndexFile['files'][number]['blobs'] = [];
    try {
      const size = await handle.size();
      for await (const { id, offset, length } of scanRecords(handle, size, path, summary)) {
        try {
          const record = await repo.readRecord({ file, offset, length }, recordBytes(length));
          const message = await decodeRecord(record, id, undefined, repo.keys, path);
          if (repo.keys && !blobIdOf(hashBytes(message), repo.keys).equals(id)) throw new MailstoreError('CORRUPT', `${path}: the record at ${offset} holds bytes of another blob`, { path });
          blobs.push([id, offset, length]);
        } catch (error) {
          if (!isMailstoreError(error, 'CORRUPT')) throw error;
          summary.recordsRefused++;
        }
      }
      bytes += size;
    } finally {
      await handle.close().catch(() => undefined);
    }
    summary.dataFilesScanned++;
    onProgress?.(summary.dataFilesScanned, bytes);
    if (blobs.length > 0) index.files.push({ file, blobs });
  }
  summary.blobsIndexed = index.files.reduce((n, f) => n + f.blobs.length, 0);
  return index;
}

/**
 * Moves an index file into damaged/ (never deleted: it may be all someone has to go on), under
 * `index.<name>` (a suffix when that is taken): no reader lists damaged/, prune never touches it.
 * Its new place is durable before its old name's removal is.
 */
async function setAside(repo: Repository, name: string): Promise<string> {
  const dir = repo.path('damaged');
  const from = repo.path('index', name);
  try {
    await ensureDir(repo.fs, dir);
    for (let n = 0; ; n++) {
      const to = join(dir, n === 0 ? `index.${name}` : `index.${name}.${n}`);
      try {
        await repo.fs.renameNoReplace(from, to);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw error;
      }
      await repo.fs.syncDir(dir);
      await repo.syncArea('index');
      return to;
    }
  } catch (error) {
    throw fromSystemError(error, 'moving the damaged index file aside', from);
  }
}

async function removeHeldTables(repo: Repository): Promise<number> {
  let removed = 0;
  for (const name of await listTips(repo)) {
    if (!name.startsWith(HELD_PREFIX)) continue;
    await repo.fs.unlink(repo.path('tips', name)).then(() => removed++, (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw fromSystemError(error, 'removing', repo.path('tips', name));
    });
  }
  return removed;
}
