// The floor under a verified read of this design (issue 16): what any readMessages must do at the
// least, in a fresh node process as the read step's, and nothing else. Every message record of the
// index is read from LevelDB (the index this design keeps its messages in; one nextv of 1,000 a
// round trip, the values not decoded), and every body is read in pack order (1 MiB preads into one
// reused buffer) and BLAKE3-verified against its record header's hash with the store's own check
// (hashMatches); the index is read beside the packs, its round trips overlapping the hashing. No
// message objects, no decoding, no yields, no worker. The read goal's miss on small messages is
// measured against this: what is left between the two is mailstore's own per-message work.
//
//   node dist/src/bench/measure/read-floor.js --store DIR
//
// The index is read from a copy (made before the clock, beside the store), so that opening LevelDB
// here leaves the store's own files as the read step found them.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { ClassicLevel } from 'classic-level';
import { PACK_RECORD_MAGIC } from '../../blob/pack-format.js';
import { hashMatches, hashReady } from '../../hash/blake3.js';
import { SPACE } from '../../keys/tuple.js';
import { emit, parseFlags, peakRssBytes, required, round, runMeasurement } from '../common.js';
import { warmPageCache } from '../files.js';
import { forEachPackRecord, packFiles } from '../pack-walk.js';

// 1 MiB at a time: 8 MiB made the floor slower (0.045 -> 0.050 s on SpamAssassin: the buffer's fresh pages)
const CHUNK_BYTES = 1024 * 1024;
const INDEX_BATCH = 1000;
const MAGIC = PACK_RECORD_MAGIC.readUInt32BE(0);

const { values } = parseFlags(process.argv.slice(2));
await runMeasurement('floor-read', 'read', async () => {
  const store = required(values, 'store');
  await warmPageCache(store); // as the read step: the store's files read once before
  await hashReady;
  // beside the store, on its disk: a big corpus's index may not fit where os.tmpdir() is
  const copy = mkdtempSync(join(dirname(resolve(store)), '.read-floor-index-'));
  try {
    cpSync(join(store, 'index'), copy, { recursive: true });
    const db = new ClassicLevel<Buffer, Buffer>(copy, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    const packs = packFiles(store);
    const chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
    let records = 0, blobs = 0, bytes = 0, bad = 0;
    const verify = (body: Buffer, hash: Buffer) => {
      if (!hashMatches(body, hash)) bad++;
      blobs++;
      bytes += body.length;
    };
    const started = performance.now();
    const index = (async () => {
      const iterator = db.iterator({ gte: Buffer.of(SPACE.message), lt: Buffer.of(SPACE.message + 1), highWaterMarkBytes: 64 * 1024 * 1024 });
      try {
        for (;;) {
          const batch = await iterator.nextv(INDEX_BATCH);
          if (batch.length === 0) return;
          records += batch.length;
        }
      } finally {
        await iterator.close();
      }
    })();
    index.catch(() => undefined); // awaited below
    // a record's magic and length (a read checks its header too); its body against the header's hash
    const header = (c: Buffer, at: number) => (c.readUInt32BE(at) === MAGIC ? { bodyLength: c.readUInt32BE(at + 36) * 2 ** 32 + c.readUInt32BE(at + 40), hash: c.subarray(at + 4, at + 36) } : undefined);
    let seconds: number;
    try {
      await forEachPackRecord(packs, chunk, header, verify, turn); // the index's next batch is taken in between, as a read's are
      await index;
      seconds = (performance.now() - started) / 1000;
    } finally {
      await index.catch(() => undefined);
      await db.close();
    }
    if (bad > 0) throw new Error(`${bad} of ${blobs} bodies did not match their record's hash`);
    emit({
      peer: 'floor-read', measurement: 'read', messages: records, bytes, seconds: round(seconds), peak_rss_bytes: peakRssBytes(), blobs,
      note: `the least a verified read of this design does, in a fresh node process: the index's ${records} message records read from LevelDB (nextv of ${INDEX_BATCH}, values not decoded) beside every body of the packs read in order (1 MiB preads into one buffer) and BLAKE3-checked against its record's hash (${blobs} blobs, hashMatches); no message objects, no decoding, no worker; warm page cache`,
    });
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
});
