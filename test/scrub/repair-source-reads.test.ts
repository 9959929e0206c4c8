// How much of a source store `scrub --repair --source STORE` reads (src/scrub/sources.ts): its
// packs first, then its journal segments for inline bodies only while a wanted body is still
// missing, each segment in windows of limits.readChunkBytes, stopping at the last wanted body. A
// source's journal can be many segments of up to 16 MiB; a repair usually wants a few bodies.
import { describe, expect, it } from 'vitest';
import { cpSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodeFileSystem } from '../../src/fs/node-fs.js';
import type { FileHandle, OpenMode } from '../../src/fs/filesystem.js';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';

/** The node file system, noting every open, every read's length and every whole-file read, by path. */
class CountingFs extends NodeFileSystem {
  readonly opened: string[] = [];
  readonly wholeReads: string[] = [];
  readonly readBytes = new Map<string, number[]>();

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const handle = await super.open(path, mode);
    this.opened.push(path);
    const reads = this.readBytes.get(path) ?? [];
    this.readBytes.set(path, reads);
    return new Proxy(handle, {
      get: (target, key) => {
        if (key === 'read') return (buffer: Buffer, offset: number, length: number, position: number) => { reads.push(length); return target.read(buffer, offset, length, position); };
        const value = Reflect.get(target, key) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }

  override readFile(path: string): Promise<Buffer> {
    this.wholeReads.push(path);
    return super.readFile(path);
  }
}

const inline = (i: number) => Buffer.from(`Message-ID: <seg-${i}@example.org>\r\nSubject: ${i}\r\n\r\n${`text ${i} `.repeat(200)}\r\n`);
// over the default inline threshold, so delivered alone it still goes to a pack
const packed = (i: number) => Buffer.from(`Message-ID: <big-${i}@example.org>\r\nSubject: ${i}\r\n\r\n${`long ${i} `.repeat(limits.inlineBodyBytesDefault / 4)}\r\n`);

/** A store of `bodies` in small journal segments, a copy of it (the source), and the store's segments. */
async function storeAndCopy(bodies: Buffer[]): Promise<{ dir: string; source: string; segments: string[] }> {
  const dir = tmpDir('source-reads');
  const store = await Store.open(dir, { create: true, journalSegmentBytesMax: 16 * 1024 });
  await store.createMailbox('INBOX');
  for (const body of bodies) await store.append('INBOX', body);
  await store.close();
  const source = tmpDir('source-reads-copy');
  cpSync(dir, source, { recursive: true });
  const segments = readdirSync(join(source, 'journal')).filter((n) => n.endsWith('.jnl')).sort().map((n) => join(source, 'journal', n));
  return { dir, source, segments };
}

/** Zeros 8 bytes inside each listed message in the store's journal segments (its inline bodies). */
function damageInline(dir: string, messages: number[]): void {
  for (const name of readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl'))) {
    const path = join(dir, 'journal', name);
    const bytes = readFileSync(path);
    for (const i of messages) {
      const at = bytes.indexOf(`<seg-${i}@`);
      if (at >= 0) bytes.fill(0, at + 300, at + 308);
    }
    writeFileSync(path, bytes);
  }
}

describe('repair reading a source store', () => {
  it('wanted inline bodies all in its first segment: only that segment is opened, read in windows and not to its end', async () => {
    const bodies = Array.from({ length: 60 }, (_, i) => inline(i + 1));
    const { dir, source, segments } = await storeAndCopy(bodies);
    expect(segments.length).toBeGreaterThan(5);
    const first = readFileSync(segments[0]);
    const wanted = [1, 2, 3].filter((i) => first.includes(`<seg-${i}@`));
    expect(wanted).toEqual([1, 2, 3]);
    damageInline(dir, wanted);
    const fs = new CountingFs();
    const store = await Store.open(dir, { fs });
    const tunable = limits as { readChunkBytes: number };
    const savedChunkBytes = tunable.readChunkBytes;
    try {
      const before = await scrub(store);
      expect(before.findings.filter((f) => f.kind === 'blob-missing')).toHaveLength(3);
      tunable.readChunkBytes = 4096;
      const result = await repair(store, before, { sources: [source] });
      tunable.readChunkBytes = savedChunkBytes;
      expect(result.blobsRestored).toBe(3);
      expect(result.unrepaired).toEqual([]);
      for (let i = 1; i <= bodies.length; i++) expect((await store.fetch('INBOX', i)).equals(bodies[i - 1]), `uid ${i}`).toBe(true);
      const sourceJournal = join(source, 'journal');
      expect(fs.opened.filter((p) => p.startsWith(sourceJournal))).toEqual([segments[0]]);
      expect(fs.wholeReads.filter((p) => p.startsWith(sourceJournal))).toEqual([]);
      const reads = fs.readBytes.get(segments[0])!;
      expect(Math.max(...reads)).toBeLessThanOrEqual(4096);
      expect(reads.reduce((a, b) => a + b, 0)).toBeLessThan(statSync(segments[0]).size);
    } finally {
      tunable.readChunkBytes = savedChunkBytes;
      await store.close();
    }
  });

  it('the packs gave every wanted body: no journal segment of the source is opened', async () => {
    const bodies = [...Array.from({ length: 20 }, (_, i) => inline(i + 1)), packed(21), packed(22)];
    const { dir, source } = await storeAndCopy(bodies);
    const pack = readdirSync(join(dir, 'packs')).find((n) => n.endsWith('.pack'))!;
    const packPath = join(dir, 'packs', pack);
    const bytes = readFileSync(packPath);
    const at = bytes.indexOf('<big-22@');
    expect(at).toBeGreaterThan(0);
    bytes.fill(0, at + 500, at + 508);
    writeFileSync(packPath, bytes);
    const fs = new CountingFs();
    const store = await Store.open(dir, { fs });
    try {
      const before = await scrub(store);
      expect(before.findings.filter((f) => f.kind === 'blob-corrupt')).toHaveLength(1);
      const result = await repair(store, before, { sources: [source] });
      expect(result.blobsRestored).toBe(1);
      expect(result.unrepaired).toEqual([]);
      expect((await store.fetch('INBOX', 22)).equals(bodies[21])).toBe(true);
      expect(fs.opened.filter((p) => p.startsWith(join(source, 'packs'))).length).toBeGreaterThan(0);
      expect(fs.opened.filter((p) => p.startsWith(join(source, 'journal')))).toEqual([]);
      expect(fs.wholeReads.filter((p) => p.startsWith(join(source, 'journal')))).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
