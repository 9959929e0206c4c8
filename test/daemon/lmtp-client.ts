// A raw LMTP conversation for the tests: bytes in, the final reply lines out. Raw on purpose, so a
// test can send what no well-behaved client would (pipelined commands, bare LF, NUL, a DATA
// without its final dot).
import { connect, type Socket } from 'node:net';

export interface Conversation {
  socket: Socket;
  /** Sends bytes as they are. */
  send(bytes: string | Buffer): void;
  /** Waits until `count` more final reply lines ("250 ...", not "250-...") have arrived; returns them. */
  replies(count: number, timeoutMs?: number): Promise<string[]>;
  /** Resolves when the server closed the connection. */
  closed: Promise<void>;
}

export async function converse(where: { port: number; host?: string } | { path: string }): Promise<Conversation> {
  const socket = 'path' in where ? connect(where.path) : connect(where.port, where.host ?? '127.0.0.1');
  let buffer = '';
  const finals: string[] = [];
  let waiter: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    let end: number;
    while ((end = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (/^\d{3}( |$)/.test(line)) finals.push(line);
    }
    waiter?.();
  });
  const closed = new Promise<void>((resolve) => socket.on('close', () => { waiter?.(); resolve(); }));
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  let taken = 0;
  const conversation: Conversation = {
    socket,
    closed,
    send: (bytes) => { socket.write(bytes); },
    replies: async (count, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      while (finals.length < taken + count) {
        if (socket.destroyed && finals.length < taken + count) break;
        const left = deadline - Date.now();
        if (left <= 0) break;
        await new Promise<void>((resolve) => { waiter = resolve; setTimeout(resolve, left); });
      }
      const got = finals.slice(taken, taken + count);
      taken += got.length;
      if (got.length < count) throw new Error(`expected ${count} replies, got ${got.length}: ${JSON.stringify(got)}`);
      return got;
    },
  };
  await conversation.replies(1); // the greeting
  return conversation;
}
