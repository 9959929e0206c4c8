#!/usr/bin/env node
// Physical floor for durable one-at-a-time delivery: for each message, write it
// to a new file in OUTDIR/tmp, fsync the file, rename it into OUTDIR/new, fsync
// the directory (the Maildir delivery protocol, with the fsyncs a crash-safe
// store needs at minimum). No index, no checksum, no network hop.
//
//   node fsync-floor.mjs LIST.TXT OUTDIR [--peer NAME] [--limit N] [--no-dirsync]
//
// Prints one JSON line {"peer","measurement":"deliver","messages","bytes","seconds","p50_ms","p99_ms","max_ms","note"}.
import fs from 'node:fs';
import path from 'node:path';

const argv = process.argv.slice(2);
const pos = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && ['--peer', '--limit'].includes(argv[i - 1])));
const opt = (k) => { const i = argv.indexOf(k); return i === -1 ? undefined : argv[i + 1]; };
const [listFile, outDir] = pos;
if (!listFile || !outDir) { console.error('usage: node fsync-floor.mjs LIST.TXT OUTDIR [--peer NAME] [--limit N] [--no-dirsync]'); process.exit(2); }
const peer = opt('--peer') ?? 'floor-fsync';
const dirsync = !argv.includes('--no-dirsync');
let files = fs.readFileSync(listFile, 'utf8').split('\n').filter(Boolean);
if (opt('--limit')) files = files.slice(0, Number(opt('--limit')));
const tmp = path.join(outDir, 'tmp'), nw = path.join(outDir, 'new');
fs.mkdirSync(tmp, { recursive: true }); fs.mkdirSync(nw, { recursive: true });
const dfd = fs.openSync(nw, 'r');
const lat = [];
let bytes = 0;
const t0 = process.hrtime.bigint();
for (let i = 0; i < files.length; i++) {
  const data = fs.readFileSync(files[i]);
  const s = process.hrtime.bigint();
  const name = `${i + 1}.${process.pid}.bench`;
  const fd = fs.openSync(path.join(tmp, name), 'wx');
  fs.writeSync(fd, data);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(path.join(tmp, name), path.join(nw, name));
  if (dirsync) fs.fsyncSync(dfd);
  lat.push(Number(process.hrtime.bigint() - s) / 1e6);
  bytes += data.length;
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
fs.closeSync(dfd);
lat.sort((a, b) => a - b);
const q = (p) => +lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(3);
console.log(JSON.stringify({
  peer, measurement: 'deliver', messages: lat.length, bytes, seconds: +seconds.toFixed(3),
  p50_ms: q(0.5), p99_ms: q(0.99), max_ms: q(1),
  note: `write new file + fsync + rename${dirsync ? ' + fsync(dir)' : ''} per message, sequential; per-message latency excludes reading the source file, total seconds include it`,
}));
