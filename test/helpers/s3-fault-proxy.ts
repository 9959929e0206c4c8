// A local HTTP proxy in front of a real S3 endpoint (the tests' Ceph radosgw) that injects the
// faults an object store or the network between produces: a refused or dropped connection, an
// S3 error answer (500, 503 SlowDown, 404), an answer cut short of its Content-Length, a body
// with one byte changed under a right status, a request that never gets an answer. Every request
// is forwarded unchanged otherwise (its Host header included, so SigV4 signatures still verify).
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

export type S3Fault =
  /** The connection is closed before any answer. */
  | { kind: 'drop' }
  /** An S3 error answer (no forwarding); `message` '' leaves the Message element out, as radosgw does. */
  | { kind: 'status'; status: number; code: string; message?: string }
  /** The upstream answer, its body cut after `afterBytes` (the connection closed). */
  | { kind: 'cut'; afterBytes: number }
  /** The upstream answer, the body byte at `at` changed (status and length right). */
  | { kind: 'flip'; at: number }
  /** No answer at all (until the proxy closes). */
  | { kind: 'hang' }
  /** A slow link: the request's body and the answer's go on `chunkBytes` at a time, `delayMs` apart. */
  | { kind: 'slow'; chunkBytes: number; delayMs: number };

export interface ProxiedRequest {
  method: string;
  /** The path (bucket/key) and query, as sent. */
  url: string;
  headers: IncomingMessage['headers'];
}

export class S3FaultProxy {
  /** Decides each request's fault (undefined: forwarded unchanged). */
  fault: (request: ProxiedRequest) => S3Fault | undefined = () => undefined;
  /** Every request seen, in order. */
  readonly seen: ProxiedRequest[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server, private readonly upstream: URL) {}

  static async start(upstreamEndpoint: string): Promise<S3FaultProxy> {
    const server = createServer();
    const proxy = new S3FaultProxy(server, new URL(upstreamEndpoint));
    server.on('request', (req, res) => proxy.handle(req, res));
    server.on('connection', (socket) => {
      proxy.sockets.add(socket);
      socket.on('close', () => proxy.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** http://127.0.0.1:PORT: give it where the endpoint would go. */
  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Requests seen so far with this method whose path contains `part`. */
  count(method: string, part = ''): number {
    return this.seen.filter((r) => r.method === method && r.url.includes(part)).length;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const seen: ProxiedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers };
    this.seen.push(seen);
    const fault = this.fault(seen);
    if (fault?.kind === 'drop') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'hang') return;
    if (fault?.kind === 'status') {
      req.resume();
      const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${fault.code}</Code>${fault.message === '' ? '' : `<Message>${fault.message ?? 'injected'}</Message>`}</Error>`;
      res.writeHead(fault.status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) });
      res.end(seen.method === 'HEAD' ? undefined : body);
      return;
    }
    const forwarded = request({ host: this.upstream.hostname, port: this.upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (fault?.kind === 'slow') {
        trickle(answer, res, fault).catch(() => res.socket?.destroy());
        return;
      }
      let at = 0;
      answer.on('data', (chunk: Buffer) => {
        if (fault?.kind === 'cut' && at + chunk.length > fault.afterBytes) {
          res.write(chunk.subarray(0, Math.max(0, fault.afterBytes - at)), () => res.socket?.destroy());
          answer.destroy();
          at += chunk.length;
          return;
        }
        if (fault?.kind === 'flip' && fault.at >= at && fault.at < at + chunk.length) {
          chunk = Buffer.from(chunk);
          chunk[fault.at - at] ^= 0x5a;
        }
        at += chunk.length;
        res.write(chunk);
      });
      answer.on('end', () => res.end());
      answer.on('error', () => res.socket?.destroy());
    });
    forwarded.on('error', () => req.socket.destroy());
    if (fault?.kind === 'slow') trickle(req, forwarded, fault).catch(() => req.socket.destroy());
    else req.pipe(forwarded);
  }
}

/** Copies `from` to `to` a slow link's way: `chunkBytes` at a time, `delayMs` apart. */
async function trickle(from: AsyncIterable<Buffer>, to: Writable, slow: { chunkBytes: number; delayMs: number }): Promise<void> {
  for await (const chunk of from) {
    for (let at = 0; at < chunk.length; at += slow.chunkBytes) {
      await sleep(slow.delayMs);
      if (!to.write(chunk.subarray(at, at + slow.chunkBytes))) await once(to, 'drain');
    }
  }
  to.end();
}
