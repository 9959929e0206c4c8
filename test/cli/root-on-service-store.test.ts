// An admin runs a recipe as root on a store the service user owns (the Debian package's mailstore
// user): what root would write there (a new pack, segment, snapshot, index) the daemon could not
// read afterwards. The CLI refuses before touching anything and names the user to run as.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { filesUnder, ok, requireBuilt, run, tempDir } from './helpers.js';
import { BACKUPS_FILE } from '../../src/store/backup-records.js';

beforeAll(requireBuilt);

const isRoot = process.geteuid?.() === 0;
const NOBODY = 65534;

describe.skipIf(!isRoot)('as root on a store another user owns', () => {
  it('append, reconstruct, serve, and a restore or init into that user\'s directory are REFUSED (exit 3) naming the user, nothing written; MAILSTORE_ALLOW_ROOT=1 runs anyway', async () => {
    const dir = join(tempDir(), 'store');
    await ok(['init'], { store: dir });
    await ok(['mailbox', 'create', 'INBOX'], { store: dir });
    const repo = join(tempDir(), 'repo');
    await ok(['backup', '--repo', repo], { store: dir });
    execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, dir]);
    const big = Buffer.from(`Subject: big\r\n\r\n${'x'.repeat(100_000)}\r\n`); // a new pack if it went in
    for (const args of [['append', 'INBOX', '-'], ['reconstruct'], ['serve']]) {
      const refused = await run(args, { store: dir, input: big });
      expect(refused.code, `${args[0]}: ${refused.stderr}`).toBe(3);
      expect(refused.stderr).toMatch(/REFUSED: the store at .* belongs to nobody \(uid 65534\), and this runs as root.*runuser -u nobody -- mailstore/);
    }
    expect(filesUnder(dir).filter((path) => statSync(path).uid !== NOBODY)).toEqual([]);
    // reading it needs no refusal: a read-only open writes nothing there
    for (const args of [['mailbox', 'list', '--json'], ['stats', '--json'], ['scrub']]) {
      const read = await run(args, { store: dir });
      expect(read.code, `${args.join(' ')}: ${read.stderr}`).toBe(0);
    }
    expect(filesUnder(dir).filter((path) => statSync(path).uid !== NOBODY)).toEqual([]);

    const target = join(tempDir(), 'mount');
    mkdirSync(target);
    execFileSync('chown', [`${NOBODY}:${NOBODY}`, target]);
    const restore = await run(['restore', '--repo', repo, '--snapshot', 'latest', '--to', target]);
    expect(restore.code, restore.stderr).toBe(3);
    expect((await run(['init'], { store: target })).code).toBe(3);
    expect(filesUnder(target)).toEqual([]);

    const anyway = await run(['append', 'INBOX', '-'], { store: dir, input: 'Subject: small\r\n\r\nhi\r\n', env: { MAILSTORE_ALLOW_ROOT: '1' } });
    expect(anyway.code, anyway.stderr).toBe(0);
    expect(readFileSync(join(dir, 'STORE'), 'utf8')).toMatch(/"format":"mailstore"/);
  }, 60_000);

  it("root's backup of that store (its daemon stopped: a read-only open) records the repository in BACKUPS as the user's file, with no warning, so the disk that did not mount is refused next night", async () => {
    const dir = join(tempDir(), 'store');
    await ok(['init'], { store: dir });
    await ok(['mailbox', 'create', 'INBOX'], { store: dir });
    await ok(['append', 'INBOX', '-'], { store: dir, input: 'Subject: kept\r\n\r\nkept\r\n' });
    execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, dir]);
    const repo = join(tempDir(), 'repo');
    const saved = await run(['backup', '--repo', repo, '--json'], { store: dir });
    expect(saved.code, saved.stderr).toBe(0);
    expect(saved.stderr).not.toMatch(/could not record/);
    const backups = join(dir, BACKUPS_FILE);
    expect(statSync(backups)).toMatchObject({ uid: NOBODY, gid: NOBODY });
    expect(JSON.parse(readFileSync(backups, 'utf8').split('\n')[0]!)).toEqual({ records: [{ id: expect.any(String), path: repo, snapshot: (JSON.parse(saved.stdout) as { snapshot: string }).snapshot, time: expect.any(Number) }] });
    expect(filesUnder(dir).filter((path) => statSync(path).uid !== NOBODY)).toEqual([]);
    // the next night the backup disk is not mounted: its mount point is an empty directory
    renameSync(repo, `${repo}.disk`);
    mkdirSync(repo);
    const refused = await run(['backup', '--repo', repo], { store: dir });
    expect(refused.code, refused.stderr).toBe(3);
    expect(refused.stderr).toContain(`UNMOUNTED: no backup repository at ${repo}`);
    expect(filesUnder(repo)).toEqual([]);
    expect(filesUnder(dir).filter((path) => statSync(path).uid !== NOBODY)).toEqual([]);
  }, 60_000);
});
