import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import { readMbox } from '../../src/formats/mbox.js';
import { listMaildirFolders, readMaildir } from '../../src/formats/maildir.js';
import { Random, generateCorpus, generateMessages, parseArguments } from '../../tools/gen-corpus.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'mailstore-gen-'));

describe('gen-corpus', () => {
  it('is deterministic from the seed', () => {
    const a = [...generateMessages({ messages: 50, seed: 'x' })];
    const b = [...generateMessages({ messages: 50, seed: 'x' })];
    const c = [...generateMessages({ messages: 50, seed: 'y' })];
    expect(a.map((m) => m.bytes.toString('base64'))).toEqual(b.map((m) => m.bytes.toString('base64')));
    expect(a.map((m) => m.bytes.toString('base64'))).not.toEqual(c.map((m) => m.bytes.toString('base64')));
    expect(new Random('s').uint32()).toBe(new Random('s').uint32());
  });

  it('has the size distribution, duplicates and oddities it promises', () => {
    const messages = [...generateMessages({ messages: 2000, seed: 'distribution' })];
    const sizes = messages.map((m) => m.bytes.length);
    const inRange = sizes.filter((n) => n >= 1500 && n <= 24 * 1024).length / sizes.length;
    const big = sizes.filter((n) => n >= 100 * 1024 && n <= 1.5 * 1024 * 1024).length / sizes.length;
    const duplicates = messages.filter((m) => m.duplicate).length / messages.length;
    expect(inRange).toBeGreaterThan(0.9);
    expect(big).toBeGreaterThan(0.015);
    expect(big).toBeLessThan(0.06);
    expect(duplicates).toBeGreaterThan(0.03);
    expect(duplicates).toBeLessThan(0.07);
    expect(messages.filter((m) => m.bytes.includes('\r\n')).length).toBeGreaterThan(40);
    expect(messages.filter((m) => m.bytes[m.bytes.length - 1] !== 0x0a).length).toBeGreaterThan(20);
    expect(messages.filter((m) => /\n>*From /.test(m.bytes.toString('latin1'))).length).toBeGreaterThan(50);
    expect(messages.filter((m) => m.flags.includes('\\Seen')).length).toBeGreaterThan(1000);
  });

  it('--small makes 1-4 KB messages only', () => {
    const sizes = [...generateMessages({ messages: 1000, seed: 's', small: true })].map((m) => m.bytes.length);
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(1000);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(4608);
  });

  it('keeps a big corpus within five years of dates, a small one as it was', () => {
    const span = (messages: number, take: number): number => {
      const dates: number[] = [];
      for (const m of generateMessages({ messages, seed: 'd', small: true })) {
        dates.push(m.internalDate.getTime());
        if (dates.length === take) break;
      }
      for (let i = 1; i < dates.length; i += 1) expect(dates[i]).toBeGreaterThanOrEqual(dates[i - 1]);
      return dates[dates.length - 1] - dates[0];
    };
    const year = 365 * 24 * 3600 * 1000;
    // 1M messages: the first 5,000 take ~5,000/1M of five years (at ~2 h a step, they took ~1.1 years and 1M reached 2252).
    expect(span(1_000_000, 5000)).toBeLessThan((5 * year * 5000 * 1.2) / 1_000_000);
    // The bench's 20k corpus keeps its dates: the first messages of 20k and of 1,000 are the same.
    const firstDates = (messages: number): number[] => {
      const dates: number[] = [];
      for (const m of generateMessages({ messages, seed: 'd', small: true })) if (dates.push(m.internalDate.getTime()) === 50) break;
      return dates;
    };
    expect(firstDates(20_000)).toEqual(firstDates(1000));
  });

  it('writes a Maildir++ tree and an mbox that read back as generated', async () => {
    const dir = tmp();
    const summary = await generateCorpus(fs, { out: join(dir, 'md'), format: 'maildir', messages: 60, seed: 'w', folders: ['Sent', 'Lists/kernel'] });
    expect(summary.messages).toBe(60);
    const folders = await listMaildirFolders(fs, join(dir, 'md'));
    expect(folders.map((f) => f.folder)).toEqual(['', 'Lists/kernel', 'Sent']);
    let count = 0;
    for (const folder of folders) for await (const _ of readMaildir(fs, folder.path)) count += 1;
    expect(count).toBe(60);

    const mbox = await generateCorpus(fs, { out: join(dir, 'x.mbox'), format: 'mbox', messages: 60, seed: 'w' });
    let bytes = 0;
    for await (const message of readMbox(fs, join(dir, 'x.mbox'))) bytes += message.bytes.length;
    expect(bytes).toBe(mbox.bytes);
    expect(readFileSync(join(dir, 'x.mbox')).length).toBeGreaterThan(bytes);
    await expect(generateCorpus(fs, { out: join(dir, 'x.mbox'), format: 'mbox', messages: 1, seed: 'w' })).rejects.toMatchObject({ code: 'EXISTS' });
  });

  it('parses its command line', () => {
    expect(parseArguments(['--out', 'o', '--format', 'mbox', '--messages', '5', '--seed', '1', '--small', '--json'])).toMatchObject({
      out: 'o', format: 'mbox', messages: 5, seed: '1', small: true, json: true,
    });
  });
});
