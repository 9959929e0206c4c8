// What a process's peak RSS is made of (maxRSS counts file-backed pages too: node's own text,
// LevelDB's mapped tables). Preloaded into a measurement's process, it reads /proc/self/status
// every 25 ms and, at each new peak (at most every 300 ms unless 3 MiB higher), /proc/self/smaps
// grouped by mapping (node-bin, ldb, pack, [anon], [heap], ...) with V8's heap figures; at exit it
// appends one JSON line to $RSS_PROBE_OUT (default stderr). Linux only. For example:
//   RSS_PROBE_OUT=/tmp/p.jsonl node --import ./tools/bench/rss-probe.mjs dist/src/bench/measure/scrub.js --store DIR
import { readFileSync, writeFileSync } from 'node:fs';
import v8 from 'node:v8';

const started = Date.now();
let best = 0;
let peak;
let smapsAt = 0;

/** Resident MiB per mapping kind (only kinds over 1 MiB). */
function byMapping() {
  const kib = {};
  let kind;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      const path = head[1] || '[anon]';
      kind = path.endsWith('.ldb') ? 'ldb' : path.includes('/packs/') ? 'pack' : path === process.execPath ? 'node-bin' : path.startsWith('/') ? path.split('/').pop() : path;
      continue;
    }
    const rss = /^Rss:\s+(\d+)/.exec(line);
    if (rss && kind) kib[kind] = (kib[kind] ?? 0) + Number(rss[1]);
  }
  return Object.fromEntries(Object.entries(kib).filter(([, v]) => v > 1024).map(([k, v]) => [k, Math.round(v / 1024)]));
}

setInterval(() => {
  const status = readFileSync('/proc/self/status', 'utf8');
  const field = (name) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  const anon = field('RssAnon'), file = field('RssFile');
  if (anon + file <= best) return;
  best = anon + file;
  const now = Date.now();
  const sample = { seconds: (now - started) / 1000, totalMiB: Math.round(best / 1024), anonMiB: Math.round(anon / 1024), fileMiB: Math.round(file / 1024), threads: field('Threads') };
  if (peak && now - smapsAt < 300 && best < (peak.totalMiB + 3) * 1024) {
    peak = { ...peak, ...sample, mappingsStale: true }; // the breakdown is from the sample before
    return;
  }
  smapsAt = now;
  const heap = v8.getHeapStatistics();
  const memory = process.memoryUsage();
  peak = {
    ...sample, heapUsedMiB: Math.round(heap.used_heap_size / 2 ** 20), heapTotalMiB: Math.round(heap.total_heap_size / 2 ** 20),
    externalMiB: Math.round(memory.external / 2 ** 20), arrayBuffersMiB: Math.round(memory.arrayBuffers / 2 ** 20), mappings: byMapping(),
  };
}, 25).unref();

process.on('exit', () => {
  const line = JSON.stringify({ maxRSSMiB: Math.round(process.resourceUsage().maxRSS / 1024), peak }) + '\n';
  writeFileSync(process.env.RSS_PROBE_OUT ?? '/dev/stderr', line, { flag: 'a' });
});
