// Concurrency of one process: rounds of operations from several logical clients issued at once
// (Promise.all) against one Store, as a mail server's library calls and the daemon's clients run
// on one event loop. api-fuzz.test.ts checks each call against a model one at a time; here the
// order the writer picks is not known, so the checks are what must hold whatever order it picked:
// every acknowledged message is there byte-exact unless an acknowledged removal may have taken it;
// nothing unacknowledged appears; uids never reused; the index's derived structures (name index,
// reverse ACL map, counters, change log, refcounts) agree with the primary data (dumpStore); quota
// roots within their limits; scrub (whole, budgeted, --mailbox) beside the writers finds no
// damage; readers (fetch, fetchStream read slowly, readMessages, changesSince: no change above the
// highestModseq it answers; listMailboxes: no mailbox twice) never return wrong bytes and never
// call a race damage; scrub clean at rest; the same after reopen.
//
// The daemon's part: a Client per logical client against one DaemonServer over the same Store, and
// clients whose connection is cut in a streamed append (its message there only if it may have
// committed, byte-exact) or in a streamed fetch or listing, while the others go on.
//
//   CONCURRENT_FUZZ_RUNS=200 npx vitest run test/store/concurrent-fuzz.test.ts   (long form)
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { setQuota, listQuotas, getQuota, type QuotaLimits, type QuotaReport } from '../../src/store/quota.js';
import type { MailStore } from '../../src/store/api.js';
import { Client, defaultSocketPath } from '../../src/client/client.js';
import { DaemonServer } from '../../src/daemon/server.js';
import { Logger } from '../../src/daemon/log.js';
import { scrub, type ScrubOptions, type ScrubReport } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { dumpDiff, dumpStore } from '../sim/model.js';
import { tmpDir } from '../helpers/tmp.js';

const RUNS = Number(process.env.CONCURRENT_FUZZ_RUNS ?? 6);
const ROUNDS = Number(process.env.CONCURRENT_FUZZ_ROUNDS ?? 8);
/** With CONCURRENT_FUZZ_SEED, replays the failing case fast-check named (its `path`). */
const PATH = process.env.CONCURRENT_FUZZ_PATH;
const DAEMON_RUNS = Math.max(1, Math.round(RUNS / 2));
const TIMEOUT_MS = Math.max(120_000, RUNS * ROUNDS * 1000);
const SEED = process.env.CONCURRENT_FUZZ_SEED ? Number(process.env.CONCURRENT_FUZZ_SEED) : process.env.CONCURRENT_FUZZ_RUNS ? undefined : 20261205;

const NAMES = ['user/alice/INBOX', 'user/alice/A', 'user/alice/A/B', 'user/bob/INBOX', 'user/bob/X', 'Shared', 'Shared/Sub'];
const RENAME_TARGETS = ['user/alice/Z', 'user/bob/Y', 'Shared/New', 'Other', 'user/alice/A'];
const USERS = ['alice', 'bob', 'carol'];
/** Distinct bodies (some large enough for packs, the rest inline); the hash of every byte a reader may return is one of theirs. */
const BODIES = Array.from({ length: 8 }, (_, i) => Buffer.from(`Subject: m${i}\r\n\r\n${String.fromCharCode(97 + i).repeat(i < 4 ? 40 : 3000 + i * 500)}\r\n`));
const HASHES = new Set(BODIES.map((b) => hashBytes(b).toString('hex')));
const QUOTA_BYTES = 40_000;

const name = fc.constantFrom(...NAMES);
const uids = fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 3 });
const body = fc.integer({ min: 0, max: BODIES.length - 1 });
const op = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), name, body }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('appendBatch' as const), name, bodies: fc.array(body, { minLength: 1, maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('copy' as const, 'move' as const), from: name, uids, to: name }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('expunge' as const), name, uids }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flags' as const), name, uids, add: fc.boolean(), since: fc.option(fc.integer({ min: 0, max: 40 }), { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('create' as const), name }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rename' as const), from: name, to: fc.constantFrom(...RENAME_TARGETS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), name, ifEmpty: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('renameUser' as const), from: fc.constantFrom(...USERS), to: fc.constantFrom(...USERS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deleteUser' as const), user: fc.constantFrom(...USERS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('acl' as const), name, who: fc.constantFrom(...USERS, 'anyone'), rights: fc.constantFrom('', 'lr', 'lrswi') }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('quota' as const), root: fc.constantFrom('user/alice', 'user/bob'), storage: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('compact' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('snapshot' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('scrub' as const), scope: fc.constantFrom('whole' as const, 'budget' as const, 'user/alice', 'Shared') }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('fetch' as const), name, uid: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('fetchStream' as const), name, uid: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('readMessages' as const), name }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('changesSince' as const), name, modseq: fc.integer({ min: 0, max: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('list' as const), user: fc.option(fc.constantFrom(...USERS, 'anyone'), { nil: undefined }) }) },
);
/** Through the daemon also: a client whose connection is cut `ticks` turns into a streamed append or a read. */
const cut = fc.oneof(
  fc.record({ kind: fc.constant('cutAppend' as const), name, ticks: fc.integer({ min: 0, max: 6 }) }),
  fc.record({ kind: fc.constantFrom('cutFetch' as const, 'cutRead' as const), name, uid: fc.integer({ min: 1, max: 8 }), ticks: fc.integer({ min: 0, max: 6 }) }),
);
type Op = (typeof op extends fc.Arbitrary<infer T> ? T : never) | (typeof cut extends fc.Arbitrary<infer T> ? T : never);
/** A round: what 2-4 clients issue at once (each client's operations in its own order). */
const round = fc.array(fc.array(op, { minLength: 1, maxLength: 3 }), { minLength: 2, maxLength: 4 });
const daemonRound = fc.array(fc.array(fc.oneof({ weight: 8, arbitrary: op }, { weight: 2, arbitrary: cut }), { minLength: 1, maxLength: 3 }), { minLength: 2, maxLength: 4 });
/** Bodies of the cut appends: each its own (a counter), several daemon chunks long. */
let cutBodies = 0;
const cutBody = () => Buffer.concat([Buffer.from(`Subject: cut ${++cutBodies}\r\n\r\n`), Buffer.alloc(600_000, 97 + (cutBodies % 26)), Buffer.from('\r\n')]);

/** How often each operation got each outcome (printed with CONCURRENT_FUZZ_VERBOSE). */
const outcomes = new Map<string, number>();
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
const describeOp = (o: Op) => JSON.stringify(o);

/** What the run acknowledged: messages by (uidValidity, uid), and every removal that may have taken one. */
class Acknowledged {
  /** `${uidValidity}/${uid}` -> hash: every message an acknowledged append, copy or move created. */
  messages = new Map<string, string>();
  /** Names (as given) and uids an acknowledged expunge or move removed from a mailbox of that name. */
  removals: { name: string; uids: number[] }[] = [];
  /** Names (as given) an acknowledged delete, user delete or rename took away. */
  gone = new Set<string>();
  /** Hashes of cut appends that may have committed (the client could not tell): there or not. */
  maybe = new Set<string>();
  /** Hashes of cut appends the client was told were not committed: never anywhere. */
  never = new Set<string>();
  /** Whether any user was renamed or deleted (its tree's names change). */
  treesChanged = false;

  add(uidValidity: number, uid: number, hash: string, what: string): void {
    const key = `${uidValidity}/${uid}`;
    if (this.messages.has(key)) throw new Error(`${what}: uid ${uid} of uidValidity ${uidValidity} given out twice`);
    this.messages.set(key, hash);
  }
}

/** What one logical client calls: the Store itself, or a Client of the daemon serving it. */
interface Api extends Pick<MailStore, 'append' | 'appendBatch' | 'copy' | 'move' | 'expunge' | 'setFlags' | 'createMailbox' | 'renameMailbox' | 'deleteMailbox'
  | 'renameUser' | 'deleteUser' | 'setAcl' | 'listMailboxes' | 'fetch' | 'fetchStream' | 'readMessages' | 'changesSince'> {
  usedBytes(root: string): Promise<number>;
  setQuota(root: string, limits: QuotaLimits): Promise<void>;
  compact(): Promise<unknown>;
  snapshot(): Promise<unknown>;
  scrub(options: ScrubOptions): Promise<ScrubReport>;
}

/** `target`'s methods (bound to it: a Store keeps its state in its own fields) with `extra` beside them. */
function withExtras<T extends object>(target: T, extra: Pick<Api, 'usedBytes' | 'setQuota' | 'compact' | 'snapshot' | 'scrub'>): Api {
  return new Proxy(target, {
    get: (t, key) => {
      if (Object.hasOwn(extra, key)) return extra[key as keyof typeof extra];
      const value = Reflect.get(t, key, t);
      return typeof value === 'function' ? value.bind(t) : value;
    },
  }) as unknown as Api;
}

function storeApi(store: Store): Api {
  return withExtras(store, {
    usedBytes: async (root: string) => (await getQuota(store, root)).usedBytes,
    setQuota: (root: string, limits: QuotaLimits) => setQuota(store, root, limits),
    compact: () => store.compact({ graceMs: 0, deadRatio: 0.01 }),
    snapshot: () => store.snapshot(),
    scrub: (options: ScrubOptions) => scrub(store, options),
  });
}

function clientApi(client: Client): Api {
  return withExtras(client, {
    usedBytes: async (root: string) => ((await client.procedure('getQuota', [root])) as QuotaReport).usedBytes,
    setQuota: async (root: string, limits: QuotaLimits) => { await client.procedure('setQuota', [root, limits]); },
    compact: () => client.procedure('compact', [{ graceMs: 0, deadRatio: 0.01 }]),
    snapshot: () => client.procedure('snapshot', []),
    scrub: async (options: ScrubOptions) => (await client.procedure('scrub', [options])) as ScrubReport,
  });
}

class Run {
  /** Each logical client's way in (the Store for all, or a Client each). */
  apis: Api[] = [];
  store!: Store;
  ack = new Acknowledged();
  /** Unexpected outcomes (the assertion at the end lists them all). */
  problems: string[] = [];

  /** `inline`: bodies delivered alone go into their journal record (the default), else into packs. */
  constructor(readonly dir: string, readonly inline: boolean) {}

  async open(): Promise<void> {
    this.store = await Store.open(this.dir, { packBytesMax: 16_384, journalSegmentBytesMax: 8192, autoSnapshot: false, ...(this.inline ? {} : { inlineBodyBytesMax: 0 }) });
    this.apis = [storeApi(this.store)];
  }

  /** One operation; an error is fine when it is one of `allowed` (a MailstoreError), anything else is a problem. */
  async step(o: Op, s: Api = this.apis[0]): Promise<void> {
    const allowed = new Set<string>(['NOT_FOUND']);
    const tally = (outcome: string) => outcomes.set(`${o.kind}:${outcome}`, (outcomes.get(`${o.kind}:${outcome}`) ?? 0) + 1);
    try {
      await this.call(o, allowed, s);
      tally('ok');
    } catch (error) {
      tally(error instanceof MailstoreError ? error.code : 'plain');
      if (!(error instanceof MailstoreError)) this.problems.push(`${describeOp(o)}: threw a plain ${(error as Error).name}: ${(error as Error).stack}`);
      else if (!allowed.has(error.code)) this.problems.push(`${describeOp(o)}: ${error.code}: ${error.message}`);
    }
  }

  private async call(o: Op, allowed: Set<string>, s: Api): Promise<void> {
    {
      switch (o.kind) {
        case 'append': {
          allowed.add('OVER_QUOTA');
          const r = await s.append(o.name, BODIES[o.body]);
          expect(r.hash).toBe(hashBytes(BODIES[o.body]).toString('hex'));
          this.ack.add(r.uidValidity, r.uid, r.hash, describeOp(o));
          return;
        }
        case 'appendBatch': {
          allowed.add('OVER_QUOTA');
          const results = await s.appendBatch(o.name, o.bodies.map((i) => ({ bytes: BODIES[i] })));
          results.forEach((r, i) => {
            expect(r.hash).toBe(hashBytes(BODIES[o.bodies[i]]).toString('hex'));
            this.ack.add(r.uidValidity, r.uid, r.hash, describeOp(o));
          });
          for (let i = 1; i < results.length; i++) expect(results[i].uid).toBe(results[i - 1].uid + 1);
          return;
        }
        case 'copy':
        case 'move': {
          allowed.add('OVER_QUOTA');
          if (o.kind === 'move') allowed.add('INVALID'); // into itself
          // the source's hashes are only known by reading: the mapping is checked at the end against the bytes
          const r = await s[o.kind](o.from, o.uids, o.to);
          for (const [, target] of r.mapping) this.ack.add(r.uidValidity, target, '?', describeOp(o));
          if (o.kind === 'move' && r.mapping.length > 0) this.ack.removals.push({ name: o.from, uids: r.mapping.map(([u]) => u) });
          return;
        }
        case 'expunge': {
          const r = await s.expunge(o.name, o.uids);
          if (r.expunged.length > 0) this.ack.removals.push({ name: o.name, uids: r.expunged });
          return;
        }
        case 'flags': {
          const r = await s.setFlags(o.name, o.uids, { [o.add ? 'add' : 'remove']: ['\\Seen', 'k'], ...(o.since === undefined ? {} : { unchangedSince: o.since }) });
          for (const u of r.updated) expect(o.uids).toContain(u);
          return;
        }
        case 'create':
          allowed.add('EXISTS');
          await s.createMailbox(o.name, { owner: o.name.startsWith('user/') ? o.name.split('/')[1] : undefined });
          return;
        case 'rename':
          allowed.add('EXISTS').add('INVALID').add('OVER_QUOTA');
          await s.renameMailbox(o.from, o.to);
          this.ack.gone.add(o.from);
          return;
        case 'delete':
          allowed.add('REFUSED');
          await s.deleteMailbox(o.name, { ifEmpty: o.ifEmpty });
          this.ack.gone.add(o.name);
          return;
        case 'renameUser':
          allowed.add('EXISTS').add('INVALID');
          await s.renameUser(o.from, o.to);
          this.ack.treesChanged = true;
          return;
        case 'deleteUser':
          await s.deleteUser(o.user);
          this.ack.treesChanged = true;
          return;
        case 'acl':
          await s.setAcl(o.name, o.who, o.rights);
          return;
        case 'quota': {
          // never QUOTA_BYTES: what the root holds may grow between the read and the set (a limit
          // below usage is an admin's right), so only roots still at the limit set before the
          // rounds (or moved with their user) are held to it at the end
          const used = await s.usedBytes(o.root);
          await s.setQuota(o.root, { storage: Math.max(QUOTA_BYTES, used) + 1 + o.storage * 10_000 });
          return;
        }
        case 'compact':
          await s.compact();
          return;
        case 'snapshot':
          await s.snapshot();
          return;
        case 'scrub': {
          // beside the writers: what it finds must be damage, and there is none
          allowed.add('NOT_FOUND'); // a subtree deleted meanwhile
          const options = o.scope === 'whole' ? {} : o.scope === 'budget' ? { timeBudgetMs: 1 } : { mailbox: o.scope };
          const damage = (await s.scrub(options)).findings.filter(isDamage);
          if (damage.length > 0) this.problems.push(`${describeOp(o)}: damage on a healthy store: ${JSON.stringify(damage)}`);
          return;
        }
        case 'fetch': {
          const bytes = await s.fetch(o.name, o.uid);
          this.knownBytes(bytes, describeOp(o));
          return;
        }
        case 'fetchStream': {
          const stream = await s.fetchStream(o.name, o.uid);
          const chunks: Buffer[] = [];
          await tick(); // the other clients go on before the reader starts, and between its chunks
          for await (const chunk of stream) { chunks.push(chunk as Buffer); await tick(); }
          this.knownBytes(Buffer.concat(chunks), describeOp(o));
          return;
        }
        case 'readMessages': {
          let last = 0;
          for await (const m of s.readMessages(o.name)) {
            if (m.info.uid <= last) this.problems.push(`${describeOp(o)}: uid ${m.info.uid} after ${last}`);
            last = m.info.uid;
            this.knownBytes(m.body, describeOp(o));
            await tick();
          }
          return;
        }
        case 'list': {
          const ids = (await s.listMailboxes({ user: o.user })).map((m) => m.id);
          if (new Set(ids).size !== ids.length) this.problems.push(`${describeOp(o)}: a mailbox listed twice`);
          return;
        }
        case 'cutAppend':
        case 'cutFetch':
        case 'cutRead':
          return this.cutOff(o);
        case 'changesSince': {
          const r = await s.changesSince(o.name, o.modseq);
          for (const c of r.changed) if (c.modseq <= o.modseq || c.modseq > r.highestModseq) this.problems.push(`${describeOp(o)}: change of uid ${c.uid} at modseq ${c.modseq}, outside (${o.modseq}, ${r.highestModseq}]`);
          return;
        }
      }
    }
  }

  knownBytes(bytes: Buffer, what: string): void {
    const hash = hashBytes(bytes).toString('hex');
    if (!HASHES.has(hash) && !this.cutHashes.has(hash)) this.problems.push(`${what}: returned ${bytes.length} bytes that are no message ever appended`);
  }

  /**
   * Through the daemon, a cut client's call may still run there after its client gave up (an
   * append whose bytes all arrived commits): the checks read the index in several passes and need
   * it at rest, so they wait until nothing has committed for a while.
   */
  private async quiet(): Promise<void> {
    if (!this.socket) return;
    const journal = this.store.maintenance().journal;
    for (let still = 0, seq = -1; still < 3;) {
      still = journal.lastSeq === seq ? still + 1 : 0;
      seq = journal.lastSeq;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Every cut append's hash, whatever came of it. */
  cutHashes = new Set<string>();
  /** The daemon's socket (daemon runs only). */
  socket?: string;

  /** A client of its own, its connection destroyed `ticks` turns into the call; the others go on. */
  private async cutOff(o: Extract<Op, { kind: 'cutAppend' | 'cutFetch' | 'cutRead' }>): Promise<void> {
    if (!this.socket) return;
    const client = await Client.connect(this.socket);
    const cutNow = async () => {
      for (let i = 0; i < o.ticks; i++) await tick();
      (client as unknown as { link?: { transport: { destroy(): void } } }).link?.transport.destroy();
    };
    const cutting = cutNow();
    try {
      if (o.kind === 'cutAppend') {
        const bytes = cutBody();
        const hash = hashBytes(bytes).toString('hex');
        this.cutHashes.add(hash);
        try {
          const r = await client.append(o.name, bytes);
          this.ack.add(r.uidValidity, r.uid, r.hash, describeOp(o));
        } catch (error) {
          if (!(error instanceof MailstoreError) || !['UNAVAILABLE', 'NOT_FOUND', 'OVER_QUOTA'].includes(error.code)) throw error;
          const seen = `cutAppend:caught ${error.code}${error.mayHaveCommitted ? ' (may have committed)' : ''}`;
          outcomes.set(seen, (outcomes.get(seen) ?? 0) + 1);
          if (error.code === 'UNAVAILABLE' && error.mayHaveCommitted !== false) this.ack.maybe.add(hash);
          else this.ack.never.add(hash);
        }
      } else {
        try {
          if (o.kind === 'cutFetch') {
            const chunks: Buffer[] = [];
            for await (const chunk of await client.fetchStream(o.name, o.uid)) chunks.push(chunk as Buffer);
            this.knownBytes(Buffer.concat(chunks), describeOp(o)); // the whole stream came (the cut was too late)
          } else for await (const m of client.readMessages(o.name)) this.knownBytes(m.body, describeOp(o));
        } catch (error) {
          if (!(error instanceof MailstoreError) || !['UNAVAILABLE', 'NOT_FOUND'].includes(error.code)) throw error;
          outcomes.set(`${o.kind}:caught ${error.code}`, (outcomes.get(`${o.kind}:caught ${error.code}`) ?? 0) + 1);
        }
      }
    } finally {
      await cutting;
      await client.close();
    }
  }

  /** Every client's operations in its own order, the clients at once. */
  async round(clients: Op[][]): Promise<void> {
    await Promise.all(clients.map(async (ops, i) => { for (const o of ops) await this.step(o, this.apis[i % this.apis.length]); }));
  }

  /** What must hold whatever order the writer chose; again after reopen. */
  async check(when: string): Promise<string> {
    expect(this.problems, when).toEqual([]);
    await this.quiet();
    const dump = await dumpStore(this.store); // the derived structures agree with the primary data; every blob reads back
    const present = new Map<string, { name: string; hash: string }>();
    const nameOf = new Map<number, string[]>(); // uidValidity -> every name it had
    for (const { name } of await this.store.listMailboxes()) {
      const summary = await this.store.mailbox(name);
      nameOf.set(summary.uidValidity, [name, ...summary.pastNames]);
      const status = await this.store.status(name);
      for await (const m of this.store.messages(name)) {
        expect(m.uid, `${name}: uid below uidNext`).toBeLessThan(status.uidNext);
        present.set(`${summary.uidValidity}/${m.uid}`, { name, hash: m.hash });
      }
      for (const [key] of this.ack.messages) {
        const [uv, uid] = key.split('/').map(Number);
        if (uv === summary.uidValidity) expect(uid, `${name}: an acknowledged uid at or above uidNext`).toBeLessThan(status.uidNext);
      }
    }
    for (const [key, { name, hash }] of present) {
      expect(this.ack.never.has(hash), `${when}: ${name} ${key} is a cut append its client was told was not committed`).toBe(false);
      const acked = this.ack.messages.get(key);
      if (acked === undefined && this.ack.maybe.has(hash)) continue; // its client could not tell
      expect(acked, `${when}: ${name} holds ${key}, which no acknowledged call created`).toBeDefined();
      if (acked !== '?') expect(hash, `${when}: ${name} ${key}`).toBe(acked);
      expect(HASHES.has(hash) || this.cutHashes.has(hash), `${when}: ${name} ${key} has a hash no body has`).toBe(true);
    }
    for (const [key, hash] of this.ack.messages) {
      if (present.has(key)) continue;
      const [uv, uid] = key.split('/').map(Number);
      const names = nameOf.get(uv);
      if (!names) continue; // its mailbox was deleted (or never resolved here); a delete was acknowledged or it is gone with a user
      const removed = this.ack.removals.some((r) => names.includes(r.name) && r.uids.includes(uid));
      expect(removed || this.ack.treesChanged, `${when}: acknowledged message ${key} (${hash}) of ${names[0]} is gone, and no acknowledged expunge or move named it`).toBe(true);
    }
    for (const { root, limits } of await listQuotas(this.store)) {
      const { usedBytes } = await getQuota(this.store, root);
      if (limits.storage === QUOTA_BYTES) expect(usedBytes, `${when}: quota root ${root}`).toBeLessThanOrEqual(limits.storage);
    }
    const report = await scrub(this.store);
    expect(report.findings.filter(isDamage), `${when}: scrub`).toEqual([]);
    return dump;
  }
}

describe('concurrent operations through one Store (fuzz)', () => {
  it(`rounds of operations from 2-4 clients at once (${RUNS} runs of ${ROUNDS} rounds; CONCURRENT_FUZZ_RUNS for more)`, async () => {
    await fc.assert(fc.asyncProperty(fc.array(round, { minLength: ROUNDS, maxLength: ROUNDS }), fc.boolean(), async (rounds, inline) => {
      const run = new Run(tmpDir('concurrent-fuzz'), inline);
      await (await Store.init(run.dir, { autoSnapshot: false })).close();
      await run.open();
      try {
        // every mailbox starts with messages, so the first rounds have something to copy, read and expunge
        for (const [i, n] of NAMES.entries()) {
          await run.step({ kind: 'create', name: n });
          await run.step({ kind: 'appendBatch', name: n, bodies: [i % BODIES.length, (i + 5) % BODIES.length] });
          await run.step({ kind: 'append', name: n, body: (i + 3) % BODIES.length });
        }
        await setQuota(run.store, 'user/alice', { storage: QUOTA_BYTES });
        for (const [i, clients] of rounds.entries()) {
          await run.round(clients);
          if (i % 3 === 2) await run.check(`after round ${i}`);
        }
        const before = await run.check('at the end');
        await run.store.close();
        await run.open();
        expect(dumpDiff(await run.check('after reopen'), before)).toBe('equal');
        // the index rebuilt from the newest snapshot (taken beside the writers) and the journal after it
        await run.store.close();
        rmSync(join(run.dir, 'index'), { recursive: true, force: true });
        await run.open();
        expect(dumpDiff(await run.check('after a rebuild of the index'), before)).toBe('equal');
      } finally {
        await run.store.close();
      }
    }), { numRuns: RUNS, seed: SEED, path: PATH, endOnFailure: true });
    if (process.env.CONCURRENT_FUZZ_VERBOSE) console.log([...outcomes].sort().map(([k, n]) => `${k} ${n}`).join('\n'));
  }, TIMEOUT_MS);

  it(`the same through one daemon: a Client per logical client, others cut off in a streamed append or read (${DAEMON_RUNS} runs)`, async () => {
    outcomes.clear();
    await fc.assert(fc.asyncProperty(fc.array(daemonRound, { minLength: ROUNDS, maxLength: ROUNDS }), fc.boolean(), async (rounds, inline) => {
      const run = new Run(tmpDir('concurrent-daemon'), inline);
      await (await Store.init(run.dir, { autoSnapshot: false })).close();
      await run.open();
      run.socket = defaultSocketPath(run.dir);
      const server = new DaemonServer(run.store, { socketPath: run.socket, logger: new Logger(join(run.dir, 'daemon.log')) });
      await server.start();
      const clients = await Promise.all([0, 1, 2, 3].map(() => Client.connect(run.socket!)));
      let stopped = false;
      try {
        run.apis = clients.map(clientApi);
        for (const [i, n] of NAMES.entries()) {
          await run.step({ kind: 'create', name: n });
          await run.step({ kind: 'appendBatch', name: n, bodies: [i % BODIES.length, (i + 5) % BODIES.length] });
        }
        await run.apis[0].setQuota('user/alice', { storage: QUOTA_BYTES });
        for (const [i, clientOps] of rounds.entries()) {
          await run.round(clientOps);
          if (i % 4 === 3) await run.check(`after round ${i}`);
        }
        const before = await run.check('at the end');
        for (const client of clients) await client.close();
        await server.stop(); // closes the store
        stopped = true;
        await run.open();
        expect(dumpDiff(await run.check('after reopen'), before)).toBe('equal');
      } finally {
        for (const client of clients) await client.close();
        if (!stopped) await server.stop();
        else await run.store.close();
      }
    }), { numRuns: DAEMON_RUNS, seed: SEED, path: PATH, endOnFailure: true });
    if (process.env.CONCURRENT_FUZZ_VERBOSE) console.log([...outcomes].sort().map(([k, n]) => `${k} ${n}`).join('\n'));
  }, TIMEOUT_MS);
});
