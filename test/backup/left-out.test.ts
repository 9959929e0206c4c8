// A restore from a repository with one damaged blob (issue 14, found by an outside tester): every
// message that verifies is restored, only those whose blob does not are left out (never wrong
// bytes), each listed with its mailbox, uid, blob and data file, and the command exits 1 (as scrub
// does on damage) saying how to get them back. Whole store, one user, one mailbox and into a live
// store alike. Before: the first damaged blob stopped the whole restore (CORRUPT, exit 6), nothing
// of any mailbox restored.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { Store } from '../../src/store/store.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireBuilt } from '../cli/helpers.js';
import { run } from '../cli/in-process.js';
import { damageRecordOf, fill, message, openRepo, source } from './helpers.js';

interface LeftOut { mailbox: string; uid: number; blob: string; dataFiles: string[]; why: string }

/** INBOX 1-6 and user/bob 1-4 (bob's 4 the same bytes as INBOX 2: one blob), backed up; then INBOX 2's record damaged. */
async function damagedRepository(dir: string) {
  const store = await Store.init(join(dir, 's'));
  await store.createMailbox('INBOX');
  await store.createMailbox('user/bob');
  const inbox = await fill(store, 'INBOX', 6, 1, 3000);
  const bob = await fill(store, 'user/bob', 3, 100, 3000);
  await store.append('user/bob', inbox[1]!, { flags: ['\\Seen'] });
  const repo = await openRepo(join(dir, 'repo'));
  await runBackup(source(store), repo);
  await store.close();
  await repo.close();
  const hash = hashBytes(inbox[1]!);
  const dataFile = damageRecordOf(join(dir, 'repo'), hash);
  return { repo: join(dir, 'repo'), live: join(dir, 's'), inbox, bob, blob: hash.toString('hex'), dataFile };
}

async function bodiesOf(path: string, mailbox: string): Promise<Map<number, Buffer>> {
  const store = await Store.open(path);
  try {
    const out = new Map<number, Buffer>();
    for await (const { info, body } of store.readMessages(mailbox)) out.set(info.uid, Buffer.from(body));
    return out;
  } finally {
    await store.close();
  }
}

describe('a restore from a repository with a damaged blob', () => {
  it('restores every message that verifies, leaves out and lists only the damaged ones, exits 1; --mailbox, --user and into a live store alike', { timeout: 90_000 }, async () => {
    requireBuilt();
    const dir = tmpDir('bklo');
    const { repo, live, inbox, bob, blob, dataFile } = await damagedRepository(dir);
    const expected = (mailbox: string, uid: number) => ({ mailbox, uid, blob, dataFiles: [dataFile], why: expect.stringMatching(/its blob is damaged in the repository; nothing wrong was written/) });

    // the whole store, --json: both messages of the damaged blob listed, the rest restored
    const whole = await run(['restore', '--repo', repo, '--to', join(dir, 'r1'), '--json']);
    expect(whole.code, whole.stderr.toString()).toBe(1);
    const summary = JSON.parse(whole.stdout.toString()) as { messages: number; leftOut: LeftOut[] };
    expect(summary.messages).toBe(8);
    expect(summary.leftOut).toEqual([expected('INBOX', 2), expected('user/bob', 4)]);
    const restored = await bodiesOf(join(dir, 'r1'), 'INBOX');
    expect([...restored.keys()]).toEqual([1, 3, 4, 5, 6]);
    for (const [uid, body] of restored) expect(body.equals(inbox[uid - 1]!), `INBOX ${uid}`).toBe(true);
    const bobs = await bodiesOf(join(dir, 'r1'), 'user/bob');
    expect([...bobs.keys()]).toEqual([1, 2, 3]);
    for (const [uid, body] of bobs) expect(body.equals(bob[uid - 1]!), `user/bob ${uid}`).toBe(true);
    // the store is sound: counts and digests as its messages are, uids never given again
    const scrub = await run(['scrub'], { store: join(dir, 'r1') });
    expect(scrub.code, scrub.stdout.toString()).toBe(0);
    const status = JSON.parse((await run(['mailbox', 'status', 'INBOX', '--json'], { store: join(dir, 'r1') })).stdout.toString());
    expect(status).toMatchObject({ messages: 5, uidNext: 7 });
    const store = await Store.open(join(dir, 'r1'));
    expect((await store.changesSince('INBOX', 1)).vanishedRanges).toEqual([[2, 2]]); // a client that cached uid 2 is told it is gone
    await store.close();

    // the text: each one left out, and where to get it
    const text = await run(['restore', '--repo', repo, '--to', join(dir, 'r2')]);
    expect(text.code).toBe(1);
    expect(text.stdout.toString()).toMatch(/2 mailboxes, 8 messages .*\(2 left out: damaged in the repository/);
    expect(text.stderr.toString()).toMatch(new RegExp(`LEFT OUT INBOX uid 2: blob ${blob.slice(0, 16)} in ${dataFile} \\(`));
    expect(text.stderr.toString()).toMatch(/LEFT OUT user\/bob uid 4: /);
    expect(text.stderr.toString()).toMatch(/DAMAGE: 2 messages were left out .*another snapshot that has them .*backup check --repo .* --read-data/);

    // one mailbox, one user: the same
    const one = await run(['restore', '--repo', repo, '--mailbox', 'INBOX', '--to', join(dir, 'r3'), '--json']);
    expect(one.code).toBe(1);
    expect(JSON.parse(one.stdout.toString())).toMatchObject({ messages: 5, leftOut: [expected('INBOX', 2)] });
    const user = await run(['restore', '--repo', repo, '--user', 'bob', '--to', join(dir, 'r4'), '--json']);
    expect(user.code).toBe(1);
    expect(JSON.parse(user.stdout.toString())).toMatchObject({ messages: 3, leftOut: [expected('user/bob', 4)] });
    expect([...(await bodiesOf(join(dir, 'r4'), 'user/bob')).keys()]).toEqual([1, 2, 3]);

    // into the live store as a new mailbox: the rest appended, the damaged one named as the snapshot has it
    const into = await run(['restore', '--repo', repo, '--mailbox', 'INBOX', '--as', 'R', '--to', live, '--json']);
    expect(into.code).toBe(1);
    expect(JSON.parse(into.stdout.toString())).toMatchObject({ messages: 5, leftOut: [expected('INBOX', 2)] });
    const back = await bodiesOf(live, 'R');
    expect([...back.values()].map((b) => inbox.findIndex((m) => m.equals(b)) + 1)).toEqual([1, 3, 4, 5, 6]);
  });

  it('a clean repository: no leftOut, exit 0', { timeout: 60_000 }, async () => {
    requireBuilt();
    const dir = tmpDir('bklo');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await store.append('INBOX', message(1));
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    await store.close();
    await repo.close();
    const result = await run(['restore', '--repo', join(dir, 'repo'), '--to', join(dir, 'r'), '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout.toString())).not.toHaveProperty('leftOut');
  });
});
