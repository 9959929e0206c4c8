// The floors' walk over a store's pack files (measure/scrub-floor.ts, measure/read-floor.ts): every
// record in file order, read a chunk at a time into one buffer (each record lying whole in a chunk
// taken from it, a bigger one read whole), nothing else. The floors run on undamaged stores: a place
// where no record starts is an error.
import { closeSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PACK_HEADER_BYTES, RECORD_HEADER_BYTES, parsePackFileName } from '../blob/pack-format.js';

/** A record header at `at` of `chunk` (RECORD_HEADER_BYTES there): its body's length and hash, or undefined where none starts. */
export type HeaderReader = (chunk: Buffer, at: number) => { bodyLength: number; hash: Buffer } | undefined;

/** The store's pack files, in pack order. */
export function packFiles(store: string): string[] {
  const dir = join(store, 'packs');
  return readdirSync(dir).filter((name) => parsePackFileName(name) !== undefined).sort().map((name) => join(dir, name));
}

/** `onRecord` for each record of `packs`; `between`, when given, awaited after each pread (a floor's other work goes on there). */
export async function forEachPackRecord(packs: string[], chunk: Buffer, header: HeaderReader, onRecord: (body: Buffer, hash: Buffer) => void, between?: () => Promise<unknown>): Promise<void> {
  for (const path of packs) {
    const fd = openSync(path, 'r');
    try {
      const size = statSync(path).size;
      let p = PACK_HEADER_BYTES;
      while (p < size) {
        const n = readSync(fd, chunk, 0, Math.min(chunk.length, size - p), p);
        let q = 0;
        while (q + RECORD_HEADER_BYTES <= n) {
          const rec = header(chunk, q);
          if (!rec || q + RECORD_HEADER_BYTES + rec.bodyLength > n) break;
          onRecord(chunk.subarray(q + RECORD_HEADER_BYTES, q + RECORD_HEADER_BYTES + rec.bodyLength), rec.hash);
          q += RECORD_HEADER_BYTES + rec.bodyLength;
        }
        if (q === 0) {
          const rec = n >= RECORD_HEADER_BYTES ? header(chunk, 0) : undefined;
          if (!rec || p + RECORD_HEADER_BYTES + rec.bodyLength > size) throw new Error(`${path}: no record at ${p} (the floor runs on an undamaged store)`);
          const body = Buffer.allocUnsafe(rec.bodyLength); // read apart: rec.hash may be a view into the chunk, which stays as it is
          readSync(fd, body, 0, body.length, p + RECORD_HEADER_BYTES);
          onRecord(body, rec.hash);
          q = RECORD_HEADER_BYTES + rec.bodyLength;
        }
        p += q;
        if (between) await between();
      }
    } finally {
      closeSync(fd);
    }
  }
}
