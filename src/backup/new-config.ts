// `mailstore backup repair --new-config`: a config for an unencrypted repository whose own is
// damaged or lost. Nothing in such a repository depends on it but its id (every file is named by
// its content, every record names its own codec, blob ids are plain BLAKE3), so without it every
// snapshot was unreadable for 138 bytes; an encrypted one's holds the salt of its keys and is refused.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { MailstoreError, fromSystemError, isMailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { createFileDurable, ensureDir } from '../fs/durable.js';
import { FILE_HEADER_BYTES, REPO_VERSION_NEW, isContentName, metadataFileSealed } from './format.js';
import { REPO_FORMAT, REPO_LAYOUT, encodeConfig, holdsSnapshots, readConfig } from './repository.js';
import { openRepositoryFile } from './repository-read.js';

export interface NewConfigSummary {
  /** The new repository id (its BACKUPS records in stores name the old one: the next backup records this one). */
  id: string;
  /** Where the damaged config was set aside (absent: there was none). */
  setAside?: string;
}

export async function writeNewConfig(fs: FileSystem, dir: string): Promise<NewConfigSummary> {
  const damaged = await configDamaged(fs, dir);
  const configPath = join(dir, REPO_LAYOUT.config);
  if (!(await holdsSnapshots(fs, dir))) throw new MailstoreError('NOT_FOUND', `${dir} holds no snapshot files: no backup repository to write a config for`, { path: dir });
  await refuseSealed(fs, dir);
  let setAside: string | undefined;
  try {
    if (damaged) {
      await ensureDir(fs, join(dir, REPO_LAYOUT.damaged));
      setAside = join(dir, REPO_LAYOUT.damaged, `config.${Date.now()}`);
      await fs.rename(configPath, setAside); // kept, never removed: it is the only trace of the old id
      await fs.syncDir(join(dir, REPO_LAYOUT.damaged));
    }
    const id = randomUUID();
    await createFileDurable(fs, configPath, encodeConfig({ format: REPO_FORMAT, version: REPO_VERSION_NEW, id, created: new Date().toISOString() }));
    return setAside ? { id, setAside } : { id };
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
