// Issue 10 #6: every pack file gone (packs/STORE-ID kept). Without --force everything refuses
// (UNMOUNTED, exit 3); `scrub --repair --force --source COPY` restores every blob from the copy,
// each verified by its hash, and nothing acknowledged is lost.
import { describe, expect, it } from 'vitest';
import { cpSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
// every body in a pack: these tests damage or remove pack records (helpers/packed.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import { tmpDir } from '../helpers/tmp.js';

const CLI = new URL('../../dist/src/cli/main.js', import.meta.url).pathname;
const cli = (args: string[], dir: string) => spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, MAILSTORE_DIR: dir }, encoding: 'utf8' });

async function makeStore(): Promise<{ dir: string; bytes: Map<number, Buffer> }> {
  const dir = tmpDir();
  const store = await Store.open(dir, { create: true, packBytesMax: 16 * 1024 });
  await store.createMailbox('INBOX');
  const bytes = new Map<number, Buffer>();
  for (let i = 0; i < 30; i++) {
    const m = Buffer.from(`Subject: ${i}\r\n\r\n${'x'.repeat(1000 + i * 37)}\r\n`);
    bytes.set((await store.append('INBOX', m)).uid, m);
  }
  await store.close();
  return { dir, bytes };
}

const packFiles = (dir: string) => readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack'));

describe('every pack file gone, a copy elsewhere', () => {
  it('scrub --repair --source refuses without --force (exit 3); with --force restores every blob from the copy (exit 0)', async () => {
    const { dir, bytes } = await makeStore();
    const good = tmpDir('good');
    cpSync(dir, good, { recursive: true });
    const before = packFiles(dir).sort();
    expect(before.length).toBeGreaterThan(1);
    for (const name of before) rmSync(join(dir, 'packs', name));
    const refused = cli(['scrub', '--repair', '--source', good], dir);
    expect(refused.status, refused.stderr).toBe(3);
    expect(refused.stderr).toMatch(/UNMOUNTED/);
    const forced = cli(['scrub', '--repair', '--force', '--source', good, '--json'], dir);
    expect(forced.status, forced.stderr + forced.stdout).toBe(0);
    const summary = JSON.parse(forced.stdout).summary;
    expect(summary).toMatchObject({ blobsRestored: bytes.size, unrepaired: 0 });
    // restored blobs never reuse a missing pack's name
    expect(packFiles(dir).every((name) => !before.includes(name))).toBe(true);
    expect(cli(['scrub'], dir).status).toBe(0);
    const store = await Store.open(dir);
    try {
      for (const [uid, m] of bytes) expect((await store.fetch('INBOX', uid)).equals(m)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('a source without those blobs restores nothing: every message is reported unrepaired, exit 1', async () => {
    const { dir } = await makeStore();
    const raw = tmpDir('raw');
    writeFileSync(join(raw, 'not-it.eml'), 'Subject: other\r\n\r\nother\r\n');
    for (const name of packFiles(dir)) rmSync(join(dir, 'packs', name));
    const forced = cli(['scrub', '--repair', '--force', '--source', raw, '--json'], dir);
    expect(forced.status, forced.stderr).toBe(1);
    const summary = JSON.parse(forced.stdout).summary;
    expect(summary).toMatchObject({ blobsRestored: 0, unrepaired: 30 });
  });
});
