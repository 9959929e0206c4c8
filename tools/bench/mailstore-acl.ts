// "Mailboxes user u may see" (IMAP LIST for a user) at many mailboxes and users: the reverse ACL
// map (one prefix scan) against a full scan of every mailbox's ACL in the same process.
//
//   node dist/tools/bench/mailstore-acl.js --store DIR --mailboxes N --users U [--queries Q] [--scans S]
import { Store } from '../../src/store/store.js';
import { keys } from '../../src/keys/index-keys.js';
import { SPACE } from '../../src/keys/tuple.js';
import type { MailboxInfo } from '../../src/store/records.js';
import { Random } from '../gen-corpus.js';
import { emit, parseFlags, peakRssBytes, percentile, progress, required, round, runMeasurement } from '../../src/bench/common.js';

const { values } = parseFlags(process.argv.slice(2));
const mailboxes = Number(required(values, 'mailboxes'));
const users = Number(required(values, 'users'));
const queries = Number(values.get('queries') ?? 2000);
const scans = Number(values.get('scans') ?? 20);
const inFlight = 512;

await runMeasurement('mailstore', 'acl-list', async () => {
  const store = await Store.open(required(values, 'store'), { create: true });
  const random = new Random('acl');
  // each mailbox owned by one user (all rights), shared read-only with two others
  const created = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    for (let i = next++; i < mailboxes; i = next++) {
      const owner = `u${i % users}`;
      const acl: Record<string, string> = { [owner]: 'lrswipkxtea', [`u${random.int(0, users - 1)}`]: 'lr', [`u${random.int(0, users - 1)}`]: 'lrs' };
      acl[owner] = 'lrswipkxtea';
      await store.createMailbox(`user/${owner}/box${Math.floor(i / users)}`, { owner, acl });
      if (i % 20_000 === 19_999) progress(`acl: ${i + 1} of ${mailboxes} mailboxes created`);
    }
  }));
  const createSeconds = (performance.now() - created) / 1000;

  const pickUser = () => `u${random.int(0, users - 1)}`;
  const indexed: number[] = [];
  let found = 0;
  for (let q = 0; q < queries; q++) {
    const user = pickUser();
    const t = performance.now();
    const list = await store.listMailboxes({ user });
    indexed.push((performance.now() - t) * 1000);
    found += list.length;
  }
  const scanned: number[] = [];
  let mismatches = 0;
  for (let s = 0; s < scans; s++) {
    const user = pickUser();
    const t = performance.now();
    const ids: string[] = [];
    for await (const [, box] of store.administration().index.entries<MailboxInfo>({ prefix: keys.space(SPACE.info) })) {
      if (box.deleting) continue;
      const rights = (box.acl[user] ?? '') + (box.acl.anyone ?? '');
      if (rights.includes('l')) ids.push(Buffer.from(box.id).toString('hex'));
    }
    scanned.push((performance.now() - t) * 1000);
    const viaIndex = (await store.listMailboxes({ user })).map((m) => m.id.replaceAll('-', '')).sort();
    if (viaIndex.join() !== ids.sort().join()) mismatches++;
  }
  await store.close();
  const p50 = percentile(indexed, 0.5), scanP50 = percentile(scanned, 0.5);
  emit({
    peer: 'mailstore', measurement: 'acl-list', mailboxes, users, queries, p50_us: round(p50, 1), p99_us: round(percentile(indexed, 0.99), 1),
    max_us: round(Math.max(...indexed), 1), mean_results: round(found / queries, 2), create_seconds: round(createSeconds, 2),
    peak_rss_bytes: peakRssBytes(), mismatches,
    note: `listMailboxes({user}) for ${queries} random users over ${mailboxes} mailboxes / ${users} users (owner + 2 shared entries each); ` +
      `${mailboxes} createMailbox calls, ${inFlight} in flight, took ${round(createSeconds, 1)} s; ${mismatches} of ${scans} users listed differently by the full scan`,
  });
  emit({
    peer: 'full-scan', measurement: 'acl-list', mailboxes, users, queries: scans, p50_us: round(scanP50, 1), p99_us: round(percentile(scanned, 0.99), 1),
    max_us: round(Math.max(...scanned), 1),
    note: `baseline in the same process: iterate every mailbox record (I space) and test its ACL for the user (${scans} users)`,
  });
});
