// Self and inclusive time per function over .cpuprofile files (node --cpu-prof), averaged per file:
//   node prof-top.mjs [--incl] N FILE...   (top N; --incl: inclusive time, what a function and its callees took)
import { readFileSync } from 'node:fs';
const args = process.argv.slice(2); const incl = args[0] === '--incl'; if (incl) args.shift();
const top = Number(args.shift()); const files = args;
const total = new Map(); let wall = 0;
for (const f of files) {
  const p = JSON.parse(readFileSync(f, 'utf8')); wall += (p.endTime - p.startTime) / 1000;
  const byId = new Map(p.nodes.map((n) => [n.id, n])); const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const dt = new Map(); p.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (p.timeDeltas[i + 1] ?? 0) / 1000));
  const name = (cf) => `${cf.functionName || '(anon)'} ${cf.url.split('/').slice(-2).join('/')}:${cf.lineNumber + 1}`;
  for (const [id, ms] of dt) {
    if (!incl) { const k = name(byId.get(id).callFrame); total.set(k, (total.get(k) ?? 0) + ms); continue; }
    const seen = new Set();
    for (let x = id; x !== undefined; x = parent.get(x)) { const k = name(byId.get(x).callFrame); if (!seen.has(k)) { seen.add(k); total.set(k, (total.get(k) ?? 0) + ms); } }
  }
}
console.log(`wall per profile ${(wall / files.length).toFixed(1)} ms`);
for (const [k, ms] of [...total].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${(ms / files.length).toFixed(1).padStart(7)} ms  ${k}`);
