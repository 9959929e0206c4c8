// The blobs snapshots need that the repository holds no good copy of (docs/BACKUP.md, "Healing
// damaged blobs"): `backup repair` writes them down in heal/<hex>, and every later backup reads the
// list and copies each of them again from the store while the store still has it. Without it a
// damaged record stayed damaged for ever: an incremental run takes its parent's blobs for held, and
// a lookup in the index files finds the damaged record listed, so no run copied the blob again.
//
// A list is a metadata file (kind 5, sealed when the repository is encrypted) named by its content,
// written durably and never changed: a shorter list replaces it (the new one durable first, then
// the old one removed), so a crash leaves two lists, whose union is read (an entry healed already
// is only copied once more). No list, or an empty heal/ (the steady state), costs a run one readdir.
import { MailstoreError, fromSystemError, isMailstoreError } from '../errors.js';
import { ensureDir, writeFileDurable } from '../fs/durable.js';
import { readRepositoryFile } from './repository-read.js';
import { FORMAT_VERSION, METADATA_STORED_BYTES_MAX, contentName, decodeMetadataFile, encodeMetadataFile, isContentName } from './format.js';
import type { Repository } from './repository.js';

const HEAL_VERSION = 1;

/** A blob to copy again: its id in the repository, its hash (the store's id of the message), and the first message that needs it. */
export interface HealEntry {
  id: Buffer;
  hash: Buffer;
  what: string;
}

interface StoredHeal {
  version: number;
  /** [blob id, hash, "snapshot S mailbox uid N"], ascending by id. */
  entries: [Uint8Array, Uint8Array, string][];
}

export interface HealLists {
  /** The list files read (a later write replaces them). */
  names: string[];
  /** Their entries, each id once. */
  entries: HealEntry[];
  /** List files that did not read (damaged): left in place, their entries unknown until a repair lists them again. */
  unreadable: string[];
}

const view = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** The content names in heal/ (none when it is missing: no repair ever found damage). */
export async function listHeal(repo: Repository): Promise<string[]> {
  try {
    return (await repo.fs.readdir(repo.path('heal'))).filter(isContentName);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fromSystemError(error, 'listing', repo.path('heal'));
  }
}

/** Every list in heal/, merged. A list that does not read is named in `unreadable`, never trusted. */
export async function readHealLists(repo: Repository): Promise<HealLists> {
  const out: HealLists = { names: [], entries: [], unreadable: [] };
  const seen = new Set<string>();
  for (const name of await listHeal(repo)) {
    const path = repo.path('heal', name);
    let value: StoredHeal;
    try {
      value = decodeMetadataFile<StoredHeal>('heal', await readRepositoryFile(repo.fs, path, METADATA_STORED_BYTES_MAX).catch((error) => { throw fromSystemError(error, 'reading the heal list', path); }), name, path, repo.keys);
      if (value.version !== HEAL_VERSION || !Array.isArray(value.entries)) throw new MailstoreError('CORRUPT', `${path}: not a heal list`, { path });
    } catch (error) {
      if (!isMailstoreError(error, 'CORRUPT')) throw error;
      out.unreadable.push(name);
      continue;
    }
    out.names.push(name);
    for (const [id, hash, what] of value.entries) {
      const key = view(id).toString('hex');
      if (seen.has(key)) continue;
      seen.add(key);
      out.entries.push({ id: view(id), hash: view(hash), what });
    }
  }
  return out;
}

/**
 * `entries` as the one list in heal/: written durably (temp, fsync, rename, directory fsync) before
 * the lists it replaces (`replacing`) are removed; none written when `entries` is empty. Returns
 * the new list's name.
 */
export async function writeHealList(repo: Repository, entries: HealEntry[], replacing: string[]): Promise<string | undefined> {
  const dir = repo.path('heal');
  let name: string | undefined;
  if (entries.length > 0) {
    const sorted = [...entries].sort((a, b) => Buffer.compare(a.id, b.id));
    const value: StoredHeal = { version: HEAL_VERSION, entries: sorted.map((e) => [e.id, e.hash, e.what]) };
    const bytes = encodeMetadataFile('heal', value, repo.keys, FORMAT_VERSION);
    name = contentName(bytes);
    const path = repo.path('heal', name);
    try {
      await ensureDir(repo.fs, dir);
      if (!(await repo.fs.statIfExists(path))) await writeFileDurable(repo.fs, path, bytes);
    } catch (error) {
      throw fromSystemError(error, 'writing the heal list', path);
    }
  }
  let removed = false;
  for (const old of replacing) {
    if (old === name) continue;
    await repo.fs.unlink(repo.path('heal', old)).then(() => { removed = true; }, (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw fromSystemError(error, 'removing', repo.path('heal', old));
    });
  }
  if (removed) await repo.fs.syncDir(dir).catch((error) => { throw fromSystemError(error, 'syncing', dir); });
  return name;
}
