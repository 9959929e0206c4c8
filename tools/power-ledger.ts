// What the power-cut workload (tools/power-workload.ts) acknowledged, across cuts, and the check of
// a store after a cut: every acknowledged operation is there and exact; an operation in flight at
// the cut is whole or absent (an append, a batch, a move never both or neither, a rename never both
// or neither); nothing appears that was never attempted; scrub finds no damage; the store opened
// with a plain Store.open (no force, no reconstruct) and is not degraded. What survived of the
// operations in flight is then adopted: the next cycle runs on the state the cut left.
import { spawnSync } from 'node:child_process';
import { Store } from '../src/store/store.js';
import { scrub } from '../src/scrub/scrub.js';
import { describeFinding, isDamage } from '../src/scrub/findings.js';
import { ACL_USERS, IMPORT_BATCH_MESSAGES, MESSAGE_MAILBOXES, sha } from './power-workload.js';

interface Message { store: string; mailbox: string; uid: number; flags: Set<string> }
interface Located { mailbox: string; uid: number; flags: string[] }

/** One store as read back after a cut. */
interface Seen {
  mailboxes: Set<string>;
  bySha: Map<string, Located[]>;
  acl: Map<string, string>;
}

export interface PowerCounts {
  cuts: number;
  acknowledged: Record<string, number>;
  /** Operations in flight at a cut, by kind: found done / not done. */
  inFlightDone: Record<string, number>;
  inFlightUndone: Record<string, number>;
  importsCut: number;
  importReruns: number;
  scrubs: number;
  messagesAtEnd: number;
}

const ACKNOWLEDGEMENTS: Record<string, string> = {
  A: 'append', B: 'batch append', F: 'flag', X: 'expunge', M: 'move', C: 'mailbox create', R: 'mailbox rename',
  D: 'mailbox delete', L: 'acl', I: 'import batch',
};
/** Rights as a set of letters: the store keeps them in its own order. */
const rightsSet = (rights: string | undefined) => [...(rights ?? '')].sort().join('');
const bump = (r: Record<string, number>, k: string, n = 1) => { r[k] = (r[k] ?? 0) + n; };

export class PowerLedger {
  private readonly messages = new Map<string, Message>(); // by sha: bodies are unique
  private readonly gone = new Set<string>();
  private readonly mailboxes = new Map<string, boolean>(); // "store/name"
  private readonly acl = new Map<string, string>(); // "store/mailbox/user"
  private readonly imports = new Map<string, number>(); // "store/mailbox" → acknowledged count
  // this cut's operations in flight
  private appends = new Map<string, string>(); // sha → "store/mailbox"
  private batches: { key: string; shas: string[] }[] = [];
  private flags = new Map<string, Set<string>>();
  private expunges = new Set<string>();
  private moves = new Map<string, string>(); // sha → target mailbox
  private names = new Map<string, string>(); // "store/name" → kind of op in flight
  private renames: [string, string][] = [];
  private aclPending = new Map<string, string>();
  private importsRun = new Set<string>();
  readonly counts: PowerCounts = { cuts: 0, acknowledged: {}, inFlightDone: {}, inFlightUndone: {}, importsCut: 0, importReruns: 0, scrubs: 0, messagesAtEnd: 0 };

  constructor(private readonly sourceShas: Set<string>) {
    for (const s of ['lib', 'cli']) for (const name of MESSAGE_MAILBOXES) this.mailboxes.set(`${s}/${name}`, true);
  }

  /** A copy to check a second disk with (the live file system after the kill) without touching this one. */
  clone(): PowerLedger {
    const copy = new PowerLedger(this.sourceShas);
    for (const [h, m] of this.messages) copy.messages.set(h, { ...m, flags: new Set(m.flags) });
    for (const h of this.gone) copy.gone.add(h);
    for (const [k, v] of this.mailboxes) copy.mailboxes.set(k, v);
    for (const [k, v] of this.acl) copy.acl.set(k, v);
    for (const [k, v] of this.imports) copy.imports.set(k, v);
    copy.appends = new Map(this.appends);
    copy.batches = [...this.batches];
    copy.flags = new Map([...this.flags].map(([h, f]) => [h, new Set(f)]));
    copy.expunges = new Set(this.expunges);
    copy.moves = new Map(this.moves);
    copy.names = new Map(this.names);
    copy.renames = [...this.renames];
    copy.aclPending = new Map(this.aclPending);
    copy.importsRun = new Set(this.importsRun);
    return copy;
  }

  /** Takes in the lines of one run up to its cut. */
  absorb(lines: string[]): void {
    this.appends = new Map(); this.batches = []; this.flags = new Map(); this.expunges = new Set();
    this.moves = new Map(); this.names = new Map(); this.renames = []; this.aclPending = new Map(); this.importsRun = new Set();
    for (const line of lines) this.absorbLine(line.split(' '));
  }

  private absorbLine([kind, s, a, b, c, d, e]: string[]): void {
    if (ACKNOWLEDGEMENTS[kind]) bump(this.counts.acknowledged, `${s} ${ACKNOWLEDGEMENTS[kind]}`);
    switch (kind) {
      case 't': this.appends.set(b, `${s}/${a}`); break;
      case 'A': this.acknowledgeAppend(s, a, Number(b), c); break;
      case 'b': this.batches.push({ key: `${s}/${a}`, shas: b.split(',') }); break;
      case 'B': { const uids = b.split(','); c.split(',').forEach((h, i) => this.acknowledgeAppend(s, a, Number(uids[i]), h)); this.batches = this.batches.filter((x) => x.shas.join(',') !== c); break; }
      case 'f': (this.flags.get(d) ?? this.flags.set(d, new Set()).get(d)!).add(c); break;
      case 'F': this.known(d).flags.add(c); this.flags.get(d)?.delete(c); break;
      case 'e': this.expunges.add(c); break;
      case 'X': this.known(c); this.messages.delete(c); this.gone.add(c); this.expunges.delete(c); break;
      case 'm': this.moves.set(d, c); break;
      case 'M': { const m = this.known(e); m.mailbox = c; m.uid = Number(d); this.moves.delete(e); break; }
      case 'c': case 'd': this.names.set(`${s}/${a}`, kind); break;
      case 'C': this.mailboxes.set(`${s}/${a}`, true); this.names.delete(`${s}/${a}`); break;
      case 'D': this.mailboxes.set(`${s}/${a}`, false); this.names.delete(`${s}/${a}`); break;
      case 'r': this.renames.push([`${s}/${a}`, `${s}/${b}`]); break;
      case 'R': this.mailboxes.set(`${s}/${a}`, false); this.mailboxes.set(`${s}/${b}`, true); this.renames = this.renames.filter(([x]) => x !== `${s}/${a}`); break;
      case 'l': this.aclPending.set(`${s}/${a}/${b}`, rightsSet(c)); break;
      case 'L': this.acl.set(`${s}/${a}/${b}`, rightsSet(c)); this.aclPending.delete(`${s}/${a}/${b}`); break;
      case 'i': this.importsRun.add(`${s}/${a}`); this.mailboxes.set(`${s}/${a}`, true); this.names.set(`${s}/${a}`, 'i'); this.imports.set(`${s}/${a}`, 0); break;
      case 'I': this.imports.set(`${s}/${a}`, Math.max(this.imports.get(`${s}/${a}`) ?? 0, Number(b))); break;
      default: throw new Error(`power ledger: unknown line kind ${kind}`);
    }
  }

  private inFlight(store: string, done: boolean, kind: string): void {
    bump(done ? this.counts.inFlightDone : this.counts.inFlightUndone, `${store} ${kind}`);
  }

  private acknowledgeAppend(store: string, mailbox: string, uid: number, hash: string): void {
    for (const m of this.messages.values()) {
      if (m.store === store && m.mailbox === mailbox && m.uid === uid) throw new Error(`uid ${uid} in ${store}/${mailbox} acknowledged twice: a UID was reused`);
    }
    this.messages.set(hash, { store, mailbox, uid, flags: new Set() });
    this.appends.delete(hash);
  }

  private known(hash: string): Message {
    const m = this.messages.get(hash);
    if (!m) throw new Error(`power ledger: an acknowledgement names ${hash}, which is not an acknowledged message`);
    return m;
  }

  /**
   * Checks the store `name` ('lib' or 'cli') in `dir` and adopts what survived. `rerunImport`
   * (the cli store) runs the same import again and must complete it without duplicates.
   */
  async check(dir: string, name: string, rerunImport?: (mailbox: string) => void): Promise<void> {
    const seen = await readBack(dir);
    this.checkMessages(name, seen);
    this.checkMailboxes(name, seen);
    this.checkAcl(name, seen);
    for (const [key, acked] of this.imports) {
      if (!key.startsWith(`${name}/`)) continue;
      const mailbox = key.slice(name.length + 1);
      const before = this.importedShas(seen, mailbox, acked);
      if (before.size < this.sourceShas.size) this.counts.importsCut++;
      if (!rerunImport || !this.importsRun.has(key)) continue;
      rerunImport(mailbox);
      this.counts.importReruns++;
      const after = this.importedShas(await readBack(dir), mailbox, this.sourceShas.size);
      for (const [h, uid] of before) if (after.get(h) !== uid) throw new Error(`${key}: the rerun moved imported message ${h} from uid ${uid} to ${after.get(h)}`);
      this.imports.set(key, this.sourceShas.size);
      this.mailboxes.set(key, true);
    }
    this.counts.scrubs++;
    if (name === 'lib') this.counts.messagesAtEnd = [...seen.bySha.values()].reduce((n, l) => n + l.length, 0);
  }

  /** Source hash → uid of an import mailbox: only source messages, each once, at least `acked`. */
  private importedShas(seen: Seen, mailbox: string, acked: number): Map<string, number> {
    const found = new Map<string, number>();
    for (const [h, locations] of seen.bySha) {
      for (const l of locations) {
        if (l.mailbox !== mailbox) continue;
        if (!this.sourceShas.has(h)) throw new Error(`import ${mailbox} holds ${h}, which is not in the source`);
        if (found.has(h)) throw new Error(`import ${mailbox} holds source message ${h} twice`);
        found.set(h, l.uid);
      }
    }
    if (found.size < acked) throw new Error(`import ${mailbox}: ${acked} messages acknowledged as imported, ${found.size} present`);
    return found;
  }

  private checkMessages(store: string, seen: Seen): void {
    for (const [h, m] of [...this.messages]) {
      if (m.store !== store) continue;
      const at = seen.bySha.get(h) ?? [];
      if (at.length > 1) throw new Error(`${store}: message ${h} is present ${at.length} times (${at.map((l) => `${l.mailbox}/${l.uid}`).join(', ')})`);
      if (at.length === 0 && this.expunges.has(h)) { this.messages.delete(h); this.gone.add(h); this.inFlight(store, true, 'expunge'); continue; }
      if (at.length === 0) throw new Error(`${store}: acknowledged message ${h} (${m.mailbox}/${m.uid}) is missing${this.moves.has(h) ? ' (a move was in flight: neither place)' : ''}`);
      const [got] = at;
      const moved = this.moves.get(h) === got.mailbox;
      if (!moved && (got.mailbox !== m.mailbox || got.uid !== m.uid)) throw new Error(`${store}: ${h} acknowledged at ${m.mailbox}/${m.uid} is at ${got.mailbox}/${got.uid}`);
      if (this.moves.has(h)) this.inFlight(store, moved, 'move');
      if (this.expunges.has(h)) this.inFlight(store, false, 'expunge');
      const pending = this.flags.get(h) ?? new Set();
      for (const f of m.flags) if (!got.flags.includes(f)) throw new Error(`${store}: ${h} lost acknowledged flag ${f}`);
      for (const f of got.flags) if (!m.flags.has(f) && !pending.has(f)) throw new Error(`${store}: ${h} has flag ${f}, never set`);
      for (const f of pending) this.inFlight(store, got.flags.includes(f), 'flag');
      Object.assign(m, { mailbox: got.mailbox, uid: got.uid, flags: new Set(got.flags) });
    }
    this.checkNewMessages(store, seen);
  }

  /** Messages the ledger did not know: only appends in flight, whole batches, or import mailboxes. */
  private checkNewMessages(store: string, seen: Seen): void {
    const batchOf = new Map<string, { key: string; shas: string[] }>();
    for (const batch of this.batches) for (const h of batch.shas) batchOf.set(h, batch);
    for (const [h, at] of seen.bySha) {
      for (const l of at) {
        if (this.messages.has(h) || this.imports.has(`${store}/${l.mailbox}`)) continue;
        if (this.gone.has(h)) throw new Error(`${store}: expunged message ${h} came back at ${l.mailbox}/${l.uid}`);
        const target = this.appends.get(h) ?? batchOf.get(h)?.key;
        if (target !== `${store}/${l.mailbox}`) throw new Error(`${store}: ${l.mailbox}/${l.uid} holds ${h}, which was never appended there`);
        if (l.flags.length) throw new Error(`${store}: the in-flight append ${h} has flags ${l.flags.join(' ')}`);
        this.messages.set(h, { store, mailbox: l.mailbox, uid: l.uid, flags: new Set() });
      }
    }
    for (const [h, key] of this.appends) if (key.startsWith(`${store}/`)) this.inFlight(store, this.messages.has(h), 'append');
    for (const batch of this.batches) {
      if (!batch.key.startsWith(`${store}/`)) continue;
      const present = batch.shas.filter((h) => this.messages.has(h)).length;
      if (present !== 0 && present !== batch.shas.length) throw new Error(`${store}: ${present} of the ${batch.shas.length} messages of a batch in flight are present`);
      this.inFlight(store, present > 0, 'batch');
    }
  }

  private checkMailboxes(store: string, seen: Seen): void {
    const exists = (key: string) => seen.mailboxes.has(key.slice(store.length + 1));
    for (const [a, b] of this.renames) {
      if (!a.startsWith(`${store}/`)) continue;
      if (exists(a) === exists(b)) throw new Error(`${store}: rename ${a} → ${b} in flight left ${exists(a) ? 'both' : 'neither'}`);
      this.inFlight(store, exists(b), 'rename');
      this.mailboxes.set(a, exists(a)); this.mailboxes.set(b, exists(b));
    }
    for (const [key, kind] of this.names) {
      if (!key.startsWith(`${store}/`)) continue;
      const done = kind === 'd' ? !exists(key) : exists(key);
      this.inFlight(store, done, { c: 'mailbox create', d: 'mailbox delete', i: 'import mailbox create' }[kind]!);
      this.mailboxes.set(key, exists(key));
    }
    for (const [key, want] of this.mailboxes) {
      if (key.startsWith(`${store}/`) && exists(key) !== want) throw new Error(`${store}: mailbox ${key} should ${want ? '' : 'not '}exist`);
    }
    for (const name of seen.mailboxes) if (!this.mailboxes.has(`${store}/${name}`)) throw new Error(`${store}: mailbox ${name} was never created`);
  }

  private checkAcl(store: string, seen: Seen): void {
    for (const mailbox of MESSAGE_MAILBOXES) {
      for (const user of ACL_USERS) {
        const key = `${store}/${mailbox}/${user}`;
        const got = rightsSet(seen.acl.get(`${mailbox}/${user}`));
        const want = this.acl.get(key) ?? '';
        const pending = this.aclPending.get(key);
        if (got !== want && got !== pending) throw new Error(`${store}: ACL of ${user} on ${mailbox} is "${got}", acknowledged "${want}"${pending === undefined ? '' : ` (in flight "${pending}")`}`);
        if (pending !== undefined) this.inFlight(store, got === pending && got !== want, 'acl');
        this.acl.set(key, got);
      }
    }
  }
}

/** Opens as a restarted server would (no force, no reconstruct), scrubs, and reads everything. */
async function readBack(dir: string): Promise<Seen> {
  const store = await Store.open(dir);
  try {
    if (store.health.degraded) throw new Error(`${dir}: degraded after the cut: ${store.health.findings.join('; ')}`);
    const report = await scrub(store, { hashThreads: 0 });
    const damage = report.findings.filter(isDamage);
    if (damage.length) throw new Error(`${dir}: scrub found damage: ${damage.slice(0, 5).map((f) => JSON.stringify(describeFinding(f))).join('; ')}`);
    const seen: Seen = { mailboxes: new Set(), bySha: new Map(), acl: new Map() };
    for (const { name } of await store.listMailboxes()) {
      seen.mailboxes.add(name);
      for await (const m of store.readMessages(name)) {
        const h = sha(m.body);
        const list = seen.bySha.get(h) ?? seen.bySha.set(h, []).get(h)!;
        list.push({ mailbox: name, uid: m.info.uid, flags: m.info.flags });
      }
    }
    for (const mailbox of MESSAGE_MAILBOXES) {
      for (const [user, rights] of Object.entries(await store.getAcl(mailbox))) seen.acl.set(`${mailbox}/${user}`, rights);
    }
    return seen;
  } finally {
    await store.close();
  }
}

/** `mailstore import` run again on the store after a cut: it must finish (exit 0). */
export function rerunImport(cli: string, dir: string, source: string, mailbox: string): void {
  const r = spawnSync(process.execPath, [cli, '--store', dir, 'import', source, '--mailbox', mailbox, '--batch-messages', String(IMPORT_BATCH_MESSAGES), '--json'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the rerun of import ${mailbox} exited ${r.status}: ${r.stderr.slice(0, 2000)}`);
}
