// Floor for the synchronous-replica latency goal (issue 15): the durable shapes of one delivery
// with no replica and with one synchronous replica, on this machine, with no store logic, so the
// ratio of the two is what the disk, the cores and a loopback round trip alone impose.
//   floor-repl-alone  record + body written and fdatasynced into a zero-filled file (the primary's
//                     journal commit: sync-one-zeroed of sync-shapes.ts)
//   floor-repl-sync1  the same, and before it the bytes go in one frame over loopback TCP (no TLS:
//                     a lower bound) to a second process that writes and fdatasyncs them into its
//                     own zero-filled file in its thread (as a replica's pending round does) and
//                     answers one byte; done when both are durable and the answer came back
// The two alternate message by message, so both see the same disk and the same load. Both
// processes use the same disk: a replica on another machine would not share its flushes.
//
//   node dist/src/bench/measure/sync-repl-floor.js --dir DIR --list LIST.TXT --messages N
//   (the replica half: --serve FILE --bytes N, started by the above; prints its port)
import { spawn } from 'node:child_process';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { nodeFileSystem as fs } from '../../fs/node-fs.js';
import type { FileHandle } from '../../fs/filesystem.js';
import { makeDirectories } from '../files.js';
import { emit, firstListed, parseFlags, percentile, required, round, runMeasurement } from '../common.js';

const { values } = parseFlags(process.argv.slice(2));
const RECORD = Buffer.alloc(200, 0x61);

if (values.has('serve')) await serve(required(values, 'serve'), Number(required(values, 'bytes')));
else {
  await runMeasurement('floor-repl', 'repl-deliver', async () => {
    const dir = required(values, 'dir');
    const files = await firstListed(required(values, 'list'), Number(required(values, 'messages')));
    const bodies = await Promise.all(files.map((f) => fs.readFile(f)));
    const total = bodies.reduce((n, b) => n + b.length + RECORD.length, 0);
    await makeDirectories(dir);
    const own = await zeroFilled(join(dir, 'primary'), total);
    const replica = await startReplica(join(dir, 'replica'), total);
    try {
      const alone: number[] = [], sync1: number[] = [];
      let position = 0;
      for (const [i, body] of bodies.entries()) {
        const t = performance.now();
        const frame = Buffer.concat([RECORD, body]);
        const acked = i % 2 === 1 ? replica.send(frame) : undefined;
        await own.write(frame, position);
        await own.sync();
        await acked;
        position += frame.length;
        (acked ? sync1 : alone).push(performance.now() - t);
      }
      for (const [peer, latencies] of [['floor-repl-alone', alone], ['floor-repl-sync1', sync1]] as const) {
        emit({
          peer, measurement: 'repl-deliver', messages: latencies.length, bytes: total, seconds: round(latencies.reduce((a, b) => a + b, 0) / 1000, 4),
          p50_ms: round(percentile(latencies, 0.5)), p99_ms: round(percentile(latencies, 0.99)), max_ms: round(Math.max(...latencies)),
          note: peer === 'floor-repl-alone'
            ? 'no store logic: record + body written and fdatasynced into a zero-filled file (every other message of the list)'
            : 'no store logic: as floor-repl-alone, and the same bytes first sent over loopback TCP (no TLS) to a second process that writes and fdatasyncs them into its own zero-filled file and answers (the other messages); one disk for both',
        });
      }
    } finally {
      await replica.stop();
      await own.close();
      await fs.removeTree(dir);
    }
  });
}

async function zeroFilled(path: string, bytes: number): Promise<FileHandle> {
  const handle = await fs.open(path, 'createOrOpen');
  await handle.truncate(0);
  for (let at = 0; at < bytes; at += 8 << 20) await handle.write(Buffer.alloc(Math.min(8 << 20, bytes - at)), at);
  await handle.sync();
  return handle;
}

interface ReplicaHalf {
  send(frame: Buffer): Promise<void>;
  stop(): Promise<void>;
}

/** The second process, connected: each frame sent resolves when its one-byte answer arrives. */
async function startReplica(path: string, bytes: number): Promise<ReplicaHalf> {
  const child = spawn(process.execPath, [process.argv[1]!, '--serve', path, '--bytes', String(bytes)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (data: Buffer) => resolve(Number(data.toString().trim())));
    child.once('exit', (code) => reject(new Error(`the replica half exited with status ${code}`)));
  });
  const socket = createConnection({ port, host: '127.0.0.1', noDelay: true });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const waiting: (() => void)[] = [];
  socket.on('data', (data: Buffer) => { for (let i = 0; i < data.length; i++) waiting.shift()?.(); });
  return {
    send(frame) {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(frame.length);
      socket.write(Buffer.concat([header, frame]));
      return new Promise<void>((resolve) => waiting.push(resolve));
    },
    async stop() {
      socket.end();
      await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
    },
  };
}

/** The replica half: frames in, each written and fdatasynced in this thread, one byte back. */
async function serve(path: string, bytes: number): Promise<void> {
  const file = await zeroFilled(path, bytes);
  let position = 0;
  const server = createServer({ noDelay: true }, (socket: Socket) => {
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (data: Buffer) => {
      pending = pending.length === 0 ? data : Buffer.concat([pending, data]);
      void drain();
    });
    let busy = false;
    const drain = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
        const length = pending.readUInt32BE(0);
        const frame = pending.subarray(4, 4 + length);
        pending = pending.subarray(4 + length);
        await file.writevDurable([frame], position);
        position += length;
        socket.write(Buffer.from([1]));
      }
      busy = false;
    };
    socket.on('end', () => {
      server.close();
      void file.close().then(() => fs.unlink(path));
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
  });
}
