// A client of an older mailstore against this daemon, during a rolling upgrade (the daemon first,
// an IMAP server's client library or an MTA's 'mailstore append' later): an error code it does not
// know is taken there for a bug in the daemon (INTERNAL, exit 70). MOVED (session 36) goes to a
// client whose hello does not name it as the older code that says the same: UNAVAILABLE while the
// move is recent (the MTA keeps the mail queued), NOT_FOUND after; the message names the new host.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Socket } from 'node:net';
import { FrameReader, decodeFrame, encodeFrame, type Frame } from '../../src/daemon/protocol.js';
import { limits } from '../../src/limits.js';
import { message, rawConnect, startDaemon, type Running } from './helpers.js';

const closing: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closing.splice(0).reverse()) await close();
});

/** A connection that calls as every client before session 36 did: hello with no arguments. */
async function olderClient(daemon: Running): Promise<(m: string, a: unknown[]) => Promise<Frame>> {
  const socket: Socket = await rawConnect(daemon.socket);
  closing.push(async () => socket.destroy());
  const reader = new FrameReader();
  const waiting = new Map<number, (frame: Frame) => void>();
  socket.on('data', (data) => {
    for (const payload of reader.push(data)) {
      const frame = decodeFrame(payload);
      waiting.get(frame.id)?.(frame);
    }
  });
  let id = 0;
  const call = (m: string, a: unknown[]) => new Promise<Frame>((resolve) => {
    waiting.set(++id, resolve);
    socket.write(encodeFrame({ t: 'call', id, m, a }));
  });
  await call('hello', []);
  return call;
}

async function daemonWithMovedBob(at: number) {
  const daemon = await startDaemon();
  closing.push(() => daemon.server.stop('test'));
  await daemon.store.replication().commitMeta('moved/bob', { to: 'mail2.example:7100', at });
  return daemon;
}

describe('a client of an older mailstore (its hello names no MOVED)', () => {
  it('gets UNAVAILABLE for a recently moved user, not a code it takes for a bug in the daemon; nothing is stored', async () => {
    const daemon = await daemonWithMovedBob(Date.now());
    const call = await olderClient(daemon);
    for (const [m, a] of [['append', ['user/bob/INBOX', message(1)]], ['status', ['user/bob/INBOX']]] as const) {
      const answer = await call(m, [...a]);
      expect(answer).toMatchObject({ t: 'err', e: { code: 'UNAVAILABLE', message: 'user bob moved to mail2.example:7100 by xfer; route its mail there', mayHaveCommitted: false } });
    }
    expect(await daemon.store.listMailboxes()).toEqual([expect.objectContaining({ name: 'user/alice/INBOX' })]);
    // this version's client names MOVED in its hello and gets it
    const client = await daemon.client();
    await expect(client.status('user/bob/INBOX')).rejects.toMatchObject({ code: 'MOVED', moved: { user: 'bob', to: 'mail2.example:7100', permanent: false } });
    await client.close();
  });

  it('gets NOT_FOUND once the move is past the temporary window (by the wall clock, and as long seen by the daemon)', async () => {
    const daemon = await daemonWithMovedBob(Date.now() - limits.xferMovedTempfailMs - 60_000);
    const call = await olderClient(daemon);
    expect(await call('append', ['user/bob/INBOX', message(1)])).toMatchObject({ t: 'err', e: { code: 'UNAVAILABLE' } }); // first seen now
    // the store's monotonic clock (src/monotonic.ts) reads process.hrtime()
    const hrtime = process.hrtime.bind(process);
    const aheadSeconds = Math.ceil((limits.xferMovedTempfailMs + 60_000) / 1000);
    const later = vi.spyOn(process, 'hrtime').mockImplementation(Object.assign(() => { const [s, ns] = hrtime(); return [s + aheadSeconds, ns] as [number, number]; }, { bigint: process.hrtime.bigint }));
    try {
      expect(await call('append', ['user/bob/INBOX', message(1)])).toMatchObject({ t: 'err', e: { code: 'NOT_FOUND', message: 'user bob moved to mail2.example:7100' } });
    } finally {
      later.mockRestore();
    }
  });
});
