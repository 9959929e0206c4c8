// What the backup commands share: --repo and --key-file, opening the repository, and closing it
// whatever happened. A key file is read whole and bounded (it is a secret, not data).
import type { Command } from 'commander';
import { Repository } from '../backup/repository.js';
import { unmountedRepositoryError } from '../backup/new-repository.js';
import { MailstoreError, fromSystemError, isMailstoreError } from '../errors.js';
import { unmountedMountPointAbove } from '../fs/mounts.js';
import { absolutePath } from './context.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { backupLimits } from '../limits.js';
import type { FileSystem } from '../fs/filesystem.js';
import { refuseSecretReadableByOthers } from '../fs/secret-file.js';
import { bucketUrlOfRepo } from '../objstore/bucket-url.js';

export interface RepoOptions {
  repo?: string;
  keyFile?: string;
  repoCredentials?: string;
}

export async function readKeyFile(path: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    const stat = await nodeFileSystem.stat(path);
    if (!stat.isFile || stat.size > backupLimits.keyFileBytesMax) throw new MailstoreError('INVALID', `the key file ${path} must be a file of at most ${backupLimits.keyFileBytesMax} bytes`, { path });
    refuseSecretReadableByOthers(stat, path, 'the key file');
    bytes = await nodeFileSystem.readFile(path);
  } catch (error) {
    throw fromSystemError(error, 'reading the key file', path);
  }
  if (bytes.length < backupLimits.keyFileBytesMin) {
    throw new MailstoreError('INVALID', `the key file ${path} holds ${bytes.length} bytes; it needs at least ${backupLimits.keyFileBytesMin} (head -c 32 /dev/urandom > FILE)`, { path });
  }
  return bytes;
}

/** A secret file's text, refused when others may read it. */
async function readSecretText(path: string, what: string): Promise<string> {
  try {
    refuseSecretReadableByOthers(await nodeFileSystem.stat(path), path, what);
    return (await nodeFileSystem.readFile(path)).toString('utf8');
  } catch (error) {
    throw fromSystemError(error, `reading ${what}`, path);
  }
}

/**
 * Opens --repo (created when `create` and missing or empty; a function `create` is asked first and
 * refuses by throwing), runs `work`, closes it.
 */
export async function withRepository<T>(command: Command, create: boolean | (() => Promise<void>), work: (repo: Repository) => Promise<T>): Promise<T> {
  const options = command.optsWithGlobals() as RepoOptions;
  if (!options.repo) throw new MailstoreError('INVALID', '--repo DIR is required: the backup repository');
  const secret = options.keyFile !== undefined ? await readKeyFile(absolutePath(options.keyFile)) : undefined;
  const { fs, dir } = await repositoryLocation(options);
  const repo = await Repository.open(fs, dir, { create: create !== false, beforeCreate: typeof create === 'function' ? create : undefined, secret }).catch(async (error: unknown) => {
    throw (isMailstoreError(error, 'NOT_FOUND') && fs === nodeFileSystem && (await unmountedError(dir))) || error;
  });
  try {
    return await work(repo);
  } finally {
    await repo.close();
  }
}

/**
 * No repository at a directory at or under an /etc/fstab mount point with nothing mounted on it:
 * the backup disk did not mount (UNMOUNTED, as a store's unmounted disk), not "no repository there,
 * 'mailstore backup' creates one", which sent the admin to make a new one in the empty mount point.
 */
async function unmountedError(dir: string): Promise<MailstoreError | undefined> {
  const unmounted = await unmountedMountPointAbove(nodeFileSystem, dir).catch(() => undefined);
  if (!unmounted) return undefined;
  return unmountedRepositoryError(dir, unmounted, 'mount the backup disk (findmnt, mount) and run the command again');
}

/** Where --repo is, not opened: for a repository whose config does not read (backup repair --new-config). */
export function repositoryPlace(command: Command): Promise<{ fs: FileSystem; dir: string }> {
  const options = command.optsWithGlobals() as RepoOptions;
  if (!options.repo) throw new MailstoreError('INVALID', '--repo DIR is required: the backup repository');
  return repositoryLocation(options);
}

/** A directory, or an s3: URL: then the repository's files are objects under that prefix (bucket-fs.ts). */
async function repositoryLocation(options: RepoOptions): Promise<{ fs: FileSystem; dir: string }> {
  const url = bucketUrlOfRepo(options.repo!);
  if (url === undefined) {
    if (options.repoCredentials !== undefined) throw new MailstoreError('INVALID', '--repo-credentials is for an s3: repository');
    return { fs: nodeFileSystem, dir: absolutePath(options.repo!) };
  }
  // loaded only for an s3: repository (bucket-url.ts)
  const [{ BucketFileSystem, credentialsFrom }, { refuseCredentialsInUrl }] = await Promise.all([import('../objstore/bucket-fs.js'), import('../objstore/s3.js')]);
  refuseCredentialsInUrl(url, '--repo');
  const path = options.repoCredentials === undefined ? undefined : absolutePath(options.repoCredentials);
  const text = path === undefined ? undefined : (await readSecretText(path, 'the repository credentials'));
  return { fs: await BucketFileSystem.connect(url, credentialsFrom(text, path)), dir: '/' };
}

export const REPO_HELP = `
The repository (docs/BACKUP.md) is a directory: data files of deduplicated, compressed blobs
named by their content hash, index files, one file per snapshot. Keep it on another disk or host.
With --key-file it is encrypted (AES-256-GCM): keep a copy of the key file elsewhere; without it
nothing can be restored.`;
