// FrameSocket builds each frame in one buffer its process shares and reuses, unless a socket still
// holds the last one (the kernel did not take all of it at once): a frame a socket is still sending
// must never be overwritten by the next frame, on that socket or another.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Frame } from '../../src/daemon/protocol.js';
import { FrameSocket } from '../../src/daemon/transport.js';

interface Pair { sender: FrameSocket; received: Frame[]; peer: Socket }

const dirs: string[] = [];
const servers: Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A connected pair over a unix socket: frames sent on `sender` arrive decoded in `received` (while `peer` reads). */
async function pair(): Promise<Pair> {
  const dir = mkdtempSync(join(tmpdir(), 'transport-'));
  dirs.push(dir);
  const path = join(dir, 's.sock');
  const received: Frame[] = [];
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer((socket) => {
      new FrameSocket(socket, { frame: (f) => received.push(f), malformed: (e) => { throw e; }, closed: () => undefined });
      resolve(socket);
    });
    servers.push(server);
    server.listen(path);
  });
  await new Promise((resolve) => setTimeout(resolve, 10));
  const socket = connect(path);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const sender = new FrameSocket(socket, { frame: () => undefined, malformed: () => undefined, closed: () => undefined });
  return { sender, received, peer: await accepted };
}

/** A body whose every byte says which frame it belongs to. */
const body = (n: number, bytes: number) => Buffer.alloc(bytes, n % 251);

describe('FrameSocket writes', () => {
  it('a frame held by a socket whose peer does not read stays intact while the next frames are built, there and on an idle socket', async () => {
    const stalled = await pair(), idle = await pair();
    stalled.peer.pause(); // the kernel's buffers fill: the stalled socket's writes stop completing at once
    let held = 0;
    for (let n = 0; n < 80; n++) {
      const target = n % 2 === 0 ? stalled : idle;
      target.sender.send({ t: 'chunk', id: n, d: body(n, 40_000 + n) });
      if (target === stalled && target.sender.socket.writableLength > 0) held++;
    }
    expect(held).toBeGreaterThan(5); // the case under test happened: frames the socket kept while others were built
    stalled.peer.resume();
    await until(() => stalled.received.length === 40 && idle.received.length === 40);
    for (const { received } of [stalled, idle]) {
      for (const frame of received) {
        const { id, d } = frame as Extract<Frame, { t: 'chunk' }>;
        expect(d.equals(body(id, 40_000 + id))).toBe(true);
      }
    }
    expect(stalled.received.map((f) => f.id)).toEqual(Array.from({ length: 40 }, (_, i) => 2 * i));
  });

  it('frames bigger than the shared buffer and small ones in between arrive exact', async () => {
    const { sender, received } = await pair();
    const sizes = [10, 300_000, 20, 131_000, 131_072, 5];
    for (const [n, size] of sizes.entries()) sender.send({ t: 'chunk', id: n, d: body(n + 1, size) });
    await until(() => received.length === sizes.length);
    expect(received.map((f) => (f as Extract<Frame, { t: 'chunk' }>).d.equals(body(f.id + 1, sizes[f.id]!)))).toEqual(sizes.map(() => true));
    expect(received.map((f) => f.id)).toEqual(sizes.map((_, n) => n));
  });
});

async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setTimeout(resolve, 5));
}
