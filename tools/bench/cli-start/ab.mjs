// Alternating wall-time medians of shell-free commands: node ab.mjs N 'label=cmd args' ...
import { spawnSync } from 'node:child_process';
const n = Number(process.argv[2]);
const cmds = process.argv.slice(3).map((s) => { const i = s.indexOf('='); return [s.slice(0, i), s.slice(i + 1).split(' ')]; });
const times = cmds.map(() => []); const cpu = cmds.map(() => []);
for (let r = 0; r < n; r++) cmds.forEach(([, argv], i) => {
  const t = process.hrtime.bigint(); const res = spawnSync('/usr/bin/time', ['-f', 'CPU %U %S', ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  const m = /CPU ([0-9.]+) ([0-9.]+)/.exec(String(res.stderr)); cpu[i].push((Number(m[1]) + Number(m[2])) * 1000);
  times[i].push(Number(process.hrtime.bigint() - t) / 1e6);
  if (res.status !== 0) { console.error(argv.join(' '), res.status, String(res.stderr)); process.exit(1); }
});
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const base = med(times[0]);
cmds.forEach(([label], i) => console.log(`${label.padEnd(28)} p50 ${med(times[i]).toFixed(1).padStart(7)} ms  ratio ${(med(times[i]) / base).toFixed(2)}  min ${Math.min(...times[i]).toFixed(1)}  cpu p50 ${med(cpu[i]).toFixed(0)} ms`));
