// The damage explorer's small stores, one per shape of on-disk state (one pack; rotated packs and
// segments; a torn pack tail with appends after it; deduplicated blobs; expunged messages; renamed
// and deleted mailboxes), each with the model of what was acknowledged and its pristine bytes.
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store, type StoreOptions } from '../../src/store/store.js';
import { SPACE } from '../../src/keys/tuple.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { PACK_HEADER_BYTES, RECORD_HEADER_BYTES, encodeRecordHeader, packFileName } from '../../src/blob/pack-format.js';
import { keys } from '../../src/keys/index-keys.js';
import type { BlobRecord } from '../../src/store/records.js';
import { msg } from './helpers.js';
import { segmentRecordsEnd } from './damage-cases.js';
import { PACKED, packed } from '../helpers/packed.js';
import { INLINE_PACK } from '../../src/blob/pack-store.js';
import { limits } from '../../src/limits.js';

/** Acknowledged bytes by mailbox, then uid. */
export type Model = Map<string, Map<number, Buffer>>;

/** What the pristine store says besides bodies: mailbox names, and per mailbox uids with flags. */
export type Metadata = Record<string, [number, string][]>;

export interface Shape {
  name: string;
  options: StoreOptions;
  model: Model;
  metadata: Metadata;
  /** Every file (path relative to the store) with its pristine bytes; directories as null. */
  files: Map<string, Buffer | null>;
  /** Byte ranges of each file whose damage scrub must report (referenced pack records, headers, journal, identity). */
  live: Map<string, [number, number][]>;
  /** Per pack: offset of a torn record that the shape left before later records (the torn-tail shape). */
  tornAt: Map<string, number>;
}

/** The mutations a shape builder makes, each kept in the model. */
class Builder {
  readonly model: Model = new Map();
  private n = 0;
  constructor(readonly store: Store) {}

  async create(name: string): Promise<void> {
    await this.store.createMailbox(name, { owner: 'alice' });
    this.model.set(name, new Map());
  }

  /** Appends a new body (or `bytes`, for deduplication) and returns it. */
  async append(box: string, size: number, flags: string[] = [], bytes: Buffer = msg(`${box}-${this.n++}`, size)): Promise<Buffer> {
    const { uid } = await this.store.append(box, bytes, { flags, internalDate: 1_700_000_000_000 + this.n * 1000 });
    this.model.get(box)!.set(uid, bytes);
    return bytes;
  }

  async copy(from: string, uids: number[], to: string, move = false): Promise<void> {
    const { mapping } = move ? await this.store.move(from, uids, to) : await this.store.copy(from, uids, to);
    for (const [src, dst] of mapping) {
      this.model.get(to)!.set(dst, this.model.get(from)!.get(src)!);
      if (move) this.model.get(from)!.delete(src);
    }
  }

  async expunge(box: string, uids: number[]): Promise<void> {
    await this.store.expunge(box, uids);
    for (const uid of uids) this.model.get(box)!.delete(uid);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.store.renameMailbox(from, to);
    for (const name of [...this.model.keys()]) {
      if (name !== from && !name.startsWith(`${from}/`)) continue;
      this.model.set(to + name.slice(from.length), this.model.get(name)!);
      this.model.delete(name);
    }
  }

  async delete(name: string): Promise<void> {
    await this.store.deleteMailbox(name);
    this.model.delete(name);
  }
}

const ROTATION = { packBytesMax: 2 * 1024, journalSegmentBytesMax: 1024 };

/** Sizes of bodies: small (the interesting bytes are headers and frames), varied. */
const size = (i: number) => 80 + ((i * 173) % 420);

type Build = (b: Builder, dir: string, options: StoreOptions) => Promise<Builder>;

const onePack: Build = async (b) => {
  await b.create('INBOX');
  for (let i = 0; i < 6; i++) await b.append('INBOX', size(i), i % 2 ? ['\\Seen'] : []);
  await b.store.setFlags('INBOX', [1, 2], { add: ['\\Flagged'] });
  return b;
};

const rotation: Build = async (b) => {
  await b.create('INBOX');
  await b.create('Sent');
  for (let i = 0; i < 10; i++) await b.append(i % 3 ? 'INBOX' : 'Sent', 200 + size(i), i % 4 ? [] : ['\\Seen']);
  await b.store.setFlags('INBOX', [1, 3], { add: ['$Work'] });
  return b;
};

/**
 * A batch whose pack write was torn by a crash before its journal record: a record header that
 * claims 700 body bytes with only 150 written. The store reopens and appends after it.
 */
const TORN = msg('torn, never acknowledged', 700);
const TORN_HEADER = encodeRecordHeader(hashBytes(TORN), TORN.length);

const tornTail: Build = async (b, dir, options) => {
  await b.create('INBOX');
  for (let i = 0; i < 3; i++) await b.append('INBOX', size(i));
  await b.store.close();
  const packs = readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack')).sort();
  appendFileSync(join(dir, 'packs', packs.at(-1)!), Buffer.concat([TORN_HEADER, TORN.subarray(0, 150)]));
  const again = new Builder(await Store.open(dir, options));
  again.model.set('INBOX', b.model.get('INBOX')!);
  for (let i = 3; i < 6; i++) await again.append('INBOX', size(i), i === 4 ? ['\\Seen'] : []);
  return again;
};

const dedup: Build = async (b) => {
  await b.create('INBOX');
  await b.create('Sent');
  const shared = await b.append('INBOX', 300);
  await b.append('INBOX', 0, [], shared);
  await b.append('Sent', 0, ['\\Seen'], shared);
  for (let i = 0; i < 3; i++) await b.append('INBOX', size(i));
  await b.copy('INBOX', [3, 4], 'Sent');
  return b;
};

const expunged: Build = async (b) => {
  await b.create('INBOX');
  await b.create('Archive');
  for (let i = 0; i < 6; i++) await b.append('INBOX', size(i));
  await b.copy('INBOX', [2], 'Archive');
  await b.expunge('INBOX', [2, 5]); // 2 still used by Archive; 5's blob is left with no reference
  await b.store.setFlags('INBOX', [1], { add: ['\\Deleted'] });
  return b;
};

const mailboxes: Build = async (b) => {
  for (const name of ['A', 'A/B', 'A/B/C', 'D', 'E']) await b.create(name);
  for (const [i, name] of ['A', 'A/B', 'A/B/C', 'D', 'E', 'A/B'].entries()) await b.append(name, size(i));
  await b.store.setAcl('E', 'bob', 'lr');
  await b.rename('A', 'Z');
  await b.copy('D', [1], 'E', true);
  await b.delete('D');
  await b.rename('Z/B/C', 'Y');
  return b;
};

/**
 * After a scrub --repair: two blobs relocated to new records (as repair does with good copies),
 * the old records left in place unreferenced, one of them damaged (the reason for the repair).
 */
const repaired: Build = async (b, dir, options) => {
  await b.create('INBOX');
  const bodies: Buffer[] = [];
  for (let i = 0; i < 5; i++) bodies.push(await b.append('INBOX', size(i)));
  const old = await Promise.all([1, 3].map(async (uid) => (await b.store.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(bodies[uid - 1]))))!));
  await b.store.maintenance().relocateBlobs([1, 3].map((uid) => ({ hash: hashBytes(bodies[uid - 1]), bytes: bodies[uid - 1] })));
  await b.store.close();
  const path = join(dir, 'packs', packFileName(old[0].p));
  const pack = readFileSync(path);
  pack[old[0].o + RECORD_HEADER_BYTES + 10] ^= 0x20;
  writeFileSync(path, pack);
  const again = new Builder(await Store.open(dir, options));
  again.model.set('INBOX', b.model.get('INBOX')!);
  await again.append('INBOX', size(7));
  return again;
};

/** Everything at once, with rotation: the records of one story spread over many files. */
const mixedRotation: Build = async (b, dir, options) => {
  await mailboxes(b, dir, options);
  await dedup(b, dir, options);
  await b.expunge('INBOX', [1, 6]);
  return b;
};

export const SHAPES: { name: string; options: StoreOptions; build: Build }[] = [
  // the pack shapes keep every body in a pack (test/helpers/packed.ts); 'inline' stores small
  // bodies inside their journal records at the measured threshold (docs/FORMAT.md, "Inline bodies")
  { name: 'one-pack', options: PACKED, build: onePack },
  { name: 'rotation', options: packed(ROTATION), build: rotation },
  { name: 'torn-tail', options: PACKED, build: tornTail },
  { name: 'dedup', options: PACKED, build: dedup },
  { name: 'expunged', options: PACKED, build: expunged },
  { name: 'mailboxes', options: PACKED, build: mailboxes },
  { name: 'repaired', options: PACKED, build: repaired },
  { name: 'mixed-rotation', options: packed(ROTATION), build: mixedRotation },
  { name: 'inline', options: { inlineBodyBytesMax: limits.inlineBodyBytesMeasured }, build: onePack },
];

/** Builds one shape in `dir`, records what it holds, and keeps its pristine bytes. */
export async function buildShape(spec: (typeof SHAPES)[number], dir: string): Promise<Shape> {
  const options = { ...spec.options, probeIndex: 'never' as const };
  const first = await Store.open(dir, { ...options, create: true });
  const built = await spec.build(new Builder(first), dir, options);
  await built.store.close();
  const store = await Store.open(dir, options);
  let metadata: Metadata;
  let blobs: BlobRecord[];
  try {
    metadata = await readMetadata(store);
    blobs = [];
    for await (const [, blob] of store.maintenance().index.entries<BlobRecord>({ gte: Buffer.of(SPACE.blob), lt: Buffer.of(SPACE.blob + 1) })) blobs.push(blob);
  } finally {
    await store.close();
  }
  const model = built.model;
  for (const [box, messages] of model) {
    const uids = (metadata[box] ?? []).map(([uid]) => uid);
    if (uids.join() !== [...messages.keys()].sort((a, b) => a - b).join()) throw new Error(`shape ${spec.name}: model and store disagree on ${box}`);
  }
  if (Object.keys(metadata).sort().join() !== [...model.keys()].sort().join()) throw new Error(`shape ${spec.name}: mailbox lists disagree`);
  const files = snapshot(dir);
  return { name: spec.name, options, model, metadata, files, live: liveRanges(files, blobs), tornAt: tornRecords(spec.name, files) };
}

/** Mailbox names and, per mailbox, uid and flags of every message (from the index). */
export async function readMetadata(store: Store): Promise<Metadata> {
  const out: Metadata = {};
  for (const { name } of await store.listMailboxes()) {
    const list: [number, string][] = [];
    for await (const m of store.messages(name)) list.push([m.uid, m.flags.join(' ')]);
    out[name] = list;
  }
  return out;
}

function snapshot(dir: string): Map<string, Buffer | null> {
  const files = new Map<string, Buffer | null>();
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      if (path === 'LOCK') continue;
      if (statSync(join(dir, path)).isDirectory()) {
        files.set(path, null);
        walk(path);
      } else files.set(path, readFileSync(join(dir, path)));
    }
  };
  walk('');
  return files;
}

/** Writes the pristine store into `dir`, with `replace` standing in for one file (undefined: deleted). */
export function materialize(shape: Shape, dir: string, damaged?: { path: string; bytes: Buffer | undefined }): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  for (const [path, bytes] of shape.files) {
    if (bytes === null) mkdirSync(join(dir, path));
    else if (damaged?.path === path) {
      if (damaged.bytes) writeFileSync(join(dir, path), damaged.bytes);
    } else writeFileSync(join(dir, path), bytes);
  }
}

/**
 * The bytes whose damage is damage to kept state: the pack header and every record of a blob that
 * a message uses; all of a journal segment and STORE; a marker's id (not its newline). A record
 * no message uses (expunged, torn, never committed) may be reported as informational or not at all.
 */
function liveRanges(files: Map<string, Buffer | null>, blobs: BlobRecord[]): Map<string, [number, number][]> {
  const live = new Map<string, [number, number][]>();
  for (const [path, bytes] of files) {
    if (!bytes) continue;
    if (path.startsWith('packs/') && path.endsWith('.pack')) live.set(path, [[0, PACK_HEADER_BYTES]]);
    // a segment's records: the filler the journal preallocated after them holds nothing acknowledged
    // (damage there is cut like a torn tail; zeros over a record are damage: docs/FORMAT.md, "Journal")
    else if (path.startsWith('journal/') && path.endsWith('.jnl')) live.set(path, [[0, segmentRecordsEnd(bytes)]]);
    else if (path === 'STORE') live.set(path, [[0, bytes.length]]);
    else if (path.endsWith('/STORE-ID')) live.set(path, [[0, bytes.toString().trimEnd().length]]);
  }
  for (const blob of blobs) {
    // an inline body is inside its journal record, whose bytes are live already
    if (blob.r > 0 && blob.p !== INLINE_PACK) live.get(`packs/${packFileName(blob.p)}`)!.push([blob.o, blob.o + RECORD_HEADER_BYTES + blob.l]);
  }
  return live;
}

/** The torn record of the torn-tail shape: the first record header whose body runs into the next record. */
function tornRecords(name: string, files: Map<string, Buffer | null>): Map<string, number> {
  const out = new Map<string, number>();
  if (name !== 'torn-tail') return out;
  for (const [path, bytes] of files) {
    if (!bytes || !path.endsWith('.pack')) continue;
    const at = bytes.indexOf(TORN_HEADER);
    if (at !== -1) out.set(path, at);
  }
  return out;
}

