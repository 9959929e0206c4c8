// A flipped byte in one of the index's LevelDB tables, where LevelDB itself does not look (it
// verifies no filter block CRC without paranoid_checks, no other block's unless asked): in the
// bloom filter block, lookups can miss entries that iteration still finds (fetch NOT_FOUND for a
// message scrub counted); in the index block, lookups can land in the wrong data block. Scrub
// reads every live table and checks every block's CRC32C (src/index/table-check.ts): the flip is
// index-table-corrupt naming the file, `mailstore scrub` exits 1, `--repair` rebuilds the index
// from the journal, and every message reads back exact.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { loadCrc32c } from '../../src/index/crc32c.js';
import { readTableLayout, type TableLayout } from '../../src/index/table-check.js';
import { bin, requireBuilt } from '../cli/helpers.js';
import { tmpDir } from '../helpers/tmp.js';

const MESSAGES = 400;
const body = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\n${'t'.repeat(40 + (i % 50))}\r\n`);

/** A closed store whose index is all in tables (a reopen writes LevelDB's log out as a table). */
async function closedStore(): Promise<string> {
  const dir = tmpDir('index-tables');
  let store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX');
  for (let i = 1; i <= MESSAGES; i++) await store.append('INBOX', body(i));
  await store.close();
  store = await Store.open(dir);
  await store.close();
  return dir;
}

/** The biggest table of the index, and its layout. */
async function biggestTable(dir: string): Promise<{ name: string; bytes: Buffer; layout: TableLayout }> {
  const crc = await loadCrc32c();
  const name = readdirSync(join(dir, 'index')).filter((f) => f.endsWith('.ldb'))
    .sort((a, b) => readFileSync(join(dir, 'index', b)).length - readFileSync(join(dir, 'index', a)).length)[0];
  const bytes = readFileSync(join(dir, 'index', name));
  return { name, bytes, layout: readTableLayout(bytes, crc)! };
}

function flip(dir: string, name: string, bytes: Buffer, at: number): void {
  const out = Buffer.from(bytes);
  out[at] ^= 0x10;
  writeFileSync(join(dir, 'index', name), out);
}

const cli = (dir: string, ...args: string[]) => spawnSync(process.execPath, [bin, '--store', dir, ...args], { encoding: 'utf8', timeout: 120_000 });

/** Scrub finds the flip (library and CLI), repair rebuilds the index, every message exact, scrub clean after. */
async function expectFoundAndRepaired(dir: string, name: string): Promise<void> {
  let store = await Store.open(dir);
  try {
    const report = await scrub(store);
    expect(report.findings.filter((f) => f.kind === 'index-table-corrupt')).toEqual([{ kind: 'index-table-corrupt', file: name, detail: expect.stringMatching(/fails its CRC32C/) }]);
    expect(report.summary.damage).toBeGreaterThan(0);
  } finally {
    await store.close();
  }
  const found = cli(dir, 'scrub', '--json');
  expect(found.status, found.stderr).toBe(1);
  expect(found.stdout).toContain('"index-table-corrupt"');
  expect(found.stdout).toContain(name);
  store = await Store.open(dir);
  try {
    const report = await scrub(store);
    const result = await repair(store, report);
    expect(result.indexRebuilt).toBe(true);
    expect(result.unrepaired).toEqual([]);
    for (let i = 1; i <= MESSAGES; i++) expect((await store.fetch('INBOX', i)).equals(body(i))).toBe(true);
    const after = await scrub(store);
    expect(after.findings).toEqual([]);
  } finally {
    await store.close();
  }
  const clean = cli(dir, 'scrub', '--json');
  expect(clean.status, clean.stderr).toBe(0);
}

describe('a flipped byte in an index table where LevelDB does not check', () => {
  requireBuilt();

  it('in the bloom filter block: index-table-corrupt naming the table, exit 1; --repair rebuilds; every message exact', async () => {
    const dir = await closedStore();
    const { name, bytes, layout } = await biggestTable(dir);
    expect(layout.filter).toBeDefined();
    flip(dir, name, bytes, layout.filter!.offset + 3); // a byte of the first filter's bits
    await expectFoundAndRepaired(dir, name);
  });

  it('in the index block: index-table-corrupt naming the table, exit 1; --repair rebuilds; every message exact', async () => {
    const dir = await closedStore();
    const { name, bytes, layout } = await biggestTable(dir);
    flip(dir, name, bytes, layout.index.offset + layout.index.size - 6); // inside the restart array, near the block's end
    await expectFoundAndRepaired(dir, name);
  });

  it('the CLI scrub --repair fixes a filter block flip the same way (exit 0, then a clean scrub)', async () => {
    const dir = await closedStore();
    const { name, bytes, layout } = await biggestTable(dir);
    flip(dir, name, bytes, layout.filter!.offset + 5);
    const repaired = cli(dir, 'scrub', '--repair', '--json');
    expect(repaired.status, repaired.stderr + repaired.stdout).toBe(0);
    const clean = cli(dir, 'scrub', '--json');
    expect(clean.status, clean.stderr).toBe(0);
    const store = await Store.open(dir);
    try {
      for (let i = 1; i <= MESSAGES; i++) expect((await store.fetch('INBOX', i)).equals(body(i))).toBe(true);
    } finally {
      await store.close();
    }
  });
});
