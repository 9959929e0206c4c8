// `mailstore backup repair --new-config`: a config for an unencrypted repository whose own is
// damaged or lost. Nothing in such a repository depends on it but its id (every file is named by
// its content, every record names its own codec, blob ids are plain BLAKE3), so without it every
// snapshot was unreadable for 138 bytes; an encrypted one's holds the salt of its keys and is refused.
// The new config keeps the repository's version (its records' codecs say it): a version-1 or -2
// repository given a version-3 config was written with zstd and refused by the mailstore that made it.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { MailstoreError, fromSystemError, isMailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { createFileDurable, ensureDir } from '../fs/durable.js';
import { DATA_HEADER_BYTES, FILE_HEADER_BYTES, RECORD_HEADER_BYTES, REPO_VERSION_NEW, isContentName, metadataFileSealed, recordHeaderVersion } from './format.js';
import { REPO_FORMAT, REPO_LAYOUT, encodeConfig, holdsSnapshots, readConfig } from './repository.js';
import { openRepositoryFile } from './repository-read.js';

export interface NewConfigSummary {
  /** The new repository id (its BACKUPS records in stores name the old one: the next backup records this one). */
  id: string;
  /** Where the damaged config was set aside (absent: there was none). */
  setAside?: string;
  /** The repository version written: the one its records say (repositoryVersion). */
  version: number;
  /** What told it: the codecs of its data records, or nothing (1: what every mailstore reads). */
  versionFrom: 'records' | 'none';
}

export async function writeNewConfig(fs: FileSystem, dir: string): Promise<NewConfigSummary> {
  const damaged = await configDamaged(fs, dir);
  const configPath = join(dir, REPO_LAYOUT.config);
  if (!(await holdsSnapshots(fs, dir))) throw new MailstoreError('NOT_FOUND', `${dir} holds no snapshot files: no backup repository to write a config for`, { path: dir });
  await refuseSealed(fs, dir);
  const { version, versionFrom } = await repositoryVersion(fs, dir);
  let setAside: string | undefined;
  try {
    if (damaged) {
      await ensureDir(fs, join(dir, REPO_LAYOUT.damaged));
      setAside = join(dir, REPO_LAYOUT.damaged, `config.${Date.now()}`);
      await fs.rename(configPath, setAside); // kept, never removed: it is the only trace of the old id
      await fs.syncDir(join(dir, REPO_LAYOUT.damaged));
    }
    const id = randomUUID();
    await createFileDurable(fs, configPath, encodeConfig({ format: REPO_FORMAT, version, id, created: new Date().toISOString() }));
    return setAside ? { id, setAside, version, versionFrom } : { id, version, versionFrom };
  } catch (error) {
    throw fromSystemError(error, 'writing a new repository config at', configPath);
  }
}

/** True for a config that does not read, false for none; INVALID for one that reads (nothing to mend). */
async function configDamaged(fs: FileSystem, dir: string): Promise<boolean> {
  let config;
  try {
    config = await readConfig(fs, dir);
  } catch (error) {
    if (isMailstoreError(error, 'CORRUPT')) return true;
    throw error;
  }
  if (config) throw new MailstoreError('INVALID', `${dir}: its config reads; there is nothing to write again`, { path: dir });
  return false;
}

/** REFUSED when any snapshot or index file is sealed: a new config would carry no salt for its keys. */
async function refuseSealed(fs: FileSystem, dir: string): Promise<void> {
  let plain = 0;
  for (const area of [REPO_LAYOUT.snapshots, REPO_LAYOUT.index]) {
    const names = (await fs.readdir(join(dir, area)).catch(() => [] as string[])).filter(isContentName);
    for (const name of names) {
      const sealed = await headerOf(fs, join(dir, area, name)).then(metadataFileSealed, () => undefined); // a file that does not read tells nothing
      if (sealed) throw new MailstoreError('REFUSED', `${dir} is encrypted (${area}/${name.slice(0, 12)} is sealed): its config holds the salt of its keys, which no new one can; put back its copy from a backup of the repository`, { path: dir });
      if (sealed === false) plain++;
    }
  }
  if (plain === 0) throw new MailstoreError('REFUSED', `${dir}: no snapshot or index file has a header that reads, so nothing tells whether the repository was encrypted; nothing was written`, { path: dir });
}

async function headerOf(fs: FileSystem, path: string): Promise<Buffer> {
  const handle = await openRepositoryFile(fs, path);
  try {
    const header = Buffer.alloc(FILE_HEADER_BYTES);
    return header.subarray(0, await handle.read(header, 0, FILE_HEADER_BYTES, 0));
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * The lowest version the repository's records allow: a zstd record only version 3 writes, a
 * deflate one only version 1, a Brotli one version 2 (or 3 where zstd's binary did not load: 2
 * writes Brotli as that one did). With no compressed record (none, or all stored as they are): 1.
 * Never the damaged config's text: one flipped bit turns its "2" into "3". Every mailstore that
 * reads a version reads the ones below it, so the mailstore that made the repository still reads it.
 */
async function repositoryVersion(fs: FileSystem, dir: string): Promise<Pick<NewConfigSummary, 'version' | 'versionFrom'>> {
  const records = await highestRecordVersion(fs, dir);
  return records > 0 ? { version: records, versionFrom: 'records' } : { version: 1, versionFrom: 'none' };
}

/** The highest recordHeaderVersion of the data files' records (0: none compressed), each file walked by its record headers up to the first that does not check. */
async function highestRecordVersion(fs: FileSystem, dir: string): Promise<number> {
  let highest = 0;
  const names = (await fs.readdir(join(dir, REPO_LAYOUT.data)).catch(() => [] as string[])).filter(isContentName);
  for (const name of names) {
    const handle = await openRepositoryFile(fs, join(dir, REPO_LAYOUT.data, name)).catch(() => undefined); // a file that does not open tells nothing
    if (!handle) continue;
    try {
      const header = Buffer.alloc(RECORD_HEADER_BYTES);
      for (let at = DATA_HEADER_BYTES; ; at += RECORD_HEADER_BYTES + header.readUInt32BE(40)) {
        if ((await handle.read(header, 0, RECORD_HEADER_BYTES, at)) < RECORD_HEADER_BYTES) break;
        const version = recordHeaderVersion(header);
        if (version === undefined) break;
        highest = Math.max(highest, version);
        if (highest === REPO_VERSION_NEW) return highest;
      }
    } finally {
      await handle.close().catch(() => undefined);
    }
  }
  return highest;
}
