// The full backup's copy path (session 18): blobs read where the state says they are, many with
// one pread (Store.fetchBlobsAt), into read buffers the copier reuses batch after batch, and
// zstd calls queued one beyond the cores. What must hold: every blob's bytes exactly (restore and
// check --read-data), a blob that does not read where the state said fetched by hash instead, and
// nothing written from a reused buffer after it was overwritten.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup, type BackupSource } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { zstdCallsInFlight } from '../../src/backup/compress-pool.js';
import type { FileHandle, FileSystem, OpenMode, ReadOptions } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { backupLimits } from '../../src/limits.js';
import type { Op } from '../../src/store/records.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { expectRestoresExactly, fill, openRepo, source } from './helpers.js';

type Located = { hash: Buffer; location: { pack: number; offset: number; length: number } };

/** Every blob of the store where its state says it is. */
async function locations(store: Store): Promise<Located[]> {
  const state = await store.maintenance().snapshotState();
  const out: Located[] = [];
  try {
    for await (const op of state.ops as AsyncIterable<Op>) {
      if (op.op === 'state.blobs') for (const [hash, pack, offset, length] of op.blobs) out.push({ hash: Buffer.from(hash), location: { pack, offset, length } });
    }
  } finally {
    await state.close();
  }
  return out;
}

/** The real file system, one method of every file it opens replaced by what `wrap` makes of the handle (opened at `path`). */
function wrapHandles(method: 'read' | 'writev', wrap: (handle: FileHandle, path: string) => FileHandle[typeof method]): FileSystem {
  return new Proxy(nodeFileSystem, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop);
      if (prop !== 'open') return typeof value === 'function' ? value.bind(target) : value;
      return async (path: string, mode: OpenMode): Promise<FileHandle> => {
        const handle = await target.open(path, mode);
        return new Proxy(handle, {
          get(h, p) {
            if (p === method) return wrap(h, path);
            const v: unknown = Reflect.get(h, p);
            return typeof v === 'function' ? v.bind(h) : v;
          },
        });
      };
    },
  });
}

/**
 * The real file system, each vectored write (a data file's records) made a few ms late: the copy
 * reads the next batches meanwhile, so a record still pointing into a read buffer the copier
 * reused would be written with the next batch's bytes.
 */
const lateWrites = wrapHandles('writev', (h) => async (parts: Buffer[], position: number) => { await new Promise((go) => setTimeout(go, 5)); return h.writev(parts, position); });

describe('the backup copy path', () => {
  it('fetchBlobsAt gives each blob exactly, into a lent buffer when it fits; a wrong place gives undefined, not other bytes', async () => {
    const dir = tmpDir('bkat');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 40, 1, 3000);
    const blobs = await locations(store);
    expect(blobs).toHaveLength(40);
    const lent: ArrayBuffer[] = [];
    const got = await store.fetchBlobsAt(blobs, () => { const b = new ArrayBuffer(1 << 20); lent.push(b); return b; });
    for (let i = 0; i < blobs.length; i++) {
      expect(got[i]!.equals(await store.fetchBlob(blobs[i]!.hash))).toBe(true);
      expect(got[i]!.buffer).toBe(lent[0]); // one pack, one run: all views into the buffer lent
    }
    // too small a buffer: the run gets one of its own, the bytes are the same
    const small = await store.fetchBlobsAt(blobs.slice(0, 5), () => new ArrayBuffer(16));
    for (let i = 0; i < 5; i++) expect(small[i]!.equals(got[i]!)).toBe(true);
    // the wrong offset, the wrong length, another blob's hash, a pack that is not there: undefined each
    const [a, b] = blobs;
    const wrong = await store.fetchBlobsAt([
      { hash: a!.hash, location: { ...a!.location, offset: a!.location.offset + 1 } },
      { hash: a!.hash, location: { ...a!.location, length: a!.location.length - 1 } },
      { hash: a!.hash, location: b!.location },
      { hash: a!.hash, location: { ...a!.location, pack: a!.location.pack + 7 } },
      b!,
    ]);
    expect(wrong.slice(0, 4)).toEqual([undefined, undefined, undefined, undefined]);
    expect(wrong[4]!.equals(got[1]!)).toBe(true);
    await store.close();
  });

  it('the copy reads the packs off the main thread (fetchBlobsAt aside: every pack read asks for the thread pool); other reads do not', async () => {
    const dir = tmpDir('bkaside');
    const reads: { path: string; aside: boolean }[] = [];
    // the real file system, each read's options recorded (a pack read of the copy must go to the pool)
    const recorded = wrapHandles('read', (h, path) => (buffer: Buffer, offset: number, length: number, position: number, options?: ReadOptions) => {
      reads.push({ path, aside: options?.aside === true });
      return h.read(buffer, offset, length, position, options);
    });
    const store = await Store.init(join(dir, 's'), { fs: recorded });
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 30, 1, 3000);
    const blobs = await locations(store);
    const packReads = () => reads.filter((read) => read.path.includes('/packs/'));
    reads.length = 0;
    await store.fetchBlobsAt(blobs);
    expect(packReads().length).toBeGreaterThan(0);
    expect(packReads().every((read) => !read.aside)).toBe(true); // the default: in this thread
    reads.length = 0;
    const asked: ({ verify?: boolean; aside?: boolean } | undefined)[] = [];
    const spied: BackupSource = { ...source(store, { full: true }), fetchBlobsAt: (list, lend, options) => { asked.push(options); return store.fetchBlobsAt(list, lend, options); } };
    const repo = await openRepo(join(dir, 'repo'));
    expect((await runBackup(spied, repo)).newBlobs).toBe(30);
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((options) => options?.aside === true)).toBe(true);
    expect(packReads().length).toBeGreaterThan(0);
    expect(packReads().every((read) => read.aside)).toBe(true);
    await expectRestoresExactly(store, repo, join(dir, 'r'));
  });

  it('many batches through reused read buffers, half of the blobs stored as read (incompressible), the data files written late: restore and check --read-data give every byte back', async () => {
    const dir = tmpDir('bkreuse');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    // ~6 MB: more batches than are in flight, so each read buffer is reused several times; random
    // bodies do not compress, so their records are the read bytes themselves (copied out of the buffer)
    const count = 3 * backupLimits.batchesInFlight * backupLimits.compressBatchBlobs / 2;
    for (let i = 0; i < count; i += 50) {
      const items = [];
      for (let k = i; k < Math.min(count, i + 50); k++) {
        const body = k % 2 === 0 ? randomBytes(7000).toString('latin1') : `line ${k}\r\n`.repeat(700);
        items.push({ bytes: Buffer.from(`Subject: m ${k}\r\n\r\n${body}`, 'latin1'), flags: [] });
      }
      await store.appendBatch('INBOX', items);
    }
    const repo = await openRepo(join(dir, 'repo'), undefined, lateWrites);
    const summary = await runBackup(source(store, { full: true }), repo);
    expect(summary.newBlobs).toBe(count);
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    await expectRestoresExactly(store, repo, join(dir, 'r'));
  });

  it('through the compression workers (more than inlineCompressBytesMax), compressed into output buffers the copier reuses, the data files written late: restore and check --read-data give every byte back', async () => {
    const dir = tmpDir('bkreuseout');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    // compressible and each unlike the others: a record written from an output buffer already
    // reused for a later batch would hold that batch's bytes
    const size = 8000;
    const count = Math.ceil((backupLimits.inlineCompressBytesMax * 1.25) / size); // batches of compressBatchBlobs: several times batchesInFlight
    for (let i = 0; i < count; i += 200) {
      const items = [];
      for (let k = i; k < Math.min(count, i + 200); k++) items.push({ bytes: Buffer.from(`Subject: m ${k}\r\n\r\n${Array.from({ length: size / 16 }, (_, n) => `${k}.${n}`.padEnd(14)).join('\r\n')}`), flags: [] });
      await store.appendBatch('INBOX', items);
    }
    const repo = await openRepo(join(dir, 'repo'), undefined, lateWrites);
    const summary = await runBackup(source(store, { full: true }), repo);
    expect(summary.newBlobs).toBe(count);
    expect(summary.bytesAdded).toBeLessThan(summary.bytesRead / 2); // compressed: the records are the workers' outputs
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    await expectRestoresExactly(store, repo, join(dir, 'r'));
    await store.close();
  });

  it('a blob that does not read where the state says is fetched by hash; only those are', async () => {
    const dir = tmpDir('bkfallback');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 30, 1, 4000);
    const byHash: string[] = [];
    let placed = 0;
    const base = source(store, { full: true });
    const odd: BackupSource = {
      ...base,
      fetchBlob: (hash) => { byHash.push(hash.toString('hex')); return store.fetchBlob(hash); },
      // every other blob "moved": its place is off by one record header, so its read fails its checks
      fetchBlobsAt: (blobs, lend) => {
        placed += blobs.length;
        return store.fetchBlobsAt(blobs.map((b, i) => (i % 2 === 0 ? b : { ...b, location: { ...b.location, offset: b.location.offset + 48 } })), lend);
      },
    };
    const repo = await openRepo(join(dir, 'repo'));
    const summary = await runBackup(odd, repo);
    expect(placed).toBe(30);
    expect(byHash).toHaveLength(15);
    expect(summary.newBlobs).toBe(30);
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    await expectRestoresExactly(store, repo, join(dir, 'r'));
  });

  it('into a new repository the copy starts while the state is read (at the messages\' hints); into one with index files only after it', async () => {
    const dir = tmpDir('bkstream');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await store.createMailbox('Other');
    await fill(store, 'INBOX', 20, 1, 3000);
    await fill(store, 'Other', 20, 100, 3000);
    let reading = false;
    const readWhileState: boolean[] = [];
    const base = source(store, { full: true });
    const watched: BackupSource = {
      ...base,
      snapshotState: async () => {
        const state = await store.maintenance().snapshotState();
        async function* ops(): AsyncGenerator<Op> {
          reading = true;
          try { yield* state.ops as AsyncIterable<Op>; } finally { reading = false; }
        }
        return { ...state, ops: ops(), close: () => state.close() } as typeof state;
      },
      fetchBlobsAt: (blobs, lend) => { readWhileState.push(reading); return store.fetchBlobsAt(blobs, lend); },
    };
    const repo = await openRepo(join(dir, 'repo'));
    expect((await runBackup(watched, repo)).newBlobs).toBe(40);
    expect(readWhileState).toContain(true);
    readWhileState.length = 0;
    await fill(store, 'Other', 5, 200, 3000);
    expect((await runBackup(watched, repo)).newBlobs).toBe(5); // the index is read first: only the new ones
    expect(readWhileState.length).toBeGreaterThan(0);
    expect(readWhileState).not.toContain(true);
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    await expectRestoresExactly(store, repo, join(dir, 'r'));
  });

  it('into a new repository with every message at a hint, the blob index (read last) is not read; with one message without a hint it is, and that blob is read at its place, not by hash', async () => {
    const dir = tmpDir('bkhints');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 30, 1, 3000);
    const repos = [];
    for (const unhinted of [undefined, 7]) {
      let blobOpsTaken = 0, byHash = 0;
      const watched: BackupSource = {
        ...source(store, { full: true }),
        fetchBlob: (hash) => { byHash++; return store.fetchBlob(hash); },
        snapshotState: async () => {
          const state = await store.maintenance().snapshotState();
          async function* ops(): AsyncGenerator<Op> {
            for await (const op of state.ops as AsyncIterable<Op>) {
              // a message as an older store's: no blob-location hint (p, o) among its extras
              if (op.op === 'state.messages') op.messages = op.messages.map((m) => (m[0] === unhinted ? withoutHint(m) : m));
              yield op;
              if (op.op === 'state.blobs') blobOpsTaken++; // the reader asked for what follows it
            }
          }
          return { ...state, ops: ops(), close: () => state.close() } as typeof state;
        },
      };
      const repo = await openRepo(join(dir, `repo${unhinted ?? ''}`));
      expect((await runBackup(watched, repo)).newBlobs).toBe(30);
      expect(blobOpsTaken).toBe(unhinted === undefined ? 0 : 1);
      expect(byHash).toBe(0);
      expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
      repos.push(repo);
    }
    await repos[0]!.close();
    await expectRestoresExactly(store, repos[1]!, join(dir, 'r'));
  });

  it('zstd calls in flight: one a core, one more while a thread of the pool stays free', () => {
    expect(zstdCallsInFlight(2, 4)).toBe(3);
    expect(zstdCallsInFlight(1, 4)).toBe(2);
    expect(zstdCallsInFlight(4, 4)).toBe(4);
    expect(zstdCallsInFlight(2, 2)).toBe(2);
  });
});

type StateMessage = Extract<Op, { op: 'state.messages' }>['messages'][number];

/** A state entry without its blob-location hint (extras p and o), as a store written before hints gives it. */
function withoutHint(m: StateMessage): StateMessage {
  const extras = { ...m[6] } as Record<string, unknown>;
  delete extras.p;
  delete extras.o;
  return Object.keys(extras).length > 0 ? [m[0], m[1], m[2], m[3], m[4], m[5], extras as StateMessage[6]] as StateMessage : [m[0], m[1], m[2], m[3], m[4], m[5]] as StateMessage;
}
