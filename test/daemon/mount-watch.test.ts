// The daemon's look at its store's mount (mount-watch.ts): gone, moved to another device or without
// its STORE file stops it (UNMOUNTED); a look that fails (EACCES after a chmod under the daemon, EIO)
// proves nothing about the mount and must not stop a daemon that systemd will not restart.
import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FileStat, FileSystem } from '../../src/fs/filesystem.js';
import { daemonLimits } from '../../src/limits.js';
import { watchMount, type MountWatch } from '../../src/daemon/mount-watch.js';
import type { MailstoreError } from '../../src/errors.js';

const saved = daemonLimits.mountCheckMs;
let watch: MountWatch | undefined;
afterEach(() => {
  watch?.stop();
  daemonLimits.mountCheckMs = saved;
});

let looks = 0;

/** Until `done()` holds, or 10 s (a hang guard at load, not a timing assertion). */
async function until(done: () => boolean): Promise<void> {
  for (const end = Date.now() + 10_000; !done() && Date.now() < end;) await sleep(5);
}

/** A file system whose statIfExists answers what `answer` says for each path (a stat, undefined for ENOENT, or an error thrown). */
function fakeFs(answer: (path: string) => FileStat | undefined | Error): FileSystem {
  return {
    statIfExists: async (path: string) => {
      looks++;
      const a = answer(path);
      if (a instanceof Error) throw a;
      return a;
    },
  } as unknown as FileSystem;
}

const stat = (dev: number, ino = 2) => ({ dev, ino }) as FileStat;

describe('the mount watch', () => {
  it('a look whose stat fails (EACCES, EIO) does not stop the daemon; the store gone afterwards still does', async () => {
    daemonLimits.mountCheckMs = 5;
    let mode: 'ok' | 'fail' | 'gone' = 'ok';
    const fs = fakeFs((path) => {
      if (mode === 'fail') return Object.assign(new Error(`EACCES: permission denied, stat '${path}'`), { code: 'EACCES' });
      if (mode === 'gone') return undefined;
      return stat(7);
    });
    const gone: MailstoreError[] = [];
    watch = await watchMount(fs, '/srv/store', (error) => gone.push(error));
    mode = 'fail';
    const before = looks;
    await until(() => looks >= before + 10); // ten failed looks
    expect(gone).toEqual([]);
    mode = 'gone';
    await until(() => gone.length > 0);
    expect(gone.map((e) => e.code)).toEqual(['UNMOUNTED']);
    expect(gone[0]!.message).toContain('it is gone');
  });

  it('another directory at the root on the same device (the store moved away, mv, and another moved into its place) stops it once', async () => {
    daemonLimits.mountCheckMs = 5;
    let ino = 2;
    const fs = fakeFs(() => stat(7, ino));
    const gone: MailstoreError[] = [];
    watch = await watchMount(fs, '/srv/store', (error) => gone.push(error));
    const before = looks;
    await until(() => looks >= before + 6);
    expect(gone).toEqual([]);
    ino = 3;
    await until(() => gone.length > 0);
    await sleep(20);
    expect(gone.map((e) => e.code)).toEqual(['UNMOUNTED']);
    expect(gone[0]!.message).toMatch(/another directory now \(inode 3, not 2\).*moved away, mv\?.*move it back/);
  });

  it('the root on another device, or its STORE file gone, stops it once', async () => {
    daemonLimits.mountCheckMs = 5;
    let dev = 7;
    let store = true;
    const fs = fakeFs((path) => (path.endsWith('STORE') ? (store ? stat(dev) : undefined) : stat(dev)));
    const gone: MailstoreError[] = [];
    watch = await watchMount(fs, '/srv/store', (error) => gone.push(error));
    const before = looks;
    await until(() => looks >= before + 6);
    expect(gone).toEqual([]);
    dev = 8;
    await until(() => gone.length > 0);
    expect(gone.map((e) => e.message.match(/on device 8 now, not 7/) !== null)).toEqual([true]);
    watch.stop();
    dev = 7;
    store = false;
    const again: MailstoreError[] = [];
    watch = await watchMount(fs, '/srv/store', (error) => again.push(error));
    await until(() => again.length > 0);
    expect(again.map((e) => e.message.includes('its STORE file is gone'))).toEqual([true]);
  });
});
