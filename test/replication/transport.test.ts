import { afterEach, describe, expect, it, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import { decodeCbor, encodeCbor } from '../../src/index/codec.js';
import { connect, listen, type Connection, type Listener } from '../../src/replication/transport.js';
import { limits } from '../../src/limits.js';
import { MailstoreError } from '../../src/errors.js';

// A tentative round leaves the primary as encodeCborParts' parts (its bodies uncopied) and the
// replica writes the frame's bytes to its pending file as they arrived: they must be exactly
// encodeCbor's, whatever TLS records and reads the parts were split into.
const PSK = randomBytes(32);

describe('Connection.sendUncopied', () => {
  let listener: Listener | undefined;
  const open: Connection[] = [];
  afterEach(async () => {
    for (const c of open.splice(0)) c.close();
    await listener?.close();
    listener = undefined;
  });

  async function pair(): Promise<{ sender: Connection; receiver: Connection }> {
    let accepted!: (c: Connection) => void;
    const incoming = new Promise<Connection>((resolve) => { accepted = resolve; });
    listener = await listen('127.0.0.1:0', PSK, (c) => accepted(c), () => undefined);
    const receiver = await connect(`127.0.0.1:${listener.port}`, PSK, new Set(['tentative']));
    const sender = await incoming;
    open.push(sender, receiver);
    return { sender, receiver };
  }

  it('delivers encodeCbor\'s exact bytes of a frame holding bodies of every size, in order with plain frames', async () => {
    const { sender, receiver } = await pair();
    const frames = [1, 1023, 1024, 40_000, 200_000].map((size, i) => ({
      t: 'tentative', r: [[i + 1, randomBytes(size)]], p: size > 1024 ? [[0, 2 ** 33, randomBytes(size >> 1)]] : [], k: [[0, 2 ** 33 + (size >> 1)]], ...(i > 0 ? { c: i } : {}),
    }));
    for (const frame of frames) {
      void sender.sendUncopied(frame);
      void sender.send({ t: 'commit', seq: frame.r[0][0] });
    }
    for (const frame of frames) {
      const message = await receiver.next();
      expect(receiver.rawOf(message!)!.equals(encodeCbor(frame))).toBe(true);
      expect(message).toEqual(decodeCbor(encodeCbor(frame)));
      expect(await receiver.next()).toEqual({ t: 'commit', seq: frame.r[0][0] });
    }
  });

  it('a silent peer is UNAVAILABLE after the timeout though the wall clock stepped back an hour meanwhile', async () => {
    const { receiver } = await pair();
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => new Date().getTime() - 3600_000);
    try {
      const hung = new Promise((_, reject) => setTimeout(() => reject(new Error('still waiting after 5 s')), 5000).unref());
      await expect(Promise.race([receiver.next(300), hung])).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    } finally {
      clock.mockRestore();
    }
  });

  it('a frame waiting for room when the peer drops the connection fails UNAVAILABLE: it never waits for ever (an xfer hung on it)', async () => {
    const tunable = limits as { replicationFrameBytesMax: number };
    const saved = tunable.replicationFrameBytesMax;
    tunable.replicationFrameBytesMax = 64 * 1024; // the receiver drops a bigger frame as soon as its length arrives
    try {
      const { sender } = await pair();
      const sent = sender.sendUncopied({ t: 'x', body: Buffer.alloc(32 * 1024 * 1024) }).then(() => 'sent', (error: unknown) => error);
      const outcome = await Promise.race([sent, new Promise((resolve) => setTimeout(() => resolve('still waiting'), 10_000))]);
      expect(outcome).toBeInstanceOf(MailstoreError);
      expect((outcome as MailstoreError).code).toBe('UNAVAILABLE');
    } finally {
      tunable.replicationFrameBytesMax = saved;
    }
  }, 20_000);

  it('refuses a frame once the connection is closed (UNAVAILABLE), as send does', async () => {
    const { sender } = await pair();
    sender.close();
    await expect(sender.sendUncopied({ t: 'tentative', r: [[1, randomBytes(4096)]], p: [], k: [] })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(sender.send({ t: 'ack', seq: 1 })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});
