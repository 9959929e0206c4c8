// LevelDB rolls index/LOG and writes a fresh MANIFEST only at an open: an open store reopens its
// index in place once they pass limits.indexLogBytesMax (src/store/index-log.ts). Counts, not times.
import { describe, expect, it, vi } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { IndexDb } from '../../src/index/index-db.js';
import { levelClass } from '../../src/index/level-module.js';
import { AssertionFailure, MailstoreError } from '../../src/errors.js';
import { keys } from '../../src/keys/index-keys.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';

const BOUND_BYTES = 8 * 1024;
const body = (i: number) => Buffer.from(`Subject: m${i}\r\n\r\nbody of message ${i}\r\n`);

function logBytes(dir: string): number {
  const index = join(dir, 'index');
  return readdirSync(index).filter((name) => name === 'LOG' || name.startsWith('MANIFEST-')).reduce((sum, name) => sum + statSync(join(index, name)).size, 0);
}

/** Runs `fn` with a small bound, measured at every commit. */
async function withSmallBound<T>(fn: () => Promise<T>): Promise<T> {
  const saved = { max: limits.indexLogBytesMax, every: limits.indexLogCheckMs };
  Object.assign(limits, { indexLogBytesMax: BOUND_BYTES, indexLogCheckMs: 0 });
  try {
    return await fn();
  } finally {
    Object.assign(limits, { indexLogBytesMax: saved.max, indexLogCheckMs: saved.every });
  }
}

/** The store at `dir`, opened again, holds every acknowledged [body number, uid] and no more. */
async function expectAcknowledged(dir: string, acked: [number, number][]): Promise<void> {
  const again = await Store.open(dir);
  try {
    expect((await again.status('INBOX')).messages).toBe(acked.length);
    for (const [i, uid] of acked) expect((await again.fetch('INBOX', uid)).equals(body(i))).toBe(true);
  } finally {
    await again.close();
  }
}

const internals = (store: Store) => store as unknown as { compaction?: Promise<unknown>; db: IndexDb };

describe('index LOG and MANIFEST bound', () => {
  it('stay under limits.indexLogBytesMax over many flushes and compactFiles of an open store; every message reads back', () => withSmallBound(async () => {
    const dir = tmpDir();
    const reopen = vi.spyOn(IndexDb.prototype, 'reopen');
    const store = await Store.open(dir, { create: true });
    try {
      await store.createMailbox('INBOX');
      const uids: number[] = [];
      let highest = 0;
      for (let i = 0; i < 120; i++) {
        await internals(store).db.compactFiles(); // LevelDB logs each level it compacts, and edits the MANIFEST
        uids.push((await store.append('INBOX', body(i))).uid); // the commit measures (indexLogCheckMs 0)
        while (internals(store).compaction) await internals(store).compaction;
        highest = Math.max(highest, logBytes(dir));
      }
      expect(reopen.mock.calls.length).toBeGreaterThanOrEqual(3);
      expect(highest).toBeLessThanOrEqual(BOUND_BYTES);
      expect(existsSync(join(dir, 'index', 'LOG.old'))).toBe(true); // one, replaced at each reopen
      for (const [i, uid] of uids.entries()) expect((await store.fetch('INBOX', uid)).equals(body(i))).toBe(true);
      expect(store.health.findings).toEqual([]);
    } finally {
      reopen.mockRestore();
      await store.close();
    }
    const again = await Store.open(dir);
    expect((await again.status('INBOX')).messages).toBe(120);
    await again.close();
  }), 120_000);

  it('appends, fetches, status and message listings running during the reopens all succeed', () => withSmallBound(async () => {
    const dir = tmpDir();
    const original = IndexDb.prototype.reopen;
    const during: Promise<unknown>[] = [];
    let store!: Store;
    // reads started 0-5 turns into each reopen (in its drain, LevelDB's close, its open), with the
    // mailbox cache cold so that their synchronous reads of the mailbox reach the index
    const reopen = vi.spyOn(IndexDb.prototype, 'reopen').mockImplementation(function (this: IndexDb) {
      for (let ticks = 0; ticks <= 5; ticks++) {
        during.push(new Promise((resolve) => {
          let left = ticks;
          const tick = () => {
            if (left-- > 0) return void setImmediate(tick);
            store.maintenance().forgetMailboxes();
            resolve(Promise.all([store.fetch('INBOX', 1), store.status('INBOX'), store.messageInfo('INBOX', 1), (async () => { for await (const _ of store.messages('INBOX')) break; })()]));
          };
          tick();
        }));
      }
      return original.call(this);
    });
    store = await Store.open(dir, { create: true });
    try {
      await store.createMailbox('INBOX');
      await store.append('INBOX', body(-1));
      let stop = false;
      const churn = (async () => { // grows the LOG between the workers' commits
        while (!stop) await internals(store).db.compactFiles();
      })();
      const worker = async (w: number) => {
        for (let i = 0; i < 40; i++) {
          const n = w * 1000 + i;
          const { uid } = await store.append('INBOX', body(n));
          expect((await store.fetch('INBOX', uid)).equals(body(n))).toBe(true);
          expect((await store.status('INBOX')).messages).toBeGreaterThan(0);
          let listed = 0;
          for await (const info of store.messages('INBOX')) if (info.uid <= uid) listed++;
          expect(listed).toBeGreaterThan(0);
        }
      };
      await Promise.all([0, 1, 2, 3, 4, 5].map(worker));
      stop = true;
      await churn;
      while (internals(store).compaction) await internals(store).compaction;
      expect(reopen.mock.calls.length).toBeGreaterThanOrEqual(2);
      await Promise.all(during); // none failed (UNAVAILABLE)
      expect((await store.status('INBOX')).messages).toBe(241);
      expect(store.health.findings).toEqual([]);
    } finally {
      reopen.mockRestore();
      await store.close();
    }
  }), 120_000);

  it('an open that fails after the close (LOCK made a directory: EISDIR) stops the store, told as CLOSED; the next open has every acknowledged message', () => withSmallBound(async () => {
    const dir = tmpDir();
    const lock = join(dir, 'index', 'LOCK');
    const Level = await levelClass();
    const close = Level.prototype.close;
    let armed = false;
    // a real failure of LevelDB's own open, in the moment between its close and that open
    const spy = vi.spyOn(Level.prototype, 'close').mockImplementation(async function (this: InstanceType<typeof Level>, ...args: unknown[]) {
      await (close as (...a: unknown[]) => Promise<void>).apply(this, args);
      if (!armed || this.location !== join(dir, 'index')) return;
      armed = false;
      rmSync(lock);
      mkdirSync(lock);
      writeFileSync(join(lock, 'x'), 'x');
    } as typeof close);
    const stops: MailstoreError[] = [];
    const store = await Store.open(dir, { create: true, onStop: (error) => stops.push(error) });
    const acked: [number, number][] = [];
    try {
      await store.createMailbox('INBOX');
      for (let i = 0; i < 5; i++) acked.push([i, (await store.append('INBOX', body(i))).uid]);
      Object.assign(limits, { indexLogBytesMax: 0 }); // the next commit reopens
      armed = true;
      acked.push([5, (await store.append('INBOX', body(5))).uid]);
      while ((store as unknown as { compaction?: Promise<unknown> }).compaction) await (store as unknown as { compaction: Promise<unknown> }).compaction.catch(() => undefined);
      expect(stops.map((e) => e.code)).toEqual(['CLOSED']);
      expect(stops[0]!.message).toMatch(/reopening the index .* failed: .*the store stopped: nothing acknowledged is lost .* open it again/);
      await expect(store.append('INBOX', body(6))).rejects.toMatchObject({ code: 'CLOSED' });
      await expect(store.status('INBOX')).rejects.toMatchObject({ code: 'CLOSED' });
    } finally {
      spy.mockRestore();
      await store.close();
    }
    await expect(Store.open(dir)).rejects.toBeInstanceOf(MailstoreError); // LOCK still a directory: refused, nothing moved
    rmSync(lock, { recursive: true });
    await expectAcknowledged(dir, acked);
  }), 120_000);

  it('a synchronous index read that meets a reopen without readNow (a bug) stops the store: the read fails an assertion, onStop is told HALTED, the next open has every acknowledged message (was: UNAVAILABLE in the moment between close and open, an answer by luck before it)', () => withSmallBound(async () => {
    const dir = tmpDir();
    const stops: MailstoreError[] = [];
    const store = await Store.open(dir, { create: true, onStop: (error) => stops.push(error) });
    const original = IndexDb.prototype.reopen;
    let unguarded: unknown = 'no read made';
    // a read added without readNow, made as soon as the reopen has begun (before LevelDB's close)
    const spy = vi.spyOn(IndexDb.prototype, 'reopen').mockImplementation(function (this: IndexDb, ...args: Parameters<IndexDb['reopen']>) {
      const reopened = original.apply(this, args);
      void (async () => {
        while (!this.whenOpen()) await new Promise(setImmediate);
        try {
          unguarded = this.getNow(keys.meta('anything'));
        } catch (error) {
          unguarded = error;
        }
      })();
      return reopened;
    });
    const acked: [number, number][] = [];
    try {
      await store.createMailbox('INBOX');
      for (let i = 0; i < 3; i++) acked.push([i, (await store.append('INBOX', body(i))).uid]);
      Object.assign(limits, { indexLogBytesMax: 0 }); // the next commit reopens
      acked.push([3, (await store.append('INBOX', body(3))).uid]);
      while (internals(store).compaction) await internals(store).compaction!.catch(() => undefined);
      expect(spy).toHaveBeenCalled();
      expect(unguarded).toBeInstanceOf(AssertionFailure);
      expect((unguarded as Error).message).toMatch(/a synchronous read of the index at .* during its reopen: a read outside the Writer must go through IndexDb\.readNow/);
      expect(stops.map((e) => e.code)).toEqual(['HALTED']);
      expect(stops[0]!.message).toMatch(/the store stopped itself: .*readNow.*; nothing acknowledged is lost; open it again, and report this message/);
      await expect(store.append('INBOX', body(4))).rejects.toMatchObject({ code: 'HALTED' });
    } finally {
      spy.mockRestore();
      await store.close();
    }
    await expectAcknowledged(dir, acked);
  }), 120_000);

  it('a SIGKILL during a reopen: the store opens and every acknowledged message reads back', async () => {
    const dist = (path: string) => JSON.stringify(new URL(`../../dist/src/${path}`, import.meta.url).href);
    // the child kills itself in its second reopen: `ticks` turns of its event loop into it, or at a
    // step of LevelDB's (its close done, its open begun, its open done), appending and growing the
    // LOG until then
    for (const at of [0, 1, 2, 4, 'closed', 'opening', 'opened']) {
      const dir = tmpDir();
      const child = spawn(process.execPath, ['--input-type=module', '-e', `
        const { Store } = await import(${dist('index.js')});
        const { IndexDb } = await import(${dist('index/index-db.js')});
        const { levelClass } = await import(${dist('index/level-module.js')});
        const { limits } = await import(${dist('limits.js')});
        Object.assign(limits, { indexLogBytesMax: ${BOUND_BYTES}, indexLogCheckMs: 0 });
        const at = ${JSON.stringify(at)};
        const kill = () => process.kill(process.pid, 'SIGKILL');
        let reopens = 0;
        const original = IndexDb.prototype.reopen;
        IndexDb.prototype.reopen = function () {
          if (++reopens === 2 && typeof at === 'number') {
            let left = at;
            const tick = () => (left-- === 0 ? kill() : setImmediate(tick));
            tick();
          }
          return original.call(this);
        };
        const Level = await levelClass();
        const { close, open } = Level.prototype;
        Level.prototype.close = async function (...args) {
          await close.apply(this, args);
          if (reopens === 2 && at === 'closed') kill();
        };
        Level.prototype.open = async function (...args) {
          if (reopens === 2 && at === 'opening') setImmediate(kill);
          await open.apply(this, args);
          if (reopens === 2 && at === 'opened') kill();
        };
        const store = await Store.open(${JSON.stringify(dir)}, { create: true });
        await store.createMailbox('INBOX');
        for (let i = 0; ; i++) {
          await store.maintenance().index.compactFiles();
          const { uid } = await store.append('INBOX', Buffer.from('Subject: m' + i + '\\r\\n\\r\\nbody of message ' + i + '\\r\\n'));
          process.stdout.write(i + ' ' + uid + '\\n');
        }
      `], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
      const signal = await new Promise((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
      expect(signal).toBe('SIGKILL');
      const acked = out.split('\n').filter((line) => /^\d+ \d+$/.test(line)).map((line) => line.split(' ').map(Number)); // a line cut short by the kill is not one
      expect(acked.length).toBeGreaterThan(0);
      const store = await Store.open(dir);
      try {
        for (const [i, uid] of acked) expect((await store.fetch('INBOX', uid!)).equals(body(i!))).toBe(true);
      } finally {
        await store.close();
      }
    }
  }, 120_000);
});
