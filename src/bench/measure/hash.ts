// Diagnostic: BLAKE3 over every corpus message in this process, hashing time only (files are read
// first, outside the clock), so import and scrub figures can be split into hashing and the rest.
//
//   node dist/src/bench/measure/hash.js --list LIST.TXT
import { nodeFileSystem as fs } from '../../fs/node-fs.js';
import { hashBytes, hashImplementation } from '../../hash/blake3.js';
import { emit, listedFiles, parseFlags, required, round, runMeasurement } from '../common.js';

const { values } = parseFlags(process.argv.slice(2));
await runMeasurement('mailstore', 'hash', async () => {
  let hashing = 0, bytes = 0, reading = 0;
  let messages = 0;
  for await (const file of listedFiles(required(values, 'list'))) {
    messages++;
    const t0 = performance.now();
    const data = await fs.readFile(file);
    const t1 = performance.now();
    hashBytes(data);
    hashing += performance.now() - t1;
    reading += t1 - t0;
    bytes += data.length;
  }
  emit({
    peer: 'mailstore-hash', measurement: 'hash', messages, bytes, seconds: round(hashing / 1000, 4),
    read_seconds: round(reading / 1000, 4),
    note: `BLAKE3 (${hashImplementation}) of every message in one thread, hashing time only; readFile of the files took ${round(reading / 1000, 2)} s on top`,
  });
});
