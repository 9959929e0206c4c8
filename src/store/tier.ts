// The object-storage tier (docs/OBJECT-STORAGE.md): packs are written and committed locally as
// always (the journal stays the commit point, one fsync a batch); sealed packs then move to a
// bucket. A move, in this order, each step durable before the next:
//   1. seal the pack being appended to (no batch writes into a pack being moved)
//   2. upload the pack file to <prefix>/<store id>/packs/NNNNNNNN.pack
//   3. read the object back and compare its BLAKE3 with the local file's
//   4. record it in the journal: meta.set tier/pack/NNNNNNNN = {k, b, d} (the commit of the move)
//   5. only then delete the local file (and fsync packs/)
// A crash before 4 leaves the local pack serving (the object is uploaded again next time); after 4
// and before 5 the local copy is removed by the next open or flush. Nothing is ever deleted from
// the bucket here; reads of a moved pack use ranged GETs, verified by hash like every read.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { MailstoreError, fromSystemError } from '../errors.js';
import { refuseSecretReadableByOthers } from '../fs/secret-file.js';
import type { FileSystem } from '../fs/filesystem.js';
import { createHasher, hashHex } from '../hash/blake3.js';
import type { IndexDb } from '../index/index-db.js';
import { keys } from '../keys/index-keys.js';
import type { PackStore } from '../blob/pack-store.js';
import { limits } from '../limits.js';
import { RemotePacks, type TieredPack } from '../objstore/remote-packs.js';
import { Bucket, parseBucketUrl, parseCredentials, refuseCredentialsInUrl, type Credentials } from '../objstore/s3.js';
import type { Op } from './records.js';
import { writeStoreFile, type StoreRoot } from './setting-file.js';
import { checkPolicy, planMoves, type LocalPack, type TierPolicy } from './tier-policy.js';
import type { Mutation } from './writer.js';

import { TIER_LOST, TIER_META, TIER_SETTINGS_FILE, noObjectStore } from './tier-names.js';
import { monotonicMs } from '../monotonic.js';

export { TIER_LOST, TIER_META, TIER_SETTINGS_FILE } from './tier-names.js';

export interface TierSettings {
  url: string;
  /** Absolute path of the ACCESS_KEY:SECRET_KEY file; absent: the environment supplies them. */
  credentials?: string;
  /** When sealed packs move (tier-policy.ts); absent: the defaults. */
  policy?: TierPolicy;
}

export interface TierHost {
  root: string;
  fs: FileSystem;
  storeIdText: string;
  db: IndexDb;
  packs: PackStore;
  readOnly: boolean;
  submit<T>(mutation: Mutation<T>): Promise<T>;
  runExclusive<T>(fn: () => Promise<T>): Promise<T>;
}

export interface TierFlushResult {
  packsMoved: number;
  bytesMoved: number;
  localBytesAfter: number;
  remoteBytes: number;
  seconds: number;
}

export interface TierStatus {
  url: string;
  localPacks: number;
  localBytes: number;
  remotePacks: number;
  remoteBytes: number;
  /** Local bytes ÷ all pack bytes. */
  localShare: number;
  /** The move policy in force (defaults filled in). */
  policy: { localBytesMax: number | null; localShareDefault: number; moveAfterMs: number };
}

function encodeSettings(settings: TierSettings): Buffer {
  const body = JSON.stringify(settings);
  return Buffer.from(`${body}\ncrc32 ${crc32(Buffer.from(body)).toString(16).padStart(8, '0')}\n`);
}

function decodeSettings(bytes: Buffer, path: string): TierSettings {
  const m = /^(\{.*\})\ncrc32 ([0-9a-f]{8})\n$/s.exec(bytes.toString('utf8'));
  if (!m || crc32(Buffer.from(m[1])).toString(16).padStart(8, '0') !== m[2]) {
    // not 'tier set': it opens the store, which reads this file first, and it keeps the URL it finds
    throw new MailstoreError('CORRUPT', `${path} (the object-store settings) is damaged; write it again: 'mailstore --store EMPTY-DIR init --object-store URL [--object-store-credentials FILE]' with this store's bucket URL (its prefix, without the store id), copy EMPTY-DIR/OBJECT-STORE over this file, then 'mailstore tier set' for a move policy other than the default (RECOVERY.md)`, { path });
  }
  const settings = JSON.parse(m[1]) as TierSettings;
  if (settings.policy) checkPolicy(settings.policy);
  return settings;
}

/**
 * Checks the URL, the credentials and that the bucket answers (before `init --object-store` creates
 * anything). A credentials file others may read is refused here, where the admin names it; a store
 * that already opens with one keeps opening (its daemon is not stopped by an upgrade).
 */
export async function checkTierSettings(fs: FileSystem, settings: TierSettings): Promise<void> {
  refuseCredentialsInUrl(settings.url, '--object-store');
  if (settings.credentials) {
    const stat = await fs.stat(settings.credentials).catch((error) => { throw fromSystemError(error, 'reading the object-store credentials', settings.credentials!); });
    refuseSecretReadableByOthers(stat, settings.credentials, 'the object-store credentials');
  }
  const bucket = new Bucket(parseBucketUrl(settings.url), await loadCredentials(fs, settings));
  await bucket.check();
}

/**
 * Records the bucket in a store being made (init, rebuild-from-bucket); from its next open on, sealed
 * packs may move there. Through the store's mount check: a root whose file system left it is UNMOUNTED.
 */
export async function writeTierSettings(store: StoreRoot, settings: TierSettings): Promise<void> {
  await writeStoreFile(store, TIER_SETTINGS_FILE, encodeSettings(settings), 'the object-store settings');
}

/**
 * Changes the move policy kept in the store's settings (`init --local-bytes-max`, `tier set`);
 * fields given as null return to their default. INVALID when the store has no object store.
 */
export async function setTierPolicy(store: StoreRoot, change: { [K in keyof TierPolicy]?: number | null }): Promise<TierPolicy> {
  const settings = await readTierSettings(store.fs, store.root);
  if (!settings) throw noObjectStore(store.root);
  const policy: TierPolicy = { ...settings.policy };
  for (const [name, value] of Object.entries(change) as [keyof TierPolicy, number | null | undefined][]) {
    if (value === null) delete policy[name];
    else if (value !== undefined) policy[name] = value;
  }
  checkPolicy(policy);
  await writeStoreFile(store, TIER_SETTINGS_FILE, encodeSettings({ ...settings, policy }), 'the object-store settings');
  return policy;
}

export async function readTierSettings(fs: FileSystem, root: string): Promise<TierSettings | undefined> {
  const path = join(root, TIER_SETTINGS_FILE);
  const bytes = await fs.readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw fromSystemError(error, 'reading the object-store settings', path);
  });
  return bytes && decodeSettings(bytes, path);
}

/** From the file named in the settings, else MAILSTORE_S3_ACCESS_KEY / MAILSTORE_S3_SECRET_KEY. */
async function loadCredentials(fs: FileSystem, settings: TierSettings): Promise<Credentials> {
  if (settings.credentials) {
    const text = await fs.readFile(settings.credentials).catch((error) => { throw fromSystemError(error, 'reading the object-store credentials', settings.credentials!); });
    return parseCredentials(text.toString('utf8'), settings.credentials);
  }
  const accessKey = process.env.MAILSTORE_S3_ACCESS_KEY, secretKey = process.env.MAILSTORE_S3_SECRET_KEY;
  if (!accessKey || !secretKey) {
    throw new MailstoreError('INVALID', 'the store keeps packs in an object store but has no credentials: give --object-store-credentials FILE or set MAILSTORE_S3_ACCESS_KEY and MAILSTORE_S3_SECRET_KEY');
  }
  return { accessKey, secretKey };
}

/** The meta key that records a pack in the bucket. */
export function tierMetaName(pack: number): string {
  return `${TIER_META}${String(pack).padStart(8, '0')}`;
}

/**
 * On open: when the store has a bucket, the packs recorded as moved are read from it; local copies
 * of moved packs (a crash between steps 4 and 5) are removed on a read-write open.
 */
export async function attachTier(host: TierHost): Promise<RemotePacks | undefined> {
  const settings = await readTierSettings(host.fs, host.root);
  if (!settings) return undefined;
  const address = parseBucketUrl(settings.url);
  const bucket = new Bucket({ ...address, prefix: [address.prefix, host.storeIdText].filter(Boolean).join('/') }, await loadCredentials(host.fs, settings));
  const remote = new RemotePacks(bucket);
  const prefix = keys.meta(TIER_META).subarray(0, -1); // the name without its terminator: a prefix of every tier key
  for await (const [key, info] of host.db.entries<TieredPack>({ prefix })) {
    const pack = Number(key.subarray(prefix.length).toString('utf8').replace(/\0$/, ''));
    if (Number.isSafeInteger(pack) && pack > 0) remote.set(pack, info);
  }
  host.packs.attachRemote(remote);
  const lost = await host.db.get<number[]>(keys.meta(TIER_LOST));
  if (lost?.length) host.packs.skipPackNumbersTo(Math.max(...lost));
  host.packs.limitPackBytes(limits.tierPackBytesMax);
  remote.policy = settings.policy ?? {};
  if (!host.readOnly) await removeMovedLocalCopies(host, remote);
  return remote;
}

/**
 * Removes local files of packs the journal records in the bucket (a crash between steps 4 and 5),
 * each only once a HEAD shows its object there at its recorded size: a local copy is never removed
 * on the journal's word alone, so packs put back by hand after a lost bucket (RECOVERY.md) stay,
 * and an unreachable bucket removes nothing (the next open or flush tries again).
 */
async function removeMovedLocalCopies(host: TierHost, remote: RemotePacks): Promise<number> {
  let removed = 0;
  for (const pack of await host.packs.listLocalPacks()) {
    const info = remote.get(pack);
    if (!info) continue;
    const size = await remote.bucket.size(info.k).catch(() => undefined);
    if (size !== info.b) continue;
    await host.packs.releaseLocal(pack, limits.tierReaderWaitMs);
    removed++;
  }
  if (removed > 0) await host.fs.syncDir(host.packs.dir);
  return removed;
}

/** Records packs lost with the local disk (TIER_LOST; journaled) and keeps new packs above them. */
export async function recordLostPacks(host: TierHost, packs: number[]): Promise<void> {
  if (packs.length === 0) return;
  const before = (await host.db.get<number[]>(keys.meta(TIER_LOST))) ?? [];
  const value = [...new Set([...before, ...packs])].sort((a, b) => a - b);
  await host.submit({ prepare: async () => ({ ops: [{ op: 'meta.set', key: TIER_LOST, value } as Op], result: undefined }) });
  host.packs.skipPackNumbersTo(Math.max(...value));
}

/** Seals the open pack and moves every sealed local pack (all but `keepLocalBytes` worth, newest kept) to the bucket. */
export async function flushTier(host: TierHost, remote: RemotePacks, options: { keepLocalBytes?: number; onPack?: (pack: number, bytes: number) => void } = {}): Promise<TierFlushResult> {
  const started = monotonicMs();
  await removeMovedLocalCopies(host, remote);
  const sealed = await host.runExclusive(async () => host.packs.seal());
  const candidates: { pack: number; bytes: number }[] = [];
  for (const pack of await host.packs.listLocalPacks()) {
    if (pack > sealed || remote.has(pack)) continue;
    candidates.push({ pack, bytes: (await host.fs.stat(host.packs.path(pack))).size });
  }
  // newest first kept local up to the budget (hot mail stays local), the rest moves
  let keep = options.keepLocalBytes ?? 0;
  const moving = [...candidates].reverse().filter((c) => {
    if (c.bytes <= keep) { keep -= c.bytes; return false; }
    return true;
  }).reverse();
  let bytesMoved = 0;
  for (const { pack, bytes } of moving) {
    await movePack(host, remote, pack, bytes);
    bytesMoved += bytes;
    options.onPack?.(pack, bytes);
  }
  let localBytesAfter = 0;
  for (const pack of await host.packs.listLocalPacks()) localBytesAfter += (await host.fs.stat(host.packs.path(pack))).size;
  return { packsMoved: moving.length, bytesMoved, localBytesAfter, remoteBytes: remote.bytes, seconds: (monotonicMs() - started) / 1000 };
}

async function movePack(host: TierHost, remote: RemotePacks, pack: number, bytes: number): Promise<void> {
  const path = host.packs.path(pack);
  const key = remote.bucket.key(`packs/${String(pack).padStart(8, '0')}.pack`);
  const local = await uploadFile(host.fs, path, bytes, (source, sums) => remote.bucket.putStream(key, source, bytes, sums));
  const remoteDigest = await digestObject(remote, key, bytes);
  if (remoteDigest !== local.blake3) {
    throw new MailstoreError('IO', `pack ${pack} read back from ${remote.bucket.urlOf(key)} differs from the local file; it stays local (nothing was removed)`, { path: remote.bucket.urlOf(key) });
  }
  // The object store's checksum (a single-part upload's ETag is the MD5 of its bytes) is recorded
  // when it names these bytes, so a scrub between full passes can check the object without reading it.
  const { etag } = await remote.bucket.stat(key);
  const info: TieredPack = { k: key, b: bytes, d: local.blake3, ...(etag === local.md5 ? { m: local.md5 } : {}) };
  await host.submit({ prepare: async () => ({ ops: [{ op: 'meta.set', key: tierMetaName(pack), value: info } as Op], result: undefined }) });
  remote.set(pack, info);
  await host.packs.releaseLocal(pack, limits.tierReaderWaitMs);
  await host.packs.syncDir();
}

/**
 * One round of the move policy (the background mover, tier-mover.ts): the open pack is left alone;
 * of the sealed local packs, the ones `planMoves` picks move, oldest first.
 */
export async function moveByPolicy(host: TierHost, remote: RemotePacks, nowMs = Date.now(), onPack?: (pack: number, bytes: number) => void): Promise<TierFlushResult> {
  const started = monotonicMs();
  await removeMovedLocalCopies(host, remote);
  const sealedThrough = host.packs.sealedThrough; // read before listing: a pack created meanwhile is above it
  const sealed: LocalPack[] = [];
  let pinnedBytes = 0;
  for (const pack of await host.packs.listLocalPacks()) {
    if (remote.has(pack)) continue;
    const stat = await host.fs.stat(host.packs.path(pack)).catch((error) => { throw fromSystemError(error, 'looking at a pack to move', host.packs.path(pack)); });
    if (pack <= sealedThrough) sealed.push({ pack, bytes: stat.size, modifiedMs: stat.mtimeMs });
    else pinnedBytes += stat.size;
  }
  const moving = planMoves(remote.policy, { sealed, pinnedBytes, remoteBytes: remote.bytes, nowMs });
  let bytesMoved = 0;
  for (const { pack, bytes } of moving) {
    await movePack(host, remote, pack, bytes);
    bytesMoved += bytes;
    onPack?.(pack, bytes);
  }
  const localBytesAfter = pinnedBytes + sealed.reduce((sum, p) => sum + p.bytes, 0) - bytesMoved;
  return { packsMoved: moving.length, bytesMoved, localBytesAfter, remoteBytes: remote.bytes, seconds: (monotonicMs() - started) / 1000 };
}

/**
 * Uploads the pack file in one PUT without holding it whole: a first pass over the file (from the
 * page cache) computes its BLAKE3, its MD5 (the object's ETag, and Content-MD5) and the SHA-256 the
 * request is signed with; the second streams it in blocks of limits.objectCacheBlockBytes. A file
 * that changed between the passes is refused by the object store (Content-MD5) and then by the read-back.
 */
async function uploadFile(fs: FileSystem, path: string, bytes: number, upload: (source: Readable, sums: { sha256: string; md5: string }) => Promise<void>): Promise<{ blake3: string; md5: string }> {
  const handle = await fs.open(path, 'read').catch((error) => { throw fromSystemError(error, 'opening a pack to move', path); });
  try {
    // `reuse`: one block buffer for the whole pass (the hashing pass keeps no block); the upload's
    // blocks are each their own, since the socket may still hold one when the next is read
    async function* blocks(reuse?: Buffer): AsyncGenerator<Buffer> {
      for (let p = 0; p < bytes; p += limits.objectCacheBlockBytes) {
        const length = Math.min(limits.objectCacheBlockBytes, bytes - p);
        const buf = reuse ? reuse.subarray(0, length) : Buffer.allocUnsafe(length);
        const n = await handle.read(buf, 0, buf.length, p);
        if (n !== buf.length) throw new MailstoreError('IO', `pack ${path} shrank while it was being moved`, { path });
        yield buf;
      }
    }
    const hasher = await createHasher();
    const md5 = createHash('md5'), sha256 = createHash('sha256');
    for await (const buf of blocks(Buffer.allocUnsafe(Math.min(limits.objectCacheBlockBytes, bytes)))) {
      hasher.update(buf);
      md5.update(buf);
      sha256.update(buf);
    }
    const sums = { md5: md5.digest(), sha256: sha256.digest('hex') };
    await upload(Readable.from(blocks(), { objectMode: false }), { sha256: sums.sha256, md5: sums.md5.toString('base64') });
    return { blake3: hashHex(hasher.digest()), md5: sums.md5.toString('hex') };
  } finally {
    await handle.close();
  }
}

/** The object's BLAKE3, read back in one GET and hashed as it arrives (never whole: an 8 MiB concatenation per move ran beside the import). */
async function digestObject(remote: RemotePacks, key: string, bytes: number): Promise<string> {
  const hasher = await createHasher();
  await remote.bucket.streamRange(key, 0, bytes, (chunk) => hasher.update(chunk));
  return hashHex(hasher.digest());
}

export async function tierStatus(host: TierHost, remote: RemotePacks): Promise<TierStatus> {
  let localBytes = 0;
  const local = (await host.packs.listLocalPacks()).filter((p) => !remote.has(p));
  for (const pack of local) localBytes += (await host.fs.stat(host.packs.path(pack))).size;
  const remoteBytes = remote.bytes;
  return {
    url: remote.bucket.address.url, localPacks: local.length, localBytes, remotePacks: remote.list().length, remoteBytes,
    localShare: localBytes + remoteBytes === 0 ? 1 : localBytes / (localBytes + remoteBytes),
    policy: { localBytesMax: remote.policy.localBytesMax ?? null, localShareDefault: limits.tierLocalShareDefault, moveAfterMs: remote.policy.moveAfterMs ?? limits.tierMoveAfterMs },
  };
}
