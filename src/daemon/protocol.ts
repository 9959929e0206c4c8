// The daemon's socket protocol, shared by the server (server.ts) and the client library
// (src/client/client.ts): length-prefixed CBOR frames carrying request ids, byte strings above a
// threshold sent as chunk frames after their frame (so no frame, and no buffer on either side of a
// stream, is ever a whole big body), and errors that keep their MailstoreError code across.
//
// A frame is a 4-byte big-endian payload length, then one CBOR map (docs/FORMAT.md, "Daemon socket").
import { Encoder, Tag } from 'cbor-x';
import { AssertionFailure, ERROR_CODES, MailstoreError, type ErrorCode, type MovedTo } from '../errors.js';
import { CBOR_TAGS_WRITTEN, cborBoundsProblem } from '../index/cbor-bounds.js';
import { daemonLimits } from '../limits.js';

/** Bumped when a frame changes meaning; the hello call returns it. */
export const PROTOCOL_VERSION = 1;

/** The CBOR tag that stands for a byte string sent after its frame as chunk frames (value: its length). */
const DETACHED_TAG = 40_107;
/** The tags a frame may carry: what mailstore's encoder writes (dates), and detached byte strings. */
const FRAME_TAGS: ReadonlySet<number> = new Set([...CBOR_TAGS_WRITTEN, DETACHED_TAG]);

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, variableMapSize: true, tagUint8Array: false });
/**
 * cbor-x's RESET_BUFFER_MODE (encode.js; its index does not export it): the next encode writes over
 * the same buffer instead of moving on and allocating a new one every few frames. encodeFrame
 * copies each result out at once, so one buffer serves every frame (no garbage per body).
 */
const CBOR_RESET_BUFFER_MODE = 1024;
const encodeReusing = (value: unknown): Buffer => (cbor as unknown as { encode(value: unknown, mode: number): Buffer }).encode(value, CBOR_RESET_BUFFER_MODE);

/** An error as it crosses the socket. `code` INTERNAL: not a MailstoreError (a bug on the daemon's side). */
export interface WireError { code: string; message: string; path?: string; mayHaveCommitted?: boolean; moved?: MovedTo }

/**
 * call: client -> daemon, method m with arguments a. res / err: the answer. item: one element of
 * a listing (v), or a message readMessages skipped as corrupt (c). end: a listing or stream is
 * complete. chunk: bytes of the detached byte strings of the last frame of that id, in order, or
 * of a stream. more: the reader consumed n bytes / k items, the sender may go on. cancel: the
 * client no longer wants the listing or stream. Every frame whose v holds detached byte strings
 * says how many (b).
 */
export type Frame =
  | { t: 'call'; id: number; m: string; a: unknown[]; b?: number }
  | { t: 'res'; id: number; v: unknown; b?: number; stream?: boolean; iter?: boolean }
  | { t: 'err'; id: number; e: WireError }
  | { t: 'item'; id: number; v?: unknown; b?: number; c?: { info: unknown; e: WireError } }
  | { t: 'end'; id: number }
  | { t: 'chunk'; id: number; d: Buffer }
  | { t: 'more'; id: number; n: number; k: number }
  | { t: 'cancel'; id: number };

const FRAME_TYPES = new Set(['call', 'res', 'err', 'item', 'end', 'chunk', 'more', 'cancel']);

/** One frame as bytes: the length prefix and the CBOR map. INVALID when it would exceed frameBytesMax. */
export function encodeFrame(frame: Frame): Buffer {
  return encodeFrameInto(frame);
}

/** encodeFrame into the start of `target` when it is big enough (the bytes are a view of it), else into a new buffer. */
export function encodeFrameInto(frame: Frame, target?: Buffer): Buffer {
  const body = encodeReusing(frame);
  if (body.length > daemonLimits.frameBytesMax) {
    throw new MailstoreError('INVALID', `a ${frame.t} frame of ${body.length} bytes exceeds the socket protocol's limit of ${daemonLimits.frameBytesMax} bytes (too many arguments or results in one call)`);
  }
  const size = 4 + body.length;
  const out = target && target.length >= size ? target.subarray(0, size) : Buffer.allocUnsafe(size);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

/** A frame's payload decoded and its shape checked; INVALID for anything else. */
export function decodeFrame(payload: Buffer): Frame {
  // before the decoder: a frame of empty maps decoded to ~60 times its size, and one bignum (tag 2)
  // of 160 KB held the event loop, every client and LMTP session with it, for half a minute
  const problem = cborBoundsProblem(payload, daemonLimits.frameDecodedBytesPerByteMax, FRAME_TAGS);
  if (problem) throw new MailstoreError('INVALID', `malformed frame: ${problem}`);
  let frame: unknown;
  try {
    frame = cbor.decode(payload);
  } catch (error) {
    throw new MailstoreError('INVALID', `malformed frame: not CBOR (${(error as Error).message})`, { cause: error });
  }
  const f = frame as Record<string, unknown> | null;
  if (f === null || typeof f !== 'object' || !FRAME_TYPES.has(f.t as string) || !Number.isSafeInteger(f.id) || (f.id as number) < 0) {
    throw new MailstoreError('INVALID', 'malformed frame: not a map with a known type t and an integer id');
  }
  if (f.t === 'call' && (typeof f.m !== 'string' || !Array.isArray(f.a))) throw new MailstoreError('INVALID', 'malformed call frame: needs a method name m and an argument array a');
  if (f.t === 'call' && (f.a as unknown[]).length > daemonLimits.callArgumentsMax) {
    throw new MailstoreError('INVALID', `malformed call frame: ${(f.a as unknown[]).length} arguments, more than any method takes (${daemonLimits.callArgumentsMax})`);
  }
  if (f.t === 'chunk' && !Buffer.isBuffer(f.d)) throw new MailstoreError('INVALID', 'malformed chunk frame: d is not a byte string');
  if (f.b !== undefined && !(Number.isSafeInteger(f.b) && (f.b as number) >= 0)) throw new MailstoreError('INVALID', 'malformed frame: b is not a count');
  return f as unknown as Frame;
}

/**
 * Cuts a byte stream into frame payloads. Keeps the pieces it was given until a frame is complete
 * (no concatenation per read), and refuses a length above frameBytesMax before buffering any of it.
 */
export class FrameReader {
  private pieces: Buffer[] = [];
  private buffered = 0;
  private wanted = -1;

  /** The length of the frame begun, once its prefix is read; -1 between frames. */
  get frameLength(): number {
    return this.wanted;
  }

  /** A frame has begun and is not complete (the daemon bounds how long that may last). */
  get midFrame(): boolean {
    return this.buffered > 0 || this.wanted >= 0; // a length prefix alone has begun a frame too
  }

  /** The complete payloads in `data` (and what came before); INVALID for an oversized length. */
  push(data: Buffer): Buffer[] {
    this.pieces.push(data);
    this.buffered += data.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.wanted < 0) {
        if (this.buffered < 4) break;
        const head = this.take(4);
        this.wanted = head.readUInt32BE(0);
        if (this.wanted > daemonLimits.frameBytesMax) {
          throw new MailstoreError('INVALID', `frame of ${this.wanted} bytes exceeds the limit of ${daemonLimits.frameBytesMax} bytes`);
        }
      }
      if (this.buffered < this.wanted) break;
      out.push(this.take(this.wanted));
      this.wanted = -1;
    }
    return out;
  }

  private take(length: number): Buffer {
    const first = this.pieces[0];
    if (first && first.length >= length) {
      const out = first.subarray(0, length);
      if (first.length === length) this.pieces.shift();
      else this.pieces[0] = first.subarray(length);
      this.buffered -= length;
      return out;
    }
    // the pieces used up are dropped at once after the copy: a shift per piece made a frame that
    // came in small reads (a slow link, a client writing a byte at a time) cost pieces² moves, a
    // 200 KB frame in one-byte reads minutes of the daemon's event loop
    const out = Buffer.allocUnsafe(length);
    let at = 0;
    let used = 0;
    while (at < length) {
      const piece = this.pieces[used];
      const n = Math.min(piece.length, length - at);
      piece.copy(out, at, 0, n);
      at += n;
      if (n === piece.length) used++;
      else this.pieces[used] = piece.subarray(n);
    }
    this.pieces.splice(0, used);
    this.buffered -= length;
    return out;
  }
}

// ---- byte strings detached from a value and sent as chunks ---------------------------------------

/**
 * A copy of `value` fit for CBOR: byte strings above inlineBytesMax (or past inlineTotalBytesMax in
 * all) replaced by a tag holding their length, those byte strings listed in order; functions and
 * undefined dropped (a callback cannot cross the socket).
 */
export function detach(value: unknown): { value: unknown; blobs: Uint8Array[] } {
  const blobs: Uint8Array[] = [];
  let inline = 0;
  const walk = (v: unknown): unknown => {
    if (v instanceof Uint8Array) {
      if (v.length > daemonLimits.inlineBytesMax || inline + v.length > daemonLimits.inlineTotalBytesMax) {
        blobs.push(v);
        return new Tag(v.length, DETACHED_TAG);
      }
      inline += v.length;
      return v;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object' && !(v instanceof Date)) {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(v)) if (item !== undefined && typeof item !== 'function') out[key] = walk(item);
      return out;
    }
    return typeof v === 'function' ? undefined : v;
  };
  return { value: walk(value), blobs };
}

/** The frames that carry `blobs` after their frame, each at most chunkBytes. */
export function* chunkFrames(id: number, blobs: Uint8Array[]): Generator<Frame> {
  for (const blob of blobs) {
    const bytes = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
    for (let at = 0; at < bytes.length; at += daemonLimits.chunkBytes) yield { t: 'chunk', id, d: bytes.subarray(at, at + daemonLimits.chunkBytes) };
  }
}

interface Hole { parent: Record<string | number, unknown>; key: string | number; size: number; bytes?: Buffer; filled: number }

/**
 * A value received with `count` detached byte strings, filled in by the chunk frames that follow.
 * Refuses (INVALID) a count that does not match its tags and a chunk past a byte string's end, and
 * (TOO_LARGE) byte strings above `bytesMax` in all. Each byte string is allocated when its first
 * chunk arrives, so memory grows with what was sent, not with what was announced.
 */
export class Assembly {
  private readonly holes: Hole[] = [];
  private current = 0;
  readonly bytes: number;
  readonly root: { v: unknown };

  constructor(value: unknown, count: number, bytesMax: number) {
    this.root = { v: value };
    const found: { parent: Record<string | number, unknown>; key: string | number; size: number }[] = [];
    findTags(this.root as Record<string, unknown>, 'v', found);
    if (found.length !== count) throw new MailstoreError('INVALID', `malformed frame: says ${count} detached byte strings, holds ${found.length}`);
    this.bytes = found.reduce((sum, f) => sum + f.size, 0);
    if (this.bytes > bytesMax) throw new MailstoreError('TOO_LARGE', `${this.bytes} bytes of message data in one call exceed the limit of ${bytesMax} bytes`);
    for (const f of found) this.holes.push({ ...f, filled: 0 });
    this.skipFull();
  }

  get complete(): boolean {
    return this.current >= this.holes.length;
  }

  /** The value with its byte strings in place (once complete). */
  get value(): unknown {
    return this.root.v;
  }

  add(chunk: Buffer): void {
    const hole = this.holes[this.current];
    if (!hole || chunk.length > hole.size - hole.filled) throw new MailstoreError('INVALID', 'malformed chunk frame: more bytes than announced');
    hole.bytes ??= Buffer.allocUnsafe(hole.size);
    chunk.copy(hole.bytes, hole.filled);
    hole.filled += chunk.length;
    this.skipFull();
  }

  private skipFull(): void {
    while (this.current < this.holes.length && this.holes[this.current].filled === this.holes[this.current].size) {
      const hole = this.holes[this.current++];
      hole.parent[hole.key] = hole.bytes ?? Buffer.alloc(0);
    }
  }
}

function findTags(parent: Record<string | number, unknown>, key: string | number, out: { parent: Record<string | number, unknown>; key: string | number; size: number }[]): void {
  const v = parent[key];
  if (v instanceof Tag) {
    if (v.tag !== DETACHED_TAG || !Number.isSafeInteger(v.value) || (v.value as number) < 0) throw new MailstoreError('INVALID', `malformed frame: unknown CBOR tag ${v.tag}`);
    out.push({ parent, key, size: v.value as number });
  } else if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) findTags(v as unknown as Record<number, unknown>, i, out);
  } else if (v !== null && typeof v === 'object' && !(v instanceof Date) && !(v instanceof Uint8Array)) {
    for (const k of Object.keys(v)) findTags(v as Record<string, unknown>, k, out);
  }
}

// ---- errors -------------------------------------------------------------------------------------

export function toWireError(error: unknown): WireError {
  const gone = ownCodeGone(error);
  if (gone !== undefined) error = new MailstoreError('UNAVAILABLE', `the daemon could not load ${gone}: its program files were replaced or removed while it runs (an upgrade?), and the call stopped there. Restart the daemon (systemctl restart mailstore, or stop and start mailstore serve) and run it again`);
  if (error instanceof MailstoreError) {
    const wire: WireError = { code: error.code, message: error.message };
    if (error.path !== undefined) wire.path = error.path;
    if (error.mayHaveCommitted !== undefined) wire.mayHaveCommitted = error.mayHaveCommitted;
    if (error.moved !== undefined) wire.moved = error.moved;
    return wire;
  }
  return { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

/**
 * The file of its own code a call failed to load, when that is the failure: the daemon loads a
 * command's modules at its first use, and an upgrade that replaced them under a daemon left running
 * (a build's chunks are named by their hash) failed 'INTERNAL: … ENOENT … bundle-compact-….cjs',
 * a bug by its code. No store file ends in .js, .cjs, .mjs or .node.
 */
function ownCodeGone(error: unknown): string | undefined {
  const { code, path, message } = (error ?? {}) as NodeJS.ErrnoException;
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return `a module of its own (${String(message).split('\n')[0]})`;
  if (code === 'ENOENT' && typeof path === 'string' && /\.(c|m)?js$|\.node$/.test(path)) return `its own file ${path}`;
  return undefined;
}

/**
 * Error codes newer than protocol 1's first clients that a client names in its hello
 * (`hello [{codes}]`). A client that names none (one before session 37; daemons of every version
 * ignore hello's arguments) takes an unknown code for a bug in the daemon (INTERNAL, exit 70), so
 * it is sent the older code that says the same (olderClientError).
 */
export const NEWER_CODES: readonly ErrorCode[] = ['MOVED'];

/** The codes a client's hello arguments name of NEWER_CODES. */
export function codesNamed(helloArgs: unknown[]): ReadonlySet<string> {
  const codes = (helloArgs[0] as { codes?: unknown } | undefined)?.codes;
  return new Set(Array.isArray(codes) ? codes.filter((c) => NEWER_CODES.includes(c as ErrorCode)) : []);
}

/**
 * An error as a client that does not know its code reads it: MOVED while temporary is UNAVAILABLE
 * (an MTA keeps the mail queued, an IMAP server says try later), and past its window NOT_FOUND (what
 * daemons before it answered); the message still names the host.
 */
export function olderClientError(error: unknown, known: ReadonlySet<string>): unknown {
  if (!(error instanceof MailstoreError) || error.code !== 'MOVED' || known.has('MOVED')) return error;
  return new MailstoreError(error.moved?.permanent ? 'NOT_FOUND' : 'UNAVAILABLE', error.message, { path: error.path, mayHaveCommitted: false });
}

/** The daemon's error as the caller sees it: the same MailstoreError code; INTERNAL (a bug) as an AssertionFailure. */
export function fromWireError(wire: WireError): Error {
  const code = typeof wire?.code === 'string' ? wire.code : 'INTERNAL';
  const message = typeof wire?.message === 'string' ? wire.message : 'the daemon sent an error without a message';
  if (Object.hasOwn(ERROR_CODES, code)) {
    const mayHaveCommitted = typeof wire.mayHaveCommitted === 'boolean' ? wire.mayHaveCommitted : undefined;
    const moved = code === 'MOVED' ? wireMoved(wire.moved) : undefined;
    return new MailstoreError(code as ErrorCode, message, { path: typeof wire.path === 'string' ? wire.path : undefined, mayHaveCommitted, ...(moved ? { moved } : {}) });
  }
  const failure = new AssertionFailure(`in the daemon: ${message.replace(/^assertion failed: /, '')}`);
  return failure;
}

/** A MOVED error's where-to as the daemon sent it; one it did not say (or garbled) is taken as temporary. */
function wireMoved(moved: unknown): MovedTo {
  const given = (moved ?? {}) as Partial<MovedTo>;
  return { user: String(given.user ?? ''), to: String(given.to ?? ''), permanent: given.permanent === true };
}

// ---- the methods --------------------------------------------------------------------------------

/** MailStore methods answered with one value (res). */
export const VALUE_METHODS: ReadonlySet<string> = new Set([
  'createMailbox', 'renameMailbox', 'deleteMailbox', 'listMailboxes', 'mailbox', 'status', 'setAcl', 'getAcl', 'append', 'appendBatch',
  'getMeta', 'setFlags', 'expunge', 'copy', 'move', 'stats', 'messageInfo', 'fetch', 'changesSince', 'renameUser', 'deleteUser',
  'movedUsers', 'forgetMovedUser', 'clockReport', 'trustClock',
]);

/** MailStore methods answered with a listing: item frames, then end (or err). */
export const LISTING_METHODS: ReadonlySet<string> = new Set(['messages', 'readMessages']);

/** MailStore methods answered with res {stream: true}, then the bytes as chunk frames, then end (or err). */
export const STREAM_METHODS: ReadonlySet<string> = new Set(['fetchStream']);

/** Methods that change the store: one in flight when the daemon goes away may have committed. */
export const MUTATING_METHODS: ReadonlySet<string> = new Set([
  'createMailbox', 'renameMailbox', 'deleteMailbox', 'setAcl', 'append', 'appendBatch', 'setFlags', 'expunge', 'copy', 'move', 'renameUser', 'deleteUser', 'forgetMovedUser', 'trustClock',
]);

/** The daemon's answer to `hello`, the first call of every client. */
export interface HelloResult {
  protocol: number;
  storeId: string;
  root: string;
  pid: number;
}

/** A listing item's share of the stream window, reckoned the same on both sides: its body, plus a little for the rest. */
export function listingItemBytes(item: unknown): number {
  const body = (item as { body?: Uint8Array } | null)?.body;
  return 256 + (body instanceof Uint8Array ? body.length : 0);
}
