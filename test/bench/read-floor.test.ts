// The read floor (measure/read-floor.ts): every message record of the index and every body of the
// packs, each checked against its record's hash; damage is an error line, never a faster floor;
// the store's own index files are left as they were (it reads a copy).
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, readSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { repoRoot } from '../cli/helpers.js';

const script = join(repoRoot, 'dist/src/bench/measure/read-floor.js');

function floor(store: string): Record<string, unknown> {
  const ran = spawnSync(process.execPath, [script, '--store', store], { encoding: 'utf8' });
  const line = ran.stdout.trim().split('\n').pop()!;
  return JSON.parse(line) as Record<string, unknown>;
}

const listing = (dir: string) => readdirSync(dir).map((name) => `${name}:${statSync(join(dir, name)).size}:${statSync(join(dir, name)).mtimeMs}`);

describe('the read floor', () => {
  it('reads every message record and checks every body (one over its 1 MiB preads too); a changed body byte is an error, not a floor', async () => {
    const dir = tmpDir('read-floor');
    const store = await Store.open(dir, { create: true });
    const bodies = Array.from({ length: 40 }, (_, i) => Buffer.from(`Subject: m${i}\r\n\r\n${'x'.repeat(200 + i * 50)}\r\n`));
    bodies.push(Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.alloc(1_500_000, 0x61)])); // bigger than a pread
    const bytes = bodies.reduce((n, b) => n + b.length, 0);
    try {
      await store.createMailbox('INBOX');
      await store.createMailbox('Other');
      await store.appendBatch('INBOX', bodies.slice(0, 30).map((b) => ({ bytes: b })));
      await store.appendBatch('Other', bodies.slice(30).map((b) => ({ bytes: b })));
      await store.appendBatch('Other', [{ bytes: bodies[0] }]); // a second message of one blob: a record more, no blob more
    } finally {
      await store.close();
    }
    const packs = readdirSync(join(dir, 'packs')).filter((name) => name.endsWith('.pack'));
    expect(packs.length).toBeGreaterThan(0);
    const index = listing(join(dir, 'index'));

    const ok = floor(dir);
    expect(ok).toMatchObject({ peer: 'floor-read', measurement: 'read', messages: 42, blobs: 41, bytes });
    expect(ok.error).toBeUndefined();
    expect(ok.seconds).toEqual(expect.any(Number));
    expect(listing(join(dir, 'index'))).toEqual(index); // LevelDB opened on a copy
    expect(readdirSync(dirname(dir)).filter((name) => name.startsWith('.read-floor-index-'))).toEqual([]); // made beside the store, and gone

    // one byte of a body in the pack changed: the floor reports it instead of a time
    const pack = join(dir, 'packs', packs[0]);
    const fd = openSync(pack, 'r+');
    try {
      const at = readFileSync(pack).indexOf('Subject: m3\r\n') + 12;
      const one = Buffer.alloc(1);
      readSync(fd, one, 0, 1, at);
      writeSync(fd, Buffer.of(one[0] ^ 0x01), 0, 1, at);
    } finally {
      closeSync(fd);
    }
    const bad = floor(dir);
    expect(bad).toMatchObject({ peer: 'floor-read', measurement: 'read' });
    expect(String(bad.error)).toContain('1 of 41 bodies did not match');
    expect(bad.seconds).toBeUndefined();
  });
});
