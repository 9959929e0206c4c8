// `mailstore compact` and the new `stats` fields as a script sees them: --dry-run changes nothing,
// --json reports what was reclaimed, --grace keeps recently released blobs, a bad duration is INVALID.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { requireBuilt, tempDir } from './helpers.js';
// command lines in this process (in-process.ts, which checks a sample against the spawned command);
// what only a process shows is commands.test.ts's and environment.test.ts's
import { json, ok, run } from './in-process.js';

beforeAll(requireBuilt);

function message(i: number, size: number): Buffer {
  const body = createHash('sha512').update(String(i)).digest('hex').repeat(Math.ceil(size / 128)).slice(0, size);
  return Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\n${body}\r\n`);
}

function packsBytes(store: string): number {
  return readdirSync(join(store, 'packs')).filter((n) => n.endsWith('.pack')).reduce((sum, n) => sum + statSync(join(store, 'packs', n)).size, 0);
}

/** 20 messages of ~4 KB, 16 expunged. */
async function churnedStore(): Promise<{ store: string; files: string[] }> {
  const dir = tempDir();
  const store = join(dir, 'store');
  await ok(['init'], { store });
  await ok(['mailbox', 'create', 'INBOX'], { store });
  const files: string[] = [];
  mkdirSync(join(dir, 'msgs'));
  for (let i = 1; i <= 20; i++) {
    const file = join(dir, 'msgs', `${String(i).padStart(3, '0')}.eml`);
    writeFileSync(file, message(i, 4000));
    files.push(file);
  }
  await ok(['import', join(dir, 'msgs'), '--mailbox', 'INBOX', '--format', 'eml'], { store });
  await ok(['expunge', 'INBOX', '1:16'], { store });
  return { store, files };
}

describe('mailstore compact', () => {
  it('--dry-run --json reports and changes nothing; compact --json reclaims; stats --json has bytesDead and bytesLive', async () => {
    const { store, files } = await churnedStore();
    const stats = await json(['stats'], { store });
    expect(stats.bytesDead).toBeGreaterThan(16 * 4000);
    expect(stats.bytesLive).toBeGreaterThan(4 * 4000);
    expect(stats.messages).toBe(4); // existing fields are kept
    const before = packsBytes(store);
    const dry = await json(['compact', '--dry-run'], { store });
    expect(dry).toMatchObject({ dryRun: true, packsRewritten: [1], blobsReclaimed: 16 });
    expect(packsBytes(store)).toBe(before);
    const done = await json(['compact'], { store });
    expect(done).toMatchObject({ dryRun: false, packsRewritten: [1], packsWritten: [2], packsRemoved: [1], blobsReclaimed: 16, blobsCopied: 4 });
    expect(done.bytesBefore).toBe(before);
    expect(done.bytesAfter).toBe(packsBytes(store));
    expect(packsBytes(store)).toBeLessThan(before / 3);
    expect((await json(['stats'], { store })).bytesDead).toBe(0);
    for (let uid = 17; uid <= 20; uid++) {
      const fetched = await run(['fetch', 'INBOX', String(uid)], { store });
      expect(fetched.stdout.equals(readFileSync(files[uid - 1])), `uid ${uid}`).toBe(true);
    }
    expect((await run(['scrub'], { store })).code).toBe(0);
  });

  it('--grace keeps blobs released within it; the plain summary says what happened', async () => {
    const { store } = await churnedStore();
    const kept = await json(['compact', '--grace', '1h'], { store });
    expect(kept, 'released blobs within the grace period are not dead yet: nothing to rewrite').toMatchObject({ blobsReclaimed: 0, packsRewritten: [], blobsCopied: 0 });
    const text = await ok(['compact', '--grace', '0'], { store });
    expect(text).toMatch(/^rewrote 1 pack \(1\); reclaimed 16 blobs$/m);
    expect(text).toMatch(/^packs: .* before, .* after; /m);
  });

  it('--tombstone-retention drops the change-log entries of expunged uids older than it, raising the vanished floor; within the default retention they stay', async () => {
    const { store } = await churnedStore();
    expect(await json(['compact'], { store })).toMatchObject({ tombstonesExpired: 0 });
    expect(await json(['compact', '--tombstone-retention', '0'], { store })).toMatchObject({ tombstonesExpired: 16 });
    expect(await ok(['compact', '--tombstone-retention', '0'], { store })).not.toMatch(/tombstone/); // none left
  });

  it('released inline bodies (one-sync deliveries) are dropped, not copied into a pack: --dry-run and --json count them, the summary says so', async () => {
    const store = join(tempDir(), 'store');
    await ok(['init'], { store });
    await ok(['mailbox', 'create', 'Gone'], { store });
    for (let i = 1; i <= 6; i++) await ok(['append', 'Gone', '-'], { store, input: message(i, 500) });
    await ok(['mailbox', 'delete', 'Gone', '--force'], { store });
    // stats counts them apart from the packs' dead bytes (the background compactor adds the two)
    const dead = (await json(['stats'], { store })) as { bytesDead: number; bytesDeadInline: number };
    expect(dead.bytesDead).toBe(0);
    expect(dead.bytesDeadInline).toBeGreaterThan(6 * 500);
    expect(await ok(['stats'], { store })).toMatch(new RegExp(`^dead in journal +${dead.bytesDeadInline} \\(.*\\) of released inline bodies, dropped by mailstore compact$`, 'm'));
    expect(await json(['compact', '--dry-run'], { store })).toMatchObject({ inlineReclaimed: 6, blobsReclaimed: 0 });
    expect(await ok(['compact'], { store })).toMatch(/^dropped 6 released inline bodies \(in the journal: their segments retire with the next snapshot\)$/m);
    expect(packsBytes(store), 'none copied into a pack').toBe(0);
    expect((await json(['compact'], { store })).inlineReclaimed).toBeUndefined(); // none left
    expect(await json(['stats'], { store })).toMatchObject({ bytesDeadInline: 0 });
    expect(await ok(['stats'], { store })).not.toMatch(/dead in journal/);
  });

  it('a bad --grace is INVALID (exit 5); --help explains', async () => {
    const store = join(tempDir(), 'store');
    await ok(['init'], { store });
    const bad = await run(['compact', '--grace', 'soon'], { store });
    expect(bad.code).toBe(5);
    expect(bad.stderr).toMatch(/INVALID: cannot read the duration "soon"/);
    const help = await ok(['compact', '--help']);
    expect(help).toMatch(/--dry-run/);
    expect(help).toMatch(/--grace <duration>/);
  });
});
