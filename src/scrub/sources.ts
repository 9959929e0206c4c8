// Where repair finds good copies: another mailstore (a replica or a copy: its packs are scanned,
// and its journal segments for inline bodies, so neither its index nor its lock is needed), a running node (HOST:PORT, its replication
// listener: blobs by hash) or a directory of raw messages. Every copy is
// verified against the wanted hash before it is used.
import { join } from 'node:path';
import { AssertionFailure } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { hashBytes, hashHex } from '../hash/blake3.js';
import { PackStore } from '../blob/pack-store.js';
import { LAYOUT } from '../store/identity.js';
import { limits } from '../limits.js';
import { fetchBlobsFrom, isNodeAddress } from '../replication/blob-source.js';
import { decodeCbor } from '../index/codec.js';
import { scanSegmentFile } from '../journal/segment-reader.js';
import { parseSegmentFileName } from '../journal/journal-format.js';
import type { JournalPayload } from '../store/records.js';

export async function findCopies(fs: FileSystem, source: string, wanted: Set<string>, found: Map<string, Buffer>, messageBytesMax: number, options: { keyFile?: string } = {}): Promise<void> {
  if (wanted.size === found.size) return;
  if (isNodeAddress(source) && !(await fs.statIfExists(source))) {
    await fetchBlobsFrom(fs, source, options.keyFile, wanted, found); // a replica or primary, over the replication listener
  } else if (await fs.statIfExists(join(source, LAYOUT.identity))) {
    await fromStore(fs, source, wanted, found);
  } else {
    await fromFiles(fs, source, wanted, found, messageBytesMax);
  }
}

async function fromStore(fs: FileSystem, source: string, wanted: Set<string>, found: Map<string, Buffer>): Promise<void> {
  await fromPacks(fs, source, wanted, found);
  if (found.size < wanted.size) await fromJournal(fs, source, wanted, found);
}

async function fromPacks(fs: FileSystem, source: string, wanted: Set<string>, found: Map<string, Buffer>): Promise<void> {
  const packs = await PackStore.open(fs, join(source, LAYOUT.packs), Buffer.alloc(16), {
    packBytesMax: limits.packBytesMax,
    checkMounted: async () => { throw new AssertionFailure('a repair source is never written'); },
  });
  try {
    for (const pack of await packs.listPacks()) {
      for await (const item of packs.scan(pack)) {
        if (item.kind !== 'blob' || !item.valid) continue;
        const hex = hashHex(item.hash);
        if (!wanted.has(hex) || found.has(hex)) continue;
        const bytes = await packs.read({ pack, offset: item.offset, length: item.length }, item.hash);
        found.set(hex, bytes);
        if (found.size === wanted.size) return;
      }
    }
  } finally {
    await packs.close();
  }
}

/**
 * Inline bodies (docs/FORMAT.md, "Inline bodies"): a small delivery's only copy is inside its
 * journal record, so a copy or replica of the store holds it in its journal/ segments. Every
 * valid record is decoded; damaged ranges are skipped (the copy may be damaged elsewhere too).
 * Segments are read in windows of limits.readChunkBytes and the search stops at the last wanted
 * body: a source's journal can be many segments, and a few bodies are usually all that is wanted.
 */
async function fromJournal(fs: FileSystem, source: string, wanted: Set<string>, found: Map<string, Buffer>): Promise<void> {
  const dir = join(source, LAYOUT.journal);
  if (!(await fs.statIfExists(dir))) return;
  for (const name of (await fs.readdir(dir)).filter((n) => parseSegmentFileName(n) !== undefined).sort()) {
    if (found.size === wanted.size) return;
    const handle = await fs.open(join(dir, name), 'read').catch(() => undefined);
    if (!handle) continue;
    try {
      for await (const item of scanSegmentFile(handle, limits.journalRecordBytesMax, limits.readChunkBytes)) {
        if (item.kind === 'record') takeInlineBodies(item.payload, wanted, found);
        if (found.size === wanted.size) return;
      }
    } catch (error) {
      if (error instanceof AssertionFailure) throw error;
      // a segment that cannot be read on (an I/O error) is no copy of the rest of it; the next may be
    } finally {
      await handle.close();
    }
  }
}

/** The wanted bodies in one journal record's message.add ops, each verified by its hash. */
function takeInlineBodies(record: Buffer, wanted: Set<string>, found: Map<string, Buffer>): void {
  let payload: JournalPayload;
  try {
    payload = decodeCbor<JournalPayload>(record);
  } catch {
    return; // a record this version cannot read is no copy of anything
  }
  for (const op of payload.ops ?? []) {
    if (op.op !== 'message.add' || !op.body) continue;
    const body = Buffer.from(op.body);
    const hex = hashHex(hashBytes(body)); // verified: the op's hash field is not trusted
    if (wanted.has(hex) && !found.has(hex)) found.set(hex, body);
  }
}

async function fromFiles(fs: FileSystem, dir: string, wanted: Set<string>, found: Map<string, Buffer>, messageBytesMax: number): Promise<void> {
  for (const name of await fs.readdir(dir)) {
    if (found.size === wanted.size) return;
    const path = join(dir, name);
    const stat = await fs.statIfExists(path);
    if (!stat) continue;
    if (stat.isDirectory) {
      await fromFiles(fs, path, wanted, found, messageBytesMax);
    } else if (stat.isFile && stat.size <= messageBytesMax) {
      const bytes = await fs.readFile(path).catch(() => undefined);
      if (!bytes) continue;
      const hex = hashHex(hashBytes(bytes));
      if (wanted.has(hex) && !found.has(hex)) found.set(hex, bytes);
    }
  }
}
