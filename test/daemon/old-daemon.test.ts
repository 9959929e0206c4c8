// The client library of this version against a daemon of an older one, during a rolling upgrade:
// the frames a daemon of commit f76e064 (session 30) answered, captured and replayed
// (fixtures/daemon-f76e064/frames.json). listMailboxes and changesSince go through listing
// procedures that daemon does not have; the client falls back to the calls it answers. A procedure
// with no older form (changeQuota) is refused saying the daemon is older. The CLI shows what its
// answers hold and nothing they lack (stats: free inodes).
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../../src/client/client.js';
import { procedures } from '../../src/daemon/procedures.js';
import { MailstoreError } from '../../src/errors.js';
import { FrameReader, decodeFrame, encodeFrame, type Frame } from '../../src/daemon/protocol.js';
import { requireBuilt, run } from '../cli/helpers.js';
import { tempDir } from './helpers.js';

const fixture = JSON.parse(readFileSync(new URL('../../fixtures/daemon-f76e064/frames.json', import.meta.url), 'utf8')) as { frames: { call: string; answer: string }[] };
const recorded = fixture.frames.map(({ call, answer }) => ({ call: decodeFrame(Buffer.from(call, 'base64')), answer: decodeFrame(Buffer.from(answer, 'base64')) }));

let server: Server | undefined;
const clients: Client[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  await new Promise((done) => (server ? server.close(done) : done(undefined)));
  server = undefined;
});

/** A socket answering each call as the recorded daemon answered the same method and arguments. */
async function oldDaemon(): Promise<string> {
  const path = join(tempDir(), 'old.sock');
  server = createServer((socket) => {
    const reader = new FrameReader();
    socket.on('data', (data) => {
      for (const payload of reader.push(data)) {
        const call = decodeFrame(payload) as Extract<Frame, { t: 'call' }>;
        const match = recorded.find((r) => r.call.t === 'call' && r.call.m === call.m && isDeepStrictEqual(r.call.a, call.a));
        if (!match) throw new Error(`no recorded answer to ${call.m} ${JSON.stringify(call.a)}`);
        socket.write(encodeFrame({ ...match.answer, id: call.id }));
      }
    });
  });
  await new Promise((done) => server!.listen(path, () => done(undefined)));
  return path;
}

describe('a daemon of session 30 (f76e064)', () => {
  it('listMailboxes and changesSince give its answers (it has no mailboxList or changesSinceList procedure)', async () => {
    const client = await Client.connect(await oldDaemon());
    clients.push(client);
    expect(client.daemon?.protocol).toBe(1);
    expect(await client.listMailboxes()).toEqual([{ name: 'INBOX', id: 'c521a124-b5ac-42bf-a7fc-5bbc60fd77a6' }]);
    const changes = await client.changesSince('INBOX', 0);
    expect(changes).toMatchObject({ vanished: [], highestModseq: 3 });
    expect(changes.changed).toHaveLength(1);
    expect(changes.changed[0]).toMatchObject({ uid: 1, size: 21, flags: ['\\Seen'], modseq: 3, hash: '5d7663607cbcf72fc172358e81f4cc7a6989335e773886e18f23aebb6a7e4023' });
  });

  it('a procedure it does not have is INVALID naming the daemon as older, nothing changed', async () => {
    const client = await Client.connect(await oldDaemon());
    clients.push(client);
    const refused = await procedures(client).changeQuota('user/bob', { storage: 1000 }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(MailstoreError);
    expect(refused).toMatchObject({ code: 'INVALID', message: expect.stringMatching(/no procedure "changeQuota": it runs an older mailstore than this one \(pid \d+\); nothing was changed. Restart it with this version/) });
  });
});

describe('the CLI through a daemon of session 30 (f76e064)', () => {
  it('stats prints its answer, without the free inodes it does not report (printed "undefined" before)', async () => {
    requireBuilt();
    const socket = await oldDaemon();
    const stats = await run(['stats'], { store: tempDir(), env: { MAILSTORE_SOCKET: socket } });
    expect(stats.code, stats.stderr).toBe(0);
    const text = stats.stdout.toString();
    expect(text).toMatch(/^messages +1$/m);
    expect(text).toMatch(/^free space +\d+ .*; reserve 64.0 MiB$/m);
    expect(text).not.toMatch(/undefined|free inodes/);
  });
});
