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
import { rawLevelOf } from '../helpers/internals.js';
import { encodeValue } from '../../src/index/codec.js';
import { SPACE } from '../../src/keys/tuple.js';
import { tmpDir } from '../helpers/tmp.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import type { FileSystem } from '../../src/fs/filesystem.js';

const MESSAGES = 400;
const body = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\n${'t'.repeat(40 + (i % 50))}\r\n`);

/** A closed store whose index is all in tables (a reopen writes LevelDB's log out as a table). */
async function closedStore(extra?: (store: Store) => Promise<void>): Promise<string> {
  const dir = tmpDir('index-tables');
  let store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX');
  for (let i = 1; i <= MESSAGES; i++) await store.append('INBOX', body(i));
  await extra?.(store);
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

async function expectExact(dir: string): Promise<void> {
  const store = await Store.open(dir);
  try {
    for (let i = 1; i <= MESSAGES; i++) expect((await store.fetch('INBOX', i)).equals(body(i))).toBe(true);
  } finally {
    await store.close();
  }
}

/**
 * Each check is the first open after the flip: every open writes LevelDB a small level-0 table, and
 * the fourth sets off a compaction that rewrites the damaged table (and its filter) from its entries.
 */
async function expectFoundAndRepaired(dir: string, name: string): Promise<void> {
  const store = await Store.open(dir);
  try {
    const report = await scrub(store);
    expect(report.findings.filter((f) => f.kind === 'index-table-corrupt')).toEqual([{ kind: 'index-table-corrupt', file: name, detail: expect.stringMatching(/(filter|index) block .* fails its CRC32C/) }]);
    expect(report.summary.damage).toBeGreaterThan(0);
    const result = await repair(store, report);
    expect(result.indexRebuilt).toBe(true);
    expect(result.unrepaired).toEqual([]);
    for (let i = 1; i <= MESSAGES; i++) expect((await store.fetch('INBOX', i)).equals(body(i))).toBe(true);
    expect((await scrub(store)).findings).toEqual([]);
  } finally {
    await store.close();
  }
}

/** A byte of the index block's first key (a separator: lookups near it go to the wrong data block). */
function firstIndexKeyByte(bytes: Buffer, layout: TableLayout): number {
  let at = layout.index.offset;
  if (bytes[layout.index.offset + layout.index.size] === 1) {
    // Snappy: the length's varint, then a literal's tag holding the first entry (checked below)
    while (bytes[at] >= 0x80) at++;
    at++;
    expect(bytes[at] & 3).toBe(0);
    expect((bytes[at] >>> 2) + 1).toBeGreaterThan(3 + 20);
    at++;
  }
  expect(bytes[at]).toBe(0); // the first entry shares nothing with a key before it
  return at + 3 + 20; // past shared, unshared and value lengths (one byte each here), 20 bytes into the key
}

describe('a flipped byte in an index table where LevelDB does not check', () => {
  requireBuilt();

  it('in the bloom filter block: index-table-corrupt naming the table; repair rebuilds the index; every message exact', async () => {
    const dir = await closedStore();
    const { name, bytes, layout } = await biggestTable(dir);
    expect(layout.filter).toBeDefined();
    flip(dir, name, bytes, layout.filter!.offset + 3); // a byte of the first filter's bits
    await expectFoundAndRepaired(dir, name);
  });

  it('in the index block: index-table-corrupt naming the table; repair rebuilds the index; every message exact', async () => {
    const dir = await closedStore();
    const { name, bytes, layout } = await biggestTable(dir);
    flip(dir, name, bytes, firstIndexKeyByte(bytes, layout));
    await expectFoundAndRepaired(dir, name);
  });

  it('mailstore scrub exits 1 naming the table (filter block flip); scrub --repair exits 0 having rebuilt the index (index block flip), a clean scrub after', async () => {
    const filterDir = await closedStore();
    const filtered = await biggestTable(filterDir);
    flip(filterDir, filtered.name, filtered.bytes, filtered.layout.filter!.offset + 5);
    const found = cli(filterDir, 'scrub', '--json');
    expect(found.status, found.stderr).toBe(1);
    expect(JSON.parse(found.stdout).findings).toContainEqual(expect.objectContaining({ kind: 'index-table-corrupt', file: filtered.name, detail: expect.stringMatching(/filter block .* fails its CRC32C/), damage: true }));

    const indexDir = await closedStore();
    const indexed = await biggestTable(indexDir);
    flip(indexDir, indexed.name, indexed.bytes, firstIndexKeyByte(indexed.bytes, indexed.layout));
    const repaired = cli(indexDir, 'scrub', '--repair', '--json');
    expect(repaired.status, repaired.stderr + repaired.stdout).toBe(0);
    expect(JSON.parse(repaired.stdout).findings).toContainEqual(expect.objectContaining({ kind: 'index-table-corrupt', file: indexed.name, detail: expect.stringMatching(/index block .* fails its CRC32C/) }));
    const clean = cli(indexDir, 'scrub', '--json');
    expect(clean.status, clean.stderr).toBe(0);
    await expectExact(indexDir);
  });

  it('under an address space limit (ulimit -v 4 GiB, systemd LimitAS=: no WebAssembly memory can be reserved) scrub still checks every table and finds the flip, not INTERNAL', async () => {
    const dir = await closedStore();
    const { name, bytes, layout } = await biggestTable(dir);
    flip(dir, name, bytes, layout.filter!.offset + 5);
    const limited = spawnSync('bash', ['-c', 'ulimit -v 4000000 && exec "$0" "$@"', process.execPath, bin, '--store', dir, 'scrub', '--json'], { encoding: 'utf8', timeout: 120_000 });
    expect(limited.stderr).not.toContain('INTERNAL');
    expect(limited.status, limited.stderr).toBe(1);
    expect(JSON.parse(limited.stdout).findings).toContainEqual(expect.objectContaining({ kind: 'index-table-corrupt', file: name, damage: true }));
  });

  it('a check the damage throws a TypeError out of (a name entry holding a map, as a flipped key leaves) in a store whose table fails its CRC: index-unreadable and index-table-corrupt, not an error out of scrub', async () => {
    const dir = await closedStore(async (store) => {
      const nameKey = Buffer.concat([Buffer.from([SPACE.name]), Buffer.from('ZZZ\0')]);
      await rawLevelOf(store).put(nameKey, encodeValue(nameKey, { a: 1 }));
    });
    const { name, bytes, layout } = await biggestTable(dir);
    flip(dir, name, bytes, layout.filter!.offset + 3);
    const store = await Store.open(dir);
    try {
      const report = await scrub(store);
      expect(report.findings.map((f) => f.kind).sort()).toEqual(['index-table-corrupt', 'index-unreadable']);
      expect(report.findings.find((f) => f.kind === 'index-unreadable')).toMatchObject({ detail: expect.stringContaining(`index/${name} is damaged`) });
      expect((await repair(store, report)).indexRebuilt).toBe(true);
      expect((await scrub(store)).findings).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

describe('an index table that cannot be read (the disk fails: EIO)', () => {
  it('scrub fails IO naming the table, not CORRUPT and no finding invented; nothing changed, every message exact afterwards', async () => {
    const dir = await closedStore();
    // only scrub's table check reads tables through the store's FileSystem (LevelDB has its own I/O)
    const failing: FileSystem = Object.create(nodeFileSystem) as FileSystem;
    failing.readFile = async (path: string) => {
      if (path.startsWith(join(dir, 'index')) && path.endsWith('.ldb')) throw Object.assign(new Error(`EIO: i/o error, open '${path}'`), { code: 'EIO' });
      return nodeFileSystem.readFile(path);
    };
    const store = await Store.open(dir, { fs: failing });
    try {
      const outcome = await scrub(store).catch((error: unknown) => error);
      expect(outcome).toMatchObject({ code: 'IO', path: expect.stringMatching(/index\/\d+\.ldb$/) });
    } finally {
      await store.close();
    }
    await expectExact(dir);
  });
});
