// The pack store's contract (src/blob/pack-store.ts), below the Store: a batch reserves locations,
// `write` puts the records there, `sync` makes them durable and `abort` takes them back; reads
// verify header, length and hash and answer CORRUPT, never wrong bytes; a scan finds every record.
import { mkdirSync, readFileSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACK_HEADER_BYTES, RECORD_HEADER_BYTES, decodePackHeader, decodeRecordHeader } from '../../src/blob/pack-format.js';
import { PackStore, type BlobLocation, type ScanItem } from '../../src/blob/pack-store.js';
import { MailstoreError } from '../../src/errors.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { HashPool } from '../../src/hash/pool.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { prng } from '../helpers/prng.js';
import { tmpDir } from '../helpers/tmp.js';

const storeId = Buffer.from('00112233445566778899aabbccddeeff', 'hex');

async function openPacks(options: { packBytesMax?: number; dir?: string; fs?: FaultFileSystem } = {}) {
  const dir = options.dir ?? join(tmpDir('packs'), 'packs');
  mkdirSync(dir, { recursive: true });
  const fs = options.fs ?? new FaultFileSystem();
  const mountChecks: string[] = [];
  const packs = await PackStore.open(fs, dir, storeId, {
    packBytesMax: options.packBytesMax ?? 1024 * 1024,
    checkMounted: async (path) => { mountChecks.push(path); },
  });
  return { dir, fs, packs, mountChecks };
}

function body(i: number, bytes = 100): Buffer {
  const random = prng(i + 1);
  return Buffer.from(Array.from({ length: bytes }, () => 32 + Math.floor(random() * 90)));
}

/** Reserves, writes and syncs one batch; returns where each body went. */
async function commit(packs: PackStore, bodies: Buffer[]): Promise<BlobLocation[]> {
  const batch = packs.beginBatch();
  const locations = bodies.map((b) => batch.reserve(hashBytes(b), b));
  await packs.write(batch);
  await packs.sync();
  return locations;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<MailstoreError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(MailstoreError);
  expect((error as MailstoreError).code).toBe(code);
  return error as MailstoreError;
}

describe('PackStore: write, sync, abort', () => {
  it('a synced batch reads back; the pack starts with its header and each record header names its body', async () => {
    const { dir, packs } = await openPacks();
    const bodies = [body(1), body(2, 0), body(3, 5000)];
    const locations = await commit(packs, bodies);
    expect(locations.map((l) => [l.pack, l.offset, l.length])).toEqual([
      [1, PACK_HEADER_BYTES, 100], [1, PACK_HEADER_BYTES + RECORD_HEADER_BYTES + 100, 0], [1, PACK_HEADER_BYTES + 2 * RECORD_HEADER_BYTES + 100, 5000],
    ]);
    for (const [i, location] of locations.entries()) expect((await packs.read(location, hashBytes(bodies[i]))).equals(bodies[i])).toBe(true);
    const file = readFileSync(join(dir, '00000001.pack'));
    expect(decodePackHeader(file)).toEqual({ storeId, packNumber: 1 });
    for (const [i, location] of locations.entries()) {
      expect(decodeRecordHeader(file.subarray(location.offset, location.offset + RECORD_HEADER_BYTES))).toEqual({ hash: hashBytes(bodies[i]), bodyLength: bodies[i].length });
    }
    expect(file.length).toBe(PACK_HEADER_BYTES + 3 * RECORD_HEADER_BYTES + 5100);
    await packs.close();
  });

  it('write then sync: one write and one fdatasync for the batch, and the new pack directory entry is fsynced', async () => {
    const { dir, fs, packs } = await openPacks();
    await commit(packs, [body(1)]);
    fs.resetCounters();
    await commit(packs, [body(2), body(3), body(4)]);
    expect(fs.counters()).toMatchObject({ writes: 1, sync: 1, syncDir: 0 });
    fs.resetCounters();
    const fresh = await openPacks({ dir: join(dir, '..', 'other') });
    await commit(fresh.packs, [body(5)]);
    expect(fresh.fs.counters().syncDir).toBe(1); // a new pack: its name made durable
    await packs.close();
    await fresh.packs.close();
  });

  it('abort takes back written, unsynced records: the pack is cut back and the next batch reuses the offset', async () => {
    const { dir, packs } = await openPacks();
    const [kept] = await commit(packs, [body(1)]);
    const size = statSync(join(dir, '00000001.pack')).size;
    const batch = packs.beginBatch();
    const lost = batch.reserve(hashBytes(body(2)), body(2));
    await packs.write(batch);
    expect(statSync(join(dir, '00000001.pack')).size).toBeGreaterThan(size);
    await packs.abort();
    expect(statSync(join(dir, '00000001.pack')).size).toBe(size);
    const [next] = await commit(packs, [body(3)]);
    expect(next).toEqual({ ...lost, length: 100 });
    expect((await packs.read(kept, hashBytes(body(1)))).equals(body(1))).toBe(true);
    expect((await packs.read(next, hashBytes(body(3)))).equals(body(3))).toBe(true);
    await packs.close();
  });

  it('a failed write (disk full) or fsync (EIO) rejects with its code and leaves the pack as it was', async () => {
    const { dir, fs, packs } = await openPacks();
    const [kept] = await commit(packs, [body(1)]);
    const size = statSync(join(dir, '00000001.pack')).size;
    fs.injectAt((op) => op.kind === 'write', { kind: 'shortWrite', bytes: 10 });
    let batch = packs.beginBatch();
    batch.reserve(hashBytes(body(2)), body(2));
    await expectCode(packs.write(batch), 'NO_SPACE');
    expect(statSync(join(dir, '00000001.pack')).size).toBe(size);
    fs.injectAt((op) => op.kind === 'sync', 'EIO');
    batch = packs.beginBatch();
    batch.reserve(hashBytes(body(3)), body(3));
    await packs.write(batch);
    await expectCode(packs.sync(), 'IO');
    expect(statSync(join(dir, '00000001.pack')).size).toBe(size);
    const [after] = await commit(packs, [body(4)]);
    expect(after.offset).toBe(size);
    expect((await packs.read(kept, hashBytes(body(1)))).equals(body(1))).toBe(true);
    expect((await packs.read(after, hashBytes(body(4)))).equals(body(4))).toBe(true);
    await packs.close();
  });

  it('reopened, it appends at the end of the newest pack', async () => {
    const { dir, fs, packs } = await openPacks({ packBytesMax: 600 });
    await commit(packs, [body(1, 400), body(2, 400)]);
    await packs.close();
    const again = await openPacks({ dir, fs, packBytesMax: 600 });
    expect(await again.packs.listPacks()).toEqual([1, 2]);
    const [next] = await commit(again.packs, [body(3, 10)]);
    expect(next).toEqual({ pack: 2, offset: PACK_HEADER_BYTES + RECORD_HEADER_BYTES + 400, length: 10 });
    await again.packs.close();
  });
});

describe('PackStore: reservation across pack rotation', () => {
  it('a record that would pass packBytesMax starts the next pack; one bigger than the limit gets a pack of its own', async () => {
    const max = 1000;
    const { dir, packs, mountChecks } = await openPacks({ packBytesMax: max });
    const record = RECORD_HEADER_BYTES + 400;
    const bodies = [body(1, 400), body(2, 400), body(3, 400), body(4, 2000), body(5, 10)];
    const locations = await commit(packs, bodies);
    expect(locations.map((l) => [l.pack, l.offset])).toEqual([
      [1, PACK_HEADER_BYTES], [1, PACK_HEADER_BYTES + record], [2, PACK_HEADER_BYTES], [3, PACK_HEADER_BYTES], [4, PACK_HEADER_BYTES],
    ]);
    expect(await packs.listPacks()).toEqual([1, 2, 3, 4]);
    for (const pack of [1, 2, 4]) expect(statSync(join(dir, `0000000${pack}.pack`)).size).toBeLessThanOrEqual(max);
    for (const [i, location] of locations.entries()) expect((await packs.read(location, hashBytes(bodies[i]))).equals(bodies[i])).toBe(true);
    // every new pack was preceded by a mount check on its path
    expect(mountChecks).toEqual([1, 2, 3, 4].map((n) => join(dir, `0000000${n}.pack`)));
    await packs.close();
  });

  it('a pack holding only its header (its first batch was aborted) takes the next record, even one above the limit', async () => {
    const { dir, packs } = await openPacks({ packBytesMax: 1000 });
    const batch = packs.beginBatch();
    batch.reserve(hashBytes(body(1)), body(1));
    await packs.write(batch);
    await packs.abort();
    expect(statSync(join(dir, '00000001.pack')).size).toBe(PACK_HEADER_BYTES);
    const [big] = await commit(packs, [body(2, 2000)]);
    expect(big).toEqual({ pack: 1, offset: PACK_HEADER_BYTES, length: 2000 });
    expect(await packs.listPacks()).toEqual([1]);
    await packs.close();
  });
});

describe('PackStore: read handles', () => {
  it('concurrent first reads of one pack share one open (each used to open its own and leak all but one)', async () => {
    const { fs, dir, packs } = await openPacks();
    const bodies = Array.from({ length: 8 }, (_, i) => body(i));
    const locations = await commit(packs, bodies);
    await packs.close();
    const reopened = await PackStore.open(fs, dir, storeId, { packBytesMax: 1024 * 1024, checkMounted: async () => undefined });
    let opens = 0;
    const open = fs.open.bind(fs);
    fs.open = (path, mode) => { if (mode === 'read') opens++; return open(path, mode); };
    const read = await Promise.all(locations.map((location, i) => reopened.read(location, hashBytes(bodies[i]))));
    expect(read).toEqual(bodies);
    expect(opens).toBe(1);
    await reopened.close();
  });
});

describe('PackStore: reads verify', () => {
  async function stored() {
    const setup = await openPacks();
    const bodies = [body(1, 300), body(2, 300)];
    const locations = await commit(setup.packs, bodies);
    return { ...setup, bodies, locations, path: join(setup.dir, '00000001.pack') };
  }

  it('a flipped body byte is CORRUPT on read, on readStream before any byte is handed out, and for scan', async () => {
    const { fs, packs, bodies, locations, path } = await stored();
    await fs.damage(path, { kind: 'bitflip', offset: locations[0].offset + RECORD_HEADER_BYTES + 7, length: 1 });
    const error = await expectCode(packs.read(locations[0], hashBytes(bodies[0])), 'CORRUPT');
    expect(error.message).toContain(path);
    const handedOut: Buffer[] = [];
    await expectCode((async () => { for await (const chunk of packs.readStream(locations[0], hashBytes(bodies[0]), 64)) handedOut.push(chunk); })(), 'CORRUPT');
    expect(handedOut).toEqual([]);
    expect((await packs.read(locations[1], hashBytes(bodies[1]))).equals(bodies[1])).toBe(true);
    expect(await packs.checkLocation(locations[0], hashBytes(bodies[0]))).toBeUndefined(); // the header is fine: only a hash finds it
    await packs.close();
  });

  it('a wrong hash, a wrong length, a damaged header or a short pack is CORRUPT, and checkLocation says why', async () => {
    const { fs, packs, bodies, locations, path } = await stored();
    await expectCode(packs.read(locations[0], hashBytes(bodies[1])), 'CORRUPT');
    await expectCode(packs.read({ ...locations[0], length: 299 }, hashBytes(bodies[0])), 'CORRUPT');
    expect(await packs.checkLocation(locations[0], hashBytes(bodies[1]))).toMatch(/different hash/);
    expect(await packs.checkLocation({ ...locations[0], length: 299 }, hashBytes(bodies[0]))).toMatch(/length/);
    await fs.damage(path, { kind: 'zeros', offset: locations[1].offset + 4, length: 8 });
    await expectCode(packs.read(locations[1], hashBytes(bodies[1])), 'CORRUPT');
    expect(await packs.checkLocation(locations[1], hashBytes(bodies[1]))).toMatch(/header is damaged/);
    truncateSync(path, locations[1].offset + RECORD_HEADER_BYTES + 10);
    expect(await packs.checkLocation(locations[1], hashBytes(bodies[1]))).toBeDefined();
    await expectCode(packs.read(locations[1], hashBytes(bodies[1])), 'CORRUPT');
    await packs.close();
  });

  it('a pack cut before a record says how far short of the record\'s end it ends (scrub\'s blob-missing why, a read\'s CORRUPT), not the header\'s 48 bytes', async () => {
    const { dir, packs } = await openPacks();
    const bodies = [body(1, 300), body(2, 300), body(3, 5000)];
    const locations = await commit(packs, bodies);
    const last = locations[2];
    // cut before the second record: the third lies wholly past the end, its header too
    truncateSync(join(dir, '00000001.pack'), locations[1].offset);
    const short = last.offset + RECORD_HEADER_BYTES + last.length - locations[1].offset;
    const saysShort = new RegExp(`ends ${short} bytes early`);
    expect(await packs.checkLocation(last, hashBytes(bodies[2]))).toMatch(saysShort);
    expect((await expectCode(packs.read(last, hashBytes(bodies[2])), 'CORRUPT')).message).toMatch(saysShort);
    // a run read (readMessages, fetchBlobsAt) whose pread starts past the end, and one that starts before it
    const item = (i: number) => ({ location: locations[i], hash: hashBytes(bodies[i]), body: undefined as Buffer | undefined, error: undefined as unknown });
    const alone = [item(2)];
    await packs.readRun(1, alone);
    expect((alone[0].error as MailstoreError).message).toMatch(saysShort);
    const spanning = [item(0), item(1), item(2)];
    await packs.readRun(1, spanning);
    expect(spanning[0].body!.equals(bodies[0])).toBe(true);
    expect((spanning[1].error as MailstoreError).message).toMatch(new RegExp(`ends ${RECORD_HEADER_BYTES + 300} bytes early`));
    expect((spanning[2].error as MailstoreError).message).toMatch(saysShort);
    await packs.close();
  });

  it('a missing pack is CORRUPT after a mount check on its path; a failing read is IO', async () => {
    const { fs, packs, bodies, locations, mountChecks, dir } = await stored();
    mountChecks.length = 0;
    await expectCode(packs.read({ ...locations[0], pack: 9 }, hashBytes(bodies[0])), 'CORRUPT');
    expect(mountChecks).toEqual([join(dir, '00000009.pack')]);
    await packs.forgetReadHandles();
    fs.failAll('EIO', { ops: ['read'] });
    await expectCode(packs.read(locations[0], hashBytes(bodies[0])), 'IO');
    fs.clear();
    await packs.close();
  });
});

describe('PackStore: readRun (neighbours with one read)', () => {
  it('verifies each record on its own: a damaged one is CORRUPT, its neighbours and a duplicate location read back exact', async () => {
    const { dir, fs, packs } = await openPacks();
    const bodies = [body(1, 300), body(2, 0), body(3, 5000), body(4, 40)];
    const locations = await commit(packs, bodies);
    const path = join(dir, '00000001.pack');
    await fs.damage(path, { kind: 'bitflip', offset: locations[2].offset + RECORD_HEADER_BYTES + 100, length: 1 });
    const items = [0, 1, 1, 2, 3].map((i) => ({ location: locations[i], hash: hashBytes(bodies[i]), body: undefined as Buffer | undefined, error: undefined as unknown }));
    await packs.readRun(1, items);
    for (const [k, i] of [0, 1, 1, 3].entries()) expect(items[k < 3 ? k : 4].body!.equals(bodies[i])).toBe(true);
    expect(items[3].body).toBeUndefined();
    expect((items[3].error as MailstoreError).code).toBe('CORRUPT');
    expect((items[3].error as MailstoreError).message).toContain(path);
    await packs.close();
  });

  it('records are kept for compaction by default, and not made for a bulk read (keepRecords false); a damaged record is CORRUPT either way', async () => {
    const { dir, fs, packs } = await openPacks();
    const bodies = [body(1, 300), body(2, 700), body(3, 40)];
    const locations = await commit(packs, bodies);
    await fs.damage(join(dir, '00000001.pack'), { kind: 'bitflip', offset: locations[1].offset + RECORD_HEADER_BYTES + 5, length: 1 });
    const itemsFor = () => locations.map((location, i) => ({ location, hash: hashBytes(bodies[i]), body: undefined as Buffer | undefined, record: undefined as Buffer | undefined, error: undefined as unknown }));
    const kept = itemsFor();
    await packs.readRun(1, kept);
    const bare = itemsFor();
    await packs.readRun(1, bare, undefined, false);
    for (const i of [0, 2]) {
      expect(kept[i].record!.subarray(RECORD_HEADER_BYTES).equals(bodies[i])).toBe(true);
      expect(kept[i].record!.length).toBe(RECORD_HEADER_BYTES + bodies[i].length);
      expect(bare[i].record).toBeUndefined();
      expect(bare[i].body!.equals(bodies[i])).toBe(true);
    }
    for (const items of [kept, bare]) {
      expect(items[1].body).toBeUndefined();
      expect((items[1].error as MailstoreError).code).toBe('CORRUPT');
    }
    await packs.close();
  });

  it('a pack cut short fails the records past its end (CORRUPT) and keeps those before; a failing read fails the run (IO)', async () => {
    const { dir, fs, packs } = await openPacks();
    const bodies = [body(1, 300), body(2, 300)];
    const locations = await commit(packs, bodies);
    truncateSync(join(dir, '00000001.pack'), locations[1].offset + RECORD_HEADER_BYTES + 10);
    const items = locations.map((location, i) => ({ location, hash: hashBytes(bodies[i]), body: undefined as Buffer | undefined, error: undefined as unknown }));
    await packs.readRun(1, items);
    expect(items[0].body!.equals(bodies[0])).toBe(true);
    expect((items[1].error as MailstoreError).code).toBe('CORRUPT');
    expect((items[1].error as MailstoreError).message).toMatch(/ends 290 bytes early/);
    await packs.forgetReadHandles();
    fs.failAll('EIO', { ops: ['read'] });
    const failing = [{ location: locations[0], hash: hashBytes(bodies[0]), body: undefined as Buffer | undefined, error: undefined as unknown }];
    await packs.readRun(1, failing);
    expect((failing[0].error as MailstoreError).code).toBe('IO');
    fs.clear();
    await packs.close();
  });
});

describe('PackStore: readRuns (several runs, one buffer, one hashing job)', () => {
  it('each run lands at its own place: bodies and records exact, a damaged record CORRUPT alone, a run past the end CORRUPT; the same with a hash worker', async () => {
    const { dir, fs, packs } = await openPacks();
    const bodies = Array.from({ length: 9 }, (_, i) => body(i + 1, [300, 0, 5000, 40][i % 4]));
    const locations = await commit(packs, bodies);
    await fs.damage(join(dir, '00000001.pack'), { kind: 'bitflip', offset: locations[4].offset + RECORD_HEADER_BYTES + 10, length: 1 });
    truncateSync(join(dir, '00000001.pack'), locations[8].offset + RECORD_HEADER_BYTES + 100);
    const pool = HashPool.create(1);
    try {
      for (const worker of [undefined, pool]) {
        if (worker) await until(() => worker.ready);
        // runs [0,1] [3,4,5] [8]: skipping 2, 6 and 7, so each run's bytes sit after the last's in the buffer
        const items = locations.map((location, i) => ({ location, hash: hashBytes(bodies[i]), body: undefined as Buffer | undefined, record: undefined as Buffer | undefined, error: undefined as unknown }));
        await packs.readRuns(1, [[items[0], items[1]], [items[3], items[4], items[5]], [items[8]]], worker);
        for (const i of [0, 1, 3, 5]) {
          expect(items[i].body!.equals(bodies[i]), `body ${i}`).toBe(true);
          expect(items[i].record!.subarray(RECORD_HEADER_BYTES).equals(bodies[i]), `record ${i}`).toBe(true);
          expect(decodeRecordHeader(items[i].record!.subarray(0, RECORD_HEADER_BYTES))!.hash.equals(hashBytes(bodies[i]))).toBe(true);
        }
        expect((items[4].error as MailstoreError).code).toBe('CORRUPT');
        expect((items[8].error as MailstoreError).message).toMatch(/ends \d+ bytes early/);
        for (const i of [2, 6, 7]) expect(items[i].body ?? items[i].error).toBeUndefined();
      }
    } finally {
      await pool?.close();
      await packs.close();
    }
  });
});

async function until(ready: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ready(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(ready(), 'the hash worker started').toBe(true);
}

describe('PackStore: scan', () => {
  async function filled() {
    const setup = await openPacks({ packBytesMax: 4096 });
    const bodies = Array.from({ length: 24 }, (_, i) => body(i, [0, 17, 300, 1500][i % 4]));
    const locations: BlobLocation[] = [];
    for (let i = 0; i < bodies.length; i += 5) locations.push(...(await commit(setup.packs, bodies.slice(i, i + 5))));
    return { ...setup, bodies, locations };
  }

  async function scanAll(packs: PackStore, pack: number, chunkBytes?: number) {
    const items: (ScanItem | { kind: 'header'; valid: boolean; storeId?: Buffer })[] = [];
    for await (const item of packs.scan(pack, { chunkBytes })) items.push(item);
    return items;
  }

  it.each([undefined, 200])('finds every record of every pack, in order, valid (chunk %s bytes)', async (chunkBytes) => {
    const { packs, bodies, locations } = await filled();
    const found: { pack: number; offset: number; length: number; hash: string }[] = [];
    for (const pack of await packs.listPacks()) {
      const items = await scanAll(packs, pack, chunkBytes);
      expect(items[0]).toEqual({ kind: 'header', valid: true, storeId });
      for (const item of items.slice(1)) {
        expect(item).toMatchObject({ kind: 'blob', valid: true });
        if (item.kind === 'blob') found.push({ pack, offset: item.offset, length: item.length, hash: item.hash.toString('hex') });
      }
    }
    expect(found).toEqual(locations.map((l, i) => ({ ...l, hash: hashBytes(bodies[i]).toString('hex') })));
    await packs.close();
  });

  it('reports a damaged body as an invalid blob and a damaged header as a damaged range, and finds every record after it', async () => {
    const { fs, dir, packs, locations } = await filled();
    const inFirst = locations.filter((l) => l.pack === 1);
    expect(inFirst.length).toBeGreaterThanOrEqual(4);
    const path = join(dir, '00000001.pack');
    const flipped = inFirst.find((l) => l.length > 0)!;
    await fs.damage(path, { kind: 'bitflip', offset: flipped.offset + RECORD_HEADER_BYTES, length: 1 });
    const lostHeader = inFirst[inFirst.indexOf(flipped) + 1];
    await fs.damage(path, { kind: 'garbage', offset: lostHeader.offset, length: RECORD_HEADER_BYTES });
    for (const chunkBytes of [undefined, 200]) {
      const items = await scanAll(packs, 1, chunkBytes);
      const blobs = items.filter((i) => i.kind === 'blob') as Extract<ScanItem, { kind: 'blob' }>[];
      expect(blobs.map((b) => b.offset)).toEqual(inFirst.filter((l) => l !== lostHeader).map((l) => l.offset));
      expect(blobs.filter((b) => !b.valid).map((b) => b.offset)).toEqual([flipped.offset]);
      const damage = items.filter((i) => i.kind === 'damage');
      const next = inFirst[inFirst.indexOf(lostHeader) + 1];
      expect(damage).toEqual([{ kind: 'damage', offset: lostHeader.offset, length: next.offset - lostHeader.offset, next: next.offset }]);
    }
    await packs.close();
  });

  it('starts at `from` (a scrub cursor) and reports a pack whose header is damaged', async () => {
    const { fs, dir, packs, locations } = await filled();
    const inFirst = locations.filter((l) => l.pack === 1);
    const items = [];
    for await (const item of packs.scan(1, { from: inFirst[2].offset })) items.push(item);
    expect(items.filter((i) => i.kind === 'blob').map((i) => (i as { offset: number }).offset)).toEqual(inFirst.slice(2).map((l) => l.offset));
    await fs.damage(join(dir, '00000001.pack'), { kind: 'zeros', offset: 0, length: 4 });
    const again = await scanAll(packs, 1);
    expect(again[0]).toMatchObject({ kind: 'header', valid: false });
    expect(again.filter((i) => i.kind === 'blob')).toHaveLength(inFirst.length);
    await packs.close();
  });
});

describe('removePack and the per-pack maps', () => {
  it('a removed side pack leaves the path cache and the side-pack set, and a pin of its old location is still refused', async () => {
    const { packs } = await openPacks();
    await commit(packs, [body(1)]);
    const writer = await packs.createSidePack();
    const moved = body(2);
    const location = await writer.append(hashBytes(moved), moved);
    await writer.sync(); // named NNNNNNNN.pack
    await writer.close();
    const maps = packs as unknown as { paths: Map<number, string>; sidePacks: Set<number> };
    expect(packs.isSidePack(location.pack)).toBe(true);
    expect(await packs.checkLocation(location, hashBytes(moved))).toBeUndefined();
    expect(maps.paths.has(location.pack)).toBe(true);
    expect(await packs.removePack(location.pack, 0)).toBe(true);
    expect(maps.paths.has(location.pack)).toBe(false);
    expect(packs.isSidePack(location.pack)).toBe(false);
    // as before: a stale location naming the removed pack is refused, and asking does not cache its path again
    expect(await packs.checkLocation(location, hashBytes(moved))).toBe('its pack was retired by compaction');
    expect(maps.paths.has(location.pack)).toBe(false);
    await packs.close();
  });

  it('removed packs are kept as runs, not one entry each (was a Set of every pack ever removed): a stale location in any of them is refused, the live ones between them read', async () => {
    const { packs } = await openPacks();
    await commit(packs, [body(1)]);
    const made: { location: BlobLocation; hash: Buffer }[] = [];
    for (let i = 0; i < 40; i++) {
      const writer = await packs.createSidePack();
      const bytes = body(100 + i);
      made.push({ location: await writer.append(hashBytes(bytes), bytes), hash: hashBytes(bytes) });
      await writer.sync();
      await writer.close();
    }
    const live = (i: number) => i % 10 === 9; // compaction left every tenth pack
    for (const [i, { location }] of made.entries()) if (!live(i)) expect(await packs.removePack(location.pack, 0)).toBe(true);
    expect((packs as unknown as { gone: { runs: number } }).gone.runs).toBe(4);
    for (const [i, { location, hash }] of made.entries()) {
      expect(await packs.checkLocation(location, hash), `pack ${location.pack}`).toBe(live(i) ? undefined : 'its pack was retired by compaction');
    }
    for (const [i, { location }] of made.entries()) if (live(i) && i < 39) expect(await packs.removePack(location.pack, 0)).toBe(true);
    expect((packs as unknown as { gone: { runs: number } }).gone.runs).toBe(1); // the live ones compacted too, all but the last
    expect(await packs.checkLocation(made[39].location, made[39].hash)).toBeUndefined();
    await packs.close();
  });
});
