// smtp-server's DATA parser (SMTPStream._feedDataStream) looks for a line that starts with "."
// (an escape dot, or the final dot) one byte at a time in JavaScript, ~1 ns a byte: the largest
// piece of smtp-server's CPU per delivery at 64 LMTP connections (BENCHMARKS.md "64 LMTP
// connections (session 16)"), beside a copy of every chunk after a message's first. This is the
// same method with that loop on Buffer.indexOf (memchr) and without the copy (emitHeldBytes). It replaces the method only over the very code it was copied from
// (the original's source text is compared), so an upgrade of smtp-server keeps its own parser.
import { createHash } from 'node:crypto';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

/** sha256 of `SMTPStream.prototype._feedDataStream.toString()` in smtp-server 3.21.6 (cjs and esm alike). */
export const ORIGINAL_SCAN_SHA256 = '9d8b903f9a3a63542d72e19a9e2f67009a3b1107a28d57e8e7369355454ff230';

const END_SEQUENCE = Buffer.from('\r\n.\r\n');
const DOT_LINE = Buffer.from('.\r\n');
const LF_DOT = Buffer.from('\n.');

type Done = (error?: Error | null) => void;

/** smtp-server 3.21.6's _feedDataStream, its byte loop replaced by indexOf and its join of chunks avoided (emitHeldBytes). */
function feedDataStream(this: SMTPStream, chunk: Buffer, done: Done): void {
  const dataStream = this._dataStream!;
  if (this._lastBytes && this._lastBytes.length) {
    if (emitHeldBytes(this, chunk)) {
      if (dataStream.writable) dataStream.write(this._lastBytes);
      this._countDataBytes(this._lastBytes.length);
    } else chunk = Buffer.concat([this._lastBytes, chunk], this._lastBytes.length + chunk.length);
    this._lastBytes = false;
  }
  let len = chunk.length;
  if (this._atDataStart && len >= 3 && Buffer.compare(chunk.subarray(0, 3), DOT_LINE) === 0) {
    this._endDataMode(false, chunk.subarray(3), done);
    return;
  }
  if (this._atDataStart && len >= 2 && chunk[0] === 0x2e && chunk[1] === 0x2e) {
    chunk = chunk.subarray(1);
    len--;
    this._atDataStart = false;
  }
  // the original: for (i = 2; i < len - 2; i++) if (chunk[i] === 0x2e && chunk[i - 1] === 0x0a) ...;
  // here each "\n." from index 1 on, its dot at i = at + 1, while i < len - 2
  for (let at = chunk.indexOf(LF_DOT, 1); at !== -1 && at + 1 < len - 2; at = chunk.indexOf(LF_DOT, at + 1)) {
    const i = at + 1;
    if (Buffer.compare(chunk.subarray(i - 2, i + 3), END_SEQUENCE) === 0) {
      const buf = chunk.subarray(0, i);
      this._countDataBytes(buf.length);
      this._endDataMode(buf, chunk.subarray(i + 3), done);
      return;
    }
    if (chunk[i + 1] === 0x2e) {
      const buf = chunk.subarray(0, i);
      this._lastBytes = false;
      this._countDataBytes(buf.length);
      if (dataStream.writable) dataStream.write(buf);
      const rest = chunk.subarray(i + 1);
      setImmediate(() => this._feedDataStream(rest, done));
      return;
    }
  }
  this._lastBytes = chunk.length < 4 ? chunk : chunk.subarray(chunk.length - 4);
  if (this._lastBytes.length >= chunk.length) return done();
  const buf = chunk.subarray(0, chunk.length - this._lastBytes.length);
  this._countDataBytes(buf.length);
  if (!dataStream.writable) return done();
  if (dataStream.write(buf) || dataStream.destroyed) return done();
  const onDrain = () => {
    dataStream.removeListener('drain', onDrain);
    dataStream.removeListener('close', onDrain);
    done();
  };
  dataStream.once('drain', onDrain);
  dataStream.once('close', onDrain);
}

/**
 * The original joins the up to 4 bytes it held back from the last chunk ("\r\n.\r" may be the
 * start of the final dot) to the whole of the next one: a copy of every chunk of a message that
 * takes several reads (~200 MB of 290 at 64 connections, each a Buffer that V8 counts towards its
 * next full GC). When the next chunk is long enough and no line starts with a dot where the two
 * meet, the held bytes are plain content: written out on their own, the chunk is then scanned as
 * it is, and the bytes seen and written are those of the joined scan. Otherwise (a dot at the
 * join, a tiny chunk, the very start of DATA) the original's join.
 */
function emitHeldBytes(parser: SMTPStream, chunk: Buffer): boolean {
  const held = parser._lastBytes as Buffer;
  if (parser._atDataStart || chunk.length < 8) return false;
  // the chunk's own scan sees the joined scan's dots from i = held.length + 2 on; those before it
  // (a "\n." with its dot at i <= held.length + 1) read bytes i - 2 .. i + 2 of the join's first held.length + 4
  const join = Buffer.concat([held, chunk.subarray(0, 4)]);
  const at = join.indexOf(LF_DOT, 1);
  return at === -1 || at + 1 > held.length + 1;
}

/** The parser smtp-server shipped with, kept for the tests that compare the two. */
export const originalFeedDataStream = SMTPStream.prototype._feedDataStream;

/**
 * Puts the indexOf scan in smtp-server's DATA parser when its parser is the one it was copied
 * from; true when it is in place (idempotent).
 */
export function installDataScan(): boolean {
  const proto = SMTPStream.prototype;
  if (proto._feedDataStream === feedDataStream) return true;
  if (createHash('sha256').update(proto._feedDataStream.toString()).digest('hex') !== ORIGINAL_SCAN_SHA256) return false;
  proto._feedDataStream = feedDataStream;
  return true;
}
