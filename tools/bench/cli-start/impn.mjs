// node impn.mjs N 'label=spec spec' ...: alternating fresh processes, median in-process import wall/cpu.
import { execFileSync } from 'node:child_process';
const n = Number(process.argv[2]); const sets = process.argv.slice(3).map((s) => { const i = s.indexOf('='); return [s.slice(0, i), s.slice(i + 1).split(' ').filter(Boolean)]; });
const r = sets.map(() => ({ wall: [], cpu: [] }));
const here = new URL('./imp.mjs', import.meta.url).pathname;
for (let k = 0; k < n; k++) sets.forEach(([, specs], i) => { const o = JSON.parse(execFileSync('node', [here, ...specs], { encoding: 'utf8' })); r[i].wall.push(o.wall); r[i].cpu.push(o.cpu); });
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
sets.forEach(([label], i) => console.log(`${label.padEnd(40)} wall p50 ${med(r[i].wall).toFixed(1).padStart(6)}  cpu p50 ${med(r[i].cpu).toFixed(1).padStart(6)}  min wall ${Math.min(...r[i].wall).toFixed(1)}`));
