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
// --warmup M: each shape first writes the list's M messages after the first N, untimed, into its
// own files (zero-filled for both, so the timed writes still find them preallocated; the warm-up's
// figures are the cold_* fields): the floor warmed as the deliver step's one-sync rows are.
//
//   node dist/src/bench/measure/sync-shapes.js --dir DIR --list LIST.TXT --messages N [--warmup M] [--inline BYTES]
import { nodeFileSystem as fs } from '../../fs/node-fs.js';
import { makeDirectories } from '../files.js';
import { join } from 'node:path';
import type { FileHandle } from '../../fs/filesystem.js';
import { limits } from '../../limits.js';
import { coldFields, emit, latencyTail, parseFlags, percentile, required, round, runMeasurement, timedAndWarmup } from '../common.js';

type Shape = 'sync-two' | 'sync-one' | 'sync-one-zeroed' | 'sync-two-zeroed';
/** A shape's two files and where its next write goes in each (a is the pack side of sync-two). */
interface Files { a: FileHandle; b: FileHandle; pa: number; pb: number }

const { values } = parseFlags(process.argv.slice(2));
const inlineBytesMax = Number(values.get('inline') ?? limits.inlineBodyBytesDefault);
await runMeasurement('floor-sync', 'deliver', async () => {
  const dir = required(values, 'dir');
  const { timed, warm } = await timedAndWarmup(required(values, 'list'), Number(required(values, 'messages')), Number(values.get('warmup') ?? 0));
  const bodies = await Promise.all(timed.map((f) => fs.readFile(f)));
  const warmBodies = await Promise.all(warm.map((f) => fs.readFile(f)));
  const record = Buffer.alloc(200, 0x61);
  const bytesOf = (list: Buffer[]) => list.reduce((n, b) => n + b.length + record.length, 0);
  const total = bytesOf(bodies);
  await makeDirectories(dir);
  for (const shape of ['sync-two', 'sync-one', 'sync-one-zeroed', 'sync-two-zeroed'] as const) {
    const files: Files = { a: await createEmpty(join(dir, `${shape}.a`)), b: await createEmpty(join(dir, `${shape}.b`)), pa: 0, pb: 0 };
    if (shape.endsWith('-zeroed')) {
      for (const f of shape === 'sync-two-zeroed' ? [files.a, files.b] : [files.b]) {
        await f.write(Buffer.alloc(total + bytesOf(warmBodies)), 0);
        await f.sync();
      }
    }
    const cold = await writeAll(shape, files, warmBodies, record);
    const { latencies, seconds } = await writeAll(shape, files, bodies, record);
    await files.a.close();
    await files.b.close();
    emit({
      peer: `floor-${shape}`, measurement: 'deliver', messages: bodies.length, bytes: total, seconds: round(seconds, 4),
      p50_ms: round(percentile(latencies, 0.5)), p99_ms: round(percentile(latencies, 0.99)), max_ms: round(Math.max(...latencies)),
      ...coldFields(cold.latencies, cold.seconds),
      ...latencyTail(latencies, bodies.map((b) => b.length), inlineBytesMax),
      note: {
        'sync-two': 'each message: body appended to file A, a 200-byte record to file B, both fdatasynced at once (the shape of a mailstore commit); no store logic',
        'sync-one': 'each message: 200-byte record + body appended to one file, one fdatasync (the shape of a body-in-the-journal design); no store logic',
        'sync-one-zeroed': 'as sync-one, into a file zero-filled and synced beforehand (no size change for fdatasync to commit); no store logic',
        'sync-two-zeroed': 'as sync-two, into two files zero-filled and synced beforehand; no store logic',
      }[shape] + (warmBodies.length ? `; ${warmBodies.length.toLocaleString('en-US')} untimed writes of the list's next messages first, into the same file(s) (cold_* fields)` : ''),
    });
  }
  await fs.removeTree(dir);
});

/** Each body durably written in `shape`, one after the other, at the files' positions (moved on): each one's latency. */
async function writeAll(shape: Shape, files: Files, bodies: Buffer[], record: Buffer): Promise<{ latencies: number[]; seconds: number }> {
  const latencies: number[] = [];
  const started = performance.now();
  for (const body of bodies) {
    const t = performance.now();
    if (shape === 'sync-two' || shape === 'sync-two-zeroed') {
      await files.a.write(body, files.pa);
      await files.b.write(record, files.pb);
      files.pa += body.length;
      files.pb += record.length;
      await Promise.all([files.a.sync(), files.b.sync()]);
    } else {
      const both = Buffer.concat([record, body]);
      await files.b.write(both, files.pb);
      files.pb += both.length;
      await files.b.sync();
    }
    latencies.push(performance.now() - t);
  }
  return { latencies, seconds: (performance.now() - started) / 1000 };
}

/** A new empty file (FileHandle.sync is fdatasync, as a store's commit uses). */
async function createEmpty(path: string): Promise<FileHandle> {
  const handle = await fs.open(path, 'createOrOpen');
  await handle.truncate(0);
  return handle;
}
