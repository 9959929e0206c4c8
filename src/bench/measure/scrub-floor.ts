// The per-message hashing floor under scrub (issue 16): the same pack bytes scrub reads, each blob
// hashed as its own BLAKE3 input with the hasher mailstore uses (hashBytes), in one thread, nothing
// else: no index lookups, no findings, no worker. Reads as the scan does (limits.scanChunkBytes at a
// time, every record lying whole in a chunk hashed from it); a record bigger than a chunk is read whole.
// b3sum hashes a whole file as one input (SIMD across its 1 KiB chunks, no per-input start-up);
// a content address is one input per message, so this is what one thread of mailstore can reach.
//
//   node dist/src/bench/measure/scrub-floor.js --store DIR
import { RECORD_HEADER_BYTES, decodeRecordHeader } from '../../blob/pack-format.js';
import { hashBytes, hashImplementation } from '../../hash/blake3.js';
import { limits } from '../../limits.js';
import { emit, parseFlags, required, round, runMeasurement } from '../common.js';
import { forEachPackRecord, packFiles } from '../pack-walk.js';

const { values } = parseFlags(process.argv.slice(2));
await runMeasurement('floor-blake3-blobs', 'scrub', async () => {
  const packs = packFiles(required(values, 'store'));
  const chunk = Buffer.allocUnsafe(limits.scanChunkBytes);
  let bytes = 0, blobs = 0, bad = 0, hashing = 0;
  const started = performance.now();
  const hashBody = (body: Buffer, hash: Buffer) => {
    const t = performance.now();
    if (!hashBytes(body).equals(hash)) bad++;
    hashing += performance.now() - t;
    blobs++;
    bytes += body.length;
  };
  await forEachPackRecord(packs, chunk, (c, at) => decodeRecordHeader(c.subarray(at, at + RECORD_HEADER_BYTES)), hashBody);
  const seconds = (performance.now() - started) / 1000;
  if (bad > 0) throw new Error(`${bad} records failed their hash (the floor runs on an undamaged store)`);
  emit({
    peer: 'floor-blake3-blobs', measurement: 'scrub', messages: blobs, bytes, seconds: round(seconds, 4), hash_seconds: round(hashing / 1000, 4),
    note: `one thread: ${packs.length} pack file(s) read ${limits.scanChunkBytes / 1048576} MiB at a time and each of ${blobs} blobs hashed as its own BLAKE3 input ` +
      `(${hashImplementation}, as mailstore hashes), ${round(hashing / 1000, 3)} s of it hashing; no index, no findings; bytes = blob bodies; warm page cache`,
  });
});
