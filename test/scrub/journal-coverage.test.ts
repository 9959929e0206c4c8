// Issue 10 #5: journal segments deleted while the index keeps everything. Open must say the
// journal no longer covers what the index applied (degraded), and scrub must report it (exit 1),
// not call the store clean.
import { describe, expect, it } from 'vitest';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { tmpDir } from '../helpers/tmp.js';

const CLI = new URL('../../dist/src/cli/main.js', import.meta.url).pathname;
const cli = (args: string[], dir: string) => spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, MAILSTORE_DIR: dir }, encoding: 'utf8' });

async function makeStore(options: { journalSegmentBytesMax?: number } = {}): Promise<string> {
  const dir = tmpDir();
  const store = await Store.open(dir, { create: true, ...options });
  await store.createMailbox('INBOX');
  for (let i = 0; i < 30; i++) await store.append('INBOX', Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`));
  await store.close();
  return dir;
}

const segments = (dir: string) => readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl')).sort();

describe('journal segments deleted, the index intact', () => {
  it('all segments gone (marker kept): open is degraded, scrub reports the gap and exits 1', async () => {
    const dir = await makeStore();
    for (const name of segments(dir)) rmSync(join(dir, 'journal', name));
    const store = await Store.open(dir);
    try {
      expect(store.health.degraded).toBe(true);
      expect(store.health.findings.join('\n')).toMatch(/journal records 1\.\.31 are missing/);
      const report = await scrub(store);
      expect(report.findings).toContainEqual({ kind: 'journal-gap', from: 1, to: 31 });
      expect(report.summary.damage).toBeGreaterThan(0);
      expect(await store.status('INBOX')).toMatchObject({ messages: 30 }); // nothing acknowledged is lost
    } finally {
      await store.close();
    }
    const r = cli(['scrub'], dir);
    expect(r.status, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/records 1\.\.31 are missing/);
  });

  it('the oldest segments gone: open is degraded, scrub reports the missing start', async () => {
    const dir = await makeStore({ journalSegmentBytesMax: 1024 });
    const names = segments(dir);
    expect(names.length).toBeGreaterThan(3);
    for (const name of names.slice(0, 2)) rmSync(join(dir, 'journal', name));
    const store = await Store.open(dir);
    try {
      expect(store.health.degraded).toBe(true);
      const firstSeq = Number(names[2].slice(0, 16));
      const report = await scrub(store);
      expect(report.findings).toContainEqual({ kind: 'journal-gap', from: 1, to: firstSeq - 1 });
      expect(report.summary.damage).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  });
});
