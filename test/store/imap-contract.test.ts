// The IMAP contract as a client sees it, across the paths that restore or rewrite state: IMAP
// clients that cache each mailbox by (UIDVALIDITY, UID) and resync by MODSEQ (QRESYNC, RFC 7162)
// from wherever they last were, between random changes, reopens with the index lost, snapshots,
// compaction, a journal rewritten from the index, the store restored from its last backup
// (the disk lost: the store had gone on after that backup), the user moved to another store by
// XFER, the mailbox list undumped into a new store and the mail imported again, and tombstones
// expired. A client resyncing from its cache must end with exactly what a full read shows: no uid
// names other mail under a uidValidity it cached, no modseq or uidNext goes back, every expunge
// since its modseq is in `vanished` or, below the mailbox's vanished floor, in its vanished ranges
// (the client model honours them as an IMAP server's VANISHED (EARLIER) narrowed to its known
// uids), and a mailbox deleted and made again (or renamed over) never shows a uidValidity its name
// had before.
//
//   IMAP_CONTRACT_RUNS=200 IMAP_CONTRACT_STEPS=60 npx vitest run test/store/imap-contract.test.ts   (long form)
import { describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { reconstruct } from '../../src/scrub/reconstruct.js';
import { runBackup } from '../../src/backup/backup.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import type { Repository } from '../../src/backup/repository.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { openRepo, source } from '../backup/helpers.js';
import { tmpDir } from '../helpers/tmp.js';
import { vanishedOf } from '../helpers/qresync.js';
import { dumpMailboxes, undumpMailboxes, type DumpedMailbox } from '../../src/store/mailbox-list.js';
import { startPrimary } from '../../src/replication/primary.js';
import { xferUser } from '../../src/replication/xfer.js';
import { keyFile } from '../replication/helpers.js';

const RUNS = Number(process.env.IMAP_CONTRACT_RUNS ?? 3);
const STEPS = Number(process.env.IMAP_CONTRACT_STEPS ?? 16);
const SEED = process.env.IMAP_CONTRACT_SEED ? Number(process.env.IMAP_CONTRACT_SEED) : process.env.IMAP_CONTRACT_RUNS ? undefined : 20261206;

// one user's tree, which XFER moves whole
const NAMES = ['user/u/INBOX', 'user/u/A', 'user/u/B'];
const name = fc.constantFrom('user/u/INBOX', 'user/u/INBOX', 'user/u/INBOX', 'user/u/A', 'user/u/B');
const uids = fc.uniqueArray(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 3 });
const op = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), name, body: fc.integer({ min: 0, max: 6 }), count: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('expunge' as const), name, uids }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('flags' as const), name, uids, flag: fc.constantFrom('\\Seen', '\\Flagged', 'k1'), add: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('copy' as const, 'move' as const), from: name, uids, to: name }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rename' as const), from: name, to: name }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('recreate' as const), name }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('sync' as const), name }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const), dropIndex: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('snapshot' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('compact' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rewriteJournal' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('backup' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restore' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('xfer' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('undump' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('expire' as const) }) },
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

/** What one client holds of a mailbox name. */
interface Cache {
  uidValidity: number;
  highestModseq: number;
  uidNext: number;
  messages: Map<number, { hash: string; flags: string }>;
}

class Clients {
  readonly caches = new Map<string, Cache>();
  /** Every (name, uidValidity, uid) -> hash ever shown: a uid never names other mail under a uidValidity. */
  readonly shown = new Map<string, string>();
  /** Each name's uidValidities in the order seen: one never comes back once another was shown. */
  readonly validities = new Map<string, number[]>();

  constructor(private readonly store: () => Store) {}

  /** A full read of the mailbox: what the client must end with. */
  private async truth(mailbox: string): Promise<Map<number, { hash: string; flags: string }>> {
    const out = new Map<number, { hash: string; flags: string }>();
    for await (const m of this.store().messages(mailbox)) out.set(m.uid, { hash: m.hash, flags: [...m.flags].sort().join(' ') });
    return out;
  }

  async sync(mailbox: string): Promise<void> {
    const store = this.store();
    const status = await store.status(mailbox).catch((error: unknown) => {
      if (error instanceof MailstoreError && error.code === 'NOT_FOUND') return undefined;
      throw error;
    });
    if (!status) {
      this.caches.delete(mailbox);
      return;
    }
    const cache = this.caches.get(mailbox);
    const seen = this.validities.get(mailbox) ?? [];
    if (seen.at(-1) !== status.uidValidity) {
      expect(seen, `${mailbox}: uidValidity ${status.uidValidity} came back`).not.toContain(status.uidValidity);
      this.validities.set(mailbox, [...seen, status.uidValidity]);
    }
    const truth = await this.truth(mailbox);
    if (cache && cache.uidValidity === status.uidValidity) {
      expect(status.highestModseq, `${mailbox}: HIGHESTMODSEQ went back`).toBeGreaterThanOrEqual(cache.highestModseq);
      expect(status.uidNext, `${mailbox}: UIDNEXT went back`).toBeGreaterThanOrEqual(cache.uidNext);
      const changes = await store.changesSince(mailbox, cache.highestModseq);
      for (const uid of vanishedOf(cache.messages.keys(), changes)) cache.messages.delete(uid);
      for (const m of changes.changed) {
        expect(m.modseq, `${mailbox}: uid ${m.uid} changed at a modseq not above the client's`).toBeGreaterThan(cache.highestModseq);
        const had = cache.messages.get(m.uid);
        if (had) expect(m.hash, `${mailbox}: uid ${m.uid} names other mail`).toBe(had.hash);
        cache.messages.set(m.uid, { hash: m.hash, flags: [...m.flags].sort().join(' ') });
      }
      // what QRESYNC left the client with is what the mailbox holds
      expect([...cache.messages].sort(([a], [b]) => a - b), `${mailbox}: the client's resynced cache`).toEqual([...truth].sort(([a], [b]) => a - b));
    }
    for (const [uid, m] of truth) {
      const key = `${mailbox}\u0000${status.uidValidity}\u0000${uid}`;
      const before = this.shown.get(key);
      if (before !== undefined) expect(m.hash, `${mailbox}: (${status.uidValidity}, ${uid}) names other mail`).toBe(before);
      this.shown.set(key, m.hash);
    }
    this.caches.set(mailbox, { uidValidity: status.uidValidity, highestModseq: status.highestModseq, uidNext: status.uidNext, messages: truth });
  }
}

/** How far Date.now is moved ahead of the real clock (an hour per restore, a second per mailbox made again). */
let clockAheadMs = 0;

class Harness {
  store!: Store;
  readonly clients = new Clients(() => this.store);
  private repo?: Repository;
  private restores = 0;
  /** Stores made by an XFER or an undump (each a new store id, so a backup repository of its own). */
  private moves = 0;
  private readonly key = keyFile();
  constructor(public dir: string, private readonly work: string) {}

  async close(): Promise<void> {
    await this.store.close().catch(() => undefined);
    await this.repo?.close();
  }

  async step(o: Op): Promise<void> {
    const s = this.store;
    const tolerate = async (call: () => Promise<unknown>) => {
      try {
        await call();
      } catch (error) {
        // a mailbox the sequence removed, a name taken, a move onto itself: the store's refusals
        if (!(error instanceof MailstoreError) || !['NOT_FOUND', 'EXISTS', 'INVALID'].includes(error.code)) throw error;
      }
    };
    switch (o.kind) {
      case 'append':
        return tolerate(() => s.appendBatch(o.name, Array.from({ length: o.count }, (_, i) => ({ bytes: Buffer.from(`Subject: ${o.body + i}\r\n\r\n${'m'.repeat((o.body + i) * 40)}\r\n`) }))));
      case 'expunge': return tolerate(() => s.expunge(o.name, o.uids));
      case 'flags': return tolerate(() => s.setFlags(o.name, o.uids, o.add ? { add: [o.flag] } : { remove: [o.flag] }));
      case 'copy': return tolerate(() => s.copy(o.from, o.uids, o.to));
      case 'move': return tolerate(() => s.move(o.from, o.uids, o.to));
      case 'rename': return tolerate(() => s.renameMailbox(o.from, o.to));
      case 'recreate':
        // a new mailbox's uidValidity is the clock's second, counted on past it only when mailboxes
        // are made faster than one a second; a restore's start the seconds since its snapshot above
        // the snapshot's last, so a name deleted and made again after the snapshot in a store that
        // made mailboxes faster than that may get one it had (BACKUP.md): here a second apart
        clockAheadMs += 1000;
        await tolerate(() => s.deleteMailbox(o.name));
        return tolerate(() => s.createMailbox(o.name));
      case 'sync': return this.clients.sync(o.name);
      case 'snapshot': await s.snapshot(); return;
      case 'compact': await s.compact(); return;
      case 'reopen':
        await s.close();
        if (o.dropIndex) rmSync(join(this.dir, 'index'), { recursive: true, force: true });
        this.store = await Store.open(this.dir);
        return;
      case 'rewriteJournal':
        await s.close();
        await reconstruct(this.dir, { from: 'index' });
        this.store = await Store.open(this.dir);
        return;
      case 'backup':
        this.repo ??= await openRepo(join(this.work, `repo-${this.moves}`));
        await runBackup(source(s), this.repo);
        return;
      case 'restore':
        // the disk lost, the store restored from the last backup as RECOVERY.md says (a new
        // uidValidity for every mailbox): the clients keep their caches.
        // A restore's new uidValidities start the seconds since its snapshot above the snapshot's
        // last one, so restores of one snapshot close together, after the first restored store
        // counted past the clock (mailboxes made faster than one a second), may give one again
        // (BACKUP.md): a disaster and its restore take hours, and here the clock moves on an hour
        if (!this.repo) return;
        clockAheadMs += 3_600_000;
        await s.close();
        this.dir = join(this.work, `restored-${++this.restores}`);
        await restoreToNewStore(nodeFileSystem, this.repo, 'latest', this.dir, { newUidValidity: true });
        this.store = await Store.open(this.dir);
        return;
      case 'expire': await s.compact({ tombstoneRetentionMs: 0 }); return;
      case 'xfer': {
        // the user moves to another store (uidValidity, uids, modseqs kept; the expunges stay here)
        const target = await this.newStore();
        const listener = await startPrimary(target.store, { listen: '127.0.0.1:0', keyFile: this.key, log: () => undefined });
        try {
          await tolerate(async () => xferUser(s, { user: 'u', to: `127.0.0.1:${(await listener.status()).port}`, keyFile: this.key, log: () => undefined }));
        } finally {
          await listener.close();
        }
        return this.switchTo(target);
      }
      case 'undump': {
        // the mailbox list into a new store and the mail imported again (new uids): clients keep their caches
        const dumped: DumpedMailbox[] = [];
        for await (const entry of dumpMailboxes(s)) dumped.push(entry);
        const mail = new Map<string, { bytes: Buffer; flags: string[] }[]>();
        for (const entry of dumped) {
          const items: { bytes: Buffer; flags: string[] }[] = [];
          for await (const { info, body } of s.readMessages(entry.name)) items.push({ bytes: Buffer.from(body), flags: info.flags });
          mail.set(entry.name, items);
        }
        const target = await this.newStore();
        await undumpMailboxes(target.store, dumped);
        for (const [box, items] of mail) if (items.length > 0) await target.store.appendBatch(box, items);
        return this.switchTo(target);
      }
    }
  }

  private async newStore(): Promise<{ store: Store; dir: string }> {
    const dir = join(this.work, `moved-${++this.moves}`);
    return { store: await Store.open(dir, { create: true }), dir };
  }

  /** The clients go on with `target`; the old store is left, and backups go to a repository of the new one. */
  private async switchTo(target: { store: Store; dir: string }): Promise<void> {
    await this.store.close();
    this.store = target.store;
    this.dir = target.dir;
    await this.repo?.close();
    this.repo = undefined;
  }
}

describe('the IMAP contract across recovery paths', () => {
  it(`clients resyncing by (uidValidity, modseq) end with what the store holds (${RUNS} runs of up to ${STEPS} steps; IMAP_CONTRACT_RUNS for more)`, async () => {
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + clockAheadMs);
    try {
      await fc.assert(fc.asyncProperty(fc.array(op, { minLength: Math.ceil(STEPS / 2), maxLength: STEPS }), async (ops) => {
        const work = tmpDir('imap-contract');
        const h = new Harness(join(work, 'store'), work);
        h.store = await Store.open(h.dir, { create: true });
        try {
          for (const n of NAMES) await h.store.createMailbox(n);
          for (const n of NAMES) await h.clients.sync(n);
          await h.step({ kind: 'backup' });
          for (const o of ops) await h.step(o);
          for (const n of NAMES) await h.clients.sync(n);
          // then the disk is lost after all that: the store comes back from its last backup
          await h.step({ kind: 'restore' });
          for (const n of NAMES) await h.clients.sync(n);
          await h.step({ kind: 'append', name: 'user/u/INBOX', body: 9, count: 2 });
          for (const n of NAMES) await h.clients.sync(n);
          // and the paths after which the change log no longer lists every expunge, each after one
          // no client has seen yet: clients that honour the vanished ranges keep no ghost
          for (const kind of ['xfer', 'undump', 'expire'] as const) {
            await h.step({ kind: 'append', name: 'user/u/INBOX', body: 5, count: 2 });
            for (const n of NAMES) await h.clients.sync(n);
            for await (const m of h.store.messages('user/u/INBOX')) {
              await h.step({ kind: 'expunge', name: 'user/u/INBOX', uids: [m.uid] });
              break;
            }
            await h.step({ kind });
            for (const n of NAMES) await h.clients.sync(n);
          }
          // and once more after the index is rebuilt from what is on disk
          await h.step({ kind: 'reopen', dropIndex: true });
          for (const n of NAMES) await h.clients.sync(n);
        } finally {
          await h.close();
          rmSync(work, { recursive: true, force: true });
        }
      }), { numRuns: RUNS, seed: SEED, endOnFailure: !process.env.IMAP_CONTRACT_SHRINK });
    } finally {
      vi.restoreAllMocks();
    }
  }, Math.max(120_000, RUNS * (STEPS * 400 + 15_000))); // each run also moves the store three times (XFER, undump) and restores it
});
