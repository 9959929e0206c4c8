// Where repair finds good copies: another mailstore (a replica or a copy: its packs are scanned,
// so neither its index nor its lock is needed), a running node (HOST:PORT, its replication
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
