// Damage that yields more findings than a function call takes arguments (~120k): scrub reports
// every one of them, as it reports a few, and the messages acknowledged before are all there.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { keys } from '../../src/keys/index-keys.js';
import { encodeValue } from '../../src/index/codec.js';
import { tmpDir } from '../helpers/tmp.js';
import { rawLevelOf } from '../helpers/internals.js';

const STRAYS = 200_000;
const CLI = new URL('../../dist/src/cli/main.js', import.meta.url).pathname;

/** A store with one message and STRAYS change-log entries of a mailbox that does not exist; the store left open. */
async function withStrays(dir: string): Promise<{ store: Store; uid: number; ghost: Buffer }> {
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX', { owner: 'alice' });
  const { uid } = await store.append('INBOX', Buffer.from('Subject: kept\r\n\r\nhello\r\n'));
  const ghost = Buffer.alloc(16, 0xee);
  const raw = rawLevelOf(store);
  for (let at = 0; at < STRAYS; at += 50_000) {
    const ops = Array.from({ length: 50_000 }, (_, i) => {
      const key = keys.change(ghost, 1, at + i + 1);
      return { type: 'put' as const, key, value: encodeValue(key, 0) };
    });
    await raw.batch(ops);
  }
  return { store, uid, ghost };
}

describe('scrub with very many findings', () => {
  // one store with the strays for the library's scrub and the CLI's (scrub changes nothing): its
  // 200k index entries took ~2 s to write for each
  // (not tmpDir(), which is removed after each test)
  const dir = mkdtempSync(join(tmpdir(), 'many-findings-'));
  let strays: Promise<{ store: Store; uid: number; ghost: Buffer }> | undefined;
  const stored = () => (strays ??= withStrays(dir));
  let closed = false;
  afterAll(async () => {
    if (strays && !closed) await (await strays).store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports 200k change-log entries of a mailbox that does not exist, not a RangeError', async () => {
    const { store, uid, ghost } = await stored();
    const report = await scrub(store);
    const strays = report.findings.filter((f) => f.kind === 'change-log-mismatch' && f.mailbox === ghost.toString('hex'));
    expect(strays).toHaveLength(STRAYS);
    expect((await store.fetch('INBOX', uid)).toString()).toContain('hello');
  }, 60_000);

  it('mailstore scrub prints them all as its table and exits 1 (damage), not a RangeError', async () => {
    const { store, uid } = await stored();
    await store.close();
    closed = true;
    const run = spawnSync(process.execPath, [CLI, '--store', dir, 'scrub'], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    expect(run.stderr).not.toContain('Maximum call stack');
    expect(run.status).toBe(1);
    expect(run.stdout.split('\n').filter((line) => line.startsWith('change-log-mismatch') && line.includes('ee'.repeat(16)))).toHaveLength(STRAYS);
    // nothing acknowledged was lost to either scrub
    const reopened = await Store.open(dir);
    expect((await reopened.fetch('INBOX', uid)).toString()).toContain('hello');
    await reopened.close();
  }, 60_000);

  it('repairs from a source after 200k damaged blobs (a failed disk region), not a RangeError', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX', { owner: 'alice' });
    const { uid } = await store.append('INBOX', Buffer.from('Subject: kept\r\n\r\nhello\r\n'));
    const report = await scrub(store);
    // what scrub reports when a pack the index points into is gone (pack 9: none here, so nothing to quarantine)
    for (let i = 0; i < STRAYS; i++) {
      report.findings.push({ kind: 'blob-missing', hash: i.toString(16).padStart(64, '0'), pack: 9, offset: i * 64, why: 'pack 9 is missing', refs: [] });
    }
    const result = await repair(store, report, { force: true, sources: [tmpDir()] });
    expect(result.blobsRestored).toBe(0);
    expect((await store.fetch('INBOX', uid)).toString()).toContain('hello');
    await store.close();
  }, 60_000);
});
