// A repository's config swapped for another repository's (issue 14, an outside tester's finding):
// two encrypted repositories made with one key file, and one's config copied over the other's (or
// the repository pointed at the wrong one). The key check passes, every file fails authentication,
// and check called each index and snapshot file damaged and each data file "unindexed-data
// (prune removes it)": an admin who followed that would have deleted the data. Check now tells a
// whole file sealed under other keys (foreign-file) from damage, says the config does not fit
// (config-mismatch) and calls nothing unindexed; prune and repair refuse and change nothing.
import { copyFileSync, existsSync, readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireBuilt } from '../cli/helpers.js';
import { run } from '../cli/in-process.js';
import { fill, openRepo, source } from './helpers.js';

interface Report { findings: { kind: string; damage: boolean; path: string; message: string }[] }

const files = (dir: string) => ['data', 'index', 'snapshots'].flatMap((area) => readdirSync(join(dir, area)).map((name) => `${area}/${name}`)).sort();

/** Repositories A and B of one store, encrypted with one key file. */
async function twoRepositories(dir: string) {
  const secret = randomBytes(32);
  const key = join(dir, 'key');
  writeFileSync(key, secret, { mode: 0o600 });
  const store = await Store.init(join(dir, 's'));
  await store.createMailbox('INBOX');
  await fill(store, 'INBOX', 5);
  for (const name of ['a', 'b']) {
    const repo = await openRepo(join(dir, name), secret);
    await runBackup(source(store), repo);
    await repo.close();
  }
  await store.close();
  return { key, a: join(dir, 'a'), b: join(dir, 'b') };
}

describe('a repository under another repository\'s config', () => {
  it('check says config-mismatch and calls nothing unindexed; forget --prune and repair refuse, nothing changed; its own config put back, all is clean', { timeout: 60_000 }, async () => {
    requireBuilt();
    const dir = tmpDir('bkcs');
    const { key, a, b } = await twoRepositories(dir);
    const own = readFileSync(join(b, 'config'));
    copyFileSync(join(a, 'config'), join(b, 'config'));
    const before = files(b);

    const check = await run(['backup', 'check', '--repo', b, '--key-file', key, '--json']);
    expect(check.code).toBe(1);
    const report = JSON.parse(check.stdout.toString()) as Report;
    expect(report.findings.map((f) => f.kind).sort()).toEqual(['config-mismatch', 'foreign-file', 'foreign-file']);
    expect(report.findings.find((f) => f.kind === 'config-mismatch')).toMatchObject({ damage: true, path: join(b, 'config'), message: expect.stringMatching(/this config is another repository's.*Put back the repository's own config/) });
    const text = await run(['backup', 'check', '--repo', b, '--key-file', key]);
    expect(text.stdout.toString()).not.toMatch(/prune removes it|unindexed-data|damaged-/);

    const prune = await run(['backup', 'forget', '--repo', b, '--key-file', key, '--keep-last', '1', '--prune']);
    expect(prune.code).toBe(3);
    expect(prune.stderr.toString()).toMatch(/REFUSED: .*sealed under other keys.*put back the repository's own config/);
    const repair = await run(['backup', 'repair', '--repo', b, '--key-file', key]);
    expect(repair.code).toBe(3);
    expect(repair.stderr.toString()).toMatch(/REFUSED: none of the 1 index files .* the config is another repository's/);
    expect(files(b)).toEqual(before);
    expect(existsSync(join(b, 'damaged'))).toBe(false);
    // a backup would write files under these keys beside the repository's own: refused, nothing written
    const backup = await run(['--store', join(dir, 's'), 'backup', '--repo', b, '--key-file', key]);
    expect(backup.code).toBe(3);
    expect(backup.stderr.toString()).toMatch(/REFUSED: the repository's snapshots are sealed under other keys .*the config is another repository's; nothing was written/);
    expect(files(b)).toEqual(before);

    writeFileSync(join(b, 'config'), own);
    expect((await run(['backup', 'check', '--repo', b, '--key-file', key, '--read-data'])).code).toBe(0);
    const restored = await run(['restore', '--repo', b, '--key-file', key, '--to', join(dir, 'r'), '--json']);
    expect(JSON.parse(restored.stdout.toString()).messages).toBe(5);
  });

  it('another repository\'s snapshot, newest among its own: the backup is not refused, it builds on its own older snapshot', { timeout: 60_000 }, async () => {
    requireBuilt();
    const dir = tmpDir('bkcs');
    const { key, a, b } = await twoRepositories(dir);
    const [own] = readdirSync(join(b, 'snapshots'));
    const [other] = readdirSync(join(a, 'snapshots'));
    copyFileSync(join(a, 'snapshots', other!), join(b, 'snapshots', other!));
    const newer = Date.now() / 1000 + 2; // the newest, as a parent candidate, and well within the clock's allowance
    utimesSync(join(b, 'snapshots', other!), newer, newer);
    const backup = await run(['--store', join(dir, 's'), 'backup', '--repo', b, '--key-file', key, '--json']);
    expect(backup.code, backup.stderr.toString()).toBe(0);
    expect(JSON.parse(backup.stdout.toString()).parent).toBe(own);
  });

  it('one index file of another repository among its own: foreign-file (not damaged-index), no config-mismatch', { timeout: 60_000 }, async () => {
    requireBuilt();
    const dir = tmpDir('bkcs');
    const { key, a, b } = await twoRepositories(dir);
    const [index] = readdirSync(join(a, 'index'));
    copyFileSync(join(a, 'index', index!), join(b, 'index', index!));
    const report = JSON.parse((await run(['backup', 'check', '--repo', b, '--key-file', key, '--json'])).stdout.toString()) as Report;
    expect(report.findings.map((f) => [f.kind, f.path])).toEqual([['foreign-file', join(b, 'index', index!)]]);
  });
});
