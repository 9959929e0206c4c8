// An S3-compatible endpoint that misbehaves on purpose (in-process, on loopback; no Ceph needed):
// a ranged GET answered with more bytes than asked, or with a body that never ends. The client
// stops at what it asked for, with a clear code, its memory bounded by the range.
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Bucket, parseBucketUrl } from '../../src/objstore/s3.js';
import { limits } from '../../src/limits.js';
import { until } from '../helpers/until.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

async function endpoint(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<Bucket> {
  server = createServer(answer);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return new Bucket(parseBucketUrl(`http://127.0.0.1:${port}/hostile`), { accessKey: 'a', secretKey: 'b' });
}

/** A body that never ends: 64 KiB chunks as fast as the client takes them. */
function endless(res: ServerResponse): void {
  res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const more = () => { while (res.write(chunk)); };
  res.on('drain', more);
  more();
}

describe('a hostile object store answering a ranged GET', () => {
  it('a body that never ends (200, chunked) stops at the range asked for: IO, memory bounded, in bounded time', async () => {
    const bucket = await endpoint((_, res) => endless(res));
    const rss = process.memoryUsage().rss;
    const started = Date.now();
    const error = await bucket.getRange('k', 100, 1000).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IO', message: expect.stringMatching(/more than the 1000 bytes asked/) });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(process.memoryUsage().rss - rss).toBeLessThan(64 * 1024 * 1024);
    const streamed = await bucket.streamRange('k', 0, 1000, () => undefined).catch((e: unknown) => e);
    expect(streamed).toMatchObject({ code: 'IO' });
  });

  it('more bytes than asked (a 200 with the whole object) is IO, never bytes from the wrong place; fewer is the object\'s end (CORRUPT for a stream)', async () => {
    let body = Buffer.alloc(5000, 0x62);
    const bucket = await endpoint((_, res) => { res.writeHead(200, { 'Content-Length': body.length }); res.end(body); });
    await expect(bucket.getRange('k', 1000, 100)).rejects.toMatchObject({ code: 'IO' });
    body = Buffer.alloc(50, 0x62);
    expect((await bucket.getRange('k', 0, 100)).length).toBe(50);
    await expect(bucket.streamRange('k', 0, 100, () => undefined)).rejects.toMatchObject({ code: 'CORRUPT' });
    body = Buffer.alloc(100, 0x62);
    expect((await bucket.getRange('k', 0, 100)).equals(body)).toBe(true);
  });
});

/** A ListObjectsV2 page of `keys`, truncated (another page follows) when `more`. */
function listing(keys: string[], more: boolean, token: string): string {
  const contents = keys.map((key) => `<Contents><Key>${key}</Key><Size>1</Size><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"e"</ETag></Contents>`).join('');
  return `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>hostile</Name><Prefix></Prefix><KeyCount>${keys.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>${more}</IsTruncated>${more ? `<NextContinuationToken>${token}</NextContinuationToken>` : ''}${contents}</ListBucketResult>`;
}

describe('a hostile object store listing keys', () => {
  it('a listing that repeats its page for ever (always truncated) is IO, in bounded time and memory', async () => {
    let pages = 0;
    const bucket = await endpoint((_, res) => {
      pages++;
      res.writeHead(200, { 'Content-Type': 'application/xml' });
      res.end(listing(Array.from({ length: 1000 }, (_, i) => `k${String(i).padStart(6, '0')}`), true, 'again'));
    });
    const error = await bucket.list('').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IO', message: expect.stringMatching(/not in order/) });
    expect(pages).toBeLessThan(5);
  });

  it('a well-ordered listing is read whole', async () => {
    const bucket = await endpoint((req, res) => {
      const second = (req.url ?? '').includes('continuation-token=next');
      res.writeHead(200, { 'Content-Type': 'application/xml' });
      res.end(second ? listing(['b1', 'b2'], false, '') : listing(['a1', 'a2'], true, 'next'));
    });
    expect((await bucket.list('')).map((o) => o.key)).toEqual(['a1', 'a2', 'b1', 'b2']);
  });
});

describe('an object store that stops answering (black-holed, hung)', () => {
  const saved = limits.objectRequestTimeoutMs;
  afterEach(() => { (limits as { objectRequestTimeoutMs: number }).objectRequestTimeoutMs = saved; });

  it('a request that gets no answer, or a body that stops half way, is IO after the timeout and its connection is closed: calls during an outage leave no sockets behind', async () => {
    (limits as { objectRequestTimeoutMs: number }).objectRequestTimeoutMs = 200;
    let open = 0;
    const bucket = await endpoint((req, res) => {
      if (req.method === 'GET' && (req.url ?? '').includes('half')) { // headers and a few bytes, then nothing
        res.writeHead(200, { 'Content-Length': 1000 });
        res.write(Buffer.alloc(10, 0x63));
      }
      // otherwise no answer at all
    });
    server!.on('connection', (socket) => { open++; socket.on('close', () => open--); });
    for (let i = 0; i < 4; i++) {
      const started = Date.now();
      // the message names the 200 ms timer that fired; the time only shows it was not the default
      // 30 s one (a 2 s bound here, 10 times the timer, failed on a loaded machine for no fault)
      await expect(bucket.getRange(i % 2 === 0 ? 'hung' : 'half', 0, 1000)).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/no progress within 200 ms/) });
      expect(Date.now() - started).toBeLessThan(saved / 2);
    }
    await expect(bucket.stat('hung')).rejects.toMatchObject({ code: 'IO' });
    await expect(bucket.put('hung', Buffer.alloc(100))).rejects.toMatchObject({ code: 'IO' });
    // each abandoned request's connection is closed (a descriptor and its buffers each, for ever, before)
    // waited 1 s for them, then asserted: under load their close events came later (a hang guard now)
    await until(() => open === 0, 'every abandoned connection closed');
  });
});
