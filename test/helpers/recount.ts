// Every counter the store keeps or reports, recomputed from first principles (each mailbox's M
// entries and the blobs they name) and compared with what the store says: the I counters (messages,
// unseen, bytes, uidNext, highestModseq), B refcounts, quota usage per root, `stats` and `usage`.
// Cyrus needs `quota -f` because its counters drift after crashes; a drift here is a bug.
import type { Store } from '../../src/store/store.js';
import { keys, decodeChangeKey, decodeMessageKey } from '../../src/keys/index-keys.js';
import { SPACE } from '../../src/keys/tuple.js';
import { getQuota, listQuotas } from '../../src/store/quota.js';
import { usage } from '../../src/store/usage.js';
import type { BlobRecord, ChangeRecord, MailboxInfo, MessageRecord } from '../../src/store/records.js';

const SEEN = '\\Seen';

interface Counted { name: string; messages: number; unseen: number; bytes: number; maxUid: number; maxModseq: number; hashes: Map<string, number> }

/** Every disagreement between a stored or reported counter and the count from the records; [] when none. */
export async function recount(store: Store): Promise<string[]> {
  const db = store.maintenance().index;
  await db.settle();
  const wrong: string[] = [];
  const boxes = new Map<string, { info: MailboxInfo; counted: Counted }>();
  for await (const [, info] of db.entries<MailboxInfo>({ prefix: keys.space(SPACE.info) })) {
    if (info.deleting) continue;
    const name = info.name.join('/');
    const counted: Counted = { name, messages: 0, unseen: 0, bytes: 0, maxUid: 0, maxModseq: 0, hashes: new Map() };
    for await (const [key, m] of db.entries<MessageRecord>({ prefix: keys.messagePrefix(info.id) })) {
      const { uid } = decodeMessageKey(key);
      counted.messages++;
      counted.bytes += m.s;
      if (!m.f.includes(SEEN)) counted.unseen++;
      counted.maxUid = Math.max(counted.maxUid, uid);
      counted.maxModseq = Math.max(counted.maxModseq, m.m);
      const h = Buffer.from(m.h).toString('hex');
      counted.hashes.set(h, m.s);
    }
    for await (const [key, value] of db.entries<ChangeRecord>({ prefix: keys.changePrefix(info.id) })) {
      const c = decodeChangeKey(key);
      if (value === 1) counted.maxModseq = Math.max(counted.maxModseq, c.modseq);
    }
    boxes.set(Buffer.from(info.id).toString('hex'), { info, counted });
    if (info.messages !== counted.messages) wrong.push(`${name}: messages ${info.messages}, counted ${counted.messages}`);
    if (info.unseen !== counted.unseen) wrong.push(`${name}: unseen ${info.unseen}, counted ${counted.unseen}`);
    if (info.bytes !== counted.bytes) wrong.push(`${name}: bytes ${info.bytes}, counted ${counted.bytes}`);
    if (info.uidNext <= counted.maxUid) wrong.push(`${name}: uidNext ${info.uidNext} not above uid ${counted.maxUid}`);
    if (info.highestModseq < counted.maxModseq) wrong.push(`${name}: highestModseq ${info.highestModseq} below ${counted.maxModseq}`);
  }
  // refcounts: one per message, whichever mailbox it is in
  const refs = new Map<string, number>();
  for await (const [, info] of db.entries<MailboxInfo>({ prefix: keys.space(SPACE.info) })) {
    for await (const [, m] of db.entries<MessageRecord>({ prefix: keys.messagePrefix(info.id) })) {
      const h = Buffer.from(m.h).toString('hex');
      refs.set(h, (refs.get(h) ?? 0) + 1);
    }
  }
  let blobs = 0, unreferenced = 0;
  for await (const [key, blob] of db.entries<BlobRecord>({ prefix: keys.space(SPACE.blob) })) {
    const h = key.subarray(1).toString('hex');
    blobs++;
    if (blob.r === 0) unreferenced++;
    if (blob.r !== (refs.get(h) ?? 0)) wrong.push(`blob ${h.slice(0, 12)}: refcount ${blob.r}, ${refs.get(h) ?? 0} messages refer to it`);
    refs.delete(h);
  }
  for (const h of refs.keys()) wrong.push(`blob ${h.slice(0, 12)}: referenced, no B entry`);
  // quota usage: each mailbox against its nearest root
  const roots = (await listQuotas(store)).map((q) => q.root);
  for (const root of roots) {
    let messages = 0, bytes = 0;
    for (const { counted } of boxes.values()) {
      const nearest = roots.filter((r) => counted.name === r || counted.name.startsWith(r + '/')).sort((a, b) => b.length - a.length)[0];
      if (nearest !== root) continue;
      messages += counted.messages;
      bytes += counted.bytes;
    }
    const q = await getQuota(store, root);
    if (q.usedMessages !== messages || q.usedBytes !== bytes) wrong.push(`quota ${root}: used ${q.usedMessages} messages/${q.usedBytes} bytes, counted ${messages}/${bytes}`);
  }
  // stats and usage
  const all = [...boxes.values()].map((b) => b.counted);
  const stats = await store.stats();
  const sum = (f: (c: Counted) => number, list = all) => list.reduce((s, c) => s + f(c), 0);
  if (stats.mailboxes !== all.length) wrong.push(`stats: ${stats.mailboxes} mailboxes, counted ${all.length}`);
  if (stats.messages !== sum((c) => c.messages)) wrong.push(`stats: ${stats.messages} messages, counted ${sum((c) => c.messages)}`);
  if (stats.bytesReferenced !== sum((c) => c.bytes)) wrong.push(`stats: bytesReferenced ${stats.bytesReferenced}, counted ${sum((c) => c.bytes)}`);
  if (stats.blobs !== blobs || stats.unreferencedBlobs !== unreferenced) wrong.push(`stats: ${stats.blobs} blobs (${stats.unreferencedBlobs} unreferenced), counted ${blobs} (${unreferenced})`);
  for (const u of await usage(store)) {
    const mine = all.filter((c) => c.name.split('/')[0] === 'user' && c.name.split('/')[1] === u.user);
    const unique = new Map<string, number>();
    for (const c of mine) for (const [h, s] of c.hashes) unique.set(h, s);
    const uniqueBytes = [...unique.values()].reduce((s, n) => s + n, 0);
    if (u.mailboxes !== mine.length || u.messages !== sum((c) => c.messages, mine) || u.bytes !== sum((c) => c.bytes, mine) || u.uniqueBytes !== uniqueBytes) {
      wrong.push(`usage ${u.user}: ${u.mailboxes} mailboxes ${u.messages} messages ${u.bytes} bytes ${u.uniqueBytes} unique, counted ${mine.length}/${sum((c) => c.messages, mine)}/${sum((c) => c.bytes, mine)}/${uniqueBytes}`);
    }
  }
  return wrong;
}
