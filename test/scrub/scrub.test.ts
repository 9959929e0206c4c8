import { describe, expect, it, vi } from 'vitest';
import { cpSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
// every body in a pack: these tests damage and count pack records (helpers/packed.ts)
import { PACKED, PackedStore as Store } from '../helpers/packed.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { limits } from '../../src/limits.js';
import { repair } from '../../src/scrub/repair.js';
import { reconstruct as reconstructOn, type ReconstructOptions } from '../../src/scrub/reconstruct.js';
import { keys } from '../../src/keys/index-keys.js';
import { decodeValue, encodeValue } from '../../src/index/codec.js';
import type { BlobRecord } from '../../src/store/records.js';
import { MailstoreError } from '../../src/errors.js';
import { tmpDir } from '../helpers/tmp.js';
import { prng } from '../helpers/prng.js';
import { describeEachFs } from '../helpers/filesystems.js';
import { rawLevelOf } from '../helpers/internals.js';

const CLI = new URL('../../dist/src/cli/main.js', import.meta.url).pathname;

function message(i: number, rand: () => number): Buffer {
  const body = Buffer.alloc(500 + Math.floor(rand() * 5000));
  for (let k = 0; k < body.length; k++) body[k] = 0x41 + Math.floor(rand() * 26);
  return Buffer.concat([Buffer.from(`Message-ID: <m${i}@example.org>\r\nDate: ${new Date(1_600_000_000_000 + (97 - i) * 86_400_000).toUTCString()}\r\nSubject: ${i}\r\n\r\n`), body, Buffer.from('\r\n')]);
}

/** A store with 3 mailboxes and 60 messages (some shared); returns the bytes by mailbox:uid. */
async function makeStore(dir: string, seed = 1) {
  const rand = prng(seed);
  const store = await Store.open(dir, { create: true, packBytesMax: 64 * 1024 });
  const bytes = new Map<string, Buffer>();
  for (const box of ['INBOX', 'Sent', 'Archive/2025']) await store.createMailbox(box, { owner: 'alice' });
  for (let i = 0; i < 60; i++) {
    const box = ['INBOX', 'Sent', 'Archive/2025'][i % 3];
    const m = message(i, rand);
    const r = await store.append(box, m, { flags: i % 2 ? ['\\Seen'] : [] });
    bytes.set(`${box}:${r.uid}`, m);
  }
  await store.copy('INBOX', [1, 2], 'Sent');
  await store.close();
  return bytes;
}

/** Damages `count` blobs' bodies in the packs (zeros, garbage, bit flips); returns their hashes. */
async function damageBlobs(dir: string, count: number, seed: number): Promise<Set<string>> {
  const store = await Store.open(dir);
  const rand = prng(seed);
  const all: { hash: string; pack: number; offset: number; length: number }[] = [];
  for await (const [key, b] of store.maintenance().index.entries<{ p: number; o: number; l: number }>({ prefix: keys.space(0x42) })) {
    all.push({ hash: key.subarray(1).toString('hex'), pack: b.p, offset: b.o, length: b.l });
  }
  await store.close();
  const chosen = new Set<string>();
  while (chosen.size < count) {
    const b = all[Math.floor(rand() * all.length)];
    if (chosen.has(b.hash)) continue;
    chosen.add(b.hash);
    const path = join(dir, 'packs', `${String(b.pack).padStart(8, '0')}.pack`);
    const pack = readFileSync(path);
    const at = b.offset + 48 + Math.floor(rand() * (b.length - 16));
    const kind = chosen.size % 3;
    if (kind === 0) pack.fill(0, at, at + 16);
    else if (kind === 1) for (let k = 0; k < 16; k++) pack[at + k] = Math.floor(rand() * 256);
    else pack[at] ^= 1 << Math.floor(rand() * 8);
    if (kind === 1 && pack.subarray(at, at + 16).equals(readFileSync(path).subarray(at, at + 16))) pack[at] ^= 0xff;
    writeFileSync(path, pack);
  }
  return chosen;
}

function treeHash(dir: string, skip: (rel: string) => boolean = () => false): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const rel = relative(dir, p);
      if (skip(rel)) continue;
      if (statSync(p).isDirectory()) walk(p);
      else out.set(rel, createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  walk(dir);
  return out;
}

/**
 * Index damage past the codec: rewrites the first value in index space `space` (0x42 B, 0x49 I, ...)
 * with `edit`'s result and makes the store forget its cached mailboxes; returns the key.
 */
async function editFirstValue(store: Store, space: number, edit: (value: any) => unknown): Promise<Buffer> {
  const { encodeValue } = await import('../../src/index/codec.js');
  for await (const [key, value] of store.maintenance().index.entries<any>({ prefix: keys.space(space), limit: 1 })) {
    await rawLevelOf(store).put(key, encodeValue(key, edit(value)));
    store.maintenance().forgetMailboxes();
    return key;
  }
  throw new Error(`index space 0x${space.toString(16)} is empty`);
}

function cli(args: string[], dir: string) {
  return spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, MAILSTORE_DIR: dir }, encoding: 'utf8' });
}

describeEachFs('scrub', ({ Store }) => {
  it('a fresh store is clean; every pack, journal record and index key is covered', async () => {
    const dir = tmpDir();
    await makeStore(dir);
    const store = await Store.open(dir);
    const report = await scrub(store);
    expect(report.findings.filter((f) => f.kind !== 'unreferenced-pack-record')).toEqual([]);
    expect(report.summary.blobsVerified).toBe(60);
    expect(report.summary.cycleComplete).toBe(true);
    expect(report.summary.packs).toBeGreaterThanOrEqual(3);
    await store.close();
  });

  it('mail delivered while scrub runs (between its journal and index passes) is no damage', async () => {
    const dir = tmpDir();
    await makeStore(dir);
    const store = await Store.open(dir);
    const delivered: Promise<unknown>[] = [];
    const report = await scrub(store, {
      // the journal pass is done; these commit before the index pass holds the writer
      onProgress: ({ phase }) => { if (phase === 'index') for (let i = 0; i < 3; i++) delivered.push(store.append('INBOX', Buffer.from(`Subject: during ${i}\r\n\r\nx\r\n`))); },
    });
    expect(delivered).toHaveLength(3);
    await Promise.all(delivered);
    expect(report.findings.filter(isDamage)).toEqual([]);
    await store.close();
  });

  it('a pack shorter than its header is empty-pack and a bad header of a pack nothing refers to unreferenced-pack-header (a crash cut their creation short), both informational; a bad header of a pack with mail in it is pack-header damage', async () => {
    const dir = tmpDir();
    await makeStore(dir);
    const packs = readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack')).sort();
    const next = (k: number) => String(Number(packs[packs.length - 1].slice(0, -5)) + k).padStart(packs[0].length - 5, '0') + '.pack';
    writeFileSync(join(dir, 'packs', next(1)), Buffer.alloc(0));
    const store = await Store.open(dir);
    const empty = await scrub(store);
    const last = Number(next(1).slice(0, -5));
    expect(empty.findings.filter((f) => f.kind !== 'unreferenced-pack-record')).toEqual([{ kind: 'empty-pack', pack: last, bytes: 0 }]);
    expect(empty.summary.damage).toBe(0);
    // new mail is stored beside it and reads back
    const added = await store.append('INBOX', Buffer.from('Subject: after\r\n\r\nafter an empty pack\r\n'));
    expect((await store.fetch('INBOX', added.uid)).toString()).toContain('after an empty pack');
    await store.close();
    writeFileSync(join(dir, 'packs', next(1)), Buffer.alloc(40, 0x5a)); // a header's worth of garbage
    let reopened = await Store.open(dir);
    const dead = await scrub(reopened);
    expect(dead.findings.filter((f) => f.kind !== 'unreferenced-pack-record' && f.kind !== 'pack-damage')).toEqual([{ kind: 'unreferenced-pack-header', pack: last }]);
    expect(dead.summary.damage).toBe(0);
    await reopened.close();
    // the first pack holds mail: its header zeroed is damage
    const first = join(dir, 'packs', packs[0]);
    const bytes = readFileSync(first);
    bytes.fill(0, 0, 32);
    writeFileSync(first, bytes);
    reopened = await Store.open(dir);
    const damaged = await scrub(reopened);
    const headers = damaged.findings.filter((f) => f.kind.includes('header') || f.kind === 'empty-pack');
    expect(headers).toEqual([{ kind: 'pack-header', pack: Number(packs[0].slice(0, -5)) }, { kind: 'unreferenced-pack-header', pack: last }]);
    expect(damaged.summary.damage).toBe(1);
    await reopened.close();
  });

  it('finds exactly the N corrupted blobs with their mailboxes and uids, repairs them from a copy, then is clean', async () => {
    const dir = tmpDir();
    const bytes = await makeStore(dir, 2);
    const copy = tmpDir('copy');
    cpSync(dir, copy, { recursive: true });
    const damaged = await damageBlobs(dir, 7, 42);
    const store = await Store.open(dir);
    const report = await scrub(store);
    const corrupt = report.findings.filter((f) => f.kind === 'blob-corrupt');
    expect(new Set(corrupt.map((f) => (f as { hash: string }).hash))).toEqual(damaged);
    expect(report.summary.damage).toBe(7);
    for (const f of corrupt) {
      if (f.kind !== 'blob-corrupt') continue;
      expect(f.refs.length).toBeGreaterThan(0);
      for (const ref of f.refs) {
        await expect(store.fetch(ref.mailbox, ref.uid)).rejects.toMatchObject({ code: 'CORRUPT' });
      }
    }
    const result = await repair(store, report, { sources: [copy] });
    expect(result.blobsRestored).toBe(7);
    expect(result.quarantined.length).toBe(7);
    expect(result.unrepaired).toEqual([]);
    expect((await scrub(store)).summary.damage).toBe(0);
    for (const [ref, original] of bytes) {
      const [mailbox, uid] = ref.split(':');
      expect((await store.fetch(mailbox, Number(uid))).equals(original), ref).toBe(true);
    }
    await store.close();
  });

  it('repairs from a directory of raw messages too', async () => {
    const dir = tmpDir();
    const bytes = await makeStore(dir, 3);
    const raw = tmpDir('raw');
    let n = 0;
    for (const b of bytes.values()) writeFileSync(join(raw, `${n++}.eml`), b);
    await damageBlobs(dir, 3, 7);
    const store = await Store.open(dir);
    const result = await repair(store, await scrub(store), { sources: [raw] });
    expect(result.blobsRestored).toBe(3);
    expect(result.unrepaired).toEqual([]);
    await store.close();
  });

  it('without a copy: quarantined, reported with mailboxes and uids, nothing else touched', async () => {
    const dir = tmpDir();
    await makeStore(dir, 4);
    const damaged = await damageBlobs(dir, 2, 9);
    const primary = (rel: string) => rel.startsWith('index') || rel.startsWith('quarantine') || rel === 'LOCK' || rel.startsWith('lock');
    const before = treeHash(dir, primary);
    const store = await Store.open(dir);
    const result = await repair(store, await scrub(store), { sources: [] });
    await store.close();
    expect(result.blobsRestored).toBe(0);
    expect(result.quarantined.length).toBe(2);
    expect(new Set(result.unrepaired.map((f) => (f as { hash: string }).hash))).toEqual(damaged);
    for (const f of result.unrepaired) expect((f as { refs: unknown[] }).refs.length).toBeGreaterThan(0);
    expect(treeHash(dir, primary)).toEqual(before);
    expect(readdirSync(join(dir, 'quarantine')).filter((n) => n.startsWith('blob-')).length).toBe(2);
  });
}, PACKED);

// The CLI runs in a child process on the node file system: once is enough.
describe('scrub from the CLI', () => {
  it('refuses (exit 3) when packs were moved away or STORE is missing, and not one byte changes', async () => {
    const dir = tmpDir();
    await makeStore(dir, 5);
    const away = tmpDir('away');
    renameSync(join(dir, 'packs'), join(away, 'packs'));
    let before = treeHash(dir);
    for (const args of [['scrub'], ['scrub', '--repair'], ['reconstruct'], ['reconstruct', '--from-packs']]) {
      const r = cli(args, dir);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(3);
      expect(r.stderr).toMatch(/UNMOUNTED/);
    }
    expect(treeHash(dir)).toEqual(before);
    renameSync(join(away, 'packs'), join(dir, 'packs'));
    rmSync(join(dir, 'STORE'));
    before = treeHash(dir);
    for (const args of [['scrub'], ['scrub', '--repair'], ['reconstruct'], ['reconstruct', '--from-packs']]) {
      expect(cli(args, dir).status, args.join(' ')).toBe(3);
    }
    expect(treeHash(dir)).toEqual(before);
  });
});

describeEachFs('scrub: refusals and index damage', ({ Store }) => {
  it('refuses a repair whose damage looks like a missing partition (most blobs bad)', async () => {
    const dir = tmpDir();
    await makeStore(dir, 6);
    await damageBlobs(dir, 40, 11);
    const store = await Store.open(dir);
    const report = await scrub(store);
    await expect(repair(store, report, {})).rejects.toMatchObject({ code: 'REFUSED' });
    expect(readdirSync(join(dir, 'quarantine')).filter((n) => n.startsWith('blob-'))).toEqual([]);
    await store.close();
    expect(cli(['scrub', '--repair'], dir).status).toBe(3);
  });

  it('blob entries: a value that fails its checksum is index-value-corrupt ahead of the batch\'s other findings; one of another shape (a 64-bit z) is read in full', async () => {
    const dir = tmpDir();
    await makeStore(dir, 9);
    const store = await Store.open(dir);
    const level = rawLevelOf(store);
    const blobKeys: Buffer[] = [];
    for await (const [key] of store.maintenance().index.rawIterator({ gte: Buffer.of(0x42), lt: Buffer.of(0x43) })) blobKeys.push(Buffer.from(key));
    expect(blobKeys.length).toBeGreaterThan(2);
    const [flipped, released] = [blobKeys[blobKeys.length - 1], blobKeys[0]]; // the released one first in the walk
    const raw = Buffer.from(await level.get(flipped));
    raw[raw.length - 1] ^= 0x04;
    await level.put(flipped, raw);
    const record = decodeValue<BlobRecord>(await level.get(released), released);
    await level.put(released, encodeValue(released, { ...record, r: 0, z: 1_796_195_518_148 }));
    const { findings } = await scrub(store);
    await store.close();
    const corrupt = findings.findIndex((f) => f.kind === 'index-value-corrupt' && f.key === flipped.toString('hex'));
    const unreferenced = findings.findIndex((f) => f.kind === 'unreferenced-blob' && f.hash === released.subarray(1).toString('hex') && f.length === record.l);
    expect(corrupt).toBeGreaterThanOrEqual(0);
    expect(unreferenced).toBeGreaterThan(corrupt);
    expect(findings).toContainEqual(expect.objectContaining({ kind: 'refcount-mismatch', hash: released.subarray(1).toString('hex'), recorded: 0, counted: record.r }));
  });

  it('lists at most scrubListedPerKindMax informational findings of a kind and counts the rest with their bytes (400k unreferenced blobs held a daemon at 384 MB); damage is listed whole', async () => {
    const dir = tmpDir();
    const made = await Store.open(dir, { create: true });
    await made.createMailbox('INBOX');
    const appended = await made.appendBatch('INBOX', Array.from({ length: 10 }, (_, i) => ({ bytes: Buffer.from(`Subject: ${i}\r\n\r\n${'x'.repeat(100 + i)}\r\n`) })));
    await made.expunge('INBOX', appended.slice(0, 8).map((a) => a.uid)); // 8 unreferenced blobs until compaction
    await made.close();
    const store = await Store.open(dir);
    const level = rawLevelOf(store);
    const blobKeys: Buffer[] = [];
    for await (const [key] of store.maintenance().index.rawIterator({ gte: Buffer.of(0x42), lt: Buffer.of(0x43) })) blobKeys.push(Buffer.from(key));
    for (const key of blobKeys) { // the kept messages' refcounts wrong: damage, each listed
      const record = decodeValue<BlobRecord>(await level.get(key), key);
      if (record.r > 0) await level.put(key, encodeValue(key, { ...record, r: record.r + 7 }));
    }
    const whole = await scrub(store);
    const listedMax = limits.scrubListedPerKindMax;
    limits.scrubListedPerKindMax = 3;
    let capped;
    try {
      capped = await scrub(store);
    } finally {
      limits.scrubListedPerKindMax = listedMax;
      await store.close();
    }
    const unreferenced = whole.findings.filter((f) => f.kind === 'unreferenced-blob') as { length: number }[];
    expect(unreferenced).toHaveLength(8);
    expect(whole.summary.unlisted).toBeUndefined();
    expect(capped.findings.filter((f) => f.kind === 'unreferenced-blob')).toEqual(unreferenced.slice(0, 3)); // the first three, in index order
    expect(capped.summary.unlisted).toEqual({ 'unreferenced-blob': { count: 5, bytes: unreferenced.slice(3).reduce((sum, f) => sum + f.length, 0) } });
    expect(capped.findings.filter(isDamage)).toEqual(whole.findings.filter(isDamage));
    expect(capped.findings.filter((f) => f.kind === 'refcount-mismatch')).toHaveLength(2);
    expect([capped.summary.damage, capped.summary.informational]).toEqual([whole.summary.damage, whole.summary.informational]);
  });

  it('index damage: a bit-flipped value is found and rebuilt; a deleted index/ or CURRENT is rebuilt on open; nothing lost', async () => {
    const dir = tmpDir();
    const bytes = await makeStore(dir, 8);
    let store = await Store.open(dir);
    const key = keys.name(['Sent']);
    const raw = Buffer.from(await rawLevelOf(store).get(key));
    raw[raw.length - 2] ^= 0x10;
    await rawLevelOf(store).put(key, raw);
    const report = await scrub(store);
    expect(report.findings.map((f) => f.kind)).toContain('index-value-corrupt');
    const result = await repair(store, report, {});
    expect(result.indexRebuilt).toBe(true);
    expect(result.unrepaired).toEqual([]);
    await store.close();
    for (const damage of ['index', 'index/CURRENT']) {
      rmSync(join(dir, damage), { recursive: true });
      store = await Store.open(dir);
      expect(store.health.rebuilt).toBeTruthy();
      expect((await scrub(store)).summary.damage).toBe(0);
      for (const [ref, original] of bytes) {
        const [mailbox, uid] = ref.split(':');
        expect((await store.fetch(mailbox, Number(uid))).equals(original)).toBe(true);
      }
      await store.close();
    }
  });

  it('finds refcount, name-index and reverse-map inconsistencies and re-derives them', async () => {
    const dir = tmpDir();
    await makeStore(dir, 10);
    const store = await Store.open(dir);
    const raw = rawLevelOf(store);
    const { encodeValue } = await import('../../src/index/codec.js');
    // a wrong refcount, a stray name, a stray reverse-ACL entry
    await editFirstValue(store, 0x42, (v) => ({ ...v, r: v.r + 3 }));
    await raw.put(keys.name(['ghost']), encodeValue(keys.name(['ghost']), Buffer.alloc(16, 7)));
    await raw.put(keys.rights('mallory', ['INBOX']), encodeValue(keys.rights('mallory', ['INBOX']), { id: Buffer.alloc(16, 1), rights: 'lr' }));
    const report = await scrub(store);
    const kinds = new Set(report.findings.filter((f) => f.kind !== 'unreferenced-pack-record').map((f) => f.kind));
    expect(kinds).toEqual(new Set(['refcount-mismatch', 'name-index-mismatch', 'acl-map-mismatch']));
    const result = await repair(store, report);
    expect(result.indexRebuilt).toBe(true);
    expect(result.unrepaired).toEqual([]);
    expect(await store.listMailboxes({ user: 'mallory' })).toEqual([]);
    await store.close();
  });

  it('finds a change-log entry that disagrees with its message and a mailbox count that is off', async () => {
    const dir = tmpDir();
    await makeStore(dir, 16);
    const store = await Store.open(dir);
    for await (const [k] of store.maintenance().index.entries<any>({ prefix: keys.space(0x43), limit: 1 })) await rawLevelOf(store).del(k);
    await editFirstValue(store, 0x49, (v) => ({ ...v, unseen: v.unseen + 1 }));
    const kinds = new Set((await scrub(store)).findings.map((f) => f.kind));
    expect(kinds.has('change-log-mismatch')).toBe(true);
    expect(kinds.has('mailbox-counts')).toBe(true);
    const result = await repair(store, await scrub(store));
    expect(result.unrepaired).toEqual([]);
    await store.close();
  });

  it('finds a mailbox whose kept replica-check digest disagrees with its messages, and repair mends it', async () => {
    const dir = tmpDir();
    await makeStore(dir, 16);
    const store = await Store.open(dir);
    let name = '';
    await editFirstValue(store, 0x49, (v) => {
      expect(v.digest, 'apply keeps a digest for every new mailbox').toHaveLength(4);
      name = v.name.join('/');
      return { ...v, digest: [v.digest[0] ^ 1, v.digest[1], v.digest[2], v.digest[3]] };
    });
    const whole = (await scrub(store)).findings.filter(isDamage);
    expect(whole).toEqual([{ kind: 'mailbox-counts', mailbox: name, detail: expect.stringContaining('replica-check digest') }]);
    const scoped = (await scrub(store, { mailbox: name })).findings.filter(isDamage);
    expect(scoped).toEqual([{ kind: 'mailbox-counts', mailbox: name, detail: expect.stringContaining('replica-check digest') }]);
    const result = await repair(store, await scrub(store));
    expect(result.unrepaired).toEqual([]);
    expect((await scrub(store)).summary.damage).toBe(0);
    await store.close();
  });

  it('--time-budget stops and resumes, covering every pack exactly once per full cycle', async () => {
    const dir = tmpDir();
    await makeStore(dir, 12);
    const store = await Store.open(dir);
    const packs = await store.maintenance().packs.listPacks();
    const sizes = new Map(packs.map((p) => [p, statSync(store.maintenance().packs.path(p)).size]));
    let clock = 0;
    const covered = new Map<number, number[][]>();
    let runs = 0;
    for (;;) {
      runs++;
      const report = await scrub(store, { timeBudgetMs: 10, now: () => (clock += 1) });
      for (const r of report.summary.scanned) {
        const list = covered.get(r.pack) ?? [];
        list.push([r.from, r.to]);
        covered.set(r.pack, list);
      }
      if (report.summary.cycleComplete) break;
      expect(runs).toBeLessThan(200);
    }
    expect(runs).toBeGreaterThan(3);
    for (const [pack, size] of sizes) {
      const ranges = (covered.get(pack) ?? []).sort((a, b) => a[0] - b[0]);
      // contiguous, non-overlapping, from the start to the end
      let at = 0;
      for (const [from, to] of ranges) {
        expect(from, `pack ${pack}`).toBe(at);
        at = to;
      }
      expect(at, `pack ${pack}`).toBe(size);
    }
    // the next run starts a new cycle at the first pack
    const next = await scrub(store, { timeBudgetMs: 10, now: () => (clock += 1) });
    expect(next.summary.scanned[0]).toMatchObject({ pack: packs[0], from: 0 });
    await store.close();
  });

  it('the wall clock stepped during a run: a rate-limited scrub does not sleep for the step back, a time budget does not end at the step forward', async () => {
    const dir = tmpDir();
    await makeStore(dir, 13);
    const store = await Store.open(dir);
    // Date.now steps by `stepMs` once the pack pass reports its first record (it has started timing)
    let offsetMs = 0;
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => new Date().getTime() + offsetMs);
    const run = (stepMs: number, options: Parameters<typeof scrub>[1]) => {
      offsetMs = 0;
      const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('scrub still running after 10 s')), 10_000).unref());
      return Promise.race([scrub(store, { ...options, onProgress: (p) => { if (p.phase === 'packs') offsetMs = stepMs; } }), timeout]);
    };
    try {
      const throttled = await run(-3600_000, { maxRateBytesPerSecond: 10e6 }); // NTP steps back an hour
      expect(throttled.summary.cycleComplete).toBe(true);
      expect(throttled.summary.damage).toBe(0);
      const budgeted = await run(86_400_000, { timeBudgetMs: 60_000 }); // a VM resumed a day later
      expect(budgeted.summary.cycleComplete).toBe(true);
      expect(budgeted.summary.seconds).toBeLessThan(60);
    } finally {
      clock.mockRestore();
      await store.close();
    }
  });
}, PACKED);

describe('scrub --threads', () => {
  it('finds the same damage with 0 and 2 hash threads from the CLI; a bad count is INVALID (exit 5)', async () => {
    const dir = tmpDir();
    await makeStore(dir, 14);
    await damageBlobs(dir, 3, 7);
    const runs = ['0', '2'].map((n) => cli(['scrub', '--threads', n, '--json'], dir));
    for (const r of runs) expect(r.status, r.stderr).toBe(1);
    // --json is one document, as every command prints
    const damage = (out: string) => (JSON.parse(out) as { findings: { damage: boolean; hash: string }[] }).findings.filter((o) => o.damage).map((o) => o.hash).sort();
    expect(damage(runs[0].stdout).length).toBe(3);
    expect(damage(runs[1].stdout)).toEqual(damage(runs[0].stdout));
    expect(JSON.parse(runs[0].stdout).summary).toMatchObject({ damage: 3 });
    // --jsonl streams the same findings a line each, then the summary
    const lines = cli(['scrub', '--jsonl'], dir);
    expect(lines.status, lines.stderr).toBe(1);
    const objects = lines.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(objects.filter((o) => o.damage).map((o) => o.hash).sort()).toEqual(damage(runs[0].stdout));
    expect(objects.at(-1).summary).toMatchObject({ damage: 3 });
    expect(cli(['scrub', '--json', '--jsonl'], dir).status).toBe(5);
    const bad = cli(['scrub', '--threads', 'many'], dir);
    expect(bad.status).toBe(5);
    expect(bad.stderr).toContain('INVALID');
  });
});

describeEachFs('reconstruct', ({ Store, fs }) => {
  const reconstruct = (root: string, options: ReconstructOptions = {}) => reconstructOn(root, { fs, ...options });
  it('--check finds no difference on a healthy store; a rebuild keeps everything', async () => {
    const dir = tmpDir();
    const bytes = await makeStore(dir, 13);
    const check = await reconstruct(dir, { check: true });
    expect(check.differences).toBe(0);
    expect(check.messagesAfter).toBe(bytes.size + 2); // two copies
    const done = await reconstruct(dir);
    expect(done.messagesAfter).toBe(bytes.size + 2);
    expect(readdirSync(join(dir, 'quarantine')).some((n) => n.startsWith('index-replaced'))).toBe(true);
  });

  it('refuses to rebuild an empty store from an empty journal when packs hold mail; --from-packs recovers into lost+found by date', async () => {
    const dir = tmpDir();
    const bytes = await makeStore(dir, 14);
    rmSync(join(dir, 'journal'), { recursive: true });
    rmSync(join(dir, 'index'), { recursive: true });
    await expect(reconstruct(dir)).rejects.toMatchObject({ code: 'UNMOUNTED' });
    const result = await reconstruct(dir, { fromPacks: true });
    expect(result.journalRecreated).toBe(true);
    const unique = new Set([...bytes.values()].map((b) => b.toString('latin1')));
    expect(result.lostAndFound).toEqual({ mailbox: 'lost+found', messages: unique.size });
    const store = await Store.open(dir);
    const dates: number[] = [];
    for await (const m of store.messages('lost+found')) {
      const body = await store.fetch('lost+found', m.uid);
      expect(unique.has(body.toString('latin1'))).toBe(true);
      dates.push(Date.parse(/Date: (.*)\r\n/.exec(body.toString())![1]));
    }
    expect(dates).toEqual([...dates].sort((a, b) => a - b));
    expect((await scrub(store)).summary.damage).toBe(0);
    await store.close();
    // an empty journal with full packs is refused without --from-packs
    const dir2 = tmpDir();
    await makeStore(dir2, 15);
    for (const name of readdirSync(join(dir2, 'journal'))) if (name.endsWith('.jnl')) rmSync(join(dir2, 'journal', name));
    rmSync(join(dir2, 'index'), { recursive: true });
    await expect(reconstruct(dir2)).rejects.toBeInstanceOf(MailstoreError);
    expect(existsSync(join(dir2, 'packs'))).toBe(true);
  });
}, PACKED);
