// Stores with known content for the backup tests, and a dump of everything a restore must keep.
import { randomBytes } from 'node:crypto';
import type { FileSystem } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Repository } from '../../src/backup/repository.js';
import { expect } from 'vitest';
import type { BackupSource } from '../../src/backup/backup.js';
import type { RestoreTarget } from '../../src/backup/restore.js';
import { getQuota, setQuota } from '../../src/store/quota.js';
import { Store } from '../../src/store/store.js';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA_HEADER_BYTES, RECORD_HEADER_BYTES } from '../../src/backup/format.js';
import { restoreToNewStore } from '../../src/backup/restore.js';

/** The store as the CLI backs it up (incremental when an earlier snapshot is there); `full`: always the whole state. */
export function source(store: Store, options: { full?: boolean } = {}): BackupSource {
  const whole: BackupSource = { storeId: store.identity.storeId, snapshotState: () => store.maintenance().snapshotState(), fetchBlob: (hash) => store.fetchBlob(hash), fetchBlobsAt: (blobs, lend, options) => store.fetchBlobsAt(blobs, lend, options) };
  return options.full ? whole : { ...whole, stateSince: (afterSeq) => store.maintenance().stateSince(afterSeq) };
}

export function openRepo(dir: string, secret?: Buffer, fs: FileSystem = nodeFileSystem): Promise<Repository> {
  return Repository.open(fs, dir, { create: true, secret });
}

/** A message of `size` random letters with a unique header. */
export function message(n: number, size = 2000): Buffer {
  const body = Buffer.from(randomBytes(size).map((b) => 97 + (b % 26)));
  return Buffer.concat([Buffer.from(`From: a${n}@example.org\r\nSubject: m ${n}\r\nMessage-ID: <${n}.${Date.now()}@example.org>\r\n\r\n`), body]);
}

export async function fill(store: Store, mailbox: string, count: number, first = 1, size = 2000): Promise<Buffer[]> {
  const list: Buffer[] = [];
  for (let i = 0; i < count; i++) list.push(message(first + i, size));
  await store.appendBatch(mailbox, list.map((bytes, i) => ({ bytes, flags: i % 3 === 0 ? ['\\Seen'] : [], internalDate: 1_700_000_000_000 + (first + i) * 1000 })));
  return list;
}

/** Mailboxes with status, ACL, owner and every message (uid, flags, date, modseq, bytes' hash). */
export async function dump(store: Store, only?: (name: string) => boolean): Promise<unknown> {
  const out: Record<string, unknown> = {};
  for (const box of await store.listMailboxes()) {
    if (only && !only(box.name)) continue;
    const status = await store.status(box.name);
    const messages = [];
    for await (const { info } of store.readMessages(box.name)) messages.push(info);
    const summary = await store.mailbox(box.name);
    out[box.name] = { status, acl: summary.acl, owner: summary.owner, uidValidity: summary.uidValidity, messages };
  }
  return out;
}

export async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  try {
    await promise;
  } catch (error) {
    expect((error as { code?: string }).code, String(error)).toBe(code);
    return;
  }
  throw new Error(`expected ${code}, but it succeeded`);
}

export function storeTarget(store: Store): RestoreTarget {
  return {
    hasMailbox: (name) => store.status(name).then(() => true, (error: { code?: string }) => { if (error.code === 'NOT_FOUND') return false; throw error; }),
    createMailbox: (name, options) => store.createMailbox(name, options),
    appendBatch: (name, items, options) => store.appendBatch(name, items, options),
    getQuota: (root) => getQuota(store, root),
    setQuota: (root, limits) => setQuota(store, root, limits),
  };
}

/** The offsets of the records of a data file. */
export function recordOffsets(bytes: Buffer): number[] {
  const offsets: number[] = [];
  for (let at = DATA_HEADER_BYTES; at < bytes.length; at += RECORD_HEADER_BYTES + bytes.readUInt32BE(at + 40)) offsets.push(at);
  return offsets;
}

/** The flags byte of every record of every data file (its codec: 1 deflate, 2 Brotli, 4 zstd). */
export function recordFlags(repo: string): number[] {
  const flags: number[] = [];
  for (const name of readdirSync(join(repo, 'data')).filter((n) => !n.startsWith('.'))) {
    const bytes = readFileSync(join(repo, 'data', name));
    for (const at of recordOffsets(bytes)) flags.push(bytes[at + 36]!);
  }
  return flags;
}

/** Flips a byte in the body of the record of blob `hash` (an unencrypted repository: its id); returns its data file. */
export function damageRecordOf(repo: string, hash: Buffer): string {
  for (const name of readdirSync(join(repo, 'data')).filter((n) => !n.startsWith('.'))) {
    const path = join(repo, 'data', name);
    const bytes = readFileSync(path);
    const at = recordOffsets(bytes).find((offset) => bytes.subarray(offset + 4, offset + 36).equals(hash));
    if (at === undefined) continue;
    bytes[at + RECORD_HEADER_BYTES + 8] ^= 0x40;
    writeFileSync(path, bytes);
    return path;
  }
  throw new Error(`no record of ${hash.toString('hex')} in ${repo}`);
}

/** A new store `to` restored from `snapshot` exactly (uidValidity kept), read by `read` (closed again). */
export async function restoredWith<T>(repo: Repository, snapshot: string, to: string, read: (store: Store) => Promise<T>): Promise<T> {
  await restoreToNewStore(nodeFileSystem, repo, snapshot, to);
  const back = await Store.open(to);
  try {
    return await read(back);
  } finally {
    await back.close();
  }
}

/** The dump of a new store `to` restored from `snapshot` (closed again). */
export function restoredDump(repo: Repository, snapshot: string, to: string): Promise<unknown> {
  return restoredWith(repo, snapshot, to, dump);
}

/** Closes the store, restores the latest snapshot into `target`, and expects the same dump; closes the repository. */
export async function expectRestoresExactly(store: Store, repo: Repository, target: string): Promise<void> {
  const before = await dump(store);
  await store.close();
  await restoreToNewStore(nodeFileSystem, repo, 'latest', target);
  const back = await Store.open(target);
  expect(await dump(back)).toEqual(before);
  await back.close();
  await repo.close();
}

/** A repository a power cut left (a crash state of FaultFS), opened as after a reboot: the process that held its lock is gone. */
export async function reopenAfterCrash(crashed: string): Promise<Repository> {
  rmSync(join(crashed, 'locks'), { recursive: true, force: true });
  mkdirSync(join(crashed, 'locks'));
  return Repository.open(nodeFileSystem, crashed);
}
