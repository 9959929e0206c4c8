// What a fresh buffer costs on this machine against one already touched (BENCHMARKS.md, "Fresh
// memory costs more than copying"): the first write to each page of new memory is a page fault,
// and on the bench VM a fault costs far more than copying the page.
//
//   node tools/bench/page-faults.mjs [FILE] [--rounds N]
//
// Prints one JSON line per case: milliseconds per MiB (median of the rounds) and minor faults per
// MiB. FILE (default: this script, repeated to 4 MiB in a temporary file) is read with readSync
// into a new 4 MiB buffer each time, then into one kept buffer.
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const roundsAt = args.indexOf('--rounds');
const rounds = roundsAt >= 0 ? Number(args[roundsAt + 1]) : 9;
const named = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--rounds');
const MiB = 1024 * 1024;

let file = named;
let scratch;
if (!file) {
  scratch = mkdtempSync(join(tmpdir(), 'page-faults-'));
  file = join(scratch, 'four-mib');
  const seed = readFileSync(fileURLToPath(import.meta.url));
  const bytes = Buffer.alloc(4 * MiB);
  for (let at = 0; at < bytes.length; at += seed.length) seed.copy(bytes, at);
  writeFileSync(file, bytes);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Runs `body` (which touches `mib` MiB) `rounds` times: median ms per MiB, minor faults per MiB. */
function measure(name, mib, body) {
  const ms = [];
  let faults = 0;
  for (let r = 0; r < rounds; r++) {
    const before = process.resourceUsage().minorPageFault;
    const started = process.hrtime.bigint();
    body();
    ms.push(Number(process.hrtime.bigint() - started) / 1e6 / mib);
    faults += process.resourceUsage().minorPageFault - before;
  }
  console.log(JSON.stringify({ case: name, ms_per_mib: Number(median(ms).toFixed(3)), faults_per_mib: Math.round(faults / rounds / mib), rounds }));
}

const kept = Buffer.allocUnsafeSlow(4 * MiB);
kept.fill(1);
measure('fill a new 4 MiB buffer', 4, () => { Buffer.allocUnsafeSlow(4 * MiB).fill(1); });
measure('fill a kept 4 MiB buffer', 4, () => { kept.fill(2); });
const fd = openSync(file, 'r');
try {
  measure('readSync 4 MiB into a new buffer', 4, () => { readSync(fd, Buffer.allocUnsafeSlow(4 * MiB), 0, 4 * MiB, 0); });
  measure('readSync 4 MiB into a kept buffer', 4, () => { readSync(fd, kept, 0, 4 * MiB, 0); });
} finally {
  closeSync(fd);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}
