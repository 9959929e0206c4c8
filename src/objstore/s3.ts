// One bucket on S3-compatible object storage (Ceph radosgw in the tests), through the well-kept
// `minio` client: path-style requests, SigV4. Every failure becomes a MailstoreError naming the URL:
// an unreachable endpoint is IO (temporary: the data is not known to be gone), a missing bucket is
// UNMOUNTED (like a vanished partition: nothing may conclude that data was deleted), refused
// credentials are ACCESS, a missing object is NOT_FOUND (the caller decides what that means).
import { Readable } from 'node:stream';
import { createRequire } from 'node:module';
import { AsyncLocalStorage } from 'node:async_hooks';
import http, { type ClientRequest, type RequestOptions } from 'node:http';
import https from 'node:https';
import type * as Minio from 'minio';
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';

export interface BucketAddress {
  /** http(s)://host:port/bucket[/prefix] as given to `init --object-store`. */
  url: string;
  endpoint: URL;
  bucket: string;
  /** Object keys start with this (no leading or trailing slash; may be empty). */
  prefix: string;
}

export interface Credentials {
  accessKey: string;
  secretKey: string;
}

/** Splits `http://host:port/bucket/some/prefix` (path style: the bucket is the first path component). */
export function parseBucketUrl(url: string): BucketAddress {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new MailstoreError('INVALID', `--object-store takes a URL like http://host:port/bucket, got ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new MailstoreError('INVALID', `--object-store takes an http or https URL, got ${parsed.protocol}`);
  const parts = parsed.pathname.split('/').filter(Boolean);
  if (parts.length === 0) throw new MailstoreError('INVALID', `--object-store ${url} names no bucket (http://host:port/BUCKET)`);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(parts[0])) throw new MailstoreError('INVALID', `${parts[0]} is not a valid bucket name (3-63 of a-z, 0-9, '.', '-')`);
  return { url: url.replace(/\/+$/, ''), endpoint: new URL(`${parsed.protocol}//${parsed.host}`), bucket: parts[0], prefix: parts.slice(1).join('/') };
}

/**
 * INVALID for a bucket URL with a user name or password in it (`option`: how it was given): they
 * are never used (the credentials come from a file or the environment), and the URL is kept in the
 * store's settings and printed (init, tier status), so a secret there would be shown to all. Not
 * checked at open: a store that has one goes on opening.
 */
export function refuseCredentialsInUrl(url: string, option: string): void {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    return; // parseBucketUrl says what is wrong with it
  }
  if (parsed.username === '' && parsed.password === '') return;
  throw new MailstoreError('INVALID', `${option}: the URL for ${parsed.host} has a user name or password in it, which is never used and would be stored and printed; give the credentials in a file (ACCESS_KEY:SECRET_KEY, mode 0600) or MAILSTORE_S3_ACCESS_KEY and MAILSTORE_S3_SECRET_KEY`);
}

/** `ACCESS_KEY:SECRET_KEY` (one line) as in the credentials file. */
export function parseCredentials(text: string, path: string): Credentials {
  const line = text.split('\n')[0].trim();
  const colon = line.indexOf(':');
  if (colon <= 0 || colon === line.length - 1) throw new MailstoreError('INVALID', `${path} must hold one line ACCESS_KEY:SECRET_KEY`, { path });
  return { accessKey: line.slice(0, colon), secretKey: line.slice(colon + 1) };
}

/** The HTTP requests one Bucket.call has in flight: destroyed when it gives up on them. */
const callRequests = new AsyncLocalStorage<Set<ClientRequest>>();

/** minio's transport (`request` is all it calls), noting each request in its call's set. */
function trackedTransport(transport: typeof http | typeof https): { request(options: RequestOptions, callback?: (response: http.IncomingMessage) => void): ClientRequest } {
  return {
    request: (options, callback) => {
      const request = transport.request(options, callback);
      const inFlight = callRequests.getStore();
      if (inFlight) {
        inFlight.add(request);
        request.once('close', () => inFlight.delete(request));
      }
      return request;
    },
  };
}

/** The region every request names (radosgw's default zonegroup answers to it; path-style, no lookup). */
const REGION = 'us-east-1';

export class Bucket {
  private readonly client: Minio.Client;

  constructor(readonly address: BucketAddress, credentials: Credentials) {
    const { endpoint } = address;
    // Loaded here, not at import: minio and its dependencies (xml2js, lodash, ...) took ~40 % of the
    // start-up of every CLI command (store.ts imports the tier), though only a store with a bucket uses it.
    const { Client } = createRequire(import.meta.url)('minio') as typeof Minio;
    this.client = new Client({
      endPoint: endpoint.hostname,
      port: endpoint.port ? Number(endpoint.port) : endpoint.protocol === 'https:' ? 443 : 80,
      useSSL: endpoint.protocol === 'https:',
      accessKey: credentials.accessKey,
      secretKey: credentials.secretKey,
      region: REGION,
      pathStyle: true,
      partSize: limits.objectPartBytes,
      transport: trackedTransport(endpoint.protocol === 'https:' ? https : http) as unknown as Minio.ClientOptions['transport'],
    });
  }

  key(name: string): string {
    return this.address.prefix ? `${this.address.prefix}/${name}` : name;
  }

  urlOf(key: string): string {
    return `${this.address.endpoint.origin}/${this.address.bucket}/${key}`;
  }

  /**
   * Uploads `bytes` (a backup repository's file) with minio's putObject: a Buffer, so minio's retry
   * of a 5xx answer sends it again (a stream would be spent). Its progress is not seen here: the
   * whole upload must end within limits.objectRequestTimeoutMs.
   */
  async put(key: string, bytes: Buffer): Promise<void> {
    await this.call(key, 'uploading', () => this.client.putObject(this.address.bucket, key, bytes, bytes.length));
  }

  /**
   * Uploads `size` bytes that `source` streams, in one PUT of known length and checksums, so
   * neither side holds the object whole: minio's putObject reads a stream shorter than its part
   * size into one buffer (and copies a Buffer), two copies of every 8 MiB pack while a move ran
   * beside an import (bench step tier, the RSS goal). `sums.sha256` (hex) signs the payload over
   * http (SigV4; https sends it unsigned, as minio does); `sums.md5` (base64) makes the object
   * store refuse bytes that changed on the way (Content-MD5).
   */
  async putStream(key: string, source: Readable, size: number, sums: { sha256: string; md5: string }): Promise<void> {
    await this.call(key, 'uploading', async (progress) => {
      // each block the socket takes is progress: a slow link that keeps sending is not a dead one
      const sent = Readable.from((async function* () {
        for await (const block of source) {
          progress();
          yield block as Buffer;
        }
      })(), { objectMode: false });
      const response = await this.client.makeRequestStreamAsync(
        { method: 'PUT', bucketName: this.address.bucket, objectName: key, headers: { 'Content-Length': size, 'Content-MD5': sums.md5 } },
        sent, this.client.enableSHA256 ? sums.sha256 : '', [200], REGION,
      );
      for await (const _ of response); // the answer's body (empty on success)
    });
  }

  /**
   * The `length` bytes at `offset` (a ranged GET), or fewer where the object ends before (a pack
   * scan reads to its end; a caller that needs them all finds the difference); more is IO.
   */
  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    if (length === 0) return Buffer.alloc(0); // no range to ask for: a GET without one is the whole object
    const chunks: Buffer[] = [];
    const n = await this.readRange(key, offset, length, (chunk) => chunks.push(chunk));
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, n);
  }

  /**
   * Bytes [offset, offset + length) of the object in one GET, handed to `onChunk` as they arrive
   * (never concatenated): a whole pack's read-back is one request and holds one network chunk at a
   * time. Fewer bytes than asked is CORRUPT (the object is shorter than recorded); more is IO.
   */
  async streamRange(key: string, offset: number, length: number, onChunk: (chunk: Buffer) => void): Promise<void> {
    const n = await this.readRange(key, offset, length, onChunk);
    if (n !== length) throw new MailstoreError('CORRUPT', `${this.urlOf(key)} gave ${n} bytes at ${offset}, ${length} expected: the object is shorter than recorded`, { path: this.urlOf(key) });
  }

  /**
   * A ranged GET's bytes to `onChunk`; how many came. More than `length` is IO, and stops the
   * answer there: an endpoint that ignored the range (a 200 with the whole object) would give bytes
   * of the wrong place, and one whose body never ends was read until memory ran out.
   */
  private readRange(key: string, offset: number, length: number, onChunk: (chunk: Buffer) => void): Promise<number> {
    return this.call(key, 'reading', async (progress) => {
      const stream = await this.ranged(key, offset, length);
      let read = 0;
      for await (const chunk of stream) {
        progress();
        read += (chunk as Buffer).length;
        if (read > length) throw new Error(`the object store answered more than the ${length} bytes asked for at ${offset} (it ignored the range?)`);
        onChunk(chunk as Buffer);
      }
      return read;
    });
  }

  /**
   * The answer to a ranged GET, as it streams; nothing when the object ends before `offset` (416
   * InvalidRange: an object shorter than recorded, which the callers find as fewer bytes than
   * asked, CORRUPT, as for a range that runs past the end; it was IO, "is the object store reachable?").
   */
  private async ranged(key: string, offset: number, length: number): Promise<Iterable<unknown> | AsyncIterable<unknown>> {
    try {
      return await this.client.getPartialObject(this.address.bucket, key, offset, length);
    } catch (error) {
      if ((error as { code?: string }).code === 'InvalidRange') return [];
      throw error;
    }
  }

  /** The object's size, or undefined when it does not exist. */
  async size(key: string): Promise<number | undefined> {
    try {
      return await this.call(key, 'checking', async () => (await this.client.statObject(this.address.bucket, key)).size);
    } catch (error) {
      if (error instanceof MailstoreError && error.code === 'NOT_FOUND') return undefined;
      throw error;
    }
  }

  /** Size and ETag (quotes removed) of an object; NOT_FOUND when it does not exist. */
  async stat(key: string): Promise<{ size: number; etag: string }> {
    const stat = await this.call(key, 'checking', () => this.client.statObject(this.address.bucket, key));
    return { size: stat.size, etag: stat.etag.replace(/"/g, '').toLowerCase() };
  }

  async remove(key: string): Promise<void> {
    await this.call(key, 'removing', () => this.client.removeObject(this.address.bucket, key));
  }

  /**
   * Keys under `prefix` (one store's packs, a backup repository's files). S3 lists keys in byte
   * order: a key not after the one before is an endpoint that repeats itself (a page answered again
   * and again, always "truncated", was listed until memory ran out), refused IO, as is a listing
   * longer than limits.objectListKeysMax.
   */
  async list(prefix: string): Promise<{ key: string; size: number }[]> {
    return this.call(prefix, 'listing', (progress) => new Promise((resolve, reject) => {
      const out: { key: string; size: number }[] = [];
      const stream = this.client.listObjectsV2(this.address.bucket, prefix, true);
      let last: Buffer | undefined;
      const refuse = (why: string) => {
        stream.destroy();
        reject(new Error(`the object store's listing ${why}`));
      };
      stream.on('data', (item) => {
        progress(); // a long listing (a page of 1,000 keys a request) is one call
        if (!item.name) return;
        const key = Buffer.from(item.name);
        if (last && Buffer.compare(key, last) <= 0) return refuse(`is not in order (${JSON.stringify(item.name)} after ${JSON.stringify(last.toString())}): it repeats itself`);
        if (out.length >= limits.objectListKeysMax) return refuse(`goes past ${limits.objectListKeysMax} keys`);
        last = key;
        out.push({ key: item.name, size: item.size });
      });
      stream.on('error', reject);
      stream.on('end', () => resolve(out));
    }));
  }

  /** The bucket exists and answers (UNMOUNTED when it does not exist, IO when unreachable). */
  async check(): Promise<void> {
    const exists = await this.call('', 'checking the bucket', () => this.client.bucketExists(this.address.bucket));
    if (!exists) throw this.missingBucket();
  }

  private missingBucket(cause?: unknown): MailstoreError {
    return new MailstoreError('UNMOUNTED', `the bucket ${this.address.url} does not exist (deleted, or the wrong endpoint?); nothing in it is assumed lost`, { path: this.address.url, cause });
  }

  /**
   * Runs one request; IO when it makes no progress for limits.objectRequestTimeoutMs: no answer,
   * or no bytes sent or received (`work` calls `progress` as they move). A whole-request limit
   * failed every upload of a backup's 16 MiB data file, or of an 8 MiB pack, over a link slower
   * than ~0.5 MB/s, again at each retry.
   */
  private async call<T>(key: string, what: string, work: (progress: () => void) => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    let expire: (error: Error) => void = () => undefined;
    const timeout = new Promise<never>((_, reject) => { expire = reject; });
    const progress = () => {
      clearTimeout(timer);
      timer = setTimeout(() => expire(Object.assign(new Error(`no progress within ${limits.objectRequestTimeoutMs} ms`), { code: 'ETIMEDOUT' })), limits.objectRequestTimeoutMs);
    };
    progress();
    const inFlight = new Set<ClientRequest>();
    try {
      return await Promise.race([callRequests.run(inFlight, () => work(progress)), timeout]);
    } catch (error) {
      // given up on: its requests go with their connections (a request the endpoint never
      // answered kept its socket, a descriptor and its buffers for good, one more at each retry
      // of a black-holed object store, until the process met EMFILE)
      for (const request of inFlight) request.destroy(error as Error);
      const code = (error as { code?: string }).code ?? '';
      const url = this.urlOf(key);
      if (code === 'NoSuchBucket') throw this.missingBucket(error);
      if (code === 'NoSuchKey' || code === 'NotFound') throw new MailstoreError('NOT_FOUND', `no object ${url}`, { path: url, cause: error });
      if (code === 'AccessDenied' || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch') {
        throw new MailstoreError('ACCESS', `the object store refused ${what} ${url} (${code}): check the credentials`, { path: url, cause: error });
      }
      // SigV4 signs the request's time: with this machine's clock far from the endpoint's (a VM
      // resumed, a clock set by hand) every request is refused, and "is it reachable?" sent the
      // admin to the network. Temporary (IO, retried): it clears when the clock is set right.
      if (code === 'RequestTimeTooSkewed') {
        throw new MailstoreError('IO', `the object store refused ${what} ${url} (RequestTimeTooSkewed): this machine's clock (${new Date().toISOString()}) is too far from the object store's (S3 and radosgw allow 15 minutes); set the clock right (NTP) and it works again; nothing was changed there`, { path: url, cause: error });
      }
      // radosgw's error answers carry a Code and often no Message: the code is the reason then
      throw new MailstoreError('IO', `${what} ${url} failed: ${(error as Error)?.message || code || String(error)}; is the object store reachable?`, { path: url, cause: error });
    } finally {
      clearTimeout(timer);
    }
  }
}
