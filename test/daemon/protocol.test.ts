// The frame codec on its own: frames cut anywhere still decode, an oversized length is refused
// before it is buffered, byte strings travel detached and come back exact, errors keep their code.
import { describe, expect, it } from 'vitest';
import { Assembly, FrameReader, chunkFrames, decodeFrame, detach, encodeFrame, fromWireError, toWireError, type Frame } from '../../src/daemon/protocol.js';
import { AssertionFailure, MailstoreError } from '../../src/errors.js';
import { daemonLimits } from '../../src/limits.js';

function catchError(f: () => unknown): MailstoreError {
  try {
    f();
  } catch (error) {
    return error as MailstoreError;
  }
  throw new Error('did not throw');
}

describe('frames', () => {
  it('decodes frames cut at every byte boundary, several per read', () => {
    const frames: Frame[] = [
      { t: 'call', id: 1, m: 'status', a: ['INBOX'] },
      { t: 'res', id: 1, v: { messages: 3, when: new Date(1_700_000_000_123) } },
      { t: 'chunk', id: 2, d: Buffer.from([0, 1, 2, 255]) },
    ];
    const bytes = Buffer.concat(frames.map(encodeFrame));
    for (let cut = 1; cut < bytes.length; cut++) {
      const reader = new FrameReader();
      const payloads = [...reader.push(bytes.subarray(0, cut)), ...reader.push(bytes.subarray(cut))];
      expect(payloads.map(decodeFrame)).toEqual(frames);
      expect(reader.midFrame).toBe(false);
    }
  });

  it('decodes frames fed one byte per read, a body spanning many reads among them', () => {
    const body = Buffer.alloc(3 * 65_536 + 5);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) % 251;
    const frames: Frame[] = [{ t: 'call', id: 1, m: 'append', a: ['INBOX', body] }, { t: 'end', id: 2 }, { t: 'chunk', id: 3, d: Buffer.from('x') }];
    const encoded = frames.map(encodeFrame);
    const bytes = Buffer.concat(encoded);
    const ends = new Set(encoded.map((_, i) => encoded.slice(0, i + 1).reduce((n, e) => n + e.length, 0)));
    const reader = new FrameReader();
    const payloads: Buffer[] = [];
    // between frames only at their ends; the positions where midFrame says otherwise, collected and
    // asserted once (an expect per byte took ~30 s of the suite for 196,000 bytes)
    const wrong: string[] = [];
    for (let at = 0; at < bytes.length; at++) {
      payloads.push(...reader.push(bytes.subarray(at, at + 1)));
      if (reader.midFrame !== !ends.has(at + 1)) wrong.push(`after byte ${at + 1}: midFrame ${reader.midFrame}`);
    }
    expect(wrong.slice(0, 10), `${wrong.length} positions`).toEqual([]);
    const decoded = payloads.map(decodeFrame) as [Extract<Frame, { t: 'call' }>, Frame, Frame];
    expect(decoded).toHaveLength(3);
    expect((decoded[0].a[1] as Buffer).equals(body)).toBe(true);
    expect(decoded.slice(1)).toEqual(frames.slice(1));
  });

  it('decodes a thousand frames arriving in one read, in order', () => {
    const frames: Frame[] = Array.from({ length: 1000 }, (_, i) => ({ t: 'res', id: i + 1, v: { uid: i, hash: 'ab'.repeat(i % 40) } }));
    const payloads = new FrameReader().push(Buffer.concat(frames.map(encodeFrame)));
    expect(payloads.map(decodeFrame)).toEqual(frames);
  });

  it('keeps an encoded frame intact when the next is encoded (the encoder reuses its buffer, encodeFrame copies out)', () => {
    const first = encodeFrame({ t: 'call', id: 1, m: 'append', a: ['INBOX', Buffer.alloc(40_000, 1)] });
    const copy = Buffer.from(first);
    encodeFrame({ t: 'call', id: 2, m: 'append', a: ['INBOX', Buffer.alloc(50_000, 2)] });
    expect(first.equals(copy)).toBe(true);
  });

  it('refuses an oversized frame that follows valid ones in the same read (INVALID)', () => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(daemonLimits.frameBytesMax + 1);
    const valid = encodeFrame({ t: 'end', id: 1 });
    const reader = new FrameReader();
    const error = catchError(() => reader.push(Buffer.concat([valid, valid, head, Buffer.alloc(100)])));
    expect(error.code).toBe('INVALID');
    expect(error.message).toMatch(/exceeds the limit/);
  });

  it('refuses an oversized length at once (INVALID), before buffering it', () => {
    const reader = new FrameReader();
    const head = Buffer.alloc(4);
    head.writeUInt32BE(daemonLimits.frameBytesMax + 1);
    const error = catchError(() => reader.push(head));
    expect(error.code).toBe('INVALID');
    expect(error.message).toMatch(/exceeds the limit/);
  });

  it('refuses what is not a frame: not CBOR, no type, no id, a call without a method (INVALID)', () => {
    for (const payload of [Buffer.from([0xff, 0xff]), Buffer.from([0xa0]), Buffer.from('a1617464636f6c6c', 'hex')]) {
      expect(catchError(() => decodeFrame(payload)).code).toBe('INVALID');
    }
    const noMethod = encodeFrame({ t: 'call', id: 1, a: [] } as unknown as Frame).subarray(4);
    expect(catchError(() => decodeFrame(noMethod)).code).toBe('INVALID');
  });
});

describe('detached byte strings', () => {
  it('sends big byte strings as chunks and puts them back exactly; small ones stay inline', () => {
    const big = Buffer.alloc(3 * daemonLimits.chunkBytes + 17, 7);
    const small = Buffer.from('tiny');
    const value = ['user/a', [{ bytes: big, flags: ['\\Seen'] }, { bytes: small }], { meta: { key: 'k', value: 1 }, skip: undefined, f: () => 1 }];
    const { value: light, blobs } = detach(value);
    expect(blobs).toHaveLength(1);
    const frame = decodeFrame(encodeFrame({ t: 'call', id: 9, m: 'appendBatch', a: light as unknown[], b: blobs.length }).subarray(4)) as Extract<Frame, { t: 'call' }>;
    const assembly = new Assembly(frame.a, frame.b!, Number.MAX_SAFE_INTEGER);
    const chunks = [...chunkFrames(9, blobs)];
    expect(chunks.length).toBe(4);
    for (const chunk of chunks) {
      expect(assembly.complete).toBe(false);
      assembly.add((chunk as Extract<Frame, { t: 'chunk' }>).d);
    }
    expect(assembly.complete).toBe(true);
    const [mailbox, items, options] = assembly.value as [string, { bytes: Buffer; flags?: string[] }[], unknown];
    expect(mailbox).toBe('user/a');
    expect(items[0].bytes.equals(big)).toBe(true); // Buffer.equals: a deep toEqual of 800 KB takes seconds
    expect(items[0].flags).toEqual(['\\Seen']);
    expect(items[1].bytes.equals(small)).toBe(true);
    expect(options).toEqual({ meta: { key: 'k', value: 1 } });
  });

  it('refuses more bytes than announced (INVALID), a wrong count (INVALID), too many in all (TOO_LARGE)', () => {
    const { value, blobs } = detach([Buffer.alloc(daemonLimits.inlineBytesMax + 1)]);
    const assembly = new Assembly(value, 1, Number.MAX_SAFE_INTEGER);
    expect(catchError(() => assembly.add(Buffer.alloc(blobs[0].length + 1))).code).toBe('INVALID');
    expect(catchError(() => new Assembly(value, 2, Number.MAX_SAFE_INTEGER)).code).toBe('INVALID');
    expect(catchError(() => new Assembly(value, 1, 100)).code).toBe('TOO_LARGE');
  });
});

describe('errors across the socket', () => {
  it('keep their code, message and path; a bug stays a bug', () => {
    const back = fromWireError(toWireError(new MailstoreError('NOT_FOUND', 'no mailbox named x', { path: 'x' }))) as MailstoreError;
    expect(back).toBeInstanceOf(MailstoreError);
    expect([back.code, back.message, back.path]).toEqual(['NOT_FOUND', 'no mailbox named x', 'x']);
    expect(fromWireError(toWireError(new AssertionFailure('uid went backwards')))).toBeInstanceOf(AssertionFailure);
    expect(fromWireError({ code: 'NO_SUCH_CODE', message: 'm' })).toBeInstanceOf(AssertionFailure);
  });

  it("a call that cannot load the daemon's own code (its package replaced by an upgrade while it runs) is UNAVAILABLE saying to restart it, not INTERNAL (a bug)", () => {
    const chunk = '/usr/lib/mailstore/dist/src/cli/bundle-compact-BdBhcD_q.cjs';
    const enoent = Object.assign(new Error(`ENOENT: no such file or directory, open '${chunk}'`), { code: 'ENOENT', errno: -2, syscall: 'open', path: chunk });
    const missing = Object.assign(new Error("Cannot find module '/usr/lib/mailstore/dist/src/store/compact.js' imported from /usr/lib/mailstore/dist/src/store/store.js"), { code: 'ERR_MODULE_NOT_FOUND' });
    for (const error of [enoent, missing]) {
      const back = fromWireError(toWireError(error)) as MailstoreError;
      expect(back).toBeInstanceOf(MailstoreError);
      expect(back.code).toBe('UNAVAILABLE');
      expect(back.message).toMatch(/^the daemon could not load .*(bundle-compact-BdBhcD_q\.cjs|compact\.js).*: its program files were replaced or removed while it runs \(an upgrade\?\), and the call stopped there\. Restart the daemon/);
    }
    // a store file that is gone stays what it was: not taken for the program's
    const pack = Object.assign(new Error('ENOENT: open packs/00000001.pack'), { code: 'ENOENT', path: '/var/lib/mailstore/packs/00000001.pack' });
    expect(toWireError(pack).code).toBe('INTERNAL');
  });
});
