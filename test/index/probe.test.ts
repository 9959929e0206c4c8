// The index probe (src/index/probe.ts) runs LevelDB in a child node. A child that cannot run at all
// says nothing about the index: under a thread limit (ulimit -u, a cgroup's pids.max) or out of
// memory, node aborts at its start (its platform's or libuv's threads: SIGABRT) or hangs there;
// seen for real as nobody with prlimit --nproc 12-20. Before, that was 'LevelDB killed the probe
// process', and open after a crash set a good index aside as damaged and rebuilt it. Here every
// node child is made to abort (or hang) at its start through NODE_OPTIONS --require.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { probeIndex } from '../../src/index/probe.js';
import { Store } from '../../src/store/store.js';
import { msg } from '../sim/helpers.js';
import { tmpDir } from '../helpers/tmp.js';

const saved = process.env.NODE_OPTIONS;
afterEach(() => {
  if (saved === undefined) delete process.env.NODE_OPTIONS;
  else process.env.NODE_OPTIONS = saved;
});

/** Every node child started from now on runs `source` first (NODE_OPTIONS --require). */
function everyChildRuns(source: string): void {
  const dir = tmpDir('probe-preload');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'preload.cjs');
  writeFileSync(file, source);
  process.env.NODE_OPTIONS = `--require ${file}`;
}

async function crashedStore(): Promise<string> {
  const dir = tmpDir('probe');
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX');
  await store.append('INBOX', msg(1));
  await store.close();
  writeFileSync(join(dir, 'LOCK'), '999999\n'); // a previous owner that died: open probes the index
  return dir;
}

describe('an index probe whose child node cannot run', () => {
  it('aborting at its start: open fails IO, the index stays where it is, and the next open keeps it', async () => {
    const dir = await crashedStore();
    everyChildRuns('process.abort();\n');
    await expect(Store.open(dir)).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/probe could not run/) });
    delete process.env.NODE_OPTIONS;
    expect(readdirSync(join(dir, 'quarantine')).filter((n) => n.startsWith('index-damaged'))).toEqual([]);
    const store = await Store.open(dir);
    expect(store.health.rebuilt).toBeUndefined();
    expect((await store.fetch('INBOX', 1)).equals(msg(1))).toBe(true);
    await store.close();
  });

  it('hanging at its start: a system failure, not damage', async () => {
    const dir = await crashedStore();
    everyChildRuns('for (;;);\n');
    const result = probeIndex(join(dir, 'index'), 1500);
    expect(result).toMatchObject({ ok: false, system: 'IO' });
  });

  it('a child that runs and aborts in LevelDB is still damage', async () => {
    const dir = await crashedStore();
    // a node that runs, whose LevelDB open aborts (as on some damaged tables: docs/FAULTS.md)
    everyChildRuns("if (process.argv.length > 1 && process.argv.at(-1).endsWith('index')) require('node:fs').stat('/', () => process.abort());\n");
    const result = probeIndex(join(dir, 'index'));
    expect(result.ok).toBe(false);
    expect(result.system).toBeUndefined();
    expect(result.detail).toMatch(/SIGABRT/);
  });
});

describe('an index whose table fails a read after the open', () => {
  /** A crashed store (the open probes) whose index table, 300 messages' entries, has 16 bytes flipped in its middle: a data block. */
  async function damagedTableStore(): Promise<string> {
    const dir = tmpDir('probe-table');
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.appendBatch('INBOX', Array.from({ length: 300 }, (_, i) => ({ bytes: msg(i) })));
    await store.close();
    await (await Store.open(dir)).close(); // LevelDB's open writes its log into a table
    const tables = readdirSync(join(dir, 'index')).filter((n) => n.endsWith('.ldb')).map((n) => join(dir, 'index', n));
    const table = tables.map((path) => ({ path, bytes: readFileSync(path) })).sort((a, b) => b.bytes.length - a.bytes.length)[0];
    expect(table.bytes.length).toBeGreaterThan(16 * 1024);
    const middle = table.bytes.length >> 1;
    for (let i = middle; i < middle + 16; i++) table.bytes[i] ^= 0xff;
    writeFileSync(table.path, table.bytes);
    writeFileSync(join(dir, 'LOCK'), '999999\n'); // a previous owner that died: open probes the index
    return dir;
  }

  const noStack = /uncaught|triggerUncaughtException|node:internal|Node\.js v|\^/i;

  it('is damage, and the detail is LevelDB\'s message and code, not node\'s dump of an uncaught rejection', async () => {
    const result = probeIndex(join(await damagedTableStore(), 'index'));
    expect(result.ok).toBe(false);
    expect(result.system).toBeUndefined();
    expect(result.detail).toMatch(/Corruption: .*\(LEVEL_CORRUPTION\)/);
    expect(result.detail).not.toMatch(noStack); // before: the stack dump of the child's uncaught rejection
  });

  it('mailstore stats says the index was rebuilt, with LevelDB\'s message and code, and no stack', async () => {
    const dir = await damagedTableStore();
    const cli = new URL('../../dist/src/cli/main.js', import.meta.url).pathname;
    const stats = spawnSync(process.execPath, [cli, '--store', dir, 'stats'], { encoding: 'utf8' });
    expect(stats.status, stats.stderr).toBe(0);
    expect(stats.stderr).toMatch(/the index was rebuilt at open \(index failed its probe: .*Corruption: .*\(LEVEL_CORRUPTION\)/);
    expect(stats.stderr).not.toMatch(noStack);
    expect(stats.stdout).toMatch(/messages +300/);
  });
});
