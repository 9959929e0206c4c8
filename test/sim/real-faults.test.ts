// Real faults from the kernel (docs/FAULTS.md), root only; each test says why when it skips:
//   - power cut: ext4 on a loop device; the writers frozen, the image copied, the copy checked (power-cut.ts);
//   - disk full: a 2 MiB tmpfs;
//   - permissions: the store run as `nobody` (setpriv), a directory losing its write bit;
//   - vanished partition: `umount -l` of a tmpfs under a running store.
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { SoakLedger } from '../../tools/soak.js';
import { LoopDisk, powerCutSkipReason, runUntilPowerCut } from './power-cut.js';
import { expectCode, expectExactly, msg, skipReason } from './helpers.js';
import { tmpDir } from '../helpers/tmp.js';
import { AS_NOBODY, nobodyCannotReach } from '../helpers/nobody.js';

const isRoot = process.getuid?.() === 0;
const SOAK_SCRIPT = new URL('../../dist/tools/soak.js', import.meta.url).pathname;
const DIST_STORE = new URL('../../dist/src/store/store.js', import.meta.url).pathname;

/** Mounts made by a test, unmounted (lazily, if busy) afterwards. */
const mounts: string[] = [];
afterEach(() => {
  for (const dir of mounts.splice(0).reverse()) spawnSync('umount', ['-l', dir]);
});

function tryMount(args: string[], dir: string): string | undefined {
  const r = spawnSync('mount', [...args, dir], { encoding: 'utf8' });
  if (r.status !== 0) return `mount ${args.join(' ')} failed: ${r.stderr.trim()}`;
  mounts.push(dir);
  return undefined;
}

const noRoot = !isRoot ? 'needs root (mount, losetup, setpriv)' : undefined;


describe('real faults (root only)', () => {
  // The power cut by the image-copy model (power-cut.ts); test/sim/power-cut.test.ts cuts every
  // other kind of work too. `xfs_io -x -c shutdown` is no oracle for "acknowledged ⇒ present":
  // it lost fdatasync-acknowledged writes of a correct program (docs/FAULTS.md).
  const powerWork = tmpDir('powercut-probe');
  const powerSkip = noRoot ?? (!existsSync(SOAK_SCRIPT) ? `${SOAK_SCRIPT} missing: run npm run build` : powerCutSkipReason(powerWork));
  it.skipIf(skipReason(!!powerSkip, `power cut: ${powerSkip}`))('power cut (image copy) under the 4 soak writers: every acknowledged operation is on the copy', async () => {
    const disk = new LoopDisk(join(powerWork, 'disk'), 96);
    const copy = join(powerWork, 'cut.img');
    const ledger = new SoakLedger();
    const cycles = 3;
    try {
      disk.format();
      for (let cycle = 0; cycle < cycles; cycle++) {
        disk.mount();
        const { lines } = await runUntilPowerCut(SOAK_SCRIPT, ['child', join(disk.mnt, 'store'), String(cycle), String(1000 + cycle)], { cutAfterMs: 300 + 200 * cycle, disk, copy });
        disk.unmount();
        disk.replaceImage(copy); // the disk after the power came back
        disk.mount();
        ledger.absorb(lines, cycle);
        await ledger.verify(join(disk.mnt, 'store'), cycle);
        disk.unmount();
      }
    } finally {
      disk.dispose();
    }
    console.info(`power cut (${cycles} image copies): ${JSON.stringify(ledger.counts)}`);
    expect(ledger.counts.appendsAcked).toBeGreaterThan(0);
  });

  it.skipIf(skipReason(!!noRoot, `disk full on tmpfs: ${noRoot}`))('disk full on a 2 MiB tmpfs: NO_SPACE, nothing acknowledged lost, writes resume once space is freed', async () => {
    const mnt = tmpDir('tmpfs');
    const failed = tryMount(['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs'], mnt);
    if (failed) { console.warn(`SKIPPED: disk full: ${failed}`); return; }
    const filler = join(mnt, 'filler');
    writeFileSync(filler, Buffer.alloc(512 * 1024)); // the space an admin frees later
    const dir = join(mnt, 'store');
    let store = await Store.open(dir, { create: true, packBytesMax: 256 * 1024, journalSegmentBytesMax: 64 * 1024 });
    await store.createMailbox('INBOX');
    const acked = new Map<number, Buffer>();
    let error: MailstoreError | undefined;
    for (let i = 0; i < 200 && !error; i++) {
      const bytes = msg(`full-${i}`, 40_000 + i);
      try {
        acked.set((await store.append('INBOX', bytes)).uid, bytes);
      } catch (e) {
        error = e as MailstoreError;
      }
    }
    expect(error, 'the disk filled up').toBeDefined();
    // NO_SPACE from the pack or journal; CLOSED when the journal was durable but LevelDB could not
    // write (the change is acknowledged and replayed on the next open)
    expect(['NO_SPACE', 'CLOSED'], error!.message).toContain(error!.code);
    if (error!.code === 'NO_SPACE') {
      await expectCode(store.append('INBOX', msg('still-full', 40_000)), 'NO_SPACE');
      await expectExactly(store, 'INBOX', acked, 'reads on a full disk');
    }
    await store.close().catch(() => undefined);
    rmSync(filler);
    store = await Store.open(dir);
    await expectExactly(store, 'INBOX', acked, 'after space was freed');
    const after = await store.append('INBOX', msg('after', 1000));
    expect(after.uid).toBeGreaterThan(Math.max(...acked.keys()));
    await store.close();
    console.info(`tmpfs 2 MiB: ${acked.size} appends acknowledged, then ${error!.code}: ${error!.message}`);
  });

  const privSkip = noRoot ?? nobodyCannotReach(DIST_STORE);
  it.skipIf(skipReason(!!privSkip, `permissions: ${privSkip}`))('permissions as an unprivileged user: ACCESS at open naming the path; at runtime writes fail, reads work, writes resume', async () => {
    const work = tmpDir('perm');
    chownSync(work, 65534, 65534);
    const script = `
      import { Store } from ${JSON.stringify(DIST_STORE)};
      import { chmodSync } from 'node:fs';
      import { join } from 'node:path';
      const dir = ${JSON.stringify(join(work, 'store'))};
      const out = {};
      const code = (p) => p.then(() => 'ok', (e) => e.code + ' ' + (e.path ?? ''));
      // bodies in packs (inline bodies off): every append writes packs/ and journal/
      let store = await Store.open(dir, { create: true, packBytesMax: 1, journalSegmentBytesMax: 1, inlineBodyBytesMax: 0 });
      await store.createMailbox('INBOX');
      const first = await store.append('INBOX', Buffer.from('first'));
      for (const sub of ['packs', 'journal']) {
        chmodSync(join(dir, sub), 0o550);
        out[sub + 'Denied'] = await code(store.append('INBOX', Buffer.from('denied ' + sub)));
        out[sub + 'Read'] = (await store.fetch('INBOX', first.uid)).toString();
        chmodSync(join(dir, sub), 0o750);
        out[sub + 'Back'] = await code(store.append('INBOX', Buffer.from('back ' + sub)));
      }
      await store.close();
      chmodSync(join(dir, 'STORE'), 0o000);
      out.open = await code(Store.open(dir));
      chmodSync(join(dir, 'STORE'), 0o640);
      store = await Store.open(dir);
      out.degraded = store.health.degraded;
      out.messages = [];
      for await (const m of store.messages('INBOX')) out.messages.push((await store.fetch('INBOX', m.uid)).toString());
      await store.close();
      console.log(JSON.stringify(out));`;
    const child = spawnSync('setpriv', [...AS_NOBODY, process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', cwd: work });
    expect(child.status, child.stderr).toBe(0);
    const out = JSON.parse(child.stdout.trim().split('\n').at(-1)!);
    expect(out.packsDenied).toMatch(/^ACCESS .*packs/);
    expect(out.journalDenied).toMatch(/^ACCESS .*journal/);
    expect(out.packsRead).toBe('first');
    expect(out.journalRead).toBe('first');
    expect(out.packsBack).toBe('ok');
    expect(out.journalBack).toBe('ok');
    expect(out.open).toBe(`ACCESS ${join(work, 'store', 'STORE')}`);
    expect(out.degraded).toBe(false);
    expect(out.messages).toEqual(['first', 'back packs', 'back journal']);
  });

  it.skipIf(skipReason(!!noRoot, `umount -l: ${noRoot}`))('umount -l under a running store: UNMOUNTED, and nothing appears in the mount-point directory', async () => {
    const dir = tmpDir('vanish');
    // mode: a tmpfs's root is 1777 unless told, and init refuses a root that others may write
    const failed = tryMount(['-t', 'tmpfs', '-o', 'size=16m,mode=0750', 'tmpfs'], dir);
    if (failed) { console.warn(`SKIPPED: umount -l: ${failed}`); return; }
    const store = await Store.open(dir, { create: true, packBytesMax: 1, journalSegmentBytesMax: 1 });
    await store.createMailbox('INBOX');
    const first = await store.append('INBOX', msg(1));
    expect((await store.fetch('INBOX', first.uid)).equals(msg(1))).toBe(true); // opens the pack's read fd
    const unread = await store.append('INBOX', msg(3)); // its own pack (or inline: its own journal segment), never opened for reading
    execFileSync('umount', ['-l', dir]);
    mounts.pop();
    expect(readdirSync(dir), 'the mount point is empty once the tmpfs is detached').toEqual([]);
    await expectCode(store.append('INBOX', msg(2)), 'UNMOUNTED'); // needs a new pack: refused
    await expectCode(store.setFlags('INBOX', first.uid, { add: ['\\Seen'] }).then(() => { throw new MailstoreError('IO', 'no new segment needed?'); }), 'UNMOUNTED');
    expect(readdirSync(dir), 'nothing was created on the parent file system').toEqual([]);
    expect((await store.fetch('INBOX', first.uid)).equals(msg(1)), 'old fds still read the detached file system').toBe(true);
    await expectCode(store.fetch('INBOX', unread.uid), 'UNMOUNTED'); // a missing pack on a vanished partition is not damage
    await store.close().catch(() => undefined);
    expect(readdirSync(dir)).toEqual([]);
  });
});
