// The backup commands as a script sees them: --json documents and the exit codes of README's table.
import { chmodSync, mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { bin, requireBuilt, tempDir } from '../cli/helpers.js';
// command lines in this process (in-process.ts, which checks a sample against the spawned command);
// what only a process shows is commands.test.ts's and environment.test.ts's
import { json, ok, run } from '../cli/in-process.js';

const KEPT = 'Subject: kept\r\n\r\nbody\r\n';

/** A store in a directory of its own holding KEPT as `mailbox` uid 1. */
async function storeWithOneMessage(prefix: string, mailbox = 'M'): Promise<{ dir: string; store: string }> {
  requireBuilt();
  const dir = tempDir(prefix);
  const store = join(dir, 's');
  await ok(['--store', store, 'init']);
  await ok(['--store', store, 'mailbox', 'create', mailbox]);
  await ok(['--store', store, 'append', mailbox, '-'], { input: KEPT });
  return { dir, store };
}

describe('restore --as a name LMTP never delivers to', () => {
  it('restores user bob as Bob, and warns (stderr, --json) that LMTP lower-cases recipients: bob@ and Bob@ would bounce; as rob, quiet', async () => {
    const { dir, store } = await storeWithOneMessage('mailstore-restore-case-', 'user/bob/INBOX');
    const repo = join(dir, 'repo');
    await ok(['--store', store, 'backup', '--repo', repo]);
    const capital = await run(['restore', '--repo', repo, '--user', 'bob', '--as', 'Bob', '--to', join(dir, 'r1')]);
    expect(capital.code, capital.stderr).toBe(0);
    expect(capital.stderr).toMatch(/^mailstore: WARNING: LMTP never delivers to user\/Bob: recipients are lower-cased .*name it user\/bob$/m);
    const viaJson = await json(['restore', '--repo', repo, '--mailbox', 'user/bob/INBOX', '--as', 'user/Bob/INBOX', '--to', join(dir, 'r2')]);
    expect(viaJson).toMatchObject({ messages: 1, warnings: [expect.stringMatching(/^LMTP never delivers to user\/Bob\/INBOX: .*name it user\/bob\/INBOX$/)] });
    const quiet = await run(['restore', '--repo', repo, '--user', 'bob', '--as', 'rob', '--to', join(dir, 'r3'), '--json']);
    expect(quiet.stderr).toBe('');
    expect(JSON.parse(quiet.stdout.toString())).toMatchObject({ messages: 1, warnings: [] });
  });
});

describe('backup commands', () => {
  it('json documents, exit codes: 1 on damage (a restore leaving out a damaged message too), 5 for a wrong key, a taken name or no policy', { timeout: 90_000 }, async () => {
    requireBuilt();
    const dir = tempDir('mailstore-backup-cli-');
    const store = join(dir, 's');
    const repo = join(dir, 'repo');
    await ok(['--store', store, 'init']);
    await ok(['--store', store, 'mailbox', 'create', 'M']);
    for (let i = 0; i < 4; i++) await ok(['--store', store, 'append', 'M', '-'], { input: `Subject: ${i}\r\n\r\n${randomBytes(3000).toString('hex')}\r\n` });
    const summary = await json(['--store', store, 'backup', '--repo', repo]);
    expect(summary).toMatchObject({ messages: 4, newBlobs: 4, mailboxes: 1 });
    expect(summary.bytesAdded).toBeGreaterThan(0);
    const list = await json(['backups', '--repo', repo]);
    expect(list.snapshots).toEqual([expect.objectContaining({ id: summary.snapshot, messages: 4, seq: summary.seq })]);
    expect((await run(['backup', 'check', '--repo', repo, '--read-data'])).code).toBe(0);
    // a taken name in a live store: EXISTS (5); --as: restored beside it
    const taken = await run(['restore', '--repo', repo, '--mailbox', 'M', '--to', store]);
    expect(taken.code).toBe(5);
    expect(taken.stderr).toMatch(/EXISTS: .*--as/);
    expect((await json(['restore', '--repo', repo, '--mailbox', 'M', '--as', 'M2', '--to', store])).messages).toBe(4);
    expect((await run(['backup', 'forget', '--repo', repo])).code).toBe(5);
    expect((await run(['backups', '--repo', join(dir, 'none')])).code).toBe(4);
    // damage: check exits 1 naming the message; restore exits 1, every other message restored, the damaged one listed (left-out.test.ts)
    const [data] = readdirSync(join(repo, 'data'));
    const bytes = readFileSync(join(repo, 'data', data));
    bytes[bytes.length - 10] ^= 0xff;
    writeFileSync(join(repo, 'data', data), bytes);
    const check = await run(['backup', 'check', '--repo', repo, '--read-data', '--json']);
    expect(check.code).toBe(1);
    expect(JSON.parse(check.stdout.toString()).findings.map((f: { kind: string }) => f.kind)).toEqual(['damaged-data', 'damaged-blob']);
    const corrupt = await run(['restore', '--repo', repo, '--to', join(dir, 'r')]);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toMatch(/LEFT OUT M uid 4: /);
    expect(corrupt.stdout.toString()).toMatch(/1 mailboxes, 3 messages .*\(1 left out/);
    // encryption: a wrong key is INVALID (5), before anything is written
    const key = join(dir, 'k');
    writeFileSync(key, randomBytes(32), { mode: 0o600 });
    writeFileSync(join(dir, 'k2'), randomBytes(32), { mode: 0o600 });
    await ok(['--store', store, 'backup', '--repo', join(dir, 'erepo'), '--key-file', key]);
    const wrong = await run(['restore', '--repo', join(dir, 'erepo'), '--key-file', join(dir, 'k2'), '--to', join(dir, 'r5')]);
    expect(wrong.code).toBe(5);
    expect(wrong.stderr).toMatch(/INVALID: the key file does not open/);
    expect(existsSync(join(dir, 'r5'))).toBe(false);
    expect((await run(['backups', '--repo', join(dir, 'erepo')])).code).toBe(5); // no key at all
  });

  it('a key file or repository credentials other users may read are refused (ACCESS, exit 2) before anything is read or written', { timeout: 60_000 }, async () => {
    const { dir, store } = await storeWithOneMessage('mailstore-backup-key-mode-');
    chmodSync(dir, 0o755); // where others may look, as /etc is
    const key = join(dir, 'k');
    writeFileSync(key, randomBytes(32), { mode: 0o600 });
    await ok(['--store', store, 'backup', '--repo', join(dir, 'repo'), '--key-file', key]);
    for (const mode of [0o644, 0o640, 0o604]) {
      chmodSync(key, mode);
      const refused = await run(['--store', store, 'backup', '--repo', join(dir, `new-${mode.toString(8)}`), '--key-file', key]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(new RegExp(`ACCESS: the key file ${key} may be read by others \\(mode ${mode.toString(8)}\\); chmod 600 it`));
      expect(existsSync(join(dir, `new-${mode.toString(8)}`))).toBe(false);
      const restore = await run(['restore', '--repo', join(dir, 'repo'), '--key-file', key, '--to', join(dir, 'r')]);
      expect(restore.code).toBe(2);
      expect(restore.stderr).toMatch(/ACCESS: the key file .* may be read by others/);
      expect(existsSync(join(dir, 'r'))).toBe(false);
    }
    // the credentials of an s3: repository likewise, before any connection is tried
    const credentials = join(dir, 'credentials');
    writeFileSync(credentials, 'access:secret\n', { mode: 0o644 });
    const s3 = await run(['backups', '--repo', 's3:http://127.0.0.1:9/bucket/prefix', '--repo-credentials', credentials]);
    expect(s3.code).toBe(2);
    expect(s3.stderr).toMatch(/ACCESS: the repository credentials .* may be read by others \(mode 644\)/);
    // a key made with the usual umask in a directory only its owner may enter is out of others'
    // reach (mktemp -d; head -c 32 /dev/urandom > KEY): taken
    const own = join(dir, 'own');
    mkdirSync(own, { mode: 0o700 });
    const ownKey = join(own, 'k');
    writeFileSync(ownKey, randomBytes(32), { mode: 0o644 });
    await ok(['--store', store, 'backup', '--repo', join(dir, 'own-repo'), '--key-file', ownKey]);
    chmodSync(own, 0o750); // group members may enter: refused again
    expect((await run(['restore', '--repo', join(dir, 'own-repo'), '--key-file', ownKey, '--to', join(dir, 'r-own')])).stderr).toMatch(/ACCESS: the key file .* may be read by others/);
    // nothing was lost: the key made private again, the one snapshot restores the message
    chmodSync(key, 0o600);
    await ok(['restore', '--repo', join(dir, 'repo'), '--key-file', key, '--to', join(dir, 'r')]);
    expect(await ok(['--store', join(dir, 'r'), 'fetch', 'M', '1'])).toBe(KEPT);
  });

  it('a new repository in a directory group or others may write is refused (ACCESS, exit 2), nothing written: another user could replace its snapshots (unencrypted, they would be restored)', { timeout: 60_000 }, async () => {
    const { dir, store } = await storeWithOneMessage('mailstore-backup-shared-');
    const repo = join(dir, 'repo');
    mkdirSync(repo);
    chmodSync(repo, 0o777);
    const refused = await run(['--store', store, 'backup', '--repo', repo]);
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toMatch(new RegExp(`ACCESS: ${repo} may be written by group or others \\(mode 777\\): .*chmod go-w ${repo}`));
    expect(readdirSync(repo)).toEqual([]);
    // its directories made beforehand by someone else, open to all: refused too
    chmodSync(repo, 0o755);
    mkdirSync(join(repo, 'snapshots'));
    chmodSync(join(repo, 'snapshots'), 0o777);
    const planted = await run(['--store', store, 'backup', '--repo', repo]);
    expect(planted.code, planted.stderr).toBe(2);
    expect(planted.stderr).toMatch(/ACCESS: .*snapshots may be written by group or others \(mode 777\)/);
    expect(readdirSync(repo)).toEqual(['snapshots']);
    chmodSync(join(repo, 'snapshots'), 0o750);
    await ok(['--store', store, 'backup', '--repo', repo]);
    await ok(['restore', '--repo', repo, '--to', join(dir, 'r')]);
    expect(await ok(['--store', join(dir, 'r'), 'fetch', 'M', '1'])).toBe(KEPT);
  });
});

// libfaketime (apt-get install faketime) runs a real backup under a wrong clock
const faketime = spawnSync('faketime', ['-f', '+0', 'true']).status === 0;
if (!faketime) console.log('the clock test of backup forget is skipped: faketime is not installed (apt-get install faketime)');

describe.skipIf(!faketime)('backup forget after a clock that was days ahead', () => {
  it('a run made with the clock four years ahead, then two after NTP put it right: keep-daily 2 keeps both real runs, and the older of them restores', { timeout: 60_000 }, async () => {
    const { dir, store } = await storeWithOneMessage('mailstore-backup-clock-');
    const repo = join(dir, 'repo');
    const ids: string[] = [];
    for (const [i, night] of ['2030-12-02', '2026-12-03', '2026-12-04'].entries()) {
      await ok(['--store', store, 'append', 'M', '-'], { input: `Subject: night ${i}\r\n\r\nbody\r\n` });
      // whole snapshots: a kept delta keeps its parents, which would hide what the rules chose
      const made = spawnSync('faketime', [`${night} 02:30:00`, process.execPath, bin, '--store', store, 'backup', '--repo', repo, '--whole', '--json'], { encoding: 'utf8', timeout: 30_000 });
      expect(made.status, made.stderr).toBe(0);
      ids.push(JSON.parse(made.stdout).snapshot);
    }
    // by time alone the run dated 2030 and the newest took the two days, and the 12-03 run went
    const forgot = await json(['backup', 'forget', '--repo', repo, '--keep-daily', '2', '--prune']);
    expect(forgot.kept.map((k: { id: string }) => k.id)).toEqual(expect.arrayContaining([ids[1], ids[2]]));
    expect(forgot.removed).toEqual([]);
    expect(await json(['restore', '--repo', repo, '--snapshot', ids[1], '--to', join(dir, 'r')])).toMatchObject({ messages: 3 });
  });
});
