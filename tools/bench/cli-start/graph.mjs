// Static import graph from an entry in dist: prints each module with who first pulled it in (BFS).
import { readFileSync } from 'node:fs'; import { dirname, resolve, relative } from 'node:path';
const root = resolve(process.argv[2]); const base = process.cwd();
const seen = new Map([[root, '(entry)']]); const q = [root];
while (q.length) { const f = q.shift(); const src = readFileSync(f, 'utf8');
  for (const m of src.matchAll(/^(?:import|export)\s(?!type\b)[^;]*?from\s+'([^']+)'|^import\s+'([^']+)'/gms)) { const spec = m[1] ?? m[2];
    if (!spec.startsWith('.')) { const k = 'pkg:' + spec; if (!seen.has(k)) seen.set(k, relative(base, f)); continue; }
    const t = resolve(dirname(f), spec); if (!seen.has(t)) { seen.set(t, relative(base, f)); q.push(t); } } }
for (const [k, v] of seen) console.log(`${k.startsWith('pkg:') ? k : relative(base, k)}  <- ${v}`);
