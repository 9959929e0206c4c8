// node imp.mjs SPEC...: imports each in order; prints wall and CPU ms of the imports (one fresh process).
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const c0 = process.cpuUsage(); const t0 = performance.now();
for (const s of process.argv.slice(2)) s.endsWith('.node') || s.startsWith('cjs:') ? require(s.replace(/^cjs:/, '')) : await import(s);
const c = process.cpuUsage(c0);
console.log(JSON.stringify({ wall: performance.now() - t0, cpu: (c.user + c.system) / 1000 }));
