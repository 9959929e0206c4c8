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

  it('an mbox with a byte-order mark or a line of garbage before its first From_ line is an mbox, not one message of all of them', async () => {
    // both were taken for one .eml file: every message of the mbox went in as a single one, exit 0
    const dir = tmp();
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const mbox = 'From a Thu Nov 28 10:45:25 2026\nSubject: 1\n\nx\n\nFrom b Thu Nov 28 10:45:26 2026\nSubject: 2\n\ny\n';
    const files: [string, string | Buffer, 'mbox' | 'eml'][] = [
      ['bom.mbox', Buffer.concat([bom, Buffer.from(mbox)]), 'mbox'],
      ['notes.mbox', `saved from the old server, 2019\r\n${mbox}`, 'mbox'],
      ['bom-one.mbox', Buffer.concat([bom, Buffer.from('From a Thu Nov 28 10:45:25 2026\n\nx\n')]), 'mbox'],
      // a message whose header is a header, with a From_ line in its body, stays one message
      ['forward.eml', `Subject: fwd\n\n${mbox}`, 'eml'],
      ['plain.txt', 'no header, and no From_ line with a date\nFrom here on\n', 'eml'],
    ];
    for (const [name, content, format] of files) {
      writeFileSync(join(dir, name), content);
      expect(await detectFormat(fs, join(dir, name)), name).toBe(format);
    }
  });
});
