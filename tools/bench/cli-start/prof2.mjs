// Splits .cpuprofile samples by what they were under: Store.open / append / close, module loading, ...
import { readFileSync } from 'node:fs';
const files = process.argv.slice(2);
const cats = new Map(); let wall = 0;
const add = (k, ms) => cats.set(k, (cats.get(k) ?? 0) + ms);
for (const f of files) {
  const p = JSON.parse(readFileSync(f, 'utf8')); wall += (p.endTime - p.startTime) / 1000;
  const byId = new Map(p.nodes.map((n) => [n.id, n])); const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const memo = new Map();
  const classify = (id) => {
    if (memo.has(id)) return memo.get(id);
    const chain = []; for (let x = id; x !== undefined; x = parent.get(x)) chain.push(byId.get(x).callFrame);
    const self = chain[0]; let k;
    const has = (pred) => chain.some(pred);
    if (['(idle)', '(garbage collector)', '(program)'].includes(self.functionName)) k = self.functionName;
    else if (has((c) => c.functionName === 'open' && c.url.endsWith('store/store.js'))) k = 'Store.open';
    else if (has((c) => c.functionName === 'append' && c.url.endsWith('store/store.js'))) k = 'store.append';
    else if (has((c) => c.functionName === 'close' && c.url.endsWith('store/store.js'))) k = 'store.close';
    else if (has((c) => c.url.includes('node_modules/commander') && !c.url.includes('esm.mjs'))) k = 'commander (parse/run)';
    else if (has((c) => /internal\/modules\/(esm|cjs)/.test(c.url))) {
      const top = chain.find((c) => c.url && !c.url.startsWith('node:') && c.url !== '');
      const pkg = top ? (top.url.includes('node_modules/') ? 'npm ' + top.url.split('node_modules/').pop().split('/').slice(0, top.url.split('node_modules/').pop().startsWith('@') ? 2 : 1).join('/') : 'mailstore modules') : 'loader';
      k = self.url.startsWith('node:') || self.url === '' ? `module load: loader/compile (${self.functionName === 'dlopen' ? 'dlopen native' : 'resolve/read/compile'})` : `module load: top-level code of ${pkg}`;
      if (self.functionName === 'dlopen') k = 'module load: dlopen native addons';
    } else if (has((c) => c.url.startsWith('node:internal/bootstrap') || c.url.startsWith('node:internal/main') || c.url.startsWith('node:internal/process'))) k = 'node bootstrap';
    else k = 'other: ' + (chain.find((c) => c.url)?.url.split('/').slice(-2).join('/') ?? self.functionName);
    memo.set(id, k); return k;
  };
  for (let i = 0; i < p.samples.length; i++) add(classify(p.samples[i]), (p.timeDeltas[i] ?? 0) / 1000);
}
const n = files.length; console.log(`${n} profiles, mean wall ${(wall / n).toFixed(1)} ms`);
for (const [k, ms] of [...cats].sort((a, b) => b[1] - a[1])) if (ms / n >= 0.5) console.log((ms / n).toFixed(1).padStart(7), k);
