// `mailstore snapshot` as a script sees it: --json prints seq, bytes, records, duration and what it
// retired; the consumer and stats figures follow; a rebuild after `rm -rf index` gives the same
// state and scrub is clean (acceptance compact.sh's last part); the journal archive setting.
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { requireBuilt, tempDir } from './helpers.js';
// command lines in this process (in-process.ts, which checks a sample against the spawned command);
// what only a process shows is commands.test.ts's and environment.test.ts's
import { json, ok, run } from './in-process.js';

beforeAll(requireBuilt);

const message = (i: number) => `From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`;

describe('mailstore snapshot', () => {
  it('--json prints the snapshot and what was retired; a rebuild after losing index/ gives the same state; scrub is clean', async () => {
    const dir = tempDir();
    const store = join(dir, 'store');
    const archive = join(dir, 'archive');
    mkdirSync(archive);
    // bodies in packs: the seqs below are the snapshot's own (with inline bodies, a second
    // snapshot's retirement commits their move into a pack after it: snapshots.test.ts)
    await ok(['init', '--journal-archive', archive, '--inline-bytes-max', '0'], { store });
    await ok(['mailbox', 'create', 'M'], { store });
    for (let i = 1; i <= 12; i++) await ok(['append', 'M', '-'], { store, input: message(i) });
    await ok(['expunge', 'M', '1:9'], { store });
    const snap = await json(['snapshot'], { store });
    expect(snap).toMatchObject({ seq: 14, reused: false, journalArchive: archive, retired: { throughSeq: 0, segments: [] } });
    // the only snapshot: the journal stays whole beside it, and the result says why
    expect(snap.retired.held).toMatch(/1 verified snapshot of the 2 kept/);
    expect(snap.bytes).toBeGreaterThan(36);
    expect(snap.records).toBeGreaterThanOrEqual(1); // format 3: records of up to 1 MiB of index entries
    expect(snap.format).toBe(3);
    expect(typeof snap.durationMs).toBe('number');
    expect(existsSync(join(store, 'snapshots', snap.name))).toBe(true);
    const again = await json(['snapshot'], { store });
    expect(again).toMatchObject({ seq: 14, reused: true });
    const consumers = await json(['consumers'], { store });
    expect(consumers.consumers).toEqual([expect.objectContaining({ name: 'snapshot', seq: 14, lagRecords: 0 })]);
    const stats = await json(['stats'], { store });
    expect(stats).toMatchObject({ snapshots: 1, newestSnapshotSeq: 14, journalFirstSeq: 1 });
    expect(stats.journalBytesRetained).toBe(stats.journalBytes);
    const before = await json(['mailbox', 'status', 'M'], { store });
    rmSync(join(store, 'index'), { recursive: true });
    expect(await json(['mailbox', 'status', 'M'], { store })).toEqual(before);
    const check = await ok(['reconstruct', '--check'], { store });
    expect(check).toMatch(/a recovery would use the snapshot/);
    expect((await run(['scrub'], { store })).code).toBe(0);
    const text = await ok(['snapshot', '--journal-archive', 'off'], { store });
    expect(text).toMatch(/^snapshot 0{14}14\.snap: seq 14, \d+ records/);
    expect(text).toMatch(/journal not retired: 1 verified snapshot of the 2 kept/);
    expect((await json(['snapshot'], { store })).journalArchive).toBeNull();
    expect(readdirSync(archive)).toEqual(['STORE-ID']); // the marker naming the store: nothing retired into it
    expect((await run(['snapshot', '--journal-archive', join(dir, 'missing')], { store })).code).toBe(4);
  }, 120_000);

  it('names the consumer that holds the journal back, with its lag: a consumer left behind is never a silent "nothing to retire"', async () => {
    const dir = tempDir();
    const store = join(dir, 'store');
    await ok(['init'], { store });
    await ok(['mailbox', 'create', 'M'], { store });
    await ok(['consumers', '--move', 'events-webhook', '--to', '0'], { store }); // a webhook whose receiver went away at the start
    for (let i = 1; i <= 3; i++) await ok(['append', 'M', '-'], { store, input: message(i) });
    await ok(['snapshot'], { store }); // the older generation: retirement needs two
    await ok(['append', 'M', '-'], { store, input: message(4) });
    const text = await ok(['snapshot'], { store });
    expect(text).toMatch(/journal kept from seq 1 on for consumer events-webhook \(\d+ records behind; 'mailstore consumers' lists them/);
    expect(text).not.toMatch(/nothing to retire/);
    expect((await json(['snapshot'], { store })).retired.heldBy).toMatchObject({ consumer: 'events-webhook', seq: 0 });
  }, 120_000);

  it('init with a journal archive it refuses (group or others may write it, or missing) makes no store: the same init runs again once the directory is fixed', async () => {
    const dir = tempDir();
    const store = join(dir, 'store');
    const archive = join(dir, 'archive');
    mkdirSync(archive);
    chmodSync(archive, 0o777);
    const refused = await run(['init', '--journal-archive', archive], { store });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/ACCESS/);
    expect(existsSync(join(store, 'STORE'))).toBe(false);
    expect((await run(['init', '--journal-archive', join(dir, 'missing')], { store })).code).toBe(4);
    expect(existsSync(join(store, 'STORE'))).toBe(false);
    chmodSync(archive, 0o755);
    await ok(['init', '--journal-archive', archive], { store });
    expect((await json(['snapshot'], { store })).journalArchive).toBe(archive);
  }, 60_000);
});
