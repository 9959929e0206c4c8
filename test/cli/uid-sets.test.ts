// UID sets as `messages MAILBOX SET` and `fetch --info MAILBOX SET` read them (src/cli/uids.ts):
// the right messages in UID order, gaps and `*` included, and only the records of the set's ranges
// (each range from its first UID), never the whole mailbox filtered. `expunge` and `flags` change
// a big set in bounded runs (limits.uidSetChunkMessages), not in one call that holds it all.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { messagesInSet, resolveUidSet } from '../../src/cli/uids.js';
import { expungeUidSet } from '../../src/cli/commands/expunge.js';
import { transferUidSet } from '../../src/cli/commands/transfer.js';
import { setFlagsOnUidSet } from '../../src/cli/commands/flags.js';
import { keys } from '../../src/keys/index-keys.js';
import type { MailboxInfo } from '../../src/store/records.js';
import { limits } from '../../src/limits.js';
import type { MailStore } from '../../src/store/api.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { json, requireBuilt, run } from './helpers.js';

/** `store` with the records its messages() calls yielded counted. */
function counting(store: Store): { store: MailStore; read: () => number } {
  let read = 0;
  const wrapped = new Proxy(store, {
    get(target, prop) {
      if (prop === 'messages') {
        return async function* (mailbox: string, options?: { fromUid?: number }) {
          for await (const info of target.messages(mailbox, options)) { read++; yield info; }
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as unknown as MailStore;
  return { store: wrapped, read: () => read };
}

async function uidsOf(store: MailStore, text: string): Promise<number[]> {
  const out: number[] = [];
  for await (const info of messagesInSet(store, 'INBOX', text)) out.push(info.uid);
  return out;
}

describe('messagesInSet', () => {
  it('reads each range from its first UID: the set\'s messages in order, and few records besides', async () => {
    const store = await Store.init(join(tmpDir('uidset'), 's'));
    const tunable = limits as { largestUidProbeUids: number };
    const saved = tunable.largestUidProbeUids;
    tunable.largestUidProbeUids = 8;
    try {
      await store.createMailbox('INBOX');
      await store.appendBatch('INBOX', Array.from({ length: 400 }, (_, i) => ({ bytes: Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`) })));
      await store.expunge('INBOX', [6, 7, 200, 398, 399, 400]);
      const { store: seen, read } = counting(store);
      expect(await uidsOf(seen, '5:8,199:201,397:*')).toEqual([5, 8, 199, 201, 397]);
      // largestUid's probe (from uidNext - 8: 393..397), then each range up to the record after it
      // (5, 8, 9; 199, 201, 202; 397): 12 of the mailbox's 394
      expect(read()).toBe(5 + 3 + 3 + 1);
      expect(await uidsOf(seen, '*')).toEqual([397]);
      expect(await uidsOf(seen, '398:*')).toEqual([397]); // `*` is 397: 398:* is 397:398
      expect(await uidsOf(seen, '401:500')).toEqual([]);
      expect(await uidsOf(seen, '1:3')).toEqual([1, 2, 3]);
      await expect(uidsOf(seen, '0')).rejects.toMatchObject({ code: 'INVALID' });
      await expect(messagesInSet(seen, 'Nope', '1').next()).rejects.toMatchObject({ code: 'NOT_FOUND' });
    } finally {
      tunable.largestUidProbeUids = saved;
      await store.close();
    }
  });
});

/** A store whose INBOX holds a run and two more messages, beside an empty `other` mailbox (closed: the CLI opens it). */
async function overOneRun(other: string): Promise<{ dir: string; count: number; store: Store }> {
  requireBuilt();
  const dir = join(tmpDir('uidruns'), 's');
  const store = await Store.init(dir);
  const count = limits.uidSetChunkMessages + 2;
  await store.createMailbox('INBOX');
  await store.createMailbox(other);
  await store.appendBatch('INBOX', Array.from({ length: count }, (_, i) => ({ bytes: Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`) })));
  return { dir, count, store };
}

describe('expunge and flags over a set bigger than a run', () => {
  it('change every message, in runs of limits.uidSetChunkMessages (a modseq for each part the store commits a run in): nothing left out, nothing else touched', { timeout: 60_000 }, async () => {
    const { dir, count, store } = await overOneRun('Other');
    await store.append('Other', Buffer.from('Subject: other\r\n\r\nbody\r\n'));
    await store.close();
    const flagged = await json<{ updated: number[]; modseq: number }>(['flags', 'INBOX', '1:*', '--add', '$Done'], { store: dir });
    expect(flagged.updated.length).toBe(count);
    const reopened = await Store.open(dir);
    const modseqs = new Set<number>();
    for await (const info of reopened.messages('INBOX')) {
      expect(info.flags).toEqual(['$Done']);
      modseqs.add(info.modseq);
    }
    // two runs of the CLI, each committed by the store in parts of limits.uidChangePartMessages (a
    // record each, so that other clients' writes go between them)
    expect(modseqs.size).toBe(Math.ceil(limits.uidSetChunkMessages / limits.uidChangePartMessages) + Math.ceil(2 / limits.uidChangePartMessages));
    expect(Math.max(...modseqs)).toBe(flagged.modseq);
    await reopened.close();
    const expunged = await json<{ expunged: number[] }>(['expunge', 'INBOX', '2:*'], { store: dir });
    expect(expunged.expunged).toEqual(Array.from({ length: count - 1 }, (_, i) => i + 2));
    const after = await Store.open(dir);
    expect((await after.status('INBOX')).messages).toBe(1);
    expect((await after.status('Other')).messages).toBe(1);
    await after.close();
  });

  it('flags and expunge --help name the size of the parts the store commits (a modseq each), not of the CLI\'s runs', async () => {
    requireBuilt();
    const text = async (command: string) => (await run([command, '--help'])).stdout.toString().replace(/\s+/g, ' ');
    expect(await text('flags')).toContain(`one modseq per ${limits.uidChangePartMessages} messages`);
    expect(await text('expunge')).toContain(`records of at most ${limits.uidChangePartMessages} messages`);
  });

  it('expunge, move, copy and flags of a UID set touch nothing in a mailbox made under the name after the set was read (the one read renamed away): NOT_FOUND', async () => {
    const store = await Store.init(join(tmpDir('uidset'), 's'));
    await store.createMailbox('Archive');
    const calls: [string, (s: MailStore) => Promise<unknown>][] = [
      ['expunge', (s) => expungeUidSet(s, 'Trash', '1:*')],
      ['move', (s) => transferUidSet(s, 'move', 'Trash', '1:*', 'Archive')],
      ['copy', (s) => transferUidSet(s, 'copy', 'Trash', '1:*', 'Archive')],
      ['setFlags', (s) => setFlagsOnUidSet(s, 'Trash', '1:*', { add: ['\\Deleted'] })],
    ];
    for (const [method, call] of calls) {
      await store.createMailbox('Trash');
      for (let i = 1; i <= 3; i++) await store.append('Trash', Buffer.from(`Subject: old ${i}\r\n\r\nx\r\n`));
      // a mail client renames Trash and makes a new one, mail goes into it, after the command read the set
      const racing = new Proxy(store, {
        get(target, prop) {
          const value = Reflect.get(target, prop, target) as unknown;
          if (prop !== method) return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          return async (...args: unknown[]) => {
            await target.renameMailbox('Trash', `Trash-${method}`);
            await target.createMailbox('Trash');
            for (let i = 1; i <= 3; i++) await target.append('Trash', Buffer.from(`Subject: new ${i}\r\n\r\nx\r\n`));
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      }) as unknown as MailStore;
      expect(await call(racing).catch((error: unknown) => error), method).toMatchObject({ code: 'NOT_FOUND' });
      expect((await store.status('Trash')).messages, method).toBe(3); // before: the new Trash's three expunged or moved
      expect((await store.status(`Trash-${method}`)).messages, method).toBe(3);
      expect((await store.status('Archive')).messages, method).toBe(0);
      for (let uid = 1; uid <= 3; uid++) expect((await store.messageInfo('Trash', uid)).flags, method).toEqual([]); // no flag set there
      await store.deleteMailbox('Trash', {});
    }
    await store.close();
  });

  it('move goes in runs too (RFC 6851: a COPYUID a run), every message in exactly one place; copy stays one call (one run of uids, committed in parts)', { timeout: 60_000 }, async () => {
    const { dir, count, store } = await overOneRun('Archive');
    await store.close();
    const moved = await json<{ mapping: [number, number][] }>(['move', 'INBOX', '1:*', 'Archive'], { store: dir });
    expect(moved.mapping).toEqual(Array.from({ length: count }, (_, i) => [i + 1, i + 1]));
    const copied = await json<{ mapping: [number, number][] }>(['copy', 'Archive', '1:*', 'INBOX'], { store: dir });
    expect(copied.mapping.length).toBe(count);
    const reopened = await Store.open(dir);
    const modseqs = async (mailbox: string) => {
      const seen = new Set<number>();
      for await (const info of reopened.messages(mailbox)) seen.add(info.modseq);
      return seen.size;
    };
    expect((await reopened.status('Archive')).messages).toBe(count);
    // two runs of the CLI, and one copy call, each committed by the store in parts of
    // limits.uidChangePartMessages (a record each, so that other clients' writes go between them)
    const parts = (uids: number) => Math.ceil(uids / limits.uidChangePartMessages);
    expect(await modseqs('Archive')).toBe(parts(limits.uidSetChunkMessages) + parts(2));
    expect(await modseqs('INBOX')).toBe(parts(count));
    expect(copied.mapping).toEqual(Array.from({ length: count }, (_, i) => [i + 1, count + i + 1])); // one run (COPYUID)
    await reopened.close();
  });
});

describe('resolveUidSet over a sparse mailbox', () => {
  it('gives the uids there are, not every number up to the largest: uids 1, 5,000,001 and 4294967295 (after XFER or a raised uidNext)', async () => {
    const store = await Store.init(join(tmpDir('sparse'), 's'));
    try {
      await store.createMailbox('INBOX');
      const id = Buffer.from((await store.mailbox('INBOX')).id.replace(/-/g, ''), 'hex');
      const jumpTo = (uidNext: number) => store.replication().commitOps(async ({ view }) => {
        const box = (await view.get<MailboxInfo>(keys.info(id)))!;
        return { ops: [{ op: 'state.mailbox', info: { ...box, uidNext } }], result: undefined };
      });
      await store.append('INBOX', Buffer.from('Subject: 1\r\n\r\n1\r\n'));
      await jumpTo(5_000_001);
      await store.append('INBOX', Buffer.from('Subject: 2\r\n\r\n2\r\n'));
      expect(await resolveUidSet(store, 'INBOX', '1:*')).toEqual([1, 5_000_001]);
      await jumpTo(4_294_967_295);
      await store.append('INBOX', Buffer.from('Subject: 3\r\n\r\n3\r\n'));
      expect(await resolveUidSet(store, 'INBOX', '1:*')).toEqual([1, 5_000_001, 4_294_967_295]);
      expect(await resolveUidSet(store, 'INBOX', '2:5000001,4294967295')).toEqual([5_000_001, 4_294_967_295]);
      // a dense set stays as it was: the numbers of the set, up to the largest uid
      expect(await resolveUidSet(store, 'INBOX', '1:3')).toEqual([1, 2, 3]);
    } finally {
      await store.close();
    }
  });
});
