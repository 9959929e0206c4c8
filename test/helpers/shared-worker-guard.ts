// Setup file of the files that share a worker (vitest.config.ts, isolate: false): each such file
// runs after others in the same process, with the same module instances, so what one file changes
// and leaves changed (a limit, an environment variable, the umask, the working directory, a spy)
// would change what a later file tests, depending on the order. Each file is checked when it
// ends: anything it left changed is put back and the file fails, naming it.
import { afterAll, vi } from 'vitest';
import * as limitTables from '../../src/limits.js';

const tables = Object.entries(limitTables as Record<string, unknown>)
  .filter((entry): entry is [string, Record<string, unknown>] => typeof entry[1] === 'object' && entry[1] !== null);
const limitsBefore = tables.map(([name, table]) => [name, table, structuredClone(table)] as const);
const envBefore = { ...process.env };
const cwdBefore = process.cwd();
const umaskBefore = process.umask();

/** The keys of `now` whose value is not `before`'s, each put back. */
function putBack(before: Record<string, unknown>, now: Record<string, unknown>, label: string): string[] {
  const changed: string[] = [];
  for (const key of new Set([...Object.keys(before), ...Object.keys(now)])) {
    if (JSON.stringify(before[key]) === JSON.stringify(now[key])) continue;
    changed.push(`${label}.${key}`);
    if (key in before) now[key] = structuredClone(before[key]);
    else delete now[key];
  }
  return changed;
}

afterAll(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
  const left: string[] = [];
  for (const [name, table, before] of limitsBefore) left.push(...putBack(before, table, name));
  left.push(...putBack(envBefore, process.env as Record<string, unknown>, 'process.env'));
  if (process.cwd() !== cwdBefore) {
    left.push(`process.cwd() (${process.cwd()})`);
    process.chdir(cwdBefore);
  }
  const umask = process.umask(umaskBefore);
  if (umask !== umaskBefore) left.push(`process.umask() (0${umask.toString(8)})`);
  if (left.length) throw new Error(`this file left changed for the files after it in its worker (put back now): ${left.join(', ')}`);
});
