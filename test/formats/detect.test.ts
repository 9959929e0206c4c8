import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import { detectFormat } from '../../src/formats/detect.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'mailstore-detect-'));

describe('detectFormat', () => {
  it('tells Maildir, Maildir++ roots, eml directories, mbox files and single messages apart', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'maildir', 'cur'), { recursive: true });
    mkdirSync(join(dir, 'onlynew', 'new'), { recursive: true });
    mkdirSync(join(dir, 'plusplus', '.Sent', 'cur'), { recursive: true });
    mkdirSync(join(dir, 'emls'));
    writeFileSync(join(dir, 'emls', 'a.eml'), 'Subject: x\n\n');
    writeFileSync(join(dir, 'box.mbox'), 'From a Thu Nov 28 10:45:25 2026\n\n');
    writeFileSync(join(dir, 'blank-first.mbox'), '\r\n\nFrom a Thu Nov 28 10:45:25 2026\n\n');
    writeFileSync(join(dir, 'one.eml'), 'From: a@example.com\n\nhi\n');
    writeFileSync(join(dir, 'empty'), '');
    expect(await detectFormat(fs, join(dir, 'maildir'))).toBe('maildir');
    expect(await detectFormat(fs, join(dir, 'onlynew'))).toBe('maildir');
    expect(await detectFormat(fs, join(dir, 'plusplus'))).toBe('maildir');
    expect(await detectFormat(fs, join(dir, 'emls'))).toBe('eml');
    expect(await detectFormat(fs, join(dir, 'box.mbox'))).toBe('mbox');
    expect(await detectFormat(fs, join(dir, 'blank-first.mbox'))).toBe('mbox');
    expect(await detectFormat(fs, join(dir, 'one.eml'))).toBe('eml');
    await expect(detectFormat(fs, join(dir, 'empty'))).rejects.toMatchObject({ code: 'INVALID' });
    await expect(detectFormat(fs, join(dir, 'missing'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(detectFormat(fs, '/dev/null')).rejects.toMatchObject({ code: 'INVALID' });
  });
});
