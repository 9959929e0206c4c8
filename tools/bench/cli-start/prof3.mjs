// Splits .cpuprofile samples of CLI appends (bundled ESM or CommonJS, or unbundled) into where the
// main thread's time went: compile, native addons, module loading, the store's own work, ...
//   node prof3.mjs FILE.cpuprofile...
import { readFileSync } from 'node:fs';
const files = process.argv.slice(2); const cats = new Map(); let wall = 0;
const add = (k, ms) => cats.set(k, (cats.get(k) ?? 0) + ms);
const COMPILE = new Set(['Script', 'compileSourceTextModule', 'compileForInternalLoader', 'compileFunction', 'wrapSafe', 'compileFunctionForCJSLoader']);
const isStore = (c) => /bundle-store|store\/store\.js/.test(c.url);
for (const f of files) {
  const p = JSON.parse(readFileSync(f, 'utf8')); wall += (p.endTime - p.startTime) / 1000;
  const byId = new Map(p.nodes.map((n) => [n.id, n])); const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const classify = (id) => {
    const chain = []; for (let x = id; x !== undefined; x = parent.get(x)) chain.push(byId.get(x).callFrame);
    const self = chain[0]; const has = (pred) => chain.some(pred);
    if (['(idle)', '(garbage collector)', '(program)'].includes(self.functionName)) return self.functionName;
    if (self.functionName === 'dlopen') return 'dlopen of native addons';
    if (has((c) => c.functionName === 'open' && isStore(c))) return COMPILE.has(self.functionName) ? 'compile (lazy, in Store.open)' : 'Store.open (own work)';
    if (has((c) => c.functionName === 'append' && isStore(c))) return 'store.append';
    if (has((c) => c.functionName === 'close' && isStore(c))) return 'store.close';
    if (COMPILE.has(self.functionName)) return self.functionName === 'compileForInternalLoader' ? 'compile node builtins' : 'compile own + package code (V8, or code cache read)';
    if (has((c) => c.url.includes('commander')) && has((c) => /parse/.test(c.functionName))) return 'commander parse/run';
    if (has((c) => /internal\/modules\/(esm|cjs)|module-cache\.js/.test(c.url))) {
      if (self.url.startsWith('node:') || self.url === '') return 'module loading (resolve, read, link, builtins)';
      return 'top-level code of modules';
    }
    if (has((c) => /^node:internal\/(bootstrap|main|process)/.test(c.url))) return 'node bootstrap (in profile)';
    const own = chain.find((c) => /bundle-|dist\/src\//.test(c.url));
    if (own) return `other JS under ${own.url.split('/').pop().replace(/-[\w-]{8}\.(c?js)$/, '.$1')}`;
    return 'other';
  };
  for (let i = 0; i < p.samples.length; i++) add(classify(p.samples[i]), (p.timeDeltas[i + 1] ?? 0) / 1000);
}
const n = files.length; console.log(`${n} profiles, mean profiled wall ${(wall / n).toFixed(1)} ms`);
for (const [k, ms] of [...cats].sort((a, b) => b[1] - a[1])) if (ms / n >= 0.3) console.log((ms / n).toFixed(1).padStart(7), k);
