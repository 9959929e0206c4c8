// node imp.mjs SPEC...: imports each in order; prints wall and CPU ms of the imports (one fresh process).
const c0 = process.cpuUsage(); const t0 = performance.now();
for (const s of process.argv.slice(2)) await import(s);
const c = process.cpuUsage(c0);
console.log(JSON.stringify({ wall: performance.now() - t0, cpu: (c.user + c.system) / 1000 }));
