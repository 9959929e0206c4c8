// The ids of every blob the repository's index files list, in one sorted table: a cache in tips/
// (`held.<hex>`, the hex the BLAKE3 of the whole file), so a run looks its new blobs up without
// decoding every index file of the repository each time (docs/BACKUP.md, "The held-ids table").
// Decoding them was O(repository) work in every incremental run: ~40 ms of its main thread at the
// bench's 20k messages (23 index files), ~100 ms at 100k, growing with what is stored, not with
// what changed.
//
// The table names the index files it was built from. It is used only while every one of them is
// still there: index files are named by their content, so a name still listed is the same file,
// and the ids the table holds for it are still held. The index files written since are read and
// their ids added (and a new table written for the next run). A `forget --prune` that removed or
// rewrote one of them makes the table unusable: every index file is read again, as before the
// table. Damaged, torn or missing (it is not synced: a cache), it is not used; restore, check and
// forget never read it (forget removes it as it removes the tips of forgotten snapshots).
import { MailstoreError, isMailstoreError } from '../errors.js';
import { writeFileAtomic, ensureDir } from '../fs/durable.js';
import { readRepositoryFile } from './repository-read.js';
import { FORMAT_VERSION, METADATA_STORED_BYTES_MAX, contentName, decodeMetadataFile, encodeMetadataFile, isContentName } from './format.js';
import type { IndexFile, Repository } from './repository.js';
import { HASH_BYTES, compareHashes, listTips, searchHash, sortHashes } from './tip.js';

const HELD_VERSION = 1;
/** A table's file name in tips/: this, then the hex BLAKE3 of the file. */
export const HELD_PREFIX = 'held.';
const PREFIX = HELD_PREFIX;

interface StoredHeld {
  version: number;
  /** The index files whose ids it holds. */
  names: string[];
  /** Their blob ids, 32 bytes each, ascending, each once. */
  ids: Uint8Array;
}

/** The table in use: the ids of the index files `covered`, sorted. */
export interface HeldTable {
  covered: Set<string>;
  ids: Buffer;
}

/** Whether `id` is in the table (a binary search). */
export function tableHolds(table: Pick<HeldTable, 'ids'>, id: Uint8Array): boolean {
  return id.length === HASH_BYTES && searchHash(table.ids, id).found;
}

/**
 * The newest readable table that covers only index files still listed (`names`), or undefined.
 * Anything wrong with one (unreadable, damaged, another kind, a covered file gone) only skips it.
 */
export async function readHeld(repo: Repository, names: string[]): Promise<HeldTable | undefined> {
  const listed = new Set(names);
  const candidates: { name: string; time: number }[] = [];
  for (const name of await listTips(repo)) {
    if (!name.startsWith(PREFIX) || !isContentName(name.slice(PREFIX.length))) continue;
    const stat = await repo.fs.statIfExists(repo.path('tips', name)).catch(() => undefined);
    if (stat) candidates.push({ name, time: stat.mtimeMs });
  }
  candidates.sort((a, b) => b.time - a.time);
  for (const { name } of candidates) {
    const path = repo.path('tips', name);
    try {
      const value = decodeMetadataFile<StoredHeld>('held', await readRepositoryFile(repo.fs, path, METADATA_STORED_BYTES_MAX), name.slice(PREFIX.length), path, repo.keys);
      if (value.version !== HELD_VERSION || !Array.isArray(value.names) || !(value.ids instanceof Uint8Array) || value.ids.byteLength % HASH_BYTES !== 0) {
        throw new MailstoreError('CORRUPT', `${path}: not a held-ids table`, { path });
      }
      if (!value.names.every((covered) => listed.has(covered))) continue; // pruned since: its ids may no longer be held
      return { covered: new Set(value.names), ids: Buffer.from(value.ids.buffer, value.ids.byteOffset, value.ids.byteLength) };
    } catch (error) {
      if (!isMailstoreError(error) && !(error as NodeJS.ErrnoException).code) throw error; // a bug, not a damaged cache
    }
  }
  return undefined;
}

/** The blob ids an index file lists. */
export function indexIds(index: IndexFile): Uint8Array[] {
  return index.files.flatMap(({ blobs }) => blobs.map(([id]) => id));
}

/**
 * The ids of index files (`read`: each file's name and ids) added to `table`'s. Undefined when an
 * id is not 32 bytes (a table holds only those; the caller goes on without one).
 */
export function mergeHeld(table: HeldTable | undefined, read: { name: string; ids: Uint8Array[] }[]): HeldTable | undefined {
  const added: Buffer[] = [];
  for (const { ids } of read) {
    for (const id of ids) {
      if (id.length !== HASH_BYTES) return undefined;
      if (!table || !tableHolds(table, id)) added.push(Buffer.from(id.buffer, id.byteOffset, id.byteLength));
    }
  }
  const covered = new Set([...(table?.covered ?? []), ...read.map((r) => r.name)]);
  const before = table?.ids ?? Buffer.alloc(0);
  if (added.length === 0) return { covered, ids: before };
  const sorted = sortHashes(added);
  // each new id (none is in the table: tableHolds looked) inserted at its place, the table's ids
  // between two of them copied at once; an id listed twice (two index files) goes in once
  const out = Buffer.allocUnsafe(before.length + sorted.length * HASH_BYTES);
  let o = 0, from = 0;
  for (let j = 0; j < sorted.length; j++) {
    const id = sorted[j]!;
    if (j > 0 && compareHashes(sorted[j - 1]!, 0, id, 0) === 0) continue;
    const at = searchHash(before, id).at * HASH_BYTES;
    o += before.copy(out, o, from, at);
    from = at;
    o += id.copy(out, o);
  }
  o += before.copy(out, o, from);
  return { covered, ids: out.subarray(0, o) };
}

/**
 * Writes `table` for the next run and removes the older tables (best effort, never synced: a cache;
 * a run that cannot write it only reads more index files next time).
 */
export async function writeHeld(repo: Repository, table: HeldTable): Promise<void> {
  const value: StoredHeld = { version: HELD_VERSION, names: [...table.covered].sort(), ids: table.ids };
  // level 0: the ids are hashes, which deflate cannot shrink
  const bytes = encodeMetadataFile('held', value, repo.keys, FORMAT_VERSION, 0);
  const name = `${PREFIX}${contentName(bytes)}`;
  try {
    await ensureDir(repo.fs, repo.path('tips'));
    await writeFileAtomic(repo.fs, repo.path('tips', name), bytes);
    for (const other of await listTips(repo)) {
      if (other !== name && other.startsWith(PREFIX)) await repo.fs.unlink(repo.path('tips', other)).catch(() => undefined);
    }
  } catch {
    // the next run reads the index files this table would have covered
  }
}

/**
 * Removes the tables that cover any of `names` (damaged index files): a lookup in one would say
 * their blobs are held. Best effort, as every write of a table; the next run decodes the files.
 */
export async function removeHeldCovering(repo: Repository, names: Set<string>): Promise<void> {
  for (const name of await listTips(repo).catch(() => [] as string[])) {
    if (!name.startsWith(PREFIX)) continue;
    const path = repo.path('tips', name);
    try {
      const value = decodeMetadataFile<StoredHeld>('held', await readRepositoryFile(repo.fs, path, METADATA_STORED_BYTES_MAX), name.slice(PREFIX.length), path, repo.keys);
      if (!value.names.some((covered) => names.has(covered))) continue;
    } catch {
      // a table that does not read is of no use either
    }
    await repo.fs.unlink(path).catch(() => undefined);
  }
}
