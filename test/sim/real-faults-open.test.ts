// Opening a store when the kernel refuses (docs/FAULTS.md), root only; each test says why it skips.
// A full disk or a refused permission while the index opens is NO_SPACE or ACCESS, and nothing is
// moved to quarantine or rebuilt for it: only damage takes the rebuild path (issue 10, #12).
import { afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { expectExactly, fingerprint, msg, skipReason } from './helpers.js';
import { tmpDir } from '../helpers/tmp.js';
import { AS_NOBODY, nobodyCannotReach } from '../helpers/nobody.js';

const isRoot = process.getuid?.() === 0;
const DIST_STORE = new URL('../../dist/src/store/store.js', import.meta.url).pathname;
const DIST_CLI = new URL('../../dist/src/cli/main.js', import.meta.url).pathname;
const noRoot = !isRoot ? 'needs root (mount, setpriv)' : undefined;

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

/** Runs an ES module as `nobody`; returns its last stdout line parsed. */
function asNobody(script: string, cwd: string): any {
  const child = spawnSync('setpriv', [...AS_NOBODY, process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', cwd });
  expect(child.status, child.stderr).toBe(0);
  return JSON.parse(child.stdout.trim().split('\n').at(-1)!);
}

/** Fills the file system of `mnt` with 4 KiB files (their paths pushed to `fillers`) until ENOSPC. */
function fillUp(mnt: string, fillers: string[]): void {
  try {
    for (;;) {
      const path = join(mnt, `filler-${fillers.length}`);
      writeFileSync(path, Buffer.alloc(4096));
      fillers.push(path);
    }
  } catch (error) {
    expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC');
  }
}

describe('opening on a full disk or without permission (root only)', () => {
  it.skipIf(skipReason(!!noRoot || !existsSync(DIST_CLI), `full tmpfs: ${noRoot ?? `${DIST_CLI} missing: run npm run build`}`))('full tmpfs: every open fails NO_SPACE, index/ stays and nothing is quarantined, until space is freed page by page', async () => {
    const mnt = tmpDir('tmpfs');
    const failed = tryMount(['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs'], mnt);
    if (failed) { console.warn(`SKIPPED: full tmpfs: ${failed}`); return; }
    const dir = join(mnt, 'store');
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    const acked = new Map<number, Buffer>();
    for (let i = 0; i < 20; i++) {
      const bytes = msg(i, 100);
      acked.set((await store.append('INBOX', bytes)).uid, bytes);
    }
    await store.close();
    const fillers: string[] = [];
    fillUp(mnt, fillers);
    // The issue's case: a read command on the full disk answers (read-only, its shadow in $TMPDIR).
    const status = spawnSync(process.execPath, [DIST_CLI, '--store', dir, 'mailbox', 'status', 'INBOX', '--json'], { encoding: 'utf8' });
    expect(status.status, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).messages).toBe(20);
    const codes: string[] = [];
    let indexFailures = 0;
    for (let attempt = 0; ; attempt++) {
      expect(attempt, `still failing with ${statfsSync(mnt).bavail} blocks free: ${codes.join(',')}`).toBeLessThan(60);
      try {
        store = await Store.open(dir);
        break;
      } catch (error) {
        expect(error).toBeInstanceOf(MailstoreError);
        const e = error as MailstoreError;
        codes.push(e.code);
        expect(e.code, e.message).toBe('NO_SPACE');
        if (e.path?.includes(`${dir}/index`)) indexFailures++;
        expect(readdirSync(join(dir, 'quarantine')), `after attempt ${attempt}: ${e.message}`).toEqual([]);
        expect(existsSync(join(dir, 'index')), 'index/ stays where it is').toBe(true);
        expect(existsSync(join(dir, 'index.rebuild')), 'no rebuild was started').toBe(false);
        rmSync(fillers.pop()!); // an admin frees a little space
      }
    }
    expect(indexFailures, `the index's own open was refused at least once: ${codes.join(',')}`).toBeGreaterThan(0);
    expect(store.health.rebuilt).toBeUndefined();
    expect(store.health.degraded).toBe(false);
    expect(await store.status('INBOX')).toMatchObject({ messages: 20 });
    await expectExactly(store, 'INBOX', acked, 'after space came back');
    await store.close();
    console.info(`full tmpfs: ${codes.length} opens refused NO_SPACE (${indexFailures} by the index) before one succeeded`);
  });

  it.skipIf(skipReason(!!noRoot, `rebuild on a full tmpfs: ${noRoot}`))('a rebuild of a lost index on a full disk, from a snapshot and from the whole journal: NO_SPACE naming the index being built (was IO "reading a snapshot …: LEVEL_IO_ERROR"), nothing quarantined; with space back it rebuilds every message', async () => {
    const mnt = tmpDir('tmpfs-rebuild');
    const failed = tryMount(['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs'], mnt);
    if (failed) { console.warn(`SKIPPED: rebuild on a full tmpfs: ${failed}`); return; }
    const dir = join(mnt, 'store');
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    const acked = new Map<number, Buffer>();
    for (let round = 0; round < 10; round++) { // ~1,000 messages: an index of a few hundred KiB
      const bytes = Array.from({ length: 100 }, (_, i) => msg(round * 100 + i, 40));
      const uids = await Promise.all(bytes.map((b) => store.append('INBOX', b)));
      uids.forEach((r, i) => acked.set(r.uid, bytes[i]));
    }
    await store.snapshot();
    await store.close();
    const fillers: string[] = [];
    const fill = () => {
      fillUp(mnt, fillers);
      for (let i = 0; i < 16; i++) rmSync(fillers.pop()!); // room for LevelDB to open, not for the load
    };
    const snapshots = readdirSync(join(dir, 'snapshots'));
    for (const from of ['snapshot', 'journal']) {
      rmSync(join(dir, 'index'), { recursive: true });
      if (from === 'journal') for (const name of snapshots) rmSync(join(dir, 'snapshots', name));
      fill();
      const error = await Store.open(dir).then(() => undefined, (e: unknown) => e);
      expect(error, `from the ${from}: the open failed`).toBeInstanceOf(MailstoreError);
      const e = error as MailstoreError;
      expect(e.code, e.message).toBe('NO_SPACE');
      expect(e.path, e.message).toBe(join(dir, 'index.rebuild'));
      expect(e.message).toMatch(/^writing the index at .*No space left on device/);
      expect(readdirSync(join(dir, 'quarantine'))).toEqual([]);
      for (const path of fillers.splice(0)) rmSync(path);
      store = await Store.open(dir);
      expect(store.health.rebuiltFrom, from).toMatch(from === 'snapshot' ? /^snapshot / : /^the whole journal/);
      await expectExactly(store, 'INBOX', acked, `rebuilt from the ${from} once space came back`);
      await store.close();
    }
  });

  const privSkip = noRoot ?? nobodyCannotReach(DIST_STORE);
  it.skipIf(skipReason(!!privSkip, `unreadable index: ${privSkip}`))('index files unreadable by the owner: ACCESS naming index/, also through the after-crash probe; nothing quarantined; readable again, all there', async () => {
    const work = tmpDir('perm');
    const dir = join(work, 'store');
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', Buffer.from('first'));
    await store.close();
    spawnSync('chown', ['-R', 'nobody:nogroup', work]);
    // The files, not the directory: a directory without its own permissions cannot be renamed
    // either, which would hide a wrong rebuild path behind an ACCESS from the rename.
    const indexFiles = readdirSync(join(dir, 'index'));
    for (const name of indexFiles) chmodSync(join(dir, 'index', name), 0o000);
    const script = (stale: boolean) => `
      import { Store } from ${JSON.stringify(DIST_STORE)};
      import { writeFileSync } from 'node:fs';
      const dir = ${JSON.stringify(dir)};
      if (${stale}) writeFileSync(dir + '/LOCK', '999999\\n'); // a crashed owner: open probes the index in a child
      const out = await Store.open(dir).then(async (s) => { await s.close(); return 'opened'; }, (e) => ({ code: e.code, path: e.path, message: e.message }));
      console.log(JSON.stringify(out));`;
    for (const stale of [false, true]) {
      const out = asNobody(script(stale), work);
      expect(out.code, out.message).toBe('ACCESS');
      expect(out.path).toBe(join(dir, 'index'));
      expect(readdirSync(join(dir, 'quarantine'))).toEqual([]);
      expect(readdirSync(dir)).toContain('index');
    }
    for (const name of indexFiles) chmodSync(join(dir, 'index', name), 0o644);
    const out = asNobody(`
      import { Store } from ${JSON.stringify(DIST_STORE)};
      const store = await Store.open(${JSON.stringify(dir)});
      console.log(JSON.stringify({ rebuilt: store.health.rebuilt ?? null, body: (await store.fetch('INBOX', 1)).toString() }));
      await store.close();`, work);
    expect(out).toEqual({ rebuilt: null, body: 'first' });
  });

  it.skipIf(skipReason(!!privSkip, `read-only as a group member: ${privSkip}`))('a store readable but not writable by the caller: ACCESS (not IO) for a writer; read-only open and the CLI read commands work; nothing changes', async () => {
    const work = tmpDir('readonly');
    const dir = join(work, 'store');
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX', { owner: 'alice' });
    const first = await store.append('INBOX', Buffer.from('Subject: first\r\n\r\nbody\r\n'));
    await store.close();
    // root owns it; nobody reads it through the group (the store's modes are 750/640).
    spawnSync('chgrp', ['-R', 'nogroup', work]);
    chmodSync(work, 0o750); // mkdtemp made it 700
    const everything = () => ({ ...fingerprint(dir), ...fingerprint(join(dir, 'lock')) });
    const before = everything();
    const out = asNobody(`
      import { Store } from ${JSON.stringify(DIST_STORE)};
      const dir = ${JSON.stringify(dir)};
      const writer = await Store.open(dir).then(() => 'opened', (e) => ({ code: e.code, path: e.path, message: e.message }));
      const store = await Store.open(dir, { readOnly: true });
      const result = { writer, status: await store.status('INBOX'), body: (await store.fetch('INBOX', ${first.uid})).toString(),
        append: await store.append('INBOX', Buffer.from('x')).then(() => 'ok', (e) => e.code) };
      await store.close();
      console.log(JSON.stringify(result));`, work);
    expect(out.writer.code, out.writer.message).toBe('ACCESS');
    expect(out.writer.path).toBe(join(dir, 'lock'));
    expect(out.status.messages).toBe(1);
    expect(out.body).toBe('Subject: first\r\n\r\nbody\r\n');
    expect(out.append).toBe('ACCESS');
    const cli = (args: string[]) => spawnSync('setpriv', [...AS_NOBODY, process.execPath, DIST_CLI, '--store', dir, ...args], { encoding: 'utf8', cwd: work });
    for (const args of [['mailbox', 'status', 'INBOX', '--json'], ['mailbox', 'list'], ['fetch', 'INBOX', String(first.uid)], ['fetch', '--info', 'INBOX', String(first.uid)], ['stats', '--json'], ['acl', 'get', 'INBOX'], ['acl', 'list', 'alice']]) {
      const result = cli(args);
      expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(0);
    }
    expect(JSON.parse(cli(['mailbox', 'status', 'INBOX', '--json']).stdout).messages).toBe(1);
    expect(cli(['fetch', 'INBOX', String(first.uid)]).stdout).toBe('Subject: first\r\n\r\nbody\r\n');
    const append = cli(['--no-wait', 'append', 'INBOX', '/etc/hostname']);
    expect(append.status).toBe(2);
    expect(append.stderr).toMatch(/^mailstore: ACCESS: /);
    expect(everything(), 'nobody changed nothing in the store').toEqual(before);
  });
});
