// --import preload: times the parts of a CLI append (packages, own modules, open, append, close).
import { performance } from 'node:perf_hooks';
import { writeSync } from 'node:fs';
const D = process.env.MAILSTORE_DIST ?? new URL('../../../dist', import.meta.url).pathname;
const marks = [['node bootstrap (nodeTiming)', performance.nodeTiming.bootstrapComplete]];
let last = performance.now(); marks.push(['preload start', last]);
const step = async (name, fn) => { const a = performance.now(); const r = await fn(); const b = performance.now(); marks.push([name, b - a]); return r; };
if (process.env.PROFILE_PACKAGES !== '0') {
  await step('pkg commander', () => import('commander'));
  await step('pkg cbor-x (+cbor-extract native)', () => import('cbor-x'));
  await step('pkg level (+classic-level native, abstract-level)', () => import('level'));
  await step('pkg @napi-rs/blake-hash (native)', () => import('@napi-rs/blake-hash'));
}
const { Store } = await step('own: store/store.js graph', () => import(D + '/src/store/store.js'));
await step('own: cli/context.js graph (client, daemon)', () => import(D + '/src/cli/context.js'));
await step('own: cli/program.js', () => import(D + '/src/cli/program.js'));
await step('own: cli/commands/append.js', () => import(D + '/src/cli/commands/append.js'));
const wrap = (obj, name, label) => { const f = obj[name]; obj[name] = async function (...a) { const t = performance.now(); try { return await f.apply(this, a); } finally { marks.push([label, performance.now() - t]); } }; };
wrap(Store, 'open', 'Store.open');
wrap(Store.prototype, 'append', 'store.append');
wrap(Store.prototype, 'close', 'store.close');
marks.push(['preload end (abs)', performance.now()]);
process.on('exit', () => { marks.push(['exit (abs)', performance.now()]); writeSync(2, marks.map(([n, v]) => `${v.toFixed(1).padStart(7)} ${n}`).join('\n') + '\n'); });
