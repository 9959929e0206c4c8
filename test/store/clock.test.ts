// The store's clock reference (src/store/clock.ts) as retention consults it. The real clock's
// steps are test/cli/clock.test.ts's (processes under libfaketime); here, what one process can show.
import { describe, expect, it, vi } from 'vitest';
import { Store } from '../../src/store/store.js';
import { expungeBefore } from '../../src/store/retention.js';
import { observeClock } from '../../src/store/clock.js';
import type { MailStore } from '../../src/store/api.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf } from '../helpers/errors.js';

const DAY_MS = 86_400_000;

describe('the clock reference', () => {
  it('a boot that started at another time by the wall clock is a step; slew within clockStepMs is not; a new boot is none', () => {
    const first = observeClock(undefined, 1000, 5000, { boot: 'a', bootTimeMs: 100 });
    expect(first).toMatchObject({ seen: 5000, boot: 'a', bootTimeMs: 100, steps: [] });
    const slewed = observeClock(first, 1000, 6000, { boot: 'a', bootTimeMs: 100 + limits.clockStepMs });
    expect(slewed.steps).toEqual([]);
    const stepped = observeClock(slewed, 1000, 7000 + 400 * DAY_MS, { boot: 'a', bootTimeMs: 100 + 400 * DAY_MS });
    expect(stepped.steps).toEqual([{ byMs: 400 * DAY_MS - limits.clockStepMs, atMs: 7000 + 400 * DAY_MS }]);
    const rebooted = observeClock(stepped, 1000, 8000, { boot: 'b', bootTimeMs: 9 });
    expect(rebooted.steps).toHaveLength(1); // kept until trusted
    expect(rebooted.seen).toBe(7000 + 400 * DAY_MS); // never lowered by a look
  });
});

describe('a store created under a clock a year ahead', () => {
  it('refuses retention once the clock is put right, until trusted; then runs', async () => {
    const dir = tmpDir();
    vi.useFakeTimers({ toFake: ['Date'] }); // Date alone: STORE's created and every Date.now
    vi.setSystemTime(Date.now() + 365 * DAY_MS);
    let store: Store;
    try {
      store = await Store.open(dir, { create: true });
      await store.createMailbox('M');
      await store.close();
    } finally {
      vi.useRealTimers();
    }
    store = await Store.open(dir);
    try {
      expect((await store.clockReport()).untrusted).toMatch(/is before this store was created/);
      expect(await codeOf(() => expungeBefore(store, 'M', { before: new Date() }))).toBe('REFUSED');
      await store.trustClock();
      expect((await store.clockReport()).untrusted).toBeUndefined();
      expect(await expungeBefore(store, 'M', { before: new Date() })).toEqual([{ mailbox: 'M', uids: [], bytes: 0 }]);
    } finally {
      await store.close();
    }
  });
});

describe('a store created under a clock that was ahead', () => {
  it('once the admin trusts the clock, retention runs: the creation time, dated by that clock, no longer refuses it', async () => {
    const root = tmpDir();
    vi.useFakeTimers({ now: Date.now() + 400 * DAY_MS, toFake: ['Date'] });
    try {
      await (await Store.open(root, { create: true })).close();
    } finally {
      vi.useRealTimers();
    }
    const store = await Store.open(root);
    try {
      await store.createMailbox('M');
      await store.append('M', Buffer.from('Subject: 1\r\n\r\nbody\r\n'), { internalDate: new Date(Date.now() - 2 * DAY_MS) });
      const run = () => expungeBefore(store, 'M', { before: new Date(Date.now() - DAY_MS) });
      expect(await codeOf(run)).toBe('REFUSED'); // the clock is 400 days before the store's creation: which is wrong?
      expect((await store.status('M')).messages).toBe(1);
      expect((await store.trustClock()).untrusted).toBeUndefined();
      expect((await run())[0].uids).toEqual([1]);
    } finally {
      await store.close();
    }
  });
});

describe('retention through a store in another process', () => {
  it('refuses when the caller\'s clock, which counted the cutoff, is 400 days from the store\'s process\'s: REFUSED, nothing expunged', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    try {
      await store.createMailbox('M');
      for (let i = 0; i < 3; i++) await store.append('M', Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`));
      // the daemon's clock 400 days behind the CLI's (or the CLI's ahead): the store's judgement holds for its own clock only
      const behind = new Proxy(store, {
        get: (target, name) => name === 'clockReport'
          ? async () => ({ ...(await target.clockReport()), now: Date.now() - 400 * DAY_MS })
          : (Reflect.get(target, name) as (...args: unknown[]) => unknown)?.bind?.(target) ?? Reflect.get(target, name),
      }) as MailStore;
      const run = () => expungeBefore(behind, 'M', { before: new Date(Date.now() + DAY_MS) });
      expect(await codeOf(run)).toBe('REFUSED');
      await expect(run()).rejects.toThrow(/this process's clock .* is 400 days from the store's process's/);
      expect((await store.status('M')).messages).toBe(3);
      // the same clocks agreeing: it runs
      expect((await expungeBefore(store, 'M', { before: new Date(Date.now() + DAY_MS) }))[0].uids).toEqual([1, 2, 3]);
    } finally {
      await store.close();
    }
  });
});

describe('tombstone expiry under a clock the store does not trust', () => {
  it('drops no tombstone while retention would be refused (a clock 400 days before the store was created), and does once the admin trusts it', async () => {
    const root = tmpDir();
    vi.useFakeTimers({ now: Date.now() + 400 * DAY_MS, toFake: ['Date'] });
    try {
      const ahead = await Store.open(root, { create: true });
      await ahead.createMailbox('M');
      for (let i = 0; i < 3; i++) await ahead.append('M', Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`));
      await ahead.expunge('M', [1, 2]);
      await ahead.close();
    } finally {
      vi.useRealTimers();
    }
    const store = await Store.open(root);
    try {
      expect((await store.clockReport()).untrusted).toMatch(/before this store was created/);
      expect((await store.compact({ tombstoneRetentionMs: 0 })).tombstonesExpired).toBe(0);
      expect((await store.changesSince('M', 0)).vanished).toEqual([1, 2]);
      await store.trustClock();
      expect((await store.compact({ tombstoneRetentionMs: 0 })).tombstonesExpired).toBe(2);
    } finally {
      await store.close();
    }
  });
});
