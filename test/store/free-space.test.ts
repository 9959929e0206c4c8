// The free-space reserve (src/store/free-space.ts) on a real file system that fills up (a tmpfs
// with size=, root only): mail is refused NO_SPACE before anything is written once the disk is down
// to the reserve, the store stays open (reads, flags, expunge), and once room is freed appends go
// in again without a reopen. Every acknowledged message reads back byte-exact; scrub is clean.
import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { defaultReserveBytes, FreeSpace } from '../../src/store/free-space.js';
import { limits } from '../../src/limits.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { expectExactly, skipReason } from '../sim/helpers.js';
import { tmpDir } from '../helpers/tmp.js';
import { freeBytes, mountTmpfs, noRoot, unmountAll } from '../helpers/tmpfs.js';

afterEach(unmountAll);

/** Writes the file `name` until `leaveBytes` are free on the file system of `dir`. */
function fillLeaving(dir: string, name: string, leaveBytes: number): void {
  const fd = openSync(join(dir, name), 'w');
  try {
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (let free = freeBytes(dir); free > leaveBytes; free = freeBytes(dir)) writeSync(fd, chunk, 0, Math.min(chunk.length, free - leaveBytes));
  } finally {
    closeSync(fd);
  }
}

/** Half inline bodies (into the journal), half pack bodies (over inlineBodyBytesDefault). */
const message = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\n${randomBytes(i % 2 === 0 ? 6 * 1024 : 30 * 1024).toString('base64')}\r\n`);

async function appendUntilRefused(store: Store, acked: Map<number, Buffer>, count: number): Promise<MailstoreError | undefined> {
  for (let i = 0; i < count; i++) {
    const body = message(acked.size + i * 7919);
    try {
      acked.set((await store.append('INBOX', body)).uid, body);
    } catch (error) {
      return error as MailstoreError;
    }
  }
  return undefined;
}

describe('the free-space reserve', () => {
  it('defaults to the smaller of 64 MiB and 5 % of the file system', () => {
    expect(defaultReserveBytes(4 * 1024 * 1024)).toBe(Math.floor(4 * 1024 * 1024 * 0.05));
    expect(defaultReserveBytes(1024 ** 4)).toBe(limits.freeSpaceReserveBytesMax);
  });

  it('admits by its cached figure without I/O, takes the bytes off it, and re-reads the disk before refusing', async () => {
    let statfs = 0;
    let free = 10_000_000;
    const fs = { spaceBytes: async () => { statfs++; return { freeBytes: free, totalBytes: 100_000_000 }; } } as never;
    const space = new FreeSpace(fs, '/x', 1_000_000);
    await space.start();
    expect(statfs).toBe(1);
    for (let i = 0; i < 9; i++) expect(space.admit({ bytes: 1_000_000, mail: true })).toBe(true);
    expect(statfs, 'no statfs on the commit path').toBe(1);
    expect(space.admit({ bytes: 1_000_000, mail: true }), 'the figure says 1 MB free: below the reserve after it').toBe(false);
    expect(space.admit(undefined), 'a metadata change: down to the floor').toBe(true);
    free = 5_000_000; // the other writes were into preallocated space, or room was freed
    expect(await space.recheck({ bytes: 1_000_000, mail: true })).toBeUndefined();
    expect(statfs).toBe(2);
    free = 1_100_000;
    const refused = await space.recheck({ bytes: 1_000_000, mail: true });
    expect(refused?.code).toBe('NO_SPACE');
    expect(refused?.belowReserve).toBe(true);
    space.stop();
  });

  it('refusing mail is said once and cleared once: not again for each small message that fits just above the reserve', async () => {
    let free = 1_050_000; // reserve 1 MB, floor 125 kB: 50 kB above the reserve
    const fs = { spaceBytes: async () => ({ freeBytes: free, totalBytes: 100_000_000 }) } as never;
    const said: boolean[] = [];
    const space = new FreeSpace(fs, '/x', 1_000_000, (refusing) => said.push(refusing));
    await space.start();
    expect((await space.recheck({ bytes: 80_000, mail: true }))?.code).toBe('NO_SPACE');
    expect(said).toEqual([true]);
    expect(space.admit({ bytes: 1_000, mail: true }), 'a small message still fits').toBe(true);
    expect((await space.state()).refusingMail, 'still short of room for the larger one').toBe(true);
    expect((await space.recheck({ bytes: 80_000, mail: true }))?.code).toBe('NO_SPACE');
    expect(said).toEqual([true]);
    free = 1_200_000; // the reserve and a floor's worth more: cleared
    expect((await space.state()).refusingMail).toBe(false);
    expect(said).toEqual([true, false]);
    space.stop();
  });

  it.skipIf(skipReason(!!noRoot, `free-space reserve on a tmpfs: ${noRoot}`))('on a disk filling up: NO_SPACE before the disk is full, the store stays open, appends resume once room is freed', async () => {
    const mnt = tmpDir('reserve');
    const failed = mountTmpfs(mnt, '8m');
    if (failed) { console.warn(`SKIPPED: free-space reserve: ${failed}`); return; }
    const dir = join(mnt, 'store');
    const closedBy: MailstoreError[] = [];
    const warnings: boolean[] = [];
    const store = await Store.open(dir, { create: true, onStop: (e) => closedBy.push(e), onFreeSpace: (refusing) => warnings.push(refusing) });
    await store.createMailbox('INBOX');
    const reserve = (await store.stats()).freeSpace.reserveBytes;
    expect(reserve).toBe(defaultReserveBytes(8 * 1024 * 1024));
    const floor = Math.floor(reserve / limits.freeSpaceFloorDivisor);
    fillLeaving(mnt, 'filler', 2 * 1024 * 1024);
    // the figure is at most freeSpaceRefreshMs old: 6 MiB written by another process faster than
    // that is beyond what the reserve can see (a real disk fills more slowly than its reserve)
    await sleep(limits.freeSpaceRefreshMs + 200);
    const acked = new Map<number, Buffer>();
    const error = await appendUntilRefused(store, acked, 2000);
    expect(error, 'mail was refused before the disk filled up').toBeDefined();
    expect(error!.code, error!.message).toBe('NO_SPACE');
    expect(error!.belowReserve, error!.message).toBe(true);
    expect(closedBy, 'the store did not stop itself').toEqual([]);
    expect(freeBytes(mnt), 'the reserve held (more than the floor free)').toBeGreaterThanOrEqual(floor);
    expect(warnings).toEqual([true]);
    const stats = await store.stats();
    expect(stats.freeSpace.refusingMail).toBe(true);
    expect(stats.freeSpace.freeBytes).toBeLessThan(reserve + 64 * 1024);
    console.info(`tmpfs 8 MiB, 2 MiB left: ${acked.size} appends, then NO_SPACE with ${freeBytes(mnt)} bytes free (reserve ${reserve}, floor ${floor})`);

    // still open: reads, flags, expunge (metadata goes on down to the floor)
    await expectExactly(store, 'INBOX', acked, 'while refusing');
    const [first, second] = [...acked.keys()];
    await store.setFlags('INBOX', [first], { add: ['\\Seen'] });
    await store.expunge('INBOX', [second]);
    acked.delete(second);
    expect((await store.messageInfo('INBOX', first))?.flags).toContain('\\Seen');
    expect((await appendUntilRefused(store, acked, 1))?.code, 'still refused').toBe('NO_SPACE');

    // room again: appends go in without a reopen, and the warning clears once
    rmSync(join(mnt, 'filler'));
    expect(await appendUntilRefused(store, acked, 20)).toBeUndefined();
    expect(warnings).toEqual([true, false]);
    expect(closedBy).toEqual([]);
    await expectExactly(store, 'INBOX', acked, 'after room was freed');
    expect((await scrub(store)).findings.filter(isDamage)).toEqual([]);
    await store.close();
    const reopened = await Store.open(dir);
    await expectExactly(reopened, 'INBOX', acked, 'after a reopen');
    await reopened.close();
  }, 60_000);

  it.skipIf(skipReason(!!noRoot, `compaction on a nearly full disk: ${noRoot}`))('compaction on a nearly full disk copies only what fits above the floor: wholly dead packs go, the rest waits (deferredForSpace), nothing lost', async () => {
    const mnt = tmpDir('reserve-compact');
    const failed = mountTmpfs(mnt, '8m');
    if (failed) { console.warn(`SKIPPED: compaction on a nearly full disk: ${failed}`); return; }
    const dir = join(mnt, 'store');
    const store = await Store.open(dir, { create: true, inlineBodyBytesMax: 0, packBytesMax: 200 * 1024, autoSnapshot: false, autoCompact: false });
    await store.createMailbox('INBOX');
    const acked = new Map<number, Buffer>();
    for (let i = 0; i < 40; i++) {
      const body = Buffer.from(`Subject: ${i}\r\n\r\n${randomBytes(15 * 1024).toString('base64')}\r\n`); // ~20 kB: 9 a pack
      acked.set((await store.append('INBOX', body)).uid, body);
    }
    // the first 18 (two packs) expunged whole, every other one after them
    const gone = [...acked.keys()].filter((uid, i) => i < 18 || i % 2 === 0);
    await store.expunge('INBOX', gone);
    for (const uid of gone) acked.delete(uid);
    const { floorBytes } = (await store.stats()).freeSpace;
    fillLeaving(mnt, 'filler', floorBytes + 60 * 1024); // 60 kB above the floor: not a half-live pack's ~100 kB
    await sleep(limits.freeSpaceRefreshMs + 200);
    const result = await store.compact({ deadRatio: 0.3 });
    expect(result.packsRewritten.length, JSON.stringify(result)).toBeGreaterThanOrEqual(2); // the wholly dead ones
    expect(result.deferredForSpace?.packs.length, JSON.stringify(result)).toBeGreaterThan(0);
    expect(result.deferredForSpace!.roomBytes).toBeLessThan(100 * 1024);
    expect(result.bytesCopied).toBeLessThanOrEqual(result.deferredForSpace!.roomBytes);
    expect(freeBytes(mnt)).toBeGreaterThanOrEqual(floorBytes);
    await expectExactly(store, 'INBOX', acked, 'after a compaction on a nearly full disk');
    // room again: the next compaction takes the rest
    rmSync(join(mnt, 'filler'));
    const rest = await store.compact({ deadRatio: 0.3 });
    expect(rest.deferredForSpace).toBeUndefined();
    expect(rest.packsRewritten).toEqual(expect.arrayContaining(result.deferredForSpace!.packs));
    await expectExactly(store, 'INBOX', acked, 'after the rest was compacted');
    expect((await scrub(store)).findings.filter(isDamage)).toEqual([]);
    await store.close();
  }, 60_000);

  it.skipIf(skipReason(!!noRoot, `free-space reserve off: ${noRoot}`))('off (0): the disk fills up as before, and nothing acknowledged is lost', async () => {
    const mnt = tmpDir('reserve-off');
    const failed = mountTmpfs(mnt, '4m');
    if (failed) { console.warn(`SKIPPED: free-space reserve off: ${failed}`); return; }
    const dir = join(mnt, 'store');
    let store = await Store.open(dir, { create: true, freeSpaceReserveBytes: 0 });
    await store.createMailbox('INBOX');
    fillLeaving(mnt, 'filler', 512 * 1024);
    const acked = new Map<number, Buffer>();
    const error = await appendUntilRefused(store, acked, 2000);
    expect(error).toBeDefined();
    expect(['NO_SPACE', 'CLOSED'], error!.message).toContain(error!.code);
    expect(error!.belowReserve).toBeUndefined();
    expect(freeBytes(mnt), 'the disk filled up').toBeLessThan(64 * 1024);
    await store.close().catch(() => undefined);
    rmSync(join(mnt, 'filler'));
    store = await Store.open(dir);
    await expectExactly(store, 'INBOX', acked, 'after space was freed');
    expect((await scrub(store)).findings.filter(isDamage)).toEqual([]);
    await store.close();
  }, 60_000);
});
