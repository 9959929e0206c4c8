// Is this directory the store we think it is? A missing partition looks exactly like "everything
// was deleted", so the STORE identity, the packs/ and journal/ markers and the root's device id are
// checked at open and before every new file is created. Nothing is created when they fail.
import { randomUUID } from 'node:crypto';
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
 * The single-writer lock: LOCK holds the owner's pid. A lock whose process is gone is taken over,
 * and `stale` says so: the previous owner crashed.
 */
export async function takeLock(fs: FileSystem, root: string): Promise<{ release: () => Promise<void>; stale: boolean }> {
  let stale = false;
  const path = join(root, LAYOUT.lock);
  const mine = Buffer.from(`${process.pid}\n`);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await fs.open(path, 'createNew');
      try {
        await handle.write(mine, 0);
      } finally {
        await handle.close();
      }
      const release = async () => {
        const now = await fs.readFile(path).catch(() => undefined);
        if (now && now.equals(mine)) await fs.unlink(path).catch(() => undefined);
      };
      return { release, stale };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw fromSystemError(error, 'taking lock', path);
    }
    const holder = Number((await fs.readFile(path).catch(() => Buffer.from(''))).toString().trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) {
      throw new MailstoreError('LOCKED', `the store at ${root} is in use by process ${holder} (LOCK); stop it or wait`, { path });
    }
    if (holder === process.pid) {
      throw new MailstoreError('LOCKED', `the store at ${root} is already open in this process (pid ${process.pid})`, { path });
    }
    await fs.unlink(path).catch(() => undefined); // stale: its process is gone
    stale = true;
  }
  throw new MailstoreError('LOCKED', `could not take the lock ${path}`, { path });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
