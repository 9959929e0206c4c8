// Is this directory the store we think it is? A missing partition looks exactly like "everything
// was deleted", so the STORE identity, the packs/ and journal/ markers and the root's device id are
// checked at open and before every new file is created. Nothing is created when they fail.
import { randomUUID } from 'node:crypto';
import { Level } from 'level';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { ensureDir, writeFileDurable } from '../fs/durable.js';

export const STORE_FORMAT = 'mailstore';
export const STORE_VERSION = 1;

export interface StoreIdentity {
  format: string;
  version: number;
  storeId: string;
  created: string;
}

export const LAYOUT = {
  identity: 'STORE',
  lock: 'LOCK',
  /** LevelDB's fcntl lock is the kernel lock behind LOCK. */
  lockDb: 'lock',
  packs: 'packs',
  journal: 'journal',
  index: 'index',
  quarantine: 'quarantine',
  tmp: 'tmp',
  marker: 'STORE-ID',
} as const;

function encodeIdentity(identity: StoreIdentity): Buffer {
  const body = JSON.stringify(identity);
  return Buffer.from(`${body}\ncrc32 ${crc32(Buffer.from(body)).toString(16).padStart(8, '0')}\n`);
}

function decodeIdentity(bytes: Buffer, path: string): StoreIdentity {
  const text = bytes.toString('utf8');
  const m = /^(\{.*\})\ncrc32 ([0-9a-f]{8})\n$/s.exec(text);
  const broken = (why: string) => new MailstoreError('UNMOUNTED', `${path} is not a valid mailstore identity (${why}); is this the right directory?`, { path });
  if (!m) throw broken('unreadable');
  if (crc32(Buffer.from(m[1])).toString(16).padStart(8, '0') !== m[2]) throw broken('checksum mismatch');
  const identity = JSON.parse(m[1]) as StoreIdentity;
  if (identity.format !== STORE_FORMAT || typeof identity.storeId !== 'string') throw broken('foreign format');
  if (identity.version !== STORE_VERSION) {
    throw new MailstoreError('INVALID', `${path}: store format version ${identity.version} is not supported by this mailstore (${STORE_VERSION})`, { path });
  }
  return identity;
}

export function storeIdBytes(identity: StoreIdentity): Buffer {
  return Buffer.from(identity.storeId.replace(/-/g, ''), 'hex');
}

/** Creates a new store in an empty (or missing) directory. */
export async function initStore(fs: FileSystem, root: string): Promise<StoreIdentity> {
  const stat = await fs.statIfExists(root);
  if (stat) {
    if (!stat.isDirectory) throw new MailstoreError('INVALID', `${root} exists and is not a directory`, { path: root });
    const names = (await fs.readdir(root)).filter((n) => n !== 'lost+found');
    if (names.includes(LAYOUT.identity)) throw new MailstoreError('EXISTS', `a store already exists at ${root}`, { path: root });
    if (names.length > 0) {
      throw new MailstoreError('INVALID', `${root} is not empty and holds no store (found ${names.slice(0, 3).join(', ')}); refusing to initialise over it`, { path: root });
    }
  } else {
    await fs.mkdir(root).catch((e) => { throw fromSystemError(e, 'creating store directory', root); });
  }
  const identity: StoreIdentity = { format: STORE_FORMAT, version: STORE_VERSION, storeId: randomUUID(), created: new Date().toISOString() };
  try {
    for (const dir of [LAYOUT.packs, LAYOUT.journal, LAYOUT.quarantine, LAYOUT.tmp]) {
      await ensureDir(fs, join(root, dir));
    }
    // The markers let open tell "packs/ is an empty mount point" from "a store with no mail yet".
    await writeFileDurable(fs, join(root, LAYOUT.packs, LAYOUT.marker), Buffer.from(identity.storeId + '\n'));
    await writeFileDurable(fs, join(root, LAYOUT.journal, LAYOUT.marker), Buffer.from(identity.storeId + '\n'));
    // STORE last: a crash before this leaves a directory that init can be re-run on after clearing.
    await writeFileDurable(fs, join(root, LAYOUT.identity), encodeIdentity(identity));
  } catch (error) {
    throw fromSystemError(error, 'initialising store', root);
  }
  return identity;
}

/** Reads STORE and the markers; throws UNMOUNTED (never creates anything) when they are wrong. */
export async function verifyIdentity(fs: FileSystem, root: string): Promise<StoreIdentity> {
  const rootStat = await fs.statIfExists(root).catch((e) => { throw fromSystemError(e, 'reading', root); });
  if (!rootStat) throw new MailstoreError('NOT_FOUND', `no store at ${root} (create one with 'mailstore init')`, { path: root });
  const path = join(root, LAYOUT.identity);
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new MailstoreError('UNMOUNTED',
        `${root} has no STORE identity file: it is not a mailstore, or the partition holding it is not mounted. Nothing was changed.`, { path });
    }
    throw fromSystemError(error, 'reading store identity', path);
  }
  const identity = decodeIdentity(bytes, path);
  for (const dir of [LAYOUT.packs, LAYOUT.journal]) {
    const marker = join(root, dir, LAYOUT.marker);
    let text: string;
    try {
      text = (await fs.readFile(marker)).toString('utf8').trim();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new MailstoreError('UNMOUNTED',
          `${join(root, dir)} is missing or empty (no ${LAYOUT.marker} marker): was it moved, or is its partition not mounted? Nothing was changed.`, { path: marker });
      }
      throw fromSystemError(error, 'reading marker', marker);
    }
    if (text !== identity.storeId) {
      throw new MailstoreError('UNMOUNTED', `${join(root, dir)} belongs to store ${text}, not ${identity.storeId}: a foreign directory is mounted here`, { path: marker });
    }
  }
  return identity;
}

/**
 * The single-writer lock. The exclusion itself is a kernel lock: LevelDB's fcntl lock on a tiny
 * database in `lock/` (node has no flock), released by the kernel when the owner dies, so two
 * processes can never both take over a crashed owner's lock. `LOCK` holds the owner's pid for the
 * message a second opener gets; finding it left by a dead process means the previous owner
 * crashed (`stale`).
 */
export async function takeLock(fs: FileSystem, root: string): Promise<{ release: () => Promise<void>; stale: boolean }> {
  const path = join(root, LAYOUT.lock);
  const kernelLock = new Level(join(root, LAYOUT.lockDb), { createIfMissing: true });
  try {
    await kernelLock.open();
  } catch (error) {
    if ((error as { cause?: { code?: string } }).cause?.code !== 'LEVEL_LOCKED') throw fromSystemError((error as { cause?: Error }).cause ?? error, 'taking lock', join(root, LAYOUT.lockDb));
    const holder = Number((await fs.readFile(path).catch(() => Buffer.from(''))).toString().trim());
    if (holder === process.pid) {
      throw new MailstoreError('LOCKED', `the store at ${root} is already open in this process (pid ${process.pid})`, { path });
    }
    throw new MailstoreError('LOCKED', `the store at ${root} is in use by process ${holder > 0 ? holder : '(unknown)'} (LOCK); stop it or wait`, { path });
  }
  const mine = Buffer.from(`${process.pid}\n`);
  let stale = false;
  try {
    const before = await fs.readFile(path).catch(() => undefined);
    stale = before !== undefined && !before.equals(mine);
    const handle = await fs.open(path, 'createOrOpen');
    try {
      await handle.truncate(0);
      await handle.write(mine, 0);
    } finally {
      await handle.close();
    }
  } catch (error) {
    await kernelLock.close().catch(() => undefined);
    throw fromSystemError(error, 'taking lock', path);
  }
  const release = async () => {
    const now = await fs.readFile(path).catch(() => undefined);
    if (now && now.equals(mine)) await fs.unlink(path).catch(() => undefined);
    await kernelLock.close().catch(() => undefined);
  };
  return { release, stale };
}
