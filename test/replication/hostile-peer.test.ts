// Peers that hold the replication key but do not play by the protocol: an XFER target or a primary
// answering with an error code this mailstore does not know (a newer one, or a hostile one), and a
// primary welcoming a replica with another store's id. Each is a clear, known code; nothing of the
// store is lost or taken from another store.
import { Tag } from 'cbor-x';
import { afterEach, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { xferUser } from '../../src/replication/xfer.js';
import { listen, type Connection, type Listener, type Message } from '../../src/replication/transport.js';
import { readKeyFile } from '../../src/replication/key.js';
import { startReplica, type ReplicaHandle } from '../../src/replication/replica.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { MailstoreError } from '../../src/errors.js';
import { encodeCbor } from '../../src/index/codec.js';
import { exitCodeFor, EXIT } from '../../src/cli/exit-codes.js';
import { tmpDir } from '../helpers/tmp.js';
import { keyFile, msg, quiet, startPair, until } from './helpers.js';

let listener: Listener | undefined;
afterEach(async () => {
  await listener?.close();
  listener = undefined;
});

/** A peer on loopback that runs `serve` on each connection (the real transport, the key checked). */
async function peer(key: string, serve: (connection: Connection) => Promise<void>): Promise<string> {
  listener = await listen('127.0.0.1:0', await readKeyFile(nodeFileSystem, key), (connection) => { serve(connection).catch(() => connection.close()); }, quiet);
  return `127.0.0.1:${listener.port}`;
}

describe('a peer answering with an error code this mailstore does not know', () => {
  it('is REFUSED (exit 3), never an error the CLI exits 0 for; the XFER source keeps every message', async () => {
    const key = keyFile();
    const to = await peer(key, async (connection) => {
      await connection.expect('hello', 5000);
      await connection.send({ t: 'welcome', storeId: 'another' });
      for (let m = await connection.next(); m; m = await connection.next()) await connection.send({ t: 'error', code: 'FROM_THE_FUTURE', message: 'a code of a newer mailstore' });
    });
    const store = await Store.open(tmpDir('a'), { create: true });
    try {
      await store.createMailbox('user/bob/INBOX', { owner: 'bob' });
      for (let i = 1; i <= 3; i++) await store.append('user/bob/INBOX', msg(i));
      const error = await xferUser(store, { user: 'bob', to, keyFile: key }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MailstoreError);
      expect(error).toMatchObject({ code: 'REFUSED', message: expect.stringMatching(/FROM_THE_FUTURE/) });
      expect(exitCodeFor(error)).toBe(EXIT.refused);
      for (let i = 1; i <= 3; i++) expect(await store.fetch('user/bob/INBOX', i)).toEqual(msg(i));
    } finally {
      await store.close();
    }
  }, 30_000);

  it('a MailstoreError of a code not in the table exits as a bug (70), never 0', () => {
    expect(exitCodeFor(new MailstoreError('NO_SUCH_CODE' as never, 'x'))).toBe(EXIT.internal);
  });
});

describe('a primary that welcomes a replica with another store\'s id', () => {
  it('is refused by the replica (REFUSED, said in its status), which applies nothing from it', async () => {
    const pair = await startPair();
    const { key, replicaDir, replicaOptions } = pair;
    await pair.close();
    let welcomed = 0;
    let answeredAfterWelcome = false;
    const address = await peer(key, async (connection) => {
      const hello = await connection.expect('hello', 5000);
      welcomed++;
      await connection.send({ t: 'welcome', identity: Buffer.alloc(0), epoch: hello.epoch, storeId: 'f0000000-0000-4000-8000-000000000000' });
      answeredAfterWelcome = (await connection.next(1000).catch(() => undefined)) !== undefined;
    });
    const replica = await startReplica(replicaDir, { ...replicaOptions, primary: address });
    try {
      await until(async () => welcomed > 0 && /another store/.test((await replica.status()).lastError ?? ''), 15_000, 'the refusal');
      expect(answeredAfterWelcome).toBe(false);
    } finally {
      await replica.close();
    }
  }, 30_000);
});

/** A replica that holds message 1 of INBOX (uid 1) and was stopped with its primary: a test starts it again against a fake primary. */
async function stoppedReplica() {
  const pair = await startPair();
  await pair.primaryStore.append('INBOX', msg(1));
  await until(async () => (await pair.replica.status()).seq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica to catch up');
  const seqBefore = pair.primaryStore.changes.lastSeq;
  const inboxId = Buffer.from((await pair.primaryStore.mailbox('INBOX')).id.replaceAll('-', ''), 'hex');
  await pair.close();
  return { key: pair.key, replicaDir: pair.replicaDir, replicaOptions: pair.replicaOptions, seqBefore, inboxId };
}

/**
 * A primary that welcomes the replica as its own and then sends one of `frames` per session (the
 * replica reconnects after each refusal); `answered` gets the replica's answer's type, or the code
 * the session ended with.
 */
function framePerSession(key: string, frames: Message[], answered: (answer: unknown) => void): Promise<string> {
  return peer(key, async (connection) => {
    const hello = await connection.expect('hello', 5000);
    await connection.send({ t: 'welcome', identity: Buffer.alloc(0), epoch: hello.epoch, storeId: hello.storeId });
    const frame = frames.shift();
    if (!frame) return;
    await connection.send(frame);
    answered(await connection.next(5000).then((m) => m?.t, (e: MailstoreError) => e.code));
  });
}

/**
 * Starts the stopped replica against a primary that sends `frames`, one a session: each but the
 * last is refused (never acknowledged), the last taken; `then` looks at the replica before it closes.
 */
async function refusedThenTaken(stopped: Awaited<ReturnType<typeof stoppedReplica>>, frames: Message[], then?: (replica: ReplicaHandle) => Promise<void>): Promise<void> {
  const answers: unknown[] = [];
  const address = await framePerSession(stopped.key, [...frames], (answer) => answers.push(answer));
  const replica = await startReplica(stopped.replicaDir, { ...stopped.replicaOptions, primary: address });
  try {
    await until(() => answers.length === frames.length, 30_000, 'a session per frame');
    expect(answers.slice(0, -1)).not.toContain('ack');
    expect(answers.at(-1)).toBe('ack');
    expect((await replica.status()).seq).toBe(stopped.seqBefore + 1);
    await then?.(replica);
  } finally {
    await replica.close();
  }
}

describe('a primary sending records a journal cannot take', () => {
  it('records whose seqs skip, a payload that is no CBOR, or an empty one: INVALID from the primary, never a halted replica; the replica keeps what it had and takes the next good round', async () => {
    const stopped = await stoppedReplica();
    const { seqBefore } = stopped;
    const good = encodeCbor({ ops: [], end: true });
    const rounds: [number, Buffer][][] = [
      [[seqBefore + 1, encodeCbor({ ops: [] })], [seqBefore + 3, good]], // a gap
      [[seqBefore + 1, Buffer.from([0xff, 0xff, 0xff])]], // no CBOR
      [[seqBefore + 1, Buffer.alloc(0)]],
      [[seqBefore + 1, good]],
    ];
    await refusedThenTaken(stopped, rounds.map((records) => ({ t: 'records', records, tails: [] })), async (replica) => {
      expect(await replica.store.fetch('INBOX', 1)).toEqual(msg(1));
    });
  }, 40_000);
});

describe('a primary sending ops of the wrong shape', () => {
  it('a uid that is no uid, flags that are no list, a hash missing, an op of no known kind, ops that are no list: INVALID before anything is written, never a halted replica; it reopens and takes the next good round', async () => {
    const stopped = await stoppedReplica();
    const { replicaDir, seqBefore, inboxId } = stopped;
    const hash = Buffer.alloc(32, 1);
    const add = { op: 'message.add', id: inboxId, uid: 2, hash, size: 10, date: 0, flags: [], pack: 0, offset: 0 };
    const bad: unknown[] = [
      { ops: [{ op: 'message.flags', id: inboxId, set: [['x', ['\\Seen']]] }], end: true },
      { ops: [{ op: 'message.flags', id: inboxId, set: [[1, '\\Seen']] }], end: true },
      { ops: [{ ...add, hash: undefined }], end: true },
      { ops: [{ op: 'mailbox.explode', id: inboxId }], end: true },
      { ops: 'all of them', end: true },
      { ops: [{ op: 'message.expunge', id: inboxId, uids: [1, -1] }], end: true },
    ];
    const rounds: [number, Buffer][][] = [
      ...bad.map((payload): [number, Buffer][] => [[seqBefore + 1, encodeCbor(payload)]]),
      [[seqBefore + 1, encodeCbor({ ops: [{ op: 'message.flags', id: inboxId, set: [[1, ['\\Seen']]] }], end: true })]],
    ];
    await refusedThenTaken(stopped, rounds.map((records) => ({ t: 'records', records, tails: [] })), async (replica) => {
      expect((await replica.store.messages('INBOX').next()).value).toMatchObject({ uid: 1, flags: ['\\Seen'] });
    });
    const reopened = await Store.open(replicaDir);
    try {
      expect(await reopened.fetch('INBOX', 1)).toEqual(msg(1));
      expect(reopened.changes.lastSeq).toBe(seqBefore + 1);
    } finally {
      await reopened.close();
    }
  }, 60_000);
});

describe('a synchronous primary sending a tentative round of the wrong shape', () => {
  it('is refused INVALID, never held or acknowledged: the replica, once its primary is gone, is promoted (a held round that could never commit refused promotion for good)', async () => {
    const stopped = await stoppedReplica();
    const { seqBefore, inboxId } = stopped;
    const answers: unknown[] = [];
    const address = await framePerSession(stopped.key, [
      { t: 'tentative', r: [[seqBefore + 1, encodeCbor({ ops: [{ op: 'message.flags', id: inboxId, set: [['x', []]] }], end: true })]], p: [], k: [] },
    ], (answer) => answers.push(answer));
    const replica = await startReplica(stopped.replicaDir, { ...stopped.replicaOptions, primary: address });
    try {
      await until(() => answers.length === 1, 15_000, 'the answer');
      expect(answers[0]).not.toBe('ack');
      expect(await replica.promote()).toMatchObject({ epoch: 1 });
      expect(replica.store.changes.lastSeq).toBe(seqBefore + 2); // the mailboxes' new uidValidity (this primary did not say what it committed), the epoch record
      expect(await replica.store.fetch('INBOX', 1)).toEqual(msg(1));
    } finally {
      await replica.close();
    }
  }, 30_000);
});

describe('a primary sending CBOR that costs more to decode than its size', () => {
  it('a bignum in a frame or in a record, empty maps by the million: INVALID before decoding, the replica never stalls; it takes the next good round', async () => {
    const stopped = await stoppedReplica();
    const { seqBefore } = stopped;
    const bignum = new Tag(Buffer.alloc(150_000, 0xff), 2); // decoded: ~20 s of one thread, quadratic in its length
    const good: [number, Buffer][] = [[seqBefore + 1, encodeCbor({ ops: [], end: true })]];
    const frames: Message[] = [
      { t: 'records', records: good, tails: [], pad: bignum },
      { t: 'records', records: [[seqBefore + 1, encodeCbor({ ops: [{ op: 'meta.set', key: 'x', value: bignum }], end: true })]], tails: [] },
      { t: 'records', records: [[seqBefore + 1, encodeCbor({ ops: [], end: true, pad: Array.from({ length: 1_000_000 }, () => ({})) })]], tails: [] },
      { t: 'records', records: good, tails: [] },
    ];
    await refusedThenTaken(stopped, frames);
  }, 40_000);
});

describe('a primary whose resync snapshot does not end', () => {
  it('snapshot bytes past the size it offered are INVALID at once: the replica writes no more than the offer, and keeps its state', async () => {
    const { key, replicaDir, replicaOptions } = await stoppedReplica();
    let frames = 0;
    let ended = false;
    const address = await peer(key, async (connection) => {
      const hello = await connection.expect('hello', 5000);
      await connection.send({ t: 'welcome', identity: Buffer.alloc(0), epoch: hello.epoch, storeId: hello.storeId });
      await connection.send({ t: 'resync', seq: 1000, bytes: 10, name: 'snapshot-1000' });
      const chunk = Buffer.alloc(64 * 1024, 1);
      for (; frames < 2000 && !connection.closed; frames++) await connection.send({ t: 'snapshot', offset: frames * chunk.length, bytes: chunk });
      ended = true;
    });
    const replica = await startReplica(replicaDir, { ...replicaOptions, primary: address });
    try {
      await until(async () => /past the 10 bytes it offered/.test((await replica.status()).lastError ?? ''), 15_000, 'the refusal');
      expect(ended && frames === 2000).toBe(false);
      expect(await replica.store.fetch('INBOX', 1)).toEqual(msg(1));
    } finally {
      await replica.close();
    }
  }, 30_000);
});

describe('a primary sending pack bytes for no pack', () => {
  it('a pack "number" that is none, or an offset below 0, is INVALID; no file of another name appears in packs/', async () => {
    const { key, replicaDir, replicaOptions } = await stoppedReplica();
    const packsBefore = readdirSync(join(replicaDir, 'packs')).sort();
    const frames = [{ pack: '../../x', offset: 0 }, { pack: 1.5, offset: 0 }, { pack: -3, offset: 0 }, { pack: 1, offset: -1 }];
    const sent: unknown[] = [];
    const address = await framePerSession(key, frames.map((frame) => ({ t: 'pack', ...frame, bytes: Buffer.from('junk') })), (answer) => sent.push(answer));
    const replica = await startReplica(replicaDir, { ...replicaOptions, primary: address });
    try {
      await until(async () => sent.length === 4 && /not a pack number/.test((await replica.status()).lastError ?? ''), 20_000, 'four refusals');
      expect(readdirSync(join(replicaDir, 'packs')).sort()).toEqual(packsBefore);
      expect(await replica.store.fetch('INBOX', 1)).toEqual(msg(1));
    } finally {
      await replica.close();
    }
  }, 40_000);
});
