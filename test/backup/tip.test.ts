// Snapshot tips (src/backup/tip.ts, tip-since.ts, docs/BACKUP.md "Tips"): an incremental run on
// its parent's tip writes the same delta, counts and next tip as a run that decodes the parent;
// a damaged, torn or missing tip is never used (the run decodes the parent instead); a tip whose
// chain has a damaged snapshot file is not built on; forget removes the tips of what it removes;
// an encrypted repository's tips are sealed.
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runBackup, type BackupSource, type BackupSummary } from '../../src/backup/backup.js';
import { forgetSnapshots } from '../../src/backup/forget.js';
import type { Repository, SnapshotFile } from '../../src/backup/repository.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import { hashOrder, listTips, readTip, sortHashes, tipOfModel, tipOfState, type Tip } from '../../src/backup/tip.js';
import { modelOf } from '../../src/backup/incremental.js';
import type { MailboxInfo, Op } from '../../src/store/records.js';
import type { StateChange, StateMessage } from '../../src/store/state-since.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { expireTombstones } from '../../src/store/tombstone-expiry.js';
import { tmpDir } from '../helpers/tmp.js';
import { dump, fill, openRepo, source } from './helpers.js';

async function storeWithMail(dir: string): Promise<Store> {
  const store = await Store.init(join(dir, 's'));
  await store.createMailbox('INBOX');
  await store.createMailbox('Sent');
  await store.createMailbox('Trash');
  await fill(store, 'INBOX', 40);
  await fill(store, 'Sent', 12, 100);
  await fill(store, 'Trash', 6, 200);
  return store;
}

/** Every kind of change: new blobs, a copy of a held blob, flags (\Seen both ways), expunges, a new and a deleted mailbox. */
async function change(store: Store): Promise<void> {
  await fill(store, 'INBOX', 4, 5000);
  await store.copy('INBOX', [2, 3], 'Sent');
  await store.setFlags('INBOX', [5, 6, 7], { add: ['\\Seen', 'k1'] });
  await store.setFlags('INBOX', [5], { remove: ['\\Seen'] });
  await store.expunge('INBOX', [10, 11, 40]);
  await store.expunge('Sent', [1]);
  await store.createMailbox('Fresh');
  await fill(store, 'Fresh', 3, 6000);
  await store.deleteMailbox('Trash');
}

const withoutTime = ({ time: _t, ...rest }: SnapshotFile) => rest;
const columns = (tip: Tip) => ({ ...tip, snapshot: '', chain: [], boxes: [...tip.boxes].map(([k, b]) => [k, { ...b, uids: [...b.uids], sizes: [...b.sizes], seen: [...b.seen], refs: [...b.refs], changeUids: [...b.changeUids], changeModseqs: [...b.changeModseqs] }]) });
const tipOf = async (repo: Repository, id: string) => readTip(repo, id, await listTips(repo));

async function restoredDump(repo: Repository, to: string): Promise<unknown> {
  await restoreToNewStore(nodeFileSystem, repo, 'latest', to);
  const back = await Store.open(to);
  try {
    return await dump(back);
  } finally {
    await back.close();
  }
}

/** A whole backup, the changes, and the repository copied (same files) for a second run. */
async function twoRepositories() {
  const dir = tmpDir('bkt');
  const store = await storeWithMail(dir);
  let repo = await openRepo(join(dir, 'a'));
  const first = await runBackup(source(store), repo);
  await repo.close();
  cpSync(join(dir, 'a'), join(dir, 'b'), { recursive: true });
  await change(store);
  repo = await openRepo(join(dir, 'a'));
  return { dir, store, repo, first };
}

/** A whole backup of `store` into a/, copied to b/ without its tips (a run there decodes its parent). */
async function backedUpTwice(dir: string, store: Store): Promise<void> {
  const repo = await openRepo(join(dir, 'a'));
  await runBackup(source(store), repo);
  await repo.close();
  cpSync(join(dir, 'a'), join(dir, 'b'), { recursive: true });
  for (const name of readdirSync(join(dir, 'b', 'tips'))) rmSync(join(dir, 'b', 'tips', name));
}

/** `onTip` (a run in a/) wrote the snapshot a run in b/ that decodes its parent writes, and it restores exactly; closes all three. */
async function expectAsDecoded(dir: string, store: Store, repo: Repository, onTip: BackupSummary): Promise<void> {
  const other = await openRepo(join(dir, 'b'));
  const decoded = await runBackup(source(store), other);
  expect(withoutTime(await repo.readMetadata<SnapshotFile>('snapshot', onTip.snapshot))).toEqual(withoutTime(await other.readMetadata<SnapshotFile>('snapshot', decoded.snapshot)));
  const expected = await dump(store);
  await store.close();
  expect(await restoredDump(repo, join(dir, 'r'))).toEqual(expected);
  await repo.close();
  await other.close();
}

describe('snapshot tips', () => {
  it('a run on the tip writes the same delta, counts and next tip as a run that decodes its parent', async () => {
    const { dir, store, repo, first } = await twoRepositories();
    expect(await tipOf(repo, first.snapshot)).toBeDefined(); // the whole run wrote one
    let decodes = 0;
    const readSnapshot = repo.readSnapshot.bind(repo);
    repo.readSnapshot = async (...args) => { decodes++; return readSnapshot(...args); };
    const onTip = await runBackup(source(store), repo);
    expect(decodes).toBe(0); // nothing of the parent decoded
    const other = await openRepo(join(dir, 'b'));
    for (const name of readdirSync(join(dir, 'b', 'tips'))) rmSync(join(dir, 'b', 'tips', name));
    const decoded = await runBackup(source(store), other);
    // bytesAdded counts the snapshot file too, whose compressed size moves with its time field
    const same = (s: BackupSummary) => ({ ...s, snapshot: '', durationMs: 0, bytesAdded: 0 });
    expect(same(onTip)).toEqual(same(decoded));
    expect(Math.abs(onTip.bytesAdded - decoded.bytesAdded)).toBeLessThanOrEqual(8);
    expect(onTip).toMatchObject({ deltaDepth: 1, parent: first.snapshot, newBlobs: 7 });
    expect(withoutTime(await repo.readMetadata<SnapshotFile>('snapshot', onTip.snapshot))).toEqual(withoutTime(await other.readMetadata<SnapshotFile>('snapshot', decoded.snapshot)));
    const a = (await tipOf(repo, onTip.snapshot))!, b = (await tipOf(other, decoded.snapshot))!;
    expect(isDeepStrictEqual(columns(a), columns(b))).toBe(true);
    expect(a.chain).toEqual([first.snapshot]);
    const expected = await dump(store);
    await store.close();
    expect(await restoredDump(repo, join(dir, 'r'))).toEqual(expected);
    await repo.close();
    await other.close();
  });

  it('a changed mailbox\'s older change-log entries are read in its one range read where that range holds few others, else looked up: the same delta as a decoded parent', async () => {
    const dir = tmpDir('bkt');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('Wide');
    await fill(store, 'Wide', 600); // one record: 600 entries at one modseq
    await store.createMailbox('Tail');
    await fill(store, 'Tail', 300, 1000);
    await fill(store, 'Tail', 300, 2000); // uids 301-600, another modseq
    await backedUpTwice(dir, store);
    const highest = async (box: string) => (await store.status(box)).highestModseq;
    const parentHighest = { Wide: await highest('Wide'), Tail: await highest('Tail') };
    await store.setFlags('Wide', [7], { add: ['k1'] }); // 1 old entry wanted among 600: looked up
    await store.expunge('Tail', Array.from({ length: 250 }, (_, i) => 301 + i)); // 250 old entries wanted among 300: one range
    await fill(store, 'Tail', 2, 3000);
    const ids = new Map((await store.listMailboxes()).map((box) => [box.id.replace(/-/g, ''), box.name]));
    const reads: [string, number][] = [], lookups: [string, number][] = [];
    const traced: BackupSource = { ...source(store), stateSince: async (afterSeq) => {
      const since = await store.maintenance().stateSince(afterSeq);
      const name = (id: Buffer) => ids.get(id.toString('hex'))!;
      return {
        ...since,
        changesAfter: (id, modseq) => { reads.push([name(id), modseq]); return since.changesAfter(id, modseq); },
        changes: (id, entries) => { lookups.push([name(id), entries.length]); return since.changes(id, entries); },
      };
    } };
    const repo = await openRepo(join(dir, 'a'));
    const onTip = await runBackup(traced, repo);
    expect(onTip.deltaDepth).toBe(1);
    expect(lookups).toEqual([['Wide', 1]]);
    expect(reads.sort()).toEqual([['Tail', parentHighest.Tail - 1], ['Wide', parentHighest.Wide]]); // Tail's from its older entries' modseq up
    await expectAsDecoded(dir, store, repo, onTip);
  });

  it('tombstones expired between two runs (change.floor: entries removed below the parent\'s highestModseq): the delta on the tip equals a decoded parent\'s and restores exactly', async () => {
    const dir = tmpDir('bkt');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 12);
    await store.expunge('INBOX', [1, 2, 3]);
    await backedUpTwice(dir, store);
    await store.expunge('INBOX', [4]);
    // as compact's expiry, without its journal rewrite (after which the next run reads the whole state)
    expect((await expireTombstones(store.administration(), 0, Date.now())).expired).toBe(4); // 3 of them in the parent
    await store.setFlags('INBOX', [9], { add: ['k1'] });
    const repo = await openRepo(join(dir, 'a'));
    const onTip = await runBackup(source(store), repo);
    expect(onTip).toMatchObject({ deltaDepth: 1, mailboxesReadWhole: 0 });
    await expectAsDecoded(dir, store, repo, onTip);
  });

  it('a damaged, truncated or missing tip is not used: the run decodes its parent and restores exactly', async () => {
    for (const damage of ['flip', 'truncate', 'empty'] as const) {
      const { dir, store, repo, first } = await twoRepositories();
      const [name] = readdirSync(join(dir, 'a', 'tips'));
      const path = join(dir, 'a', 'tips', name!);
      const bytes = readFileSync(path);
      if (damage === 'flip') bytes[bytes.length - 9] ^= 0x40;
      writeFileSync(path, damage === 'flip' ? bytes : damage === 'truncate' ? bytes.subarray(0, bytes.length >> 1) : Buffer.alloc(0));
      expect(await tipOf(repo, first.snapshot)).toBeUndefined();
      let decodes = 0;
      const readSnapshot = repo.readSnapshot.bind(repo);
      repo.readSnapshot = async (...args) => { decodes++; return readSnapshot(...args); };
      const summary = await runBackup(source(store), repo);
      expect(decodes).toBeGreaterThan(0);
      expect(summary).toMatchObject({ deltaDepth: 1, parent: first.snapshot });
      expect(await tipOf(repo, summary.snapshot)).toBeDefined(); // the next run has one again
      const expected = await dump(store);
      await store.close();
      expect(await restoredDump(repo, join(dir, 'r'))).toEqual(expected);
      await repo.close();
    }
  });

  it('a tip whose snapshot file is damaged is not built on: the run reads the whole state', async () => {
    const { dir, store, repo, first } = await twoRepositories();
    const path = join(dir, 'a', 'snapshots', first.snapshot);
    const bytes = readFileSync(path);
    bytes[bytes.length - 5] ^= 1;
    writeFileSync(path, bytes);
    const summary = await runBackup(source(store), repo);
    expect(summary.parent).toBeUndefined();
    expect(summary.deltaDepth).toBeUndefined(); // a whole snapshot: nothing built on the damaged file
    const expected = await dump(store);
    await store.close();
    rmSync(path); // the damaged one out of the way of 'latest'
    expect(await restoredDump(repo, join(dir, 'r'))).toEqual(expected);
    await repo.close();
  });

  it('forget removes the tips of the snapshots it removes, and tips of no snapshot', async () => {
    const { dir, store, repo } = await twoRepositories();
    await runBackup(source(store), repo, { whole: true });
    await fill(store, 'INBOX', 1, 9000);
    const last = await runBackup(source(store), repo, { whole: true });
    writeFileSync(join(dir, 'a', 'tips', `${'ab'.repeat(32)}.${'cd'.repeat(32)}`), 'left by a run that stopped before its snapshot');
    await forgetSnapshots(repo, { last: 1 });
    expect(readdirSync(join(dir, 'a', 'tips')).map((name) => name.split('.')[0])).toEqual([last.snapshot]);
    await store.close();
    await repo.close();
  });

  it('encrypted: a tip is sealed (no hash, uid column or mailbox name in clear) and used with the key', async () => {
    const dir = tmpDir('bkt');
    const store = await storeWithMail(dir);
    const key = Buffer.alloc(32, 7);
    const repo = await openRepo(join(dir, 'a'), key);
    const first = await runBackup(source(store), repo);
    const [name] = readdirSync(join(dir, 'a', 'tips'));
    const bytes = readFileSync(join(dir, 'a', 'tips', name!));
    const tip = (await tipOf(repo, first.snapshot))!;
    expect(bytes.includes(tip.hashes.subarray(0, 32))).toBe(false);
    expect(bytes.includes(Buffer.from('INBOX'))).toBe(false);
    await change(store);
    let decodes = 0;
    const readSnapshot = repo.readSnapshot.bind(repo);
    repo.readSnapshot = async (...args) => { decodes++; return readSnapshot(...args); };
    expect(await runBackup(source(store), repo)).toMatchObject({ deltaDepth: 1, parent: first.snapshot });
    expect(decodes).toBe(0);
    const expected = await dump(store);
    await store.close();
    expect(await restoredDump(repo, join(dir, 'r'))).toEqual(expected);
    await repo.close();
  });
});

describe('sortHashes', () => {
  it('orders hashes as Buffer.compare does, also those whose first 6 bytes tie or that repeat', () => {
    // hashes drawn from a few prefixes, so ties past the numeric prefix are common
    const hash = fc.tuple(fc.constantFrom(0, 1, 255), fc.constantFrom(0, 7), fc.uint8Array({ minLength: 26, maxLength: 26 }))
      .map(([a, b, rest]) => Buffer.concat([Buffer.from([a, 0, 0, 0, b, a]), Buffer.from(rest)]));
    fc.assert(fc.property(fc.array(fc.oneof(hash, fc.uint8Array({ minLength: 32, maxLength: 32 }).map((u) => Buffer.from(u))), { maxLength: 60 }), (list) => {
      const withRepeats = [...list, ...list.slice(0, 3)];
      const expected = [...withRepeats].sort(Buffer.compare).map((h) => h.toString('hex'));
      expect(sortHashes(withRepeats).map((h) => h.toString('hex'))).toEqual(expected);
    }), { numRuns: 500 });
  });

  it('hashOrder (a native sort of prefix-and-index numbers) orders 20k hashes as Buffer.compare does, runs of equal first bytes among them', () => {
    const hashes = Array.from({ length: 20_000 }, (_, i) => createHash('sha256').update(String(i)).digest());
    for (let i = 0; i < 300; i += 3) hashes[i + 1]!.set(hashes[i]!.subarray(0, 4 + (i % 5)), 0); // first 4 to 8 bytes tie
    for (let i = 300; i < 330; i++) hashes[i + 1000] = Buffer.from(hashes[i]!); // repeats
    const order = hashOrder(hashes.length, (i) => hashes[i]!);
    expect(new Set(order).size).toBe(hashes.length);
    for (let i = 1; i < order.length; i++) expect(Buffer.compare(hashes[order[i - 1]!]!, hashes[order[i]!]!)).toBeLessThanOrEqual(0);
  });
});

describe('tipOfState', () => {
  it('gives the tip tipOfModel gives of the modelled state: repeated uids and mailbox records, unknown mailboxes, shared and tying hashes', () => {
    const id = (n: number) => Buffer.from([0, n]);
    const hash = fc.tuple(fc.constantFrom(0, 1, 255), fc.constantFrom(0, 7), fc.constantFrom(0, 3), fc.uint8Array({ minLength: 25, maxLength: 25 }))
      .map(([a, b, c, rest]) => Buffer.concat([Buffer.from([a, 0, 0, 0, b, a, c]), Buffer.from(rest)]));
    const hashes = fc.array(hash, { minLength: 1, maxLength: 8 });
    const message = (pool: Buffer[]) => fc.tuple(fc.integer({ min: 1, max: 30 }), fc.nat(pool.length - 1), fc.nat(5000), fc.boolean(), fc.integer({ min: 1, max: 90 }))
      .map(([uid, h, size, seen, modseq]) => [uid, pool[h]!, size, 0, seen ? ['\\Seen', 'k'] : ['k'], modseq] as StateMessage);
    const op = (pool: Buffer[]) => fc.oneof(
      fc.integer({ min: 1, max: 4 }).map((n): Op => ({ op: 'state.mailbox', info: { id: id(n), name: `m${n}`, uidValidity: 1, uidNext: 31, highestModseq: 90, messages: 0, bytes: 0, unseen: 0 } as unknown as MailboxInfo })),
      fc.tuple(fc.integer({ min: 1, max: 5 }), fc.array(message(pool), { maxLength: 12 })).map(([n, messages]): Op => ({ op: 'state.messages', id: id(n), messages })),
      fc.tuple(fc.integer({ min: 1, max: 5 }), fc.array(fc.tuple(fc.integer({ min: 1, max: 90 }), fc.integer({ min: 1, max: 30 })), { maxLength: 10 }))
        .map(([n, entries]): Op => ({ op: 'state.changes', id: id(n), entries: entries.map(([modseq, uid]) => [modseq, uid, { flags: [] }] as StateChange) })),
    );
    const state = hashes.chain((pool) => fc.array(op(pool), { maxLength: 25 }));
    fc.assert(fc.property(state, (ops) => {
      const header = { snapshot: '', storeId: 's', depth: 0, chain: [], counts: { mailboxes: 0, messages: 0, bytes: 0, blobs: 0 } };
      const expected = tipOfModel(modelOf({ seq: 9, ops }), header);
      const tip = tipOfState(ops, 9, header);
      expect(tip.hashes.toString('hex')).toBe(expected.hashes.toString('hex'));
      expect(columns(tip)).toEqual(columns(expected));
    }), { numRuns: 200 });
  });
});
