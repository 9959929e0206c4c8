// The store on file systems other than the ext4/tmpfs the rest of the suite runs on (docs/FAULTS.md,
// "Other file systems"), root only; each test says why when it skips:
//   - a store and its backup repository on a read-only image (squashfs): every command that only
//     reads works there, one that must write says ACCESS;
//   - ext4 out of inodes with bytes free (mkfs.ext4 -N): the free-space reserve counts inodes too;
//   - overlayfs mounted `volatile`, where fsync does nothing: no store is opened to write there;
//   - a read-only btrfs snapshot of a store its daemon is serving: read there, not LOCKED by the daemon.
// Every mount and loop device is released in a finally, also when the test fails.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { defaultReserveInodes } from '../../src/store/free-space.js';
import { limits } from '../../src/limits.js';
import { bin } from '../cli/helpers.js';
import { untilAccepts } from '../daemon/processes.js';
// what is tried is the file system, not the process: the command lines run in this process
// (in-process.ts, a sample checked against the spawned command)
import { ok, run } from '../cli/in-process.js';
import { expectExactly, msg, skipReason } from './helpers.js';

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const noRoot = process.getuid?.() !== 0 ? 'needs root (mount)' : undefined;

/** Runs `mount ARGS DIR`; an error naming why when the kernel refuses. */
function mount(args: string[], dir: string): void {
  const result = spawnSync('mount', [...args, dir], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`mount ${args.join(' ')} ${dir} failed: ${result.stderr.trim()}`);
}

/** Unmounts (lazily if busy: a loop device goes with its last user) and removes the work directory. */
function cleanUp(work: string, mounted: string[]): void {
  for (const dir of mounted.reverse()) spawnSync('umount', ['-l', dir]);
  rmSync(work, { recursive: true, force: true });
}

const message = (i: number, bytes: number) => `From: a@example.org\r\nSubject: m${i}\r\nMessage-ID: <m${i}@example.org>\r\n\r\n${`line ${i} `.repeat(bytes / 8)}\r\n`;

describe('read-only media (root only)', () => {
  const skip = noRoot ?? (!has('mksquashfs') ? 'mksquashfs is missing (apt-get install -y squashfs-tools)' : undefined);
  it.skipIf(skipReason(!!skip, `read-only media: ${skip}`))('a store and its backup on a squashfs image: messages, fetch, export, scrub, backup check, backup and restore from it work; a change is ACCESS', async () => {
    const work = mkdtempSync(join(tmpdir(), 'mailstore-ro-media-'));
    const mounted: string[] = [];
    try {
      const source = join(work, 'source');
      mkdirSync(source);
      const store = join(source, 'store');
      await ok(['init'], { store });
      await ok(['mailbox', 'create', 'INBOX'], { store });
      const sent = [message(1, 200), message(2, 100_000), message(3, 300)]; // the big one in a pack
      for (const bytes of sent) await ok(['append', 'INBOX', '-'], { store, input: bytes });
      await ok(['backup', '--repo', join(source, 'repo')], { store });
      const image = join(work, 'spool.sqfs');
      const made = spawnSync('mksquashfs', [source, image, '-quiet', '-noappend'], { encoding: 'utf8' });
      expect(made.status, made.stderr).toBe(0);
      const media = join(work, 'media');
      mkdirSync(media);
      try {
        mount(['-o', 'loop,ro', image], media);
      } catch (error) {
        console.warn(`SKIPPED: read-only media: ${(error as Error).message}`);
        return;
      }
      mounted.push(media);
      const roStore = join(media, 'store');
      const roRepo = join(media, 'repo');

      expect((await ok(['messages', 'INBOX'], { store: roStore })).trim().split('\n')).toHaveLength(3);
      expect(await ok(['fetch', 'INBOX', '2'], { store: roStore })).toBe(sent[1]);
      const mbox = join(work, 'out.mbox');
      await ok(['export', 'INBOX', '--format', 'mbox', '--out', mbox], { store: roStore });
      for (const bytes of sent) expect(readFileSync(mbox, 'latin1')).toContain(bytes.split('\r\n\r\n')[1]);
      const scrub = await run(['scrub', '--json'], { store: roStore });
      expect(scrub.code, scrub.stderr).toBe(0);
      expect(JSON.parse(scrub.stdout.toString()).summary).toMatchObject({ damage: 0, blobsVerified: 1 });
      await ok(['backup', 'check', '--repo', roRepo, '--read-data'], { store: roStore });
      await ok(['backup', '--repo', join(work, 'repo2')], { store: roStore }); // a read-only snapshot of the spool, backed up
      const restored = join(work, 'restored');
      await ok(['restore', '--repo', roRepo, '--to', restored], { store: restored });
      expect(await ok(['fetch', 'INBOX', '2'], { store: restored })).toBe(sent[1]);
      await ok(['restore', '--repo', join(work, 'repo2'), '--to', join(work, 'restored2')], { store: join(work, 'restored2') });
      expect(await ok(['fetch', 'INBOX', '3'], { store: join(work, 'restored2') })).toBe(sent[2]);

      for (const args of [['append', 'INBOX', '-'], ['scrub', '--time-budget', '1s'], ['snapshot']]) {
        const refused = await run(args, { store: roStore, input: message(4, 100) });
        expect(refused.code, `${args.join(' ')}: ${refused.stderr}`).toBe(2);
        expect(refused.stderr, args.join(' ')).toMatch(/^mailstore: ACCESS: .*Read-only file system/);
      }
    } finally {
      cleanUp(work, mounted);
    }
  });
});

/** A loop-mounted image of `sizeMiB` made by `mkfs` (its arguments before the image); undefined with a warning when the kernel refuses. */
function loopMount(work: string, mounted: string[], mkfs: string[], sizeMiB: number, what: string): string | undefined {
  const image = join(work, 'disk.img');
  execFileSync('truncate', ['-s', `${sizeMiB}M`, image]);
  execFileSync(mkfs[0], [...mkfs.slice(1), image], { stdio: 'pipe' });
  const mnt = join(work, 'mnt');
  mkdirSync(mnt);
  try {
    mount(['-o', 'loop', image], mnt);
  } catch (error) {
    console.warn(`SKIPPED: ${what}: ${(error as Error).message}`);
    return undefined;
  }
  mounted.push(mnt);
  return mnt;
}

/** Creates empty files in `dir` until the file system has no inode left; returns their paths. */
function useUpInodes(dir: string): string[] {
  const made: string[] = [];
  for (;;) {
    const path = join(dir, `inode-${made.length}`);
    try {
      writeFileSync(path, '');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') return made;
      throw error;
    }
    made.push(path);
  }
}

describe('out of inodes with bytes free (root only)', () => {
  const skip = noRoot ?? (!has('mkfs.ext4') ? 'mkfs.ext4 is missing (apt-get install -y e2fsprogs)' : undefined);
  it.skipIf(skipReason(!!skip, `out of inodes: ${skip}`))('ext4 with 192 inodes: mail is refused NO_SPACE by the reserve, the store stays open and reopens; appends resume once inodes are freed', async () => {
    const work = mkdtempSync(join(tmpdir(), 'mailstore-inodes-'));
    const mounted: string[] = [];
    try {
      const mnt = loopMount(work, mounted, ['mkfs.ext4', '-q', '-F', '-N', '200'], 64, 'out of inodes');
      if (!mnt) return;
      const dir = join(mnt, 'store');
      const stopped: MailstoreError[] = [];
      const options = { create: true, packBytesMax: 128 * 1024, journalSegmentBytesMax: 64 * 1024, onStop: (e: MailstoreError) => stopped.push(e) };
      let store = await Store.open(dir, options);
      await store.createMailbox('INBOX');
      const acked = new Map<number, Buffer>();
      for (let i = 0; i < 12; i++) {
        const bytes = msg(`inode-${i}`, 40_000);
        acked.set((await store.append('INBOX', bytes)).uid, bytes);
      }
      // other software on the disk takes the inodes, down to a few below the reserve
      const reserve = (await store.stats()).freeSpace.reserveInodes;
      expect(reserve).toBe(defaultReserveInodes(statfsSync(mnt).files));
      const filler = useUpInodes(mnt);
      for (const path of filler.splice(0, reserve - 3)) unlinkSync(path);
      await sleep(limits.freeSpaceRefreshMs + 200); // the figure is at most this old
      let refused: MailstoreError | undefined;
      for (let i = 0; i < 200 && !refused; i++) {
        const bytes = msg(`more-${i}`, 40_000);
        try {
          acked.set((await store.append('INBOX', bytes)).uid, bytes);
        } catch (error) {
          refused = error as MailstoreError;
        }
      }
      expect(refused, 'mail was refused while inodes were left').toBeDefined();
      expect(refused!.code, refused!.message).toBe('NO_SPACE');
      expect(refused!.message).toMatch(/inodes/);
      expect(refused!.belowReserve, refused!.message).toBe(true);
      expect(stopped, 'the store did not stop itself').toEqual([]);
      expect(statfsSync(mnt).bavail * statfsSync(mnt).bsize, 'bytes were free all along').toBeGreaterThan(16 * 1024 * 1024);
      await expectExactly(store, 'INBOX', acked, 'while refusing');
      expect((await store.stats()).freeSpace).toMatchObject({ refusingMail: true, freeInodes: reserve - 3 });
      const [first] = acked.keys();
      await store.setFlags('INBOX', [first], { add: ['\\Seen'] }); // metadata goes on
      await store.close();
      expect(await ok(['stats'], { store: dir })).toMatch(new RegExp(`free inodes +\\d+; reserve ${reserve}: NEW MAIL IS REFUSED`));
      store = await Store.open(dir, options); // the reserve left what an open needs
      await expectExactly(store, 'INBOX', acked, 'reopened');
      for (const path of filler) unlinkSync(path);
      const after = msg('after', 40_000);
      const { uid } = await store.append('INBOX', after);
      acked.set(uid, after);
      await expectExactly(store, 'INBOX', acked, 'after inodes were freed');
      await store.close();
      console.info(`ext4 with 192 inodes (reserve ${reserve}): ${acked.size - 1} appends, then ${refused!.code}: ${refused!.message}`);
    } finally {
      cleanUp(work, mounted);
    }
  });
});

describe('overlayfs (root only)', () => {
  it.skipIf(skipReason(!!noRoot, `overlayfs: ${noRoot}`))('mounted volatile (fsync does nothing): init, a read-write open and a backup into it are ACCESS naming it, nothing is acknowledged; reads and restores work; without volatile all is well', async () => {
    const work = mkdtempSync(join(tmpdir(), 'mailstore-overlay-'));
    const mounted: string[] = [];
    try {
      for (const name of ['lower', 'upper', 'work', 'merged', 'upper2', 'work2', 'merged2']) mkdirSync(join(work, name));
      const layers = (upper: string, workdir: string) => `lowerdir=${join(work, 'lower')},upperdir=${join(work, upper)},workdir=${join(work, workdir)}`;
      const plain = join(work, 'merged2');
      try {
        mount(['-t', 'overlay', 'overlay', '-o', layers('upper2', 'work2')], plain);
      } catch (error) {
        console.warn(`SKIPPED: overlayfs: ${(error as Error).message}`);
        return;
      }
      mounted.push(plain);
      const volatile = join(work, 'merged');
      try {
        mount(['-t', 'overlay', 'overlay', '-o', `${layers('upper', 'work')},volatile`], volatile);
      } catch (error) {
        console.warn(`SKIPPED: overlayfs volatile: ${(error as Error).message}`);
        return;
      }
      mounted.push(volatile);

      const refusedInit = await run(['init'], { store: join(volatile, 'store') });
      expect(refusedInit.code, refusedInit.stderr).toBe(2);
      expect(refusedInit.stderr).toMatch(/^mailstore: ACCESS: .*volatile/);
      expect(existsSync(join(volatile, 'store', 'STORE')), 'no store was made').toBe(false);

      // a store made elsewhere and moved onto the volatile mount (a container's volume swapped)
      await ok(['init'], { store: join(plain, 'store') });
      await ok(['mailbox', 'create', 'INBOX'], { store: join(plain, 'store') });
      const bytes = message(1, 300);
      expect((await ok(['append', 'INBOX', '-'], { store: join(plain, 'store'), input: bytes })).trim()).toBe('1');
      cpSync(join(plain, 'store'), join(volatile, 'store'), { recursive: true });
      const store = join(volatile, 'store');
      const append = await run(['append', 'INBOX', '-'], { store, input: message(2, 300) });
      expect(append.code, append.stderr).toBe(2);
      expect(append.stdout.toString(), 'nothing acknowledged').toBe('');
      expect(append.stderr).toMatch(/^mailstore: ACCESS: .*volatile/);
      await expect(Store.open(store)).rejects.toMatchObject({ code: 'ACCESS' });
      expect(await ok(['fetch', 'INBOX', '1'], { store }), 'reads work').toBe(bytes);
      expect((await ok(['messages', 'INBOX'], { store })).trim().split('\n')).toHaveLength(1);

      // a backup repository there: no snapshot is said to be saved; one made elsewhere still restores
      const backup = await run(['backup', '--repo', join(volatile, 'repo')], { store: join(plain, 'store') });
      expect(backup.code, backup.stderr).toBe(2);
      expect(backup.stderr).toMatch(/^mailstore: ACCESS: .*volatile/);
      expect(existsSync(join(volatile, 'repo', 'config')), 'no repository was made').toBe(false);
      await ok(['backup', '--repo', join(plain, 'repo')], { store: join(plain, 'store') });
      cpSync(join(plain, 'repo'), join(volatile, 'repo'), { recursive: true });
      const again = await run(['backup', '--repo', join(volatile, 'repo')], { store: join(plain, 'store') });
      expect(again.code, again.stderr).toBe(2);
      expect(again.stderr).toMatch(/^mailstore: ACCESS: .*volatile/);
      await ok(['backup', 'check', '--repo', join(volatile, 'repo')]);
      await ok(['restore', '--repo', join(volatile, 'repo'), '--to', join(work, 'restored')], { store: join(work, 'restored') });
      expect(await ok(['fetch', 'INBOX', '1'], { store: join(work, 'restored') })).toBe(bytes);
    } finally {
      cleanUp(work, mounted);
    }
  });
});

describe('overlayfs, a store in the lower layer (root only)', () => {
  it.skipIf(skipReason(!!noRoot, `overlayfs: ${noRoot}`))('its index damaged (a container image that ships a store): the open moves index/ aside file by file (overlayfs will not rename a lower directory: EXDEV) and rebuilds it, reconstruct --from-journal too; a journal swap is refused naming redirect_dir', async () => {
    const work = mkdtempSync(join(tmpdir(), 'mailstore-overlay-lower-'));
    const mounted: string[] = [];
    try {
      for (const name of ['lower', 'upper', 'work', 'merged']) mkdirSync(join(work, name));
      const image = join(work, 'lower', 'store');
      await ok(['init'], { store: image });
      await ok(['mailbox', 'create', 'INBOX'], { store: image });
      const sent = [message(1, 300), message(2, 100_000)];
      for (const bytes of sent) await ok(['append', 'INBOX', '-'], { store: image, input: bytes });
      writeFileSync(join(image, 'index', 'CURRENT'), 'MANIFEST-999999\n'); // damaged in the image
      const merged = join(work, 'merged');
      try {
        // redirect_dir=off: what the kernel's default (and Docker's overlay2) gives
        mount(['-t', 'overlay', 'overlay', '-o', `lowerdir=${join(work, 'lower')},upperdir=${join(work, 'upper')},workdir=${join(work, 'work')},redirect_dir=off`], merged);
      } catch (error) {
        console.warn(`SKIPPED: overlayfs: ${(error as Error).message}`);
        return;
      }
      mounted.push(merged);
      const store = join(merged, 'store');
      const third = message(3, 200);
      const append = await run(['append', 'INBOX', '-'], { store, input: third });
      expect(append.code, append.stderr).toBe(0);
      expect(append.stdout.toString().trim()).toBe('3');
      sent.push(third);
      for (const [i, bytes] of sent.entries()) expect(await ok(['fetch', 'INBOX', String(i + 1)], { store })).toBe(bytes);
      const aside = readdirSync(join(store, 'quarantine')).filter((name) => name.startsWith('index-damaged-'));
      expect(aside, 'the damaged index was kept').toHaveLength(1);
      expect(readFileSync(join(store, 'quarantine', aside[0], 'CURRENT'), 'utf8')).toBe('MANIFEST-999999\n');

      await ok(['reconstruct', '--from-journal'], { store }); // index/ is a merged directory now
      const swap = await run(['reconstruct', '--from-index'], { store }); // journal/ is the image's
      expect(swap.stderr).toMatch(/journal.*EXDEV.*redirect_dir=on/);
      for (const [i, bytes] of sent.entries()) expect(await ok(['fetch', 'INBOX', String(i + 1)], { store })).toBe(bytes);
      const scrub = await run(['scrub', '--json'], { store });
      expect(scrub.code, scrub.stdout.toString()).toBe(0);
    } finally {
      cleanUp(work, mounted);
    }
  }, 120_000);
});

describe('btrfs (root only)', () => {
  const skip = noRoot ?? (!has('mkfs.btrfs') || !has('btrfs') ? 'mkfs.btrfs is missing (apt-get install -y btrfs-progs)' : undefined);
  it.skipIf(skipReason(!!skip, `btrfs: ${skip}`))('a read-only snapshot of a subvolume whose store a daemon serves: messages, scrub, export and backup read it (LOCK names the daemon, which holds the original, not the snapshot)', async () => {
    const work = mkdtempSync(join(tmpdir(), 'mailstore-btrfs-'));
    const mounted: string[] = [];
    let daemon: ReturnType<typeof spawn> | undefined;
    try {
      const mnt = loopMount(work, mounted, ['mkfs.btrfs', '-q', '-f'], 128, 'btrfs');
      if (!mnt) return;
      execFileSync('btrfs', ['subvolume', 'create', join(mnt, 'spool')], { stdio: 'pipe' });
      const store = join(mnt, 'spool', 'store');
      await ok(['init'], { store });
      await ok(['mailbox', 'create', 'INBOX'], { store });
      const sent = [message(1, 300), message(2, 60_000)];
      for (const bytes of sent) await ok(['append', 'INBOX', '-'], { store, input: bytes });
      daemon = spawn(process.execPath, [bin, '--store', store, 'serve', '--log', join(work, 'serve.log')], { stdio: 'ignore' });
      await untilAccepts(join(store, 'run', 'mailstore.sock'), daemon);
      const third = message(3, 200);
      expect((await ok(['append', 'INBOX', '-'], { store, input: third })).trim(), 'through the daemon').toBe('3');
      sent.push(third);
      execFileSync('sync');
      execFileSync('btrfs', ['subvolume', 'snapshot', '-r', join(mnt, 'spool'), join(mnt, 'snap')], { stdio: 'pipe' });
      const snapshot = join(mnt, 'snap', 'store');
      expect(readFileSync(join(snapshot, 'LOCK'), 'utf8').trim(), 'the copy names the live daemon').toBe(String(daemon.pid));

      expect((await ok(['messages', 'INBOX'], { store: snapshot })).trim().split('\n')).toHaveLength(3);
      expect(await ok(['fetch', 'INBOX', '2'], { store: snapshot })).toBe(sent[1]);
      const scrub = await run(['scrub', '--json'], { store: snapshot });
      expect(scrub.code, scrub.stderr).toBe(0);
      await ok(['export', 'INBOX', '--format', 'mbox', '--out', join(work, 'snap.mbox')], { store: snapshot });
      await ok(['backup', '--repo', join(work, 'repo')], { store: snapshot });
      const restored = join(work, 'restored');
      await ok(['restore', '--repo', join(work, 'repo'), '--to', restored], { store: restored });
      for (const [i, bytes] of sent.entries()) expect(await ok(['fetch', 'INBOX', String(i + 1)], { store: restored })).toBe(bytes);

      await expect(Store.open(store, { readOnly: true, lockWaitMs: 0 }), 'the live store is still the daemon\'s').rejects.toMatchObject({ code: 'LOCKED' });
    } finally {
      daemon?.kill('SIGTERM');
      if (daemon && daemon.exitCode === null) await new Promise((done) => daemon!.on('close', done));
      cleanUp(work, mounted);
    }
  });
});

/**
 * An exFAT image mounted through FUSE (mount.exfat-fuse: this kernel has no exfat module), as the
 * USB disk a nightly backup goes to; undefined with a warning when it cannot be made.
 */
function exfatMount(work: string, mounted: string[], loops: string[], options: string[] = []): string | undefined {
  const image = join(work, 'usb.img');
  execFileSync('truncate', ['-s', '128M', image]);
  execFileSync('mkfs.exfat', [image], { stdio: 'pipe' });
  const loop = spawnSync('losetup', ['-f', '--show', image], { encoding: 'utf8' });
  if (loop.status !== 0) {
    console.warn(`SKIPPED: exFAT: losetup failed: ${loop.stderr.trim()}`);
    return undefined;
  }
  loops.push(loop.stdout.trim());
  const mnt = join(work, 'usb');
  mkdirSync(mnt);
  const made = spawnSync('mount.exfat-fuse', [...options, loop.stdout.trim(), mnt], { encoding: 'utf8' });
  if (made.status !== 0) {
    console.warn(`SKIPPED: exFAT: mount.exfat-fuse failed: ${made.stderr.trim()}`);
    return undefined;
  }
  mounted.push(mnt);
  return mnt;
}

describe('exFAT through FUSE (root only)', () => {
  const skip = noRoot ?? (!has('mkfs.exfat') || !has('mount.exfat-fuse') ? 'exFAT tools are missing (apt-get install -y exfat-fuse exfatprogs)' : undefined);
  it.skipIf(skipReason(!!skip, `exFAT: ${skip}`))('names there ignore case (LOCK is lock/): init and an open of a store copied there are INVALID naming it, not IO EISDIR, and init leaves nothing; a Maildir export there is INVALID naming \':\', mbox works', async () => {
    const work = mkdtempSync(join(tmpdir(), 'mailstore-exfat-'));
    const mounted: string[] = [];
    const loops: string[] = [];
    try {
      const usb = exfatMount(work, mounted, loops);
      if (!usb) return;
      const store = join(usb, 'store');
      const init = await run(['init'], { store });
      expect(init.code, init.stderr).toBe(5);
      expect(init.stderr).toMatch(/^mailstore: INVALID: .*upper and lower case/);
      expect(existsSync(store), 'init left nothing').toBe(false);
      mkdirSync(join(usb, 'made-first'));
      const initInto = await run(['init'], { store: join(usb, 'made-first') });
      expect(initInto.code, initInto.stderr).toBe(5);
      expect(initInto.stderr).toMatch(/^mailstore: INVALID: .*upper and lower case/);
      expect(readdirSync(join(usb, 'made-first')), 'init left nothing in the directory it was given').toEqual([]);

      // a store made on a case-sensitive disk and copied onto the stick (lock/ is there, LOCK is not)
      const home = join(work, 'store');
      await ok(['init'], { store: home });
      await ok(['mailbox', 'create', 'INBOX'], { store: home });
      const bytes = message(1, 300);
      await ok(['append', 'INBOX', '-'], { store: home, input: bytes });
      cpSync(home, join(usb, 'copied'), { recursive: true });
      for (const args of [['append', 'INBOX', '-'], ['messages', 'INBOX'], ['scrub']]) {
        const refused = await run(args, { store: join(usb, 'copied'), input: message(2, 300) });
        expect(refused.code, `${args.join(' ')}: ${refused.stderr}`).toBe(5);
        expect(refused.stdout.toString(), 'nothing acknowledged').toBe('');
        expect(refused.stderr, args.join(' ')).toMatch(/^mailstore: INVALID: .*copied.*upper and lower case.*exFAT/);
      }
      expect(await ok(['fetch', 'INBOX', '1'], { store: home }), 'the original is untouched').toBe(bytes);

      // an export to the stick: Maildir's ':2,S' is a name exFAT refuses (was NOT_FOUND ENOENT, exit 4)
      await ok(['flags', 'INBOX', '1', '--add', '\\Seen'], { store: home });
      const maildir = await run(['export', 'INBOX', '--format', 'maildir', '--out', join(usb, 'Maildir')], { store: home });
      expect(maildir.code, maildir.stderr).toBe(5);
      expect(maildir.stderr).toMatch(/^mailstore: INVALID: .*':'.*--format mbox/);
      expect(existsSync(join(usb, 'Maildir')), 'no half Maildir').toBe(false);
      await ok(['export', 'INBOX', '--format', 'mbox', '--out', join(usb, 'INBOX.mbox')], { store: home });
      expect(readFileSync(join(usb, 'INBOX.mbox'), 'latin1')).toContain(bytes.split('\r\n\r\n')[1]);
    } finally {
      cleanUp(work, mounted);
      for (const loop of loops) spawnSync('losetup', ['-d', loop]);
    }
  });

  it.skipIf(skipReason(!!skip, `exFAT: ${skip}`))('a backup repository there: on the default mount (every mode 0777, chmod changes nothing) it is refused ACCESS naming the umask to mount it with, also in a directory it makes itself; mounted umask=022, backup, incremental, check --read-data, restore and forget --prune work', async () => {
    const work = mkdtempSync(join(tmpdir(), 'mailstore-exfat-repo-'));
    const mounted: string[] = [];
    const loops: string[] = [];
    try {
      const store = join(work, 'store');
      await ok(['init'], { store });
      await ok(['mailbox', 'create', 'INBOX'], { store });
      const sent = [message(1, 300), message(2, 200_000), message(3, 500)];
      for (const bytes of sent.slice(0, 2)) await ok(['append', 'INBOX', '-'], { store, input: bytes });
      const usb = exfatMount(work, mounted, loops);
      if (!usb) return;
      for (const repo of [join(usb, 'repo'), join(usb, 'made-first')]) {
        if (repo.endsWith('made-first')) mkdirSync(repo);
        const refused = await run(['backup', '--repo', repo], { store });
        expect(refused.code, refused.stderr).toBe(2);
        expect(refused.stderr).toMatch(/^mailstore: ACCESS: .*umask=022/);
        expect(readdirSync(usb).filter((name) => name === 'repo'), 'nothing was left').toEqual([]);
      }
      expect(readdirSync(join(usb, 'made-first'))).toEqual([]);
      spawnSync('umount', [mounted.pop()!]);
      const made = spawnSync('mount.exfat-fuse', ['-o', 'umask=022', loops[0], usb], { encoding: 'utf8' });
      expect(made.status, made.stderr).toBe(0);
      mounted.push(usb);
      const repo = join(usb, 'repo');
      await ok(['backup', '--repo', repo], { store });
      await ok(['append', 'INBOX', '-'], { store, input: sent[2] });
      await ok(['expunge', 'INBOX', '1'], { store });
      await ok(['backup', '--repo', repo], { store });
      await ok(['backup', 'check', '--repo', repo, '--read-data']);
      const restored = join(work, 'restored');
      await ok(['restore', '--repo', repo, '--to', restored], { store: restored });
      expect(await ok(['fetch', 'INBOX', '2'], { store: restored })).toBe(sent[1]);
      expect(await ok(['fetch', 'INBOX', '3'], { store: restored })).toBe(sent[2]);
      await ok(['backup', 'forget', '--repo', repo, '--keep-last', '1', '--prune']);
      const check = await run(['backup', 'check', '--repo', repo, '--read-data', '--json']);
      expect(check.code, check.stdout.toString()).toBe(0);
      rmSync(restored, { recursive: true });
      await ok(['restore', '--repo', repo, '--to', restored], { store: restored });
      expect((await ok(['messages', 'INBOX'], { store: restored })).trim().split('\n')).toHaveLength(2);
    } finally {
      cleanUp(work, mounted);
      for (const loop of loops) spawnSync('losetup', ['-d', loop]);
    }
  });
});
