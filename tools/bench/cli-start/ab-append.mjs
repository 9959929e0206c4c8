// Alternating CLI appends of a corpus's messages, one build after another, each build into its own
// fresh store (so each store grows as the bench's does), beside `node -e 0`; wall and CPU medians.
//   node ab-append.mjs N LIST.TXT WORKDIR label=DIST [label=DIST ...]
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
const [n, list, work, ...builds] = [Number(process.argv[2]), process.argv[3], process.argv[4], ...process.argv.slice(5)];
const files = readFileSync(list, 'utf8').split('\n').filter(Boolean);
const runs = [['node -e 0', ['node', '-e', '0']], ...builds.map((b) => { const i = b.indexOf('='); return [b.slice(0, i), b.slice(i + 1)]; })];
const timed = (argv) => {
  const t = process.hrtime.bigint();
  const res = spawnSync('/usr/bin/time', ['-f', 'CPU %U %S', ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  const wall = Number(process.hrtime.bigint() - t) / 1e6;
  if (res.status !== 0) throw new Error(`${argv.join(' ')}: exit ${res.status}: ${res.stderr}`);
  const m = /CPU ([0-9.]+) ([0-9.]+)/.exec(String(res.stderr));
  return [wall, (Number(m[1]) + Number(m[2])) * 1000];
};
const stores = runs.map(([label], i) => join(work, `store-${i}`));
runs.forEach(([, dist], i) => {
  if (i === 0) return;
  rmSync(stores[i], { recursive: true, force: true }); mkdirSync(work, { recursive: true });
  timed(['node', join(dist, 'src/cli/main.js'), '--store', stores[i], 'init']);
  timed(['node', join(dist, 'src/cli/main.js'), '--store', stores[i], 'mailbox', 'create', 'INBOX']);
});
const wall = runs.map(() => []); const cpu = runs.map(() => []);
for (let r = 0; r < n; r++) runs.forEach(([, dist], i) => {
  const argv = i === 0 ? dist : ['node', join(dist, 'src/cli/main.js'), '--store', stores[i], 'append', 'INBOX', files[r % files.length]];
  const [w, c] = timed(argv); wall[i].push(w); cpu[i].push(c);
});
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const parts = Number(process.env.PARTS ?? 1);
for (let p = 0; p < parts; p++) {
  const from = Math.floor((p * n) / parts); const to = Math.floor(((p + 1) * n) / parts);
  if (parts > 1) console.log(`appends ${from + 1}-${to}:`);
  const w = wall.map((a) => a.slice(from, to)); const c = cpu.map((a) => a.slice(from, to));
  report(w, c);
}
function report(wall, cpu) {
runs.forEach(([label], i) => console.log(`${label.padEnd(12)} wall p50 ${med(wall[i]).toFixed(1).padStart(7)} ms  ratio ${(med(wall[i]) / med(wall[0])).toFixed(2)}  min ${Math.min(...wall[i]).toFixed(1)}  cpu p50 ${med(cpu[i]).toFixed(0)} ms (ratio ${(med(cpu[i]) / med(cpu[0])).toFixed(2)})`));
}
