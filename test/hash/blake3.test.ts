import { describe, expect, it } from 'vitest';
import { createHasher, hashBytes, hashImplementation, hashMatches, nativeHash, wasmHash } from '../../src/hash/blake3.js';

describe('BLAKE3', () => {
  it('uses the native implementation here', () => {
    expect(hashImplementation).toBe('native');
  });

  it('hashMatches: true for the hash of the bytes (a view into a bigger buffer too), false for any other', () => {
    for (const data of [Buffer.alloc(0), Buffer.from('hello'), Buffer.alloc(70_000, 7)]) {
      const hash = hashBytes(data);
      expect(hashMatches(data, hash)).toBe(true);
      const big = Buffer.concat([Buffer.alloc(5), hash, Buffer.alloc(5)]);
      expect(hashMatches(data, big.subarray(5, 37))).toBe(true);
      for (const at of [0, 31]) {
        const other = Buffer.from(hash);
        other[at] ^= 0x01; // the last byte too: base64url's final character carries it
        expect(hashMatches(data, other)).toBe(false);
      }
      expect(hashMatches(data, hash.subarray(0, 31))).toBe(false);
    }
  });

  it('hashMatches: a flipped bit anywhere in the expected hash is a mismatch; a plain Uint8Array compares as a Buffer does', () => {
    const data = Buffer.alloc(5400, 3);
    const hash = hashBytes(data);
    expect(hashMatches(data, new Uint8Array(hash))).toBe(true);
    for (let at = 0; at < hash.length; at++) {
      for (const bit of [0x01, 0x80]) {
        const other = new Uint8Array(hash);
        other[at] ^= bit;
        expect(hashMatches(data, other), `byte ${at} bit ${bit}`).toBe(false);
      }
    }
    // the reused digest buffer does not leak one call's result into the next
    expect(hashMatches(Buffer.from('other'), hash)).toBe(false);
    expect(hashMatches(data, hash)).toBe(true);
  });

  it('native and WebAssembly give the same digests', async () => {
    const sizes = [0, 1, 63, 64, 65, 1023, 1024, 1025, 8192, 100_000, 1 << 20];
    for (const size of sizes) {
      const data = Buffer.alloc(size);
      for (let i = 0; i < size; i++) data[i] = (i * 31 + size) & 0xff;
      expect(nativeHash(data)!.toString('hex'), `size ${size}`).toBe((await wasmHash(data)).toString('hex'));
    }
  });

  it('matches the official test vector for the empty input', () => {
    expect(hashBytes(Buffer.alloc(0)).toString('hex')).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
  });

  it('streaming equals one-shot', async () => {
    const data = Buffer.from('x'.repeat(300_000));
    const h = await createHasher();
    for (let p = 0; p < data.length; p += 7777) h.update(data.subarray(p, p + 7777));
    expect(h.digest().equals(hashBytes(data))).toBe(true);
  });
});

describe('BLAKE3 without the native binary', () => {
  it('falls back to WebAssembly with the same digests (MAILSTORE_HASH=wasm in a child process)', async () => {
    const { spawnSync } = await import('node:child_process');
    const url = new URL('../../dist/src/hash/blake3.js', import.meta.url).href;
    const script = `const m = await import(${JSON.stringify(url)}); console.log(m.hashImplementation, m.hashBytes(Buffer.from('hello')).toString('hex'))`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, MAILSTORE_HASH: 'wasm' }, encoding: 'utf8' });
    expect(r.stdout.trim()).toBe(`wasm ${hashBytes(Buffer.from('hello')).toString('hex')}`);
  });
});

describe('blake3-core.ts without the native binary (the CLI bundle takes it: no top-level await)', () => {
  it('hashBytes before hashReady is an AssertionFailure, never a wrong digest; after it, the same digest', async () => {
    const { spawnSync } = await import('node:child_process');
    const url = new URL('../../dist/src/hash/blake3-core.js', import.meta.url).href;
    const script = `const m = await import(${JSON.stringify(url)});
      let early; try { m.hashBytes(Buffer.from('hello')); early = 'no error'; } catch (error) { early = error.name; }
      await m.hashReady;
      console.log(m.hashImplementation, early, m.hashBytes(Buffer.from('hello')).toString('hex'))`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, MAILSTORE_HASH: 'wasm' }, encoding: 'utf8' });
    expect(r.stdout.trim(), r.stderr).toBe(`wasm AssertionFailure ${hashBytes(Buffer.from('hello')).toString('hex')}`);
  });
});

describe('BLAKE3 on worker threads (HashPool)', () => {
  it('gives the digests hashBytes gives, for every range, across workers, and hands each buffer back', async () => {
    const { HashPool } = await import('../../src/hash/pool.js');
    const pool = HashPool.create(2)!;
    expect(pool.threads).toBe(2);
    try {
      const jobs = Array.from({ length: 8 }, async (_, j) => {
        const buffer = new ArrayBuffer(300_000 + j);
        const bytes = Buffer.from(buffer);
        for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 13 + j) & 0xff;
        const ranges = [0, 0, 1, 63, 100, 1025, 5000, 100_000, 200_000, 99_999 + j];
        const expected = [];
        for (let i = 0; i < ranges.length; i += 2) expected.push(hashBytes(bytes.subarray(ranges[i], ranges[i] + ranges[i + 1])).toString('hex'));
        const done = await pool.hash(buffer, ranges);
        expect(buffer.byteLength).toBe(0); // transferred while the worker had it
        expect(done.buffer.byteLength).toBe(300_000 + j);
        const got = [];
        for (let i = 0; i < expected.length; i++) got.push(Buffer.from(done.digests.subarray(i * 32, i * 32 + 32)).toString('hex'));
        expect(got).toEqual(expected);
      });
      await Promise.all(jobs);
    } finally {
      await pool.close();
    }
    await expect(pool.hash(new ArrayBuffer(8), [0, 8])).rejects.toThrow(/closed/);
  });

  it('hashes a SharedArrayBuffer where it lies (from `at`): nothing transferred, the same buffer back', async () => {
    const { HashPool } = await import('../../src/hash/pool.js');
    const pool = HashPool.create(1)!;
    try {
      const shared = new SharedArrayBuffer(400_000);
      const bytes = Buffer.from(shared);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
      const at = 1000, ranges = [0, 10, 10, 100_000, 150_000, 70_000];
      const done = await pool.hash(shared, ranges, at);
      expect(shared.byteLength).toBe(400_000);
      expect(done.buffer).toBe(shared);
      for (let i = 0; i < ranges.length; i += 2) {
        const expected = hashBytes(bytes.subarray(at + ranges[i], at + ranges[i] + ranges[i + 1])).toString('hex');
        expect(Buffer.from(done.digests.subarray(i * 16, i * 16 + 32)).toString('hex'), `range ${i / 2}`).toBe(expected);
      }
    } finally {
      await pool.close();
    }
  });

  it('is not created for zero threads', async () => {
    const { HashPool } = await import('../../src/hash/pool.js');
    expect(HashPool.create(0)).toBeUndefined();
  });
});
