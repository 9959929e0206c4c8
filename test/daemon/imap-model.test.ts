// What an IMAP server built on mailstore relies on, checked op by op against a model, through the
// library (Store) and through the daemon's client (Client), which must answer alike: UIDs given
// in order and never again within a uidValidity (UIDPLUS APPENDUID/COPYUID: UIDNEXT after an
// append is the next, copy and move map each present source uid, ascending, to the target's next
// uids; a move leaves nothing behind), a uidValidity never names two mailboxes (delete and make
// again, rename away and make again), every change raises the message's modseq above the
// mailbox's HIGHESTMODSEQ, which never goes back, changesSince(m) for any m lists exactly the
// messages above m and the expunges after it (RFC 7162), and a flag store with unchangedSince
// changes none of the messages changed since (MODIFIED) and all the others; changesSinceParts gives
// changesSince's answer in parts, vanished before changed. Parts are made small
// (limits.uidChangePartMessages, changesSincePartUids, readBatchMessages) so that calls and
// answers in parts are checked too.
//
//   IMAP_MODEL_RUNS=200 IMAP_MODEL_STEPS=80 npx vitest run test/daemon/imap-model.test.ts   (long form)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Client } from '../../src/client/client.js';
import { MailstoreError } from '../../src/errors.js';
import { limits } from '../../src/limits.js';
import type { MailStore } from '../../src/store/api.js';
import type { Changes } from '../../src/store/types.js';
import { startDaemon, type Running } from './helpers.js';

const RUNS = Number(process.env.IMAP_MODEL_RUNS ?? 6);
const STEPS = Number(process.env.IMAP_MODEL_STEPS ?? 30);
const SEED = process.env.IMAP_MODEL_SEED ? Number(process.env.IMAP_MODEL_SEED) : process.env.IMAP_MODEL_RUNS ? undefined : 20261207;

const NAMES = ['user/alice/INBOX', 'user/alice/A', 'user/alice/B'] as const;
const name = fc.constantFrom(...NAMES);
const uids = fc.uniqueArray(fc.integer({ min: 1, max: 14 }), { minLength: 1, maxLength: 8 });
const flag = fc.constantFrom('\\Seen', '\\Flagged', '\\Deleted', 'k1');
const op = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), name, count: fc.integer({ min: 1, max: 4 }), flags: fc.subarray(['\\Seen', 'k1']) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('flags' as const), name, uids, flag, how: fc.constantFrom('add' as const, 'remove' as const, 'replace' as const), since: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('expunge' as const), name, uids }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('copy' as const, 'move' as const), from: name, uids, to: name }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('recreate' as const), name }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('renameAway' as const), name }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('changes' as const), name, at: fc.integer({ min: 0, max: 1000 }) }) },
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

interface ModelMessage { hash: string; flags: string[]; modseq: number }
interface ModelBox {
  uidValidity: number;
  uidNext: number;
  highestModseq: number;
  messages: Map<number, ModelMessage>;
  /** Expunged uids, with the modseqs (after, upTo] their expunge committed in (one call in parts spans several). */
  gone: Map<number, { after: number; upTo: number }>;
}

const sorted = (flags: readonly string[]) => [...flags].sort();

class Model {
  readonly boxes = new Map<string, ModelBox>();
  /** Every uidValidity shown, with the mailbox id it was shown for: one never names two mailboxes. */
  readonly validities = new Map<number, string>();
  /** One line a step with what must be the same through the library and through the daemon. */
  readonly transcript: string[] = [];
  private renamed = 0;

  constructor(private readonly store: MailStore) {}

  async create(mailbox: string): Promise<void> {
    const summary = await this.store.createMailbox(mailbox);
    const before = this.validities.get(summary.uidValidity);
    expect(before, `uidValidity ${summary.uidValidity} given to ${mailbox} named another mailbox before`).toBeUndefined();
    this.validities.set(summary.uidValidity, summary.id);
    const status = await this.store.status(mailbox);
    expect(status).toMatchObject({ messages: 0, uidNext: 1, uidValidity: summary.uidValidity });
    this.boxes.set(mailbox, { uidValidity: summary.uidValidity, uidNext: 1, highestModseq: status.highestModseq, messages: new Map(), gone: new Map() });
  }

  /** The mailbox as the store shows it now is the model's, and HIGHESTMODSEQ did not go back. */
  async check(mailbox: string): Promise<void> {
    const box = this.boxes.get(mailbox)!;
    const status = await this.store.status(mailbox);
    expect(status.uidValidity).toBe(box.uidValidity);
    expect(status.uidNext, `${mailbox}: UIDNEXT`).toBe(box.uidNext);
    expect(status.highestModseq, `${mailbox}: HIGHESTMODSEQ went back`).toBeGreaterThanOrEqual(box.highestModseq);
    box.highestModseq = status.highestModseq;
    expect(status.messages).toBe(box.messages.size);
    const seen: [number, ModelMessage][] = [];
    for await (const m of this.store.messages(mailbox)) {
      expect(m.modseq, `${mailbox} uid ${m.uid}: modseq above HIGHESTMODSEQ`).toBeLessThanOrEqual(status.highestModseq);
      seen.push([m.uid, { hash: m.hash, flags: sorted(m.flags), modseq: m.modseq }]);
    }
    expect(seen, `${mailbox}: its messages`).toEqual([...box.messages].sort(([a], [b]) => a - b));
  }

  /** Runs a change and learns the modseqs it committed at: above every one before, at most the new HIGHESTMODSEQ. */
  private async raised(mailbox: string, before: number): Promise<number> {
    const status = await this.store.status(mailbox);
    expect(status.highestModseq, `${mailbox}: HIGHESTMODSEQ went back`).toBeGreaterThanOrEqual(before);
    return status.highestModseq;
  }

  async step(o: Op): Promise<void> {
    switch (o.kind) {
      case 'append': return this.append(o.name, o.count, o.flags);
      case 'flags': return this.flags(o);
      case 'expunge': return this.expunge(o.name, o.uids);
      case 'copy': case 'move': return this.transfer(o.kind, o.from, o.uids, o.to);
      case 'recreate':
        await this.store.deleteMailbox(o.name);
        this.boxes.delete(o.name);
        this.transcript.push(`recreate ${o.name}`);
        return this.create(o.name);
      case 'renameAway': {
        const away = `user/alice/old${++this.renamed}`;
        const kept = this.boxes.get(o.name)!;
        await this.store.renameMailbox(o.name, away);
        const status = await this.store.status(away);
        expect(status.uidValidity, 'a renamed mailbox keeps its uidValidity').toBe(kept.uidValidity);
        this.transcript.push(`rename ${o.name}`);
        return this.create(o.name);
      }
      case 'changes': return this.changes(o.name, o.at);
    }
  }

  private async append(mailbox: string, count: number, flags: string[]): Promise<void> {
    const box = this.boxes.get(mailbox)!;
    for (let i = 0; i < count; i++) {
      const before = box.highestModseq;
      const bytes = Buffer.from(`Subject: ${mailbox} ${box.uidNext}\r\n\r\n${'x'.repeat(box.uidNext % 7 * 30)}\r\n`);
      const result = await this.store.append(mailbox, bytes, { flags });
      expect(result.uid, `${mailbox}: APPENDUID is UIDNEXT`).toBe(box.uidNext);
      expect(result.uidValidity).toBe(box.uidValidity);
      const info = await this.store.messageInfo(mailbox, result.uid);
      expect(info.modseq, `${mailbox}: an append's modseq`).toBeGreaterThan(before);
      box.highestModseq = await this.raised(mailbox, before);
      expect(info.modseq).toBe(box.highestModseq);
      box.messages.set(result.uid, { hash: result.hash, flags: sorted(flags), modseq: info.modseq });
      box.uidNext = result.uid + 1;
      this.transcript.push(`append ${mailbox} ${result.uid}`);
    }
    await this.check(mailbox);
  }

  private async flags(o: Extract<Op, { kind: 'flags' }>): Promise<void> {
    const box = this.boxes.get(o.name)!;
    const before = box.highestModseq;
    // unchangedSince relative to the mailbox: 0..3 modseqs below its highest
    const since = o.since === undefined ? undefined : Math.max(0, before - o.since);
    const change = o.how === 'replace' ? { replace: [o.flag] } : { [o.how]: [o.flag] };
    const result = await this.store.setFlags(o.name, o.uids, since === undefined ? change : { ...change, unchangedSince: since });
    const present = [...o.uids].sort((a, b) => a - b).filter((uid) => box.messages.has(uid));
    const modified = present.filter((uid) => since !== undefined && box.messages.get(uid)!.modseq > since);
    const next = (f: string[]) => sorted(o.how === 'replace' ? [o.flag] : o.how === 'add' ? [...new Set([...f, o.flag])] : f.filter((x) => x !== o.flag));
    const updated = present.filter((uid) => !modified.includes(uid) && next(box.messages.get(uid)!.flags).join(' ') !== box.messages.get(uid)!.flags.join(' '));
    expect(result.modified, `${o.name}: MODIFIED`).toEqual(modified);
    expect(result.updated, `${o.name}: the messages changed`).toEqual(updated);
    const highest = await this.raised(o.name, before);
    if (updated.length === 0) {
      // a store that changes nothing (a flag already set, or every message MODIFIED) commits nothing
      expect(highest, `${o.name}: a flag store that changed nothing raised HIGHESTMODSEQ`).toBe(before);
      expect(result.modseq).toBe(before);
    } else {
      expect(result.modseq).toBe(highest);
    }
    for (const uid of updated) {
      const info = await this.store.messageInfo(o.name, uid);
      expect(info.modseq, `${o.name} uid ${uid}: a flag change's modseq`).toBeGreaterThan(before);
      box.messages.set(uid, { ...box.messages.get(uid)!, flags: next(box.messages.get(uid)!.flags), modseq: info.modseq });
    }
    box.highestModseq = highest;
    this.transcript.push(`flags ${o.name} updated ${updated.join(',')} modified ${modified.join(',')}`);
    await this.check(o.name);
  }

  private async expunge(mailbox: string, list: number[]): Promise<void> {
    const box = this.boxes.get(mailbox)!;
    const before = box.highestModseq;
    const result = await this.store.expunge(mailbox, list);
    const present = [...list].sort((a, b) => a - b).filter((uid) => box.messages.has(uid));
    expect(result.expunged, `${mailbox}: expunged`).toEqual(present);
    const highest = await this.raised(mailbox, before);
    if (present.length === 0) expect(highest).toBe(before);
    else expect(result.modseq).toBe(highest);
    for (const uid of present) {
      box.messages.delete(uid);
      box.gone.set(uid, { after: before, upTo: highest });
    }
    box.highestModseq = highest;
    this.transcript.push(`expunge ${mailbox} ${present.join(',')}`);
    await this.check(mailbox);
  }

  private async transfer(kind: 'copy' | 'move', from: string, list: number[], to: string): Promise<void> {
    const source = this.boxes.get(from)!;
    const target = this.boxes.get(to)!;
    const present = [...list].sort((a, b) => a - b).filter((uid) => source.messages.has(uid));
    let result: { uidValidity: number; mapping: [number, number][] };
    try {
      result = await this.store[kind](from, list, to);
    } catch (error) {
      // a move onto itself is refused; a copy onto itself is IMAP's (new uids)
      expect(kind === 'move' && from === to, `${kind} ${from} -> ${to}: ${String(error)}`).toBe(true);
      expect((error as MailstoreError).code).toBe('INVALID');
      this.transcript.push(`${kind} refused`);
      return;
    }
    const sourceBefore = source.highestModseq;
    const targetBefore = target.highestModseq;
    expect(result.uidValidity, 'COPYUID names the target uidValidity').toBe(target.uidValidity);
    expect(result.mapping, `${kind} ${from} -> ${to}: COPYUID`).toEqual(present.map((uid, i) => [uid, target.uidNext + i]));
    const copies = present.map((uid) => ({ ...source.messages.get(uid)! }));
    if (kind === 'move') {
      const highest = await this.raised(from, sourceBefore);
      for (const uid of present) {
        source.messages.delete(uid);
        source.gone.set(uid, { after: sourceBefore, upTo: highest });
      }
      source.highestModseq = highest;
    }
    for (const [i, [, uid]] of result.mapping.entries()) {
      const info = await this.store.messageInfo(to, uid);
      expect(info.modseq, `${to} uid ${uid}: a copy's modseq`).toBeGreaterThan(targetBefore);
      expect(info.hash).toBe(copies[i].hash);
      expect(sorted(info.flags), 'a copy keeps its flags').toEqual(copies[i].flags);
      target.messages.set(uid, { ...copies[i], modseq: info.modseq });
    }
    if (present.length > 0) target.uidNext = result.mapping.at(-1)![1] + 1;
    target.highestModseq = await this.raised(to, targetBefore);
    this.transcript.push(`${kind} ${from} -> ${to} ${JSON.stringify(result.mapping)}`);
    await this.check(from);
    if (to !== from) await this.check(to);
  }

  /** changesSince(m): exactly the messages above m, exactly the expunges after it. */
  private async changes(mailbox: string, at: number): Promise<void> {
    const box = this.boxes.get(mailbox)!;
    const lowest = Math.min(...[...box.messages.values()].map((m) => m.modseq), box.highestModseq) - 1;
    // mostly a modseq the mailbox went through, sometimes above its highest
    const m = Math.max(0, lowest + (at % (box.highestModseq - lowest + 2)));
    const answer = await this.store.changesSince(mailbox, m);
    expect(answer.highestModseq).toBe((await this.store.status(mailbox)).highestModseq);
    expect(answer.vanishedRanges, 'no vanished floor in this test').toBeUndefined();
    const changed = [...box.messages].filter(([, msg]) => msg.modseq > m).sort(([a], [b]) => a - b);
    expect(answer.changed.map((c) => [c.uid, { hash: c.hash, flags: sorted(c.flags), modseq: c.modseq }]), `${mailbox}: changed since ${m}`).toEqual(changed);
    for (const [uid, when] of box.gone) {
      if (m < when.after + 1) expect(answer.vanished, `${mailbox}: uid ${uid}, expunged after ${m}, not vanished`).toContain(uid);
      if (m >= when.upTo) expect(answer.vanished, `${mailbox}: uid ${uid}, expunged at or before ${m}, listed vanished`).not.toContain(uid);
    }
    for (const uid of answer.vanished) expect(box.gone.has(uid), `${mailbox}: vanished uid ${uid} was never expunged`).toBe(true);
    expect(answer.vanished).toEqual([...answer.vanished].sort((a, b) => a - b));
    await this.changesInParts(mailbox, m, answer);
    this.transcript.push(`changes ${mailbox} ${changed.map(([u]) => u).join(',')} / ${answer.vanished.join(',')}`);
  }

  /**
   * changesSinceParts(m): the same answer as changesSince(m) (nothing changed in between), the head
   * first, then the vanished uids, then the changed messages (RFC 7162 3.2.6: VANISHED (EARLIER)
   * before any FETCH), no part longer than its limit (made small here, so answers come in several).
   */
  private async changesInParts(mailbox: string, m: number, answer: Changes): Promise<void> {
    const order = ['highestModseq', 'vanished', 'vanishedRanges', 'changed'];
    const kinds: string[] = [];
    const collected: Changes = { changed: [], vanished: [], highestModseq: 0 };
    for await (const part of this.store.changesSinceParts(mailbox, m)) {
      const kind = order.find((k) => k in part)!;
      const previous = kinds.at(-1);
      if (kind === 'highestModseq') expect(previous, `${mailbox} since ${m}: the head first, once`).toBeUndefined();
      else expect(order.indexOf(kind), `${mailbox} since ${m}: ${kind} after ${previous}`).toBeGreaterThanOrEqual(order.indexOf(previous ?? 'highestModseq'));
      kinds.push(kind);
      if ('highestModseq' in part) collected.highestModseq = part.highestModseq;
      else if ('vanished' in part) {
        expect(part.vanished.length).toBeLessThanOrEqual(limits.changesSincePartUids);
        collected.vanished.push(...part.vanished);
      } else if ('changed' in part) {
        expect(part.changed.length).toBeLessThanOrEqual(limits.readBatchMessages);
        collected.changed.push(...part.changed);
      }
    }
    expect(kinds[0], 'the head first').toBe('highestModseq');
    expect(collected, `${mailbox}: changesSinceParts(${m}) and changesSince(${m})`).toEqual(answer);
    this.transcript.push(`parts ${mailbox} ${kinds.join(',')}`);
  }
}

let running: Running | undefined;
let client: Client | undefined;
const tunable = limits as { uidChangePartMessages: number; changesSincePartUids: number; readBatchMessages: number };
const saved = { ...tunable };

beforeAll(() => {
  // calls of a few uids go in parts, as 1:* of a big mailbox does; so do the answers of changesSinceParts
  Object.assign(tunable, { uidChangePartMessages: 3, changesSincePartUids: 2, readBatchMessages: 2 });
});
afterAll(async () => {
  Object.assign(tunable, { uidChangePartMessages: saved.uidChangePartMessages, changesSincePartUids: saved.changesSincePartUids, readBatchMessages: saved.readBatchMessages });
  await client?.close();
  await running?.server.stop('test');
});

async function run(handle: 'library' | 'daemon', ops: Op[]): Promise<string[]> {
  await client?.close();
  await running?.server.stop('test');
  running = await startDaemon();
  client = await running.client({ callTimeoutMs: 30_000 });
  await running.store.deleteMailbox('user/alice/INBOX');
  const model = new Model(handle === 'library' ? running.store : client);
  for (const n of NAMES) await model.create(n);
  for (const o of ops) await model.step(o);
  for (const n of NAMES) await model.check(n);
  return model.transcript;
}

describe('the IMAP contract, op by op against a model', () => {
  it(`holds through the library and through the daemon's client, which answer alike (${RUNS} runs of up to ${STEPS} steps; IMAP_MODEL_RUNS for more)`, async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: Math.ceil(STEPS / 2), maxLength: STEPS }), async (ops) => {
      const library = await run('library', ops);
      const daemon = await run('daemon', ops);
      expect(daemon, 'the daemon answered otherwise than the library').toEqual(library);
    }), { numRuns: RUNS, seed: SEED, endOnFailure: !process.env.IMAP_MODEL_SHRINK });
  }, Math.max(60_000, RUNS * STEPS * 2 * 150));
});
