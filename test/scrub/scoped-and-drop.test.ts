// scrub --mailbox (a subtree's blobs and index records only) and --drop-unreferenced (damage to a
// blob no message uses is journaled as dropped, never deleted; a message using it again makes it
// damage again).
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
// every body in a pack: these tests damage or remove pack records (helpers/packed.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { reconstruct } from '../../src/scrub/reconstruct.js';
import { keys } from '../../src/keys/index-keys.js';
import { encodeValue } from '../../src/index/codec.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { isDamage } from '../../src/scrub/findings.js';
import type { BlobRecord, MailboxInfo } from '../../src/store/records.js';
import { MailstoreError } from '../../src/errors.js';
import { tmpDir } from '../helpers/tmp.js';

const msg = (who: string, i: number) => Buffer.from(`From: ${who}@example.org\r\nSubject: ${who} ${i}\r\n\r\n${`${who} body ${i} `.repeat(40)}\r\n`);

async function build(dir: string): Promise<void> {
  const store = await Store.open(dir, { create: true });
  for (const user of ['alice', 'bob']) {
    for (const box of ['INBOX', 'Archive']) await store.createMailbox(`user/${user}/${box}`, { owner: user });
    for (let i = 0; i < 6; i++) await store.append(`user/${user}/${i % 2 ? 'INBOX' : 'Archive'}`, msg(user, i));
  }
  await store.close();
}

/** Flips bytes in the middle of a blob's body in its pack; returns its location. */
async function damage(dir: string, bytes: Buffer): Promise<BlobRecord> {
  const store = await Store.open(dir);
  const blob = (await store.db.get<BlobRecord>(keys.blob(hashBytes(bytes))))!;
  const path = store.packs.path(blob.p);
  await store.close();
  const pack = readFileSync(path);
  const at = pack.indexOf(bytes.subarray(60, 100));
  expect(at).toBeGreaterThan(0);
  for (let k = 0; k < 8; k++) pack[at + k] ^= 0xff;
  writeFileSync(path, pack);
  return blob;
}

describe('scrub --mailbox PREFIX', () => {
  it('verifies only the blobs of the subtree: damage in bob\'s mail is found under user/bob, not under user/alice', async () => {
    const dir = tmpDir();
    await build(dir);
    await damage(dir, msg('bob', 3)); // user/bob/INBOX
    const store = await Store.open(dir);
    try {
      const alice = await scrub(store, { mailbox: 'user/alice' });
      expect(alice.summary.scope).toEqual({ mailbox: 'user/alice', mailboxes: 2 });
      expect(alice.summary.blobsVerified).toBe(6);
      expect(alice.findings.filter(isDamage)).toEqual([]);
      const bob = await scrub(store, { mailbox: 'user/bob' });
      const damaged = bob.findings.filter(isDamage);
      expect(damaged.map((f) => f.kind)).toEqual(['blob-corrupt']);
      expect((damaged[0] as { refs: unknown }).refs).toEqual([{ mailbox: 'user/bob/INBOX', uid: 2 }]);
      expect((await scrub(store, { mailbox: 'user/bob/Archive' })).summary.damage).toBe(0);
      await expect(scrub(store, { mailbox: 'user/carol' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(scrub(store, { mailbox: 'user/b' })).rejects.toBeInstanceOf(MailstoreError); // a prefix is a whole name, not a string prefix
    } finally {
      await store.close();
    }
  });

  it('mail delivered and expunged while it runs (a mailbox\'s counts and its blobs\' refcounts change between its steps) is no damage', async () => {
    const changes: Promise<unknown>[] = [];
    const dir = tmpDir();
    await build(dir);
    const store = await Store.open(dir);
    const report = await scrub(store, {
      mailbox: 'user/bob',
      // after each mailbox: another client delivers to and expunges from every mailbox of the subtree
      onProgress: () => {
        for (const box of ['user/bob/INBOX', 'user/bob/Archive']) {
          changes.push(store.append(box, msg('late', changes.length)), store.messages(box).next().then((m) => m.value && store.expunge(box, m.value.uid)));
        }
      },
    });
    await Promise.all(changes);
    expect(changes.length).toBeGreaterThan(0);
    expect(report.findings.filter(isDamage)).toEqual([]);
    expect((await scrub(store, { mailbox: 'user/bob' })).findings.filter(isDamage)).toEqual([]);
    await store.close();
  });

  it('checks the index records of the subtree\'s mailboxes (counts, reverse ACL map) and nothing outside it', async () => {
    const dir = tmpDir();
    await build(dir);
    const store = await Store.open(dir);
    try {
      await store.setAcl('user/alice/INBOX', 'helpdesk', 'lr');
      const db = (store.db as any).db;
      for await (const [k, v] of store.db.entries<MailboxInfo>({ prefix: keys.space(0x49) })) {
        if (v.name.join('/') === 'user/bob/Archive') await db.put(k, encodeValue(k, { ...v, unseen: v.unseen + 1 }));
      }
      await db.del(keys.rights('helpdesk', ['user', 'alice', 'INBOX']));
      store.maintenance().forgetMailboxes();
      const bob = await scrub(store, { mailbox: 'user/bob' });
      expect(bob.findings.filter(isDamage)).toEqual([{ kind: 'mailbox-counts', mailbox: 'user/bob/Archive', detail: expect.stringContaining('unseen') }]);
      const alice = await scrub(store, { mailbox: 'user/alice/INBOX' });
      expect(alice.findings.filter(isDamage)).toEqual([expect.objectContaining({ kind: 'acl-map-mismatch', identifier: 'helpdesk', name: 'user/alice/INBOX' })]);
      expect((await scrub(store, { mailbox: 'user/alice/Archive' })).summary.damage).toBe(0);
    } finally {
      await store.close();
    }
  });
  it('a mailbox record that fails its checksum is reported (its name cannot be told, so it may be in the subtree), never passed over as clean', async () => {
    const dir = tmpDir();
    await build(dir);
    const store = await Store.open(dir);
    try {
      const db = (store.db as any).db;
      for await (const [k, v] of store.db.entries<MailboxInfo>({ prefix: keys.space(0x49) })) {
        if (v.name.join('/') === 'user/bob/Archive') {
          const raw = Buffer.from(encodeValue(k, v));
          raw[raw.length - 3] ^= 0xff;
          await db.put(k, raw);
        }
      }
      store.maintenance().forgetMailboxes();
      const bob = await scrub(store, { mailbox: 'user/bob' });
      expect(bob.summary.scope!.mailboxes).toBe(1);
      expect(bob.findings.filter(isDamage).map((f) => f.kind)).toEqual(['index-value-corrupt']);
    } finally {
      await store.close();
    }
  });
});

describe('scrub --repair --drop-unreferenced', () => {
  it('clears damage to a blob no message uses without deleting a byte; it survives an index rebuild; a message using it again makes it damage again', async () => {
    const dir = tmpDir();
    await build(dir);
    const gone = msg('alice', 1); // user/alice/INBOX uid 1, expunged below
    let store = await Store.open(dir);
    await store.expunge('user/alice/INBOX', 1);
    await store.close();
    const blob = await damage(dir, gone);
    const packPath = join(dir, 'packs', readdirSync(join(dir, 'packs')).find((n) => n.startsWith(String(blob.p).padStart(8, '0')))!);
    const packBefore = readFileSync(packPath);
    store = await Store.open(dir);
    try {
      const before = await scrub(store);
      expect(before.findings.filter(isDamage)).toEqual([expect.objectContaining({ kind: 'blob-corrupt', refs: [] })]);
      // without the flag nothing is cleared
      expect((await repair(store, before)).unrepaired).toHaveLength(1);
      const result = await repair(store, await scrub(store), { dropUnreferenced: true });
      expect(result.dropped).toEqual([hashBytes(gone).toString('hex')]);
      expect(result.unrepaired).toEqual([]);
      expect(result.after.findings).toContainEqual(expect.objectContaining({ kind: 'dropped-blob', hash: hashBytes(gone).toString('hex') }));
      expect(readdirSync(join(dir, 'quarantine')).some((n) => n.startsWith(`blob-${hashBytes(gone).toString('hex')}`))).toBe(true);
    } finally {
      await store.close();
    }
    expect(readFileSync(packPath).equals(packBefore)).toBe(true); // nothing deleted or rewritten
    rmSync(join(dir, 'index'), { recursive: true });
    store = await Store.open(dir); // the index is rebuilt from the journal: the drop was journaled
    try {
      expect(store.health.rebuilt).toBeTruthy();
      expect((await scrub(store)).summary.damage).toBe(0);
      // the same bytes appended again are never deduplicated onto a copy no message used (the
      // dropped, damaged record): they are written anew and the blob entry moves to them
      const { uid, deduplicated } = await store.append('user/bob/INBOX', gone);
      expect(deduplicated).toBe(false);
      expect((await store.fetch('user/bob/INBOX', uid)).equals(gone)).toBe(true);
      expect((await scrub(store)).findings.filter(isDamage)).toEqual([]);
    } finally {
      await store.close();
    }
    expect(existsSync(dir)).toBe(true);
  });

  it('never drops a damaged blob a message uses', async () => {
    const dir = tmpDir();
    await build(dir);
    await damage(dir, msg('bob', 2));
    const store = await Store.open(dir);
    try {
      const result = await repair(store, await scrub(store), { dropUnreferenced: true });
      expect(result.dropped).toEqual([]);
      expect(result.unrepaired).toEqual([expect.objectContaining({ kind: 'blob-corrupt', refs: [{ mailbox: 'user/bob/Archive', uid: 2 }] })]);
      await expect(store.fetch('user/bob/Archive', 2)).rejects.toMatchObject({ code: 'CORRUPT' });
      expect((await store.fetch('user/bob/Archive', 1)).equals(msg('bob', 0))).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe('reconstruct --check --mailbox PREFIX', () => {
  it('compares only the subtree\'s index keys with a journal replay built aside, and changes nothing', async () => {
    const dir = tmpDir();
    await build(dir);
    let store = await Store.open(dir);
    const db = (store.db as any).db;
    for await (const [k, v] of store.db.entries<MailboxInfo>({ prefix: keys.space(0x49) })) {
      if (v.name.join('/') === 'user/bob/INBOX') await db.put(k, encodeValue(k, { ...v, unseen: v.unseen + 1 }));
    }
    await store.close();
    const seen: string[] = [];
    const bob = await reconstruct(dir, { check: true, mailbox: 'user/bob', onDifference: (key) => seen.push(key.toString('hex')) });
    expect(bob.scope).toEqual({ mailbox: 'user/bob', mailboxes: 2, differences: 1 });
    expect(seen).toHaveLength(1);
    expect(seen[0].slice(0, 2)).toBe('49'); // the I key of user/bob/INBOX
    const alice = await reconstruct(dir, { check: true, mailbox: 'user/alice' });
    expect(alice.scope).toEqual({ mailbox: 'user/alice', mailboxes: 2, differences: 0 });
    expect(alice.differences).toBe(1); // the whole index differs, the subtree does not
    await expect(reconstruct(dir, { check: true, mailbox: 'user/carol' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(reconstruct(dir, { mailbox: 'user/bob' })).rejects.toMatchObject({ code: 'INVALID' });
    store = await Store.open(dir);
    expect((await store.status('user/bob/INBOX')).unseen).toBe(4); // still the tampered value: nothing changed
    await store.close();
  });

  it('a mailbox the index lost but the journal holds is reported, not NOT_FOUND', async () => {
    const dir = tmpDir();
    await build(dir);
    const store = await Store.open(dir);
    const db = (store.db as any).db;
    await db.del(keys.name(['user', 'bob', 'Archive']));
    for await (const [k, v] of store.db.entries<MailboxInfo>({ prefix: keys.space(0x49) })) if (v.name.join('/') === 'user/bob/Archive') await db.del(k);
    await store.close();
    const result = await reconstruct(dir, { check: true, mailbox: 'user/bob/Archive' });
    expect(result.scope!.mailboxes).toBe(0);
    expect(result.scope!.differences).toBeGreaterThan(0);
  });
});
