// The reference model for the crash explorer: plain maps that say what the store must hold after
// each acknowledged operation, and a canonical dump of a real store to compare against. It also
// checks the store's derived structures (refcounts, name index, reverse ACL map, change log)
// against its primary data, reading the index directly.
import type { Store } from '../../src/store/store.js';
import { keys, decodeChangeKey, decodeMessageKey, decodeNameKey, decodeRightsKey } from '../../src/keys/index-keys.js';
import { SPACE } from '../../src/keys/tuple.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { limits } from '../../src/limits.js';
import { digestHex, emptyDigest, toggleMessage } from '../../src/store/mailbox-digest.js';
import type { BlobRecord, ChangeRecord, MailboxInfo, MessageRecord, RightsRecord } from '../../src/store/records.js';

const SEEN = '\\Seen';

/** The optional per-message metadata as MessageInfo shows it (only the fields stored). */
export interface ModelExtras { envelopeFrom?: string; dateZoneMinutes?: number; recent?: true }
export interface ModelMessage { hash: string; size: number; date: number; flags: string[]; modseq: number; extras?: ModelExtras }

export interface ModelMailbox {
  id: string;
  name: string;
  pastNames: string[];
  uidValidity: number;
  uidNext: number;
  highestModseq: number;
  acl: Record<string, string>;
  owner?: string;
  created: number;
  messages: Map<number, ModelMessage>;
  /** uid -> modseq of its expunge (QRESYNC vanished). */
  vanished: Map<number, number>;
}

/** What the store must hold; `seq` is the journal seq of the last record applied. */
export class Model {
  seq = 0;
  boxes = new Map<string, ModelMailbox>(); // by name

  clone(): Model {
    const m = new Model();
    m.seq = this.seq;
    for (const [name, b] of this.boxes) {
      m.boxes.set(name, {
        ...b, pastNames: [...b.pastNames], acl: { ...b.acl },
        messages: new Map([...b.messages].map(([u, msg]) => [u, { ...msg, flags: [...msg.flags] }])),
        vanished: new Map(b.vanished),
      });
    }
    return m;
  }

  box(name: string): ModelMailbox {
    const b = this.boxes.get(name);
    if (!b) throw new Error(`model: no mailbox ${name}`);
    return b;
  }

  create(name: string, result: { id: string; uidValidity: number; created: Date }, owner?: string): void {
    this.seq++;
    const acl: Record<string, string> = {};
    if (owner) acl[owner] = sortRights(limitsAllRights);
    this.boxes.set(name, {
      id: result.id, name, pastNames: [], uidValidity: result.uidValidity, uidNext: 1, highestModseq: this.seq,
      acl, owner, created: result.created.getTime(), messages: new Map(), vanished: new Map(),
    });
  }

  /** Appends (one record for the whole list); returns the uids the store must assign. */
  append(name: string, items: { bytes: Buffer; flags?: string[]; date: number; extras?: ModelExtras }[]): number[] {
    this.seq++;
    const b = this.box(name);
    const uids: number[] = [];
    for (const item of items) {
      const uid = b.uidNext++;
      b.messages.set(uid, { hash: hashBytes(item.bytes).toString('hex'), size: item.bytes.length, date: item.date, flags: normalize(item.flags ?? []), modseq: this.seq, ...(item.extras && Object.keys(item.extras).length > 0 ? { extras: item.extras } : {}) });
      uids.push(uid);
    }
    b.highestModseq = this.seq;
    return uids;
  }

  /** Returns the uids changed (no record when none). */
  setFlags(name: string, uids: number[], change: { add?: string[]; remove?: string[]; replace?: string[] }): number[] {
    const b = this.box(name);
    const updated: [number, string[]][] = [];
    for (const uid of [...new Set(uids)].sort((x, y) => x - y)) {
      const msg = b.messages.get(uid);
      if (!msg) continue;
      const next = change.replace ? normalize(change.replace)
        : normalize([...msg.flags.filter((f) => !(change.remove ?? []).includes(f)), ...(change.add ?? [])]);
      if (next.join(' ') !== msg.flags.join(' ')) updated.push([uid, next]);
    }
    if (updated.length === 0) return [];
    this.seq++;
    for (const [uid, flags] of updated) b.messages.set(uid, { ...b.messages.get(uid)!, flags, modseq: this.seq });
    b.highestModseq = this.seq;
    return updated.map(([u]) => u);
  }

  expunge(name: string, uids: number[]): number[] {
    const b = this.box(name);
    const present = [...new Set(uids)].filter((u) => b.messages.has(u)).sort((x, y) => x - y);
    if (present.length === 0) return [];
    this.seq++;
    for (const uid of present) { b.messages.delete(uid); b.vanished.set(uid, this.seq); }
    b.highestModseq = this.seq;
    return present;
  }

  transfer(from: string, uids: number[], to: string, move: boolean): [number, number][] {
    const src = this.box(from);
    const dst = this.box(to);
    const present = [...new Set(uids)].filter((u) => src.messages.has(u)).sort((x, y) => x - y);
    if (present.length === 0) return [];
    this.seq++;
    const mapping: [number, number][] = [];
    for (const uid of present) {
      const msg = src.messages.get(uid)!;
      const target = dst.uidNext++;
      dst.messages.set(target, { ...msg, flags: [...msg.flags], modseq: this.seq });
      mapping.push([uid, target]);
    }
    dst.highestModseq = this.seq;
    if (move) {
      for (const uid of present) { src.messages.delete(uid); src.vanished.set(uid, this.seq); }
      src.highestModseq = this.seq;
    }
    return mapping;
  }

  rename(from: string, to: string): void {
    this.seq++;
    const moved = [...this.boxes.keys()].filter((n) => n === from || n.startsWith(from + '/'));
    for (const name of moved) {
      const b = this.boxes.get(name)!;
      this.boxes.delete(name);
      const renamed = to + name.slice(from.length);
      b.pastNames.push(name);
      b.name = renamed;
      this.boxes.set(renamed, b);
    }
  }

  setAcl(name: string, who: string, rights: string): boolean {
    const b = this.box(name);
    const normalized = sortRights(rights);
    if ((b.acl[who] ?? '') === normalized) return false;
    this.seq++;
    if (normalized === '') delete b.acl[who];
    else b.acl[who] = normalized;
    return true;
  }

  /** A delete writes begin, expunge chunks, change-purge chunks and end: one seq each. */
  delete(name: string): void {
    const b = this.box(name);
    const chunks = (n: number) => Math.ceil(n / limits.deleteChunkMessages);
    this.seq += 1 + chunks(b.messages.size) + chunks(b.vanished.size) + 1;
    this.boxes.delete(name);
  }

  /** Canonical form, identical to `dumpStore` of a store holding the same data. */
  dump(): string {
    const out: unknown[] = [];
    const refs = new Map<string, number>();
    for (const name of [...this.boxes.keys()].sort()) {
      const b = this.boxes.get(name)!;
      const messages = [...b.messages].sort(([x], [y]) => x - y).map(([uid, m]) => {
        refs.set(m.hash, (refs.get(m.hash) ?? 0) + 1);
        return [uid, m.hash, m.size, m.date, m.flags.join(' '), m.modseq, ...(m.extras ? [extrasText(m.extras)] : [])];
      });
      const unseen = [...b.messages.values()].filter((m) => !m.flags.includes(SEEN)).length;
      out.push({
        name, id: b.id, uidValidity: b.uidValidity, uidNext: b.uidNext, highestModseq: b.highestModseq, count: b.messages.size, unseen,
        acl: sortedAcl(b.acl), owner: b.owner ?? null, pastNames: b.pastNames, created: b.created, messages,
        vanished: [...b.vanished.keys()].sort((x, y) => x - y),
      });
    }
    out.push({ refs: [...refs].sort(([x], [y]) => (x < y ? -1 : 1)) });
    return JSON.stringify(out);
  }
}

const limitsAllRights = 'lrswipkxtean';

function sortRights(rights: string): string {
  return [...new Set(rights)].sort().join('');
}

/** The extras in one fixed form for the dump (key order as given must not matter). */
function extrasText(x: ModelExtras): string {
  return `${x.envelopeFrom ?? '-'} ${x.dateZoneMinutes ?? '-'} ${x.recent ? 'recent' : '-'}`;
}

function normalize(flags: string[]): string[] {
  return [...new Set(flags)].sort();
}

function sortedAcl(acl: Record<string, string>): [string, string][] {
  return Object.entries(acl).sort(([x], [y]) => (x < y ? -1 : 1));
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/**
 * The store's content in Model.dump's form, after checking that every derived structure agrees
 * with the primary data and that every message's blob reads back with its hash. Throws with a
 * precise message on the first disagreement.
 */
export async function dumpStore(store: Store, options: { fetchAll?: boolean } = {}): Promise<string> {
  const db = store.maintenance().index;
  const infos = new Map<string, MailboxInfo>();
  for await (const [, info] of db.entries<MailboxInfo>({ prefix: keys.space(SPACE.info) })) infos.set(hex(info.id), info);
  // name index: N <-> I, both ways
  const names = new Map<string, string>();
  for await (const [key, id] of db.entries<Buffer>({ prefix: keys.space(SPACE.name) })) {
    const name = decodeNameKey(key).join('/');
    const info = infos.get(hex(id));
    if (!info) throw new Error(`name index: ${name} points to mailbox ${hex(id)}, which has no info record`);
    if (info.deleting) throw new Error(`name index: ${name} points to a mailbox being deleted`);
    if (info.name.join('/') !== name) throw new Error(`name index: ${name} points to a mailbox named ${info.name.join('/')}`);
    names.set(name, hex(id));
  }
  for (const [id, info] of infos) {
    if (info.deleting) throw new Error(`mailbox ${info.name.join('/')} (${id}) is still being deleted after open`);
    if (names.get(info.name.join('/')) !== id) throw new Error(`name index lacks ${info.name.join('/')} -> ${id}`);
  }
  // reverse ACL map: exactly one R per (identifier, mailbox) in every ACL, no others
  const expectedRights = new Map<string, string>();
  for (const info of infos.values()) {
    for (const [who, rights] of Object.entries(info.acl)) expectedRights.set(`${who}\u0000${info.name.join('/')}`, `${hex(info.id)}:${rights}`);
  }
  const seenRights = new Set<string>();
  for await (const [key, value] of db.entries<RightsRecord>({ prefix: keys.space(SPACE.rights) })) {
    const { user, components } = decodeRightsKey(key);
    const k = `${user}\u0000${components.join('/')}`;
    const got = `${hex(value.id)}:${value.rights}`;
    if (expectedRights.get(k) !== got) throw new Error(`reverse ACL map: ${user} on ${components.join('/')} is ${got}, the mailbox's ACL says ${expectedRights.get(k) ?? 'nothing'}`);
    seenRights.add(k);
  }
  for (const k of expectedRights.keys()) if (!seenRights.has(k)) throw new Error(`reverse ACL map lacks ${k.replace('\u0000', ' on ')}`);
  // messages, change log, counts
  const refs = new Map<string, number>();
  const out: unknown[] = [];
  for (const name of [...names.keys()].sort()) {
    const info = infos.get(names.get(name)!)!;
    const messages: unknown[] = [];
    const modseqOf = new Map<number, number>();
    let unseen = 0, bytes = 0;
    const digest = emptyDigest();
    for await (const [key, m] of db.entries<MessageRecord>({ prefix: keys.messagePrefix(info.id) })) {
      const { uid } = decodeMessageKey(key);
      toggleMessage(digest, uid, m);
      if (uid >= info.uidNext) throw new Error(`${name}: uid ${uid} is not below uidNext ${info.uidNext}`);
      if (m.m > info.highestModseq) throw new Error(`${name}: message ${uid} has modseq ${m.m} above highestModseq ${info.highestModseq}`);
      modseqOf.set(uid, m.m);
      if (!m.f.includes(SEEN)) unseen++;
      bytes += m.s;
      refs.set(hex(m.h), (refs.get(hex(m.h)) ?? 0) + 1);
      const x: ModelExtras = {};
      if (m.e !== undefined) x.envelopeFrom = m.e;
      if (m.z !== undefined) x.dateZoneMinutes = m.z;
      if (m.n) x.recent = true;
      messages.push([uid, hex(m.h), m.s, m.d, m.f.join(' '), m.m, ...(Object.keys(x).length > 0 ? [extrasText(x)] : [])]);
    }
    if (info.messages !== messages.length || info.unseen !== unseen || info.bytes !== bytes) {
      throw new Error(`${name}: counts say ${info.messages} messages/${info.unseen} unseen/${info.bytes} bytes, records say ${messages.length}/${unseen}/${bytes}`);
    }
    // the digest apply keeps for `replica check` (absent only on mailboxes older than it)
    if (info.digest && digestHex(info.digest) !== digestHex(digest)) throw new Error(`${name}: kept digest ${digestHex(info.digest)}, the messages' ${digestHex(digest)}`);
    const vanished: number[] = [];
    const changed = new Set<number>();
    for await (const [key, value] of db.entries<ChangeRecord>({ prefix: keys.changePrefix(info.id) })) {
      const c = decodeChangeKey(key);
      if (c.modseq > info.highestModseq) throw new Error(`${name}: change ${c.modseq}/${c.uid} above highestModseq`);
      if (value === 1) {
        if (modseqOf.has(c.uid)) throw new Error(`${name}: uid ${c.uid} is both present and vanished`);
        vanished.push(c.uid);
      } else {
        if (modseqOf.get(c.uid) !== c.modseq) throw new Error(`${name}: change entry ${c.modseq}/${c.uid} does not match the message (modseq ${modseqOf.get(c.uid)})`);
        changed.add(c.uid);
      }
    }
    if (changed.size !== modseqOf.size) throw new Error(`${name}: ${modseqOf.size} messages but ${changed.size} change entries`);
    out.push({
      name, id: uuid(info.id), uidValidity: info.uidValidity, uidNext: info.uidNext, highestModseq: info.highestModseq, count: info.messages, unseen,
      acl: sortedAcl(info.acl), owner: info.owner ?? null, pastNames: info.pastNames.map((p) => p.join('/')), created: info.created, messages,
      vanished: vanished.sort((x, y) => x - y),
    });
  }
  // refcounts: every referenced blob's r equals its references; unreferenced ones are r=0
  const blobs = new Set<string>();
  for await (const [key, blob] of db.entries<BlobRecord>({ prefix: keys.space(SPACE.blob) })) {
    const h = hex(key.subarray(1));
    const want = refs.get(h) ?? 0;
    if (blob.r !== want) throw new Error(`blob ${h}: refcount ${blob.r}, ${want} messages refer to it`);
    blobs.add(h);
  }
  for (const h of refs.keys()) if (!blobs.has(h)) throw new Error(`blob ${h} is referenced but has no B record`);
  // every referenced blob reads back with its hash (messages sharing a hash share the blob)
  if (options.fetchAll !== false) {
    for (const h of refs.keys()) {
      const body = await store.fetchBlob(Buffer.from(h, 'hex'));
      if (!hashBytes(body).equals(Buffer.from(h, 'hex'))) throw new Error(`blob ${h}: fetched bytes do not match the hash`);
    }
  }
  const appliedSeq = await db.get<number>(keys.meta('appliedSeq'));
  for (const box of out as { highestModseq: number }[]) {
    if (appliedSeq === undefined || box.highestModseq > appliedSeq) throw new Error(`highestModseq ${box.highestModseq} above appliedSeq ${appliedSeq}`);
  }
  out.push({ refs: [...refs].sort(([x], [y]) => (x < y ? -1 : 1)) });
  return JSON.stringify(out);
}

function uuid(id: Uint8Array): string {
  const h = hex(id);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A short description of where two dumps differ, for assertion messages. */
export function dumpDiff(got: string, want: string): string {
  if (got === want) return 'equal';
  let i = 0;
  while (i < got.length && got[i] === want[i]) i++;
  return `differs at ${i}: got ...${got.slice(Math.max(0, i - 80), i + 120)}... want ...${want.slice(Math.max(0, i - 80), i + 120)}...`;
}
