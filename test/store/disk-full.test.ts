// A long-running Store on a real file system that fills up (a tmpfs with size=, root only):
// the journal preallocates limits.journalPreallocateBytes of filler ahead of its records, and
// that filler must never be what stops mail on a disk that still has room for it.
import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { limits } from '../../src/limits.js';
import { expectExactly, skipReason } from '../sim/helpers.js';
import { tmpDir } from '../helpers/tmp.js';
import { freeBytes, mountTmpfs, noRoot, unmountAll } from '../helpers/tmpfs.js';

afterEach(unmountAll);

/** Fills the file system of `dir` with a file until `leaveBytes` are free. */
function fillLeaving(dir: string, leaveBytes: number): void {
  const fd = openSync(join(dir, 'filler'), 'w');
  try {
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (let free = freeBytes(dir); free > leaveBytes; free = freeBytes(dir)) {
      writeSync(fd, chunk, 0, Math.min(chunk.length, free - leaveBytes));
    }
  } finally {
    closeSync(fd);
  }
}

describe('a disk that fills up under a running store (root only)', () => {
  it.skipIf(skipReason(!!noRoot, `disk full: ${noRoot}`))('once the preallocated journal space is used, mail goes on into the room left, fewer bytes than a preallocation', async () => {
    const mnt = tmpDir('full-journal');
    const failed = mountTmpfs(mnt, '4m');
    if (failed) { console.warn(`SKIPPED: disk full: ${failed}`); return; }
    const dir = join(mnt, 'store');
    let store = await Store.open(dir, { create: true, freeSpaceReserveBytes: 0 }); // the reserve off: this is what a full disk does without it (free-space.test.ts: with it)
    await store.createMailbox('INBOX'); // the journal's first commit: its segment preallocated
    // filler grows with the segment (limits.journalPreallocateMinBytes at first): what it took now
    const preallocated = statSync(join(dir, 'journal', readdirSync(join(dir, 'journal')).find((n) => n.endsWith('.jnl'))!)).size;
    const room = limits.journalPreallocateBytes / 2;
    fillLeaving(mnt, room);
    const acked = new Map<number, Buffer>();
    let error: MailstoreError | undefined;
    let bytes = 0;
    for (let i = 0; i < 400 && !error; i++) {
      const body = Buffer.from(`Subject: ${i}\r\n\r\n${randomBytes(12 * 1024).toString('base64')}\r\n`); // inline: into the journal
      try {
        acked.set((await store.append('INBOX', body)).uid, body);
        bytes += body.length;
      } catch (e) {
        error = e as MailstoreError;
      }
    }
    expect(error, 'the disk filled up').toBeDefined();
    // NO_SPACE from the journal; CLOSED when the journal write fitted and LevelDB's did not (durable, replayed at open)
    expect(['NO_SPACE', 'CLOSED'], error!.message).toContain(error!.code);
    // Before the fix every write past the preallocated filler asked for a whole preallocation
    // more, so mail stopped at about what was preallocated with half of the room still free.
    expect(bytes, `${bytes} bytes of mail, then ${error!.code} with ${freeBytes(mnt)} bytes free: ${error!.message}`)
      .toBeGreaterThan(preallocated + room / 2);
    console.info(`tmpfs 4 MiB, ${room} bytes left: ${acked.size} appends (${bytes} bytes) acknowledged, then ${error!.code} with ${freeBytes(mnt)} bytes free`);
    await store.close().catch(() => undefined);
    rmSync(join(mnt, 'filler'));
    store = await Store.open(dir);
    await expectExactly(store, 'INBOX', acked, 'after space was freed');
    await store.close();
  });
});
