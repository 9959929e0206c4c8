// Diagnostic for the delivery goal: the latency of the durable-append shapes a store can be built
// on, with the corpus's own message sizes, on the disk the stores use, in the same run. No store
// logic runs here, so each line is a floor for any design with that shape:
//   sync-two        body appended to one file, a ~200-byte record to another, both fdatasynced at
//                   once (mailstore's commit: pack + journal)
//   sync-one        record + body appended to one file, one fdatasync (a design with the body in
//                   the journal record)
//   sync-one-zeroed the same into a file zero-filled beforehand, so fdatasync has no size change
//                   to commit (preallocated journal segments)
//   sync-two-zeroed sync-two into two zero-filled files (preallocated packs and segments)
//
// Each line also splits its latencies (common.ts latencyTail) at --inline BYTES (the inline row's
// threshold; default the store's), so the bodies mailstore commits to a pack are compared with the
// floor's time for the same messages.
//
//   node dist/src/bench/measure/sync-shapes.js --dir DIR --list LIST.TXT --messages N [--inline BYTES]
import { nodeFileSystem as fs } from '../../fs/node-fs.js';
import { makeDirectories } from '../files.js';
import { join } from 'node:path';
import type { FileHandle } from '../../fs/filesystem.js';
import { limits } from '../../limits.js';
import { emit, firstListed, latencyTail, parseFlags, percentile, required, round, runMeasurement } from '../common.js';

const { values } = parseFlags(process.argv.slice(2));
const inlineBytesMax = Number(values.get('inline') ?? limits.inlineBodyBytesDefault);
await runMeasurement('floor-sync', 'deliver', async () => {
  const dir = required(values, 'dir');
  const files = await firstListed(required(values, 'list'), Number(required(values, 'messages')));
  const bodies = await Promise.all(files.map((f) => fs.readFile(f)));
  const record = Buffer.alloc(200, 0x61);
  const total = bodies.reduce((n, b) => n + b.length + record.length, 0);
  await makeDirectories(dir);
  for (const shape of ['sync-two', 'sync-one', 'sync-one-zeroed', 'sync-two-zeroed'] as const) {
    const a = await createEmpty(join(dir, `${shape}.a`));
    const b = await createEmpty(join(dir, `${shape}.b`));
    if (shape.endsWith('-zeroed')) {
      for (const f of shape === 'sync-two-zeroed' ? [a, b] : [b]) {
        await f.write(Buffer.alloc(total), 0);
        await f.sync();
      }
    }
    const latencies: number[] = [];
    let pa = 0, pb = 0;
    const started = performance.now();
    for (const body of bodies) {
      const t = performance.now();
      if (shape === 'sync-two' || shape === 'sync-two-zeroed') {
        await a.write(body, pa);
        await b.write(record, pb);
        pa += body.length;
        pb += record.length;
        await Promise.all([a.sync(), b.sync()]);
      } else {
        const both = Buffer.concat([record, body]);
        await b.write(both, pb);
        pb += both.length;
        await b.sync();
      }
      latencies.push(performance.now() - t);
    }
    const seconds = (performance.now() - started) / 1000;
    await a.close();
    await b.close();
    emit({
      peer: `floor-${shape}`, measurement: 'deliver', messages: bodies.length, bytes: total, seconds: round(seconds, 4),
      p50_ms: round(percentile(latencies, 0.5)), p99_ms: round(percentile(latencies, 0.99)), max_ms: round(Math.max(...latencies)),
      ...latencyTail(latencies, bodies.map((b) => b.length), inlineBytesMax),
      note: {
        'sync-two': 'each message: body appended to file A, a 200-byte record to file B, both fdatasynced at once (the shape of a mailstore commit); no store logic',
        'sync-one': 'each message: 200-byte record + body appended to one file, one fdatasync (the shape of a body-in-the-journal design); no store logic',
        'sync-one-zeroed': 'as sync-one, into a file zero-filled and synced beforehand (no size change for fdatasync to commit); no store logic',
        'sync-two-zeroed': 'as sync-two, into two files zero-filled and synced beforehand; no store logic',
      }[shape],
    });
  }
  await fs.removeTree(dir);
});

/** A new empty file (FileHandle.sync is fdatasync, as a store's commit uses). */
async function createEmpty(path: string): Promise<FileHandle> {
  const handle = await fs.open(path, 'createOrOpen');
  await handle.truncate(0);
  return handle;
}
