// A replica of an older mailstore following a primary of this one (the primary upgraded first,
// against docs/FORMAT.md "Compatibility"): one before session 32 drops what later records carry (an
// undumped mailbox's uidNext), and nothing refused it. A replica's hello now names its replication
// version; the primary logs a warning for one that names none, and a replica of this code is quiet.
import { afterEach, describe, expect, it } from 'vitest';
import { readKeyFile } from '../../src/replication/key.js';
import { REPLICATION_VERSION, connect, type Message } from '../../src/replication/transport.js';
import { newerThan } from '../../src/replication/older-replica.js';
import type { Op } from '../../src/store/records.js';
import { limits } from '../../src/limits.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { msg, startPair, until } from './helpers.js';

const warning = /WARNING: replica 0123456789abcdef runs a mailstore older than this primary's \(its hello names no replication version\): upgrade replicas before their primary/;

describe('a replica whose hello names no version (an older mailstore)', () => {
  it('is served, and the primary logs a warning naming it; a replica of this code gets none', async () => {
    const lines: string[] = [];
    const pair = await startPair({ primary: { log: (line) => lines.push(line) } });
    try {
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq);
      expect(lines.filter((line) => line.includes('WARNING'))).toEqual([]);
      // the hello a replica of session 30 or 33 sends (src/replication/replica.ts there), for this primary's store
      const connection = await connect(pair.address, await readKeyFile(nodeFileSystem, pair.key));
      try {
        await connection.send({ t: 'hello', kind: 'replica', storeId: pair.primaryStore.identity.storeId, nodeId: '0123456789abcdef', lastSeq: pair.primaryStore.changes.lastSeq, tails: [], epoch: 0 });
        expect((await connection.expect('welcome', 5000)).storeId).toBe(pair.primaryStore.identity.storeId);
        await until(() => lines.some((line) => warning.test(line)));
      } finally {
        connection.close();
      }
    } finally {
      await pair.close();
    }
  }, 30_000);
});

/** A replica of session 35 or 36 (its hello names replication version 2), at `lastSeq`: every frame the primary sends it, until it ends the session or sent every record. */
async function versionTwoReplica(pair: Awaited<ReturnType<typeof startPair>>, lastSeq: number): Promise<Message[]> {
  const connection = await connect(pair.address, await readKeyFile(nodeFileSystem, pair.key));
  const got: Message[] = [];
  try {
    await connection.send({ t: 'hello', kind: 'replica', storeId: pair.primaryStore.identity.storeId, nodeId: '0123456789abcdef', lastSeq, tails: [], epoch: 0, version: 2 });
    for (let message = await connection.next(5000); message; message = await connection.next(5000)) {
      got.push(message);
      if (message.t === 'error') break;
      if (message.t !== 'records') continue;
      const seq = (message.records as [number, Buffer][]).at(-1)![0];
      await connection.send({ t: 'ack', seq });
      if (seq === pair.primaryStore.changes.lastSeq) break; // all of it taken
    }
  } finally {
    connection.close();
  }
  return got;
}

const sentSeqs = (frames: Message[]) => frames.filter((m) => m.t === 'records').flatMap((m) => (m.records as [number, Buffer][]).map(([seq]) => seq));

describe('a replica whose hello names replication version 2 (sessions 35 and 36)', () => {
  const part = limits.uidChangePartMessages;
  afterEach(() => { limits.uidChangePartMessages = part; });

  it('is sent no record of a copy in parts (its intent: that version does not undo it when promoted), but REFUSED naming the version to upgrade to; records before it are sent', async () => {
    limits.uidChangePartMessages = 2;
    const pair = await startPair({ fill: async (store) => { await store.createMailbox('Archive'); for (let i = 1; i <= 5; i++) await store.append('INBOX', msg(i)); } });
    try {
      const before = pair.primaryStore.changes.lastSeq;
      await pair.primaryStore.copy('INBOX', [1, 2, 3, 4, 5], 'Archive'); // three parts: the first two carry its intent
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq); // a replica of this code takes it
      expect((await pair.replica.store.status('Archive')).messages).toBe(5);
      const frames = await versionTwoReplica(pair, 1);
      expect(frames.at(-1)).toMatchObject({ t: 'error', code: 'REFUSED', message: expect.stringMatching(/replication version 2.*copy in parts.*Upgrade the replica to mailstore of session 37 or later \(replication version 3 or later/) });
      expect(Math.max(...sentSeqs(frames))).toBe(before); // up to the copy: its first part on was not
      // connecting again it is refused at its hello, before a welcome: it backs off (not ten sessions a second)
      const again = await versionTwoReplica(pair, before);
      expect(again).toEqual([frames.at(-1)]);
    } finally {
      await pair.close();
    }
  }, 30_000);

  it('an XFER\'s moved mark is refused the same way (session 35 stores it without its meaning); a replica of this version takes both', () => {
    const moved = [{ op: 'meta.set', key: 'moved/bob', value: { to: 'mail2.example:7100', at: 1 } }] as Op[];
    expect(newerThan(2, moved)?.what).toMatch(/mark of a user XFER moved away/);
    expect(newerThan(REPLICATION_VERSION, moved)).toBeUndefined();
    expect(newerThan(2, [{ op: 'meta.set', key: 'replication/epoch', value: 1 }] as Op[])).toBeUndefined();
  });

  it("a mailbox's vanished floor (change.floor, session 39) is refused to a replica of sessions 37 and 38 (replication version 3), whose replay refuses the op, naming session 39", () => {
    const floor = [{ op: 'change.floor', id: Buffer.alloc(16), floor: 5, entries: [] }] as Op[];
    expect(newerThan(3, floor)).toMatchObject({ version: 4, what: expect.stringMatching(/vanished floor/) });
    expect(newerThan(REPLICATION_VERSION, floor)).toBeUndefined();
  });

  it("a promotion's new uidValidity is refused to a replica before session 39 (its op-shape check would stop it); a replica of this version takes it", () => {
    const renewed = [{ op: 'mailbox.uidValidity', id: Buffer.alloc(16, 1), uidValidity: 7 }] as Op[];
    expect(newerThan(3, renewed)).toMatchObject({ version: 4, what: expect.stringMatching(/new uidValidity a promotion gives/) });
    expect(newerThan(REPLICATION_VERSION, renewed)).toBeUndefined();
  });
});
