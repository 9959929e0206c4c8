// The file-level check of the index's LevelDB files (src/index/table-check.ts): CRC32C against
// known vectors, Snappy against a hand-made stream, and tables written by classic-level itself:
// a sound table verifies, and every single-bit flip anywhere in it is found except in the footer's
// padding (which LevelDB never reads); a truncated, deleted or misnamed file is damage naming it.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { describe, expect, it } from 'vitest';
import { crc32cFrom, crc32cTable, loadCrc32c, maskCrc } from '../../src/index/crc32c.js';
import { checkIndexFiles, readTableLayout, snappyUncompress, verifyTable } from '../../src/index/table-check.js';
import { NodeFileSystem } from '../../src/fs/node-fs.js';
import { tmpDir } from '../helpers/tmp.js';

/** A LevelDB with `n` entries written out as tables (a reopen writes the log out as a table). */
async function levelWith(n: number, valueBytes = 40): Promise<string> {
  const dir = join(tmpDir('tables'), 'db');
  let db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  const batch = db.batch();
  for (let i = 0; i < n; i++) batch.put(Buffer.from(`key-${String(i).padStart(8, '0')}`), Buffer.from(`value ${i} `.repeat(valueBytes / 8)));
  await batch.write();
  await db.close();
  db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  await db.close();
  return dir;
}

const tablesIn = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.ldb'));

describe('CRC32C', () => {
  it.each([['WebAssembly', loadCrc32c], ['table (no WebAssembly)', async () => crc32cTable]])('%s: matches the known vectors (RFC 3720 B.4, LevelDB util/crc32c_test.cc)', async (_name, load) => {
    const crc = await load();
    expect(crc(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
    const iscsi = Buffer.alloc(48);
    iscsi.set([0x01, 0xc0], 0);
    iscsi[16] = 0x14; iscsi[22] = 0x04; iscsi[27] = 0x14; iscsi[31] = 0x18; iscsi[32] = 0x28; iscsi[40] = 0x02;
    expect(crc(iscsi)).toBe(0xd9963a56);
    expect(crc(Buffer.alloc(0))).toBe(0);
  });

  it('the table-driven fallback gives what the WebAssembly one gives, at every length and offset', async () => {
    const crc = await loadCrc32c();
    const bytes = randomBytes(4099);
    for (let length = 0; length < 300; length += 7) {
      for (const offset of [0, 1, 3, 1000]) {
        const slice = bytes.subarray(offset, offset + length);
        expect(crc32cTable(slice)).toBe(crc(slice));
      }
    }
    expect(crc32cTable(bytes)).toBe(crc(bytes));
  });

  it('hash-wasm\'s module as import() gives it (default or namespace) serves; one without createCRC32 falls back to the table, never INTERNAL', async () => {
    const imported = await import('hash-wasm/dist/crc32.umd.min.js');
    const data = Buffer.from('123456789');
    for (const shape of [imported, { default: (imported as { default?: unknown }).default ?? imported }]) {
      const crc = await crc32cFrom(shape);
      expect(crc).not.toBe(crc32cTable);
      expect(crc(data)).toBe(0xe3069283);
    }
    // seen in session 48 in CLI runs under load: "createCRC32 is not a function" (INTERNAL)
    for (const broken of [{}, { default: {} }, undefined, { createCRC32: 'no' }]) expect(await crc32cFrom(broken)).toBe(crc32cTable);
  });

  it('masks as LevelDB does (rotate right 15, add 0xa282ead8)', () => {
    expect(maskCrc(0)).toBe(0xa282ead8);
    expect(maskCrc(0x8000)).toBe((1 + 0xa282ead8) >>> 0);
    expect(maskCrc(1)).toBe(((1 << 17) + 0xa282ead8) >>> 0);
  });
});

describe('Snappy', () => {
  it('expands literals and overlapping copies; a copy reaching before the start is damage', () => {
    // 12 bytes: literal "abcd", then a copy of 8 from 4 back (overlapping its own output)
    expect(snappyUncompress(Buffer.from([0x0c, 0x0c, ...Buffer.from('abcd'), 0x11, 0x04])).toString()).toBe('abcdabcdabcd');
    expect(() => snappyUncompress(Buffer.from([0x0c, 0x0c, ...Buffer.from('abcd'), 0x11, 0x05]))).toThrow(/outside the block/);
    expect(() => snappyUncompress(Buffer.from([0x0d, 0x0c, ...Buffer.from('abcd'), 0x11, 0x04]))).toThrow(/holds 12 of its 13/);
  });
});

describe('a LevelDB table written by classic-level', () => {
  it('verifies; its layout has data blocks, a filter block, a metaindex and an index block', async () => {
    const crc = await loadCrc32c();
    const dir = await levelWith(3000);
    for (const name of tablesIn(dir)) {
      const bytes = readFileSync(join(dir, name));
      expect(verifyTable(bytes, crc)).toBeUndefined();
      const layout = readTableLayout(bytes, crc)!;
      expect(layout.data.length).toBeGreaterThan(10);
      expect(layout.filter).toBeDefined();
      expect(layout.index.offset + layout.index.size + 5 + 48).toBe(bytes.length);
    }
  });

  it('every single-bit flip is found, except in the footer padding LevelDB never reads', async () => {
    const crc = await loadCrc32c();
    const dir = await levelWith(300);
    const [name] = tablesIn(dir);
    const pristine = readFileSync(join(dir, name));
    const footerAt = pristine.length - 48;
    const handlesEnd = footerAt + encodedHandlesBytes(pristine.subarray(footerAt));
    const missed: number[] = [];
    for (let at = 0; at < pristine.length; at++) {
      const bytes = Buffer.from(pristine);
      bytes[at] ^= 1 << (at % 8);
      if (verifyTable(bytes, crc) === undefined) missed.push(at);
    }
    expect(missed).toEqual(Array.from({ length: footerAt + 40 - handlesEnd }, (_, i) => handlesEnd + i));
  });

  it('checkIndexFiles: sound; a truncated table, a missing table, a damaged MANIFEST, a CURRENT naming nothing: damage naming the file', async () => {
    const fs = new NodeFileSystem();
    const dir = await levelWith(3000);
    const sound = await checkIndexFiles(fs, dir);
    expect(sound.damage).toEqual([]);
    expect(sound.tables).toBe(tablesIn(dir).length);
    const [table] = tablesIn(dir);
    const bytes = readFileSync(join(dir, table));
    truncateSync(join(dir, table), bytes.length - 1);
    expect((await checkIndexFiles(fs, dir)).damage).toEqual([{ file: table, detail: `${bytes.length - 1} bytes, the MANIFEST says ${bytes.length}` }]);
    rmSync(join(dir, table));
    expect((await checkIndexFiles(fs, dir)).damage).toEqual([{ file: table, detail: 'the MANIFEST lists this table and it is missing' }]);
    writeFileSync(join(dir, table), bytes);
    const manifest = readdirSync(dir).find((f) => f.startsWith('MANIFEST-'))!;
    const pristineManifest = readFileSync(join(dir, manifest));
    const flipped = Buffer.from(pristineManifest);
    flipped[10] ^= 4;
    writeFileSync(join(dir, manifest), flipped);
    expect((await checkIndexFiles(fs, dir)).damage).toEqual([{ file: manifest, detail: expect.stringMatching(/fails its CRC32C/) }]);
    writeFileSync(join(dir, manifest), pristineManifest);
    writeFileSync(join(dir, 'CURRENT'), 'MANIFEST-9\n');
    expect((await checkIndexFiles(fs, dir)).damage).toEqual([{ file: 'MANIFEST-9', detail: 'CURRENT names it and it is missing' }]);
    expect(existsSync(join(dir, table))).toBe(true);
  });
});

/** Bytes the footer's two block handles take (varints: a byte below 0x80 ends each of the four). */
function encodedHandlesBytes(footer: Buffer): number {
  let ends = 0;
  for (let i = 0; i < footer.length; i++) if (footer[i] < 0x80 && ++ends === 4) return i + 1;
  throw new Error('no handles');
}
