// Store.open(root, { readOnly: true }): reads work, nothing in the store is written (not the lock,
// not recovery, not quarantine), every change is ACCESS, and an index that a read-write open would
// have to replay, rebuild or probe is REFUSED rather than served stale. (As a user who may not
// write the store: test/sim/real-faults-open.test.ts.)
import { cpSync, existsSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { expectCode, expectExactly, fingerprint, msg } from '../sim/helpers.js';
import { tmpDir } from '../helpers/tmp.js';
import { internalsOf } from '../helpers/internals.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import type { FileHandle, FileSystem, OpenMode } from '../../src/fs/filesystem.js';
import { systemError } from '../sim/faultfs.js';
import { segmentFileName } from '../../src/journal/journal-format.js';

async function storeWith(count: number): Promise<{ dir: string; acked: Map<number, Buffer> }> {
  const dir = tmpDir();
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX', { owner: 'alice' });
  const acked = new Map<number, Buffer>();
  for (let i = 0; i < count; i++) acked.set((await store.append('INBOX', msg(i, 50))).uid, msg(i, 50));
  await store.close();
  return { dir, acked };
}

/** Everything in the store, lock/ included (fingerprint skips it: a read-only open must not touch it either). */
function everything(dir: string): Record<string, string> {
  return { ...fingerprint(dir), ...fingerprint(join(dir, 'lock')) };
}

/**
 * The index as a crash, or a file-system snapshot of a running store, leaves it: `late` commits
 * through a writer opened with `options`, then the index is put back as it was before them (not
 * yet applied), with a dead owner's LOCK. Returns what `late` returned and the journal's last seq.
 */
async function indexBehind<T>(dir: string, options: { inlineBodyBytesMax?: number }, late: (store: Store) => Promise<T>): Promise<{ result: T; lastSeq: number }> {
  const older = join(tmpDir(), 'index');
  cpSync(join(dir, 'index'), older, { recursive: true });
  const store = await Store.open(dir, options);
  const result = await late(store);
  const lastSeq = internalsOf(store).journal.lastSeq as number;
  await store.close();
  rmSync(join(dir, 'index'), { recursive: true });
  cpSync(older, join(dir, 'index'), { recursive: true });
  writeFileSync(join(dir, 'LOCK'), '999999\n');
  return { result, lastSeq };
}

describe('read-only open', () => {
  it('serves every read, writes nothing, and refuses every change with ACCESS', async () => {
    const { dir, acked } = await storeWith(5);
    const before = everything(dir);
    // A relative path, and the shadow one level deeper ($TMPDIR): its links must still resolve.
    const tmpBefore = process.env.TMPDIR;
    process.env.TMPDIR = tmpDir();
    const store = await Store.open(relative(process.cwd(), dir), { readOnly: true }).finally(() => {
      if (tmpBefore === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmpBefore;
    });
    expect(store.readOnly).toBe(true);
    await expectExactly(store, 'INBOX', acked, 'read-only');
    expect(await store.status('INBOX')).toMatchObject({ messages: 5, unseen: 5 });
    expect(await store.listMailboxes({ user: 'alice' })).toEqual([expect.objectContaining({ name: 'INBOX' })]);
    expect(await store.getAcl('INBOX')).toHaveProperty('alice');
    expect((await store.stats()).messages).toBe(5);
    let read = 0;
    for await (const m of store.readMessages('INBOX')) read += m.body.length > 0 ? 1 : 0;
    expect(read).toBe(5);
    expect(await store.maintenance().runExclusive(async () => 'ran'), 'scrub cross-checks run without a writer').toBe('ran');
    const changes: [string, () => Promise<unknown>][] = [
      ['append', () => store.append('INBOX', msg('new'))],
      ['createMailbox', () => store.createMailbox('Other')],
      ['renameMailbox', () => store.renameMailbox('INBOX', 'Renamed')],
      ['deleteMailbox', () => store.deleteMailbox('INBOX')],
      ['setFlags', () => store.setFlags('INBOX', [1], { add: ['\\Seen'] })],
      ['expunge', () => store.expunge('INBOX', [1])],
      ['copy', () => store.copy('INBOX', [1], 'INBOX')],
      ['setAcl', () => store.setAcl('INBOX', 'bob', 'lr')],
      ['reconstructIndex', () => store.maintenance().reconstructIndex({ check: true })],
    ];
    for (const [name, change] of changes) {
      const error = await expectCode(change(), 'ACCESS');
      expect(error.message, name).toMatch(/read-only/);
    }
    const shadow = internalsOf(store).db.path;
    expect(shadow.startsWith(dir), 'the index is read through a private shadow, not in the store').toBe(false);
    expect(readdirSync(shadow).some((name) => name.endsWith('.ldb')), 'the shadow holds the tables').toBe(true);
    await store.close();
    expect(existsSync(shadow), 'the shadow is removed on close').toBe(false);
    expect(everything(dir), 'nothing in the store changed').toEqual(before);
    const again = await Store.open(dir);
    await expectExactly(again, 'INBOX', acked, 'read-write afterwards');
    await again.close();
  });

  it('an index behind the journal (a live writer hands it over up to 50 ms after a commit; one that stopped without closing) is caught up in the shadow: the acknowledged state, the store unchanged', async () => {
    const { dir, acked } = await storeWith(3);
    const { result: late } = await indexBehind(dir, {}, (store) => store.append('INBOX', msg('late')));
    const before = everything(dir);
    const reader = await Store.open(dir, { readOnly: true });
    expect((await reader.fetch('INBOX', late.uid)).equals(msg('late'))).toBe(true);
    await expectExactly(reader, 'INBOX', new Map([...acked, [late.uid, msg('late')]]), 'caught up in the shadow');
    await reader.close();
    expect(everything(dir), 'the read-only open changed nothing in the store').toEqual(before);
    const recovered = await Store.open(dir);
    expect((await recovered.fetch('INBOX', late.uid)).equals(msg('late'))).toBe(true);
    await recovered.close();
  });

  it('behind the index, a newest batch whose body never reached its pack (never acknowledged) is REFUSED by a read-only open (never served with it), and cut by a read-write open', async () => {
    const { dir, acked } = await storeWith(3);
    const first = await Store.open(dir, { inlineBodyBytesMax: 0 });
    acked.set((await first.append('INBOX', msg('in a pack', 5000))).uid, msg('in a pack', 5000));
    await first.close();
    const packSizes = Object.fromEntries(readdirSync(join(dir, 'packs')).map((name) => [name, statSync(join(dir, 'packs', name)).size]));
    const { result: lost } = await indexBehind(dir, { inlineBodyBytesMax: 0 }, (store) => store.append('INBOX', msg('body lost at the crash', 5000)));
    // the crash kept the journal record but not the pack bytes it points at
    for (const name of readdirSync(join(dir, 'packs'))) {
      if (name in packSizes) truncateSync(join(dir, 'packs', name), packSizes[name]!);
      else rmSync(join(dir, 'packs', name)); // a pack the batch made, its directory entry never synced
    }
    const before = everything(dir);
    const error = await expectCode(Store.open(dir, { readOnly: true }), 'REFUSED');
    expect(error.message).toMatch(/never acknowledged/);
    expect(error.message).toMatch(/on read-only media .*copy the store to writable storage/);
    expect(everything(dir), 'the refused open changed nothing in the store').toEqual(before);
    const recovered = await Store.open(dir);
    await expectExactly(recovered, 'INBOX', acked, 'a read-write open cuts the batch');
    await expectCode(recovered.fetch('INBOX', lost.uid), 'NOT_FOUND');
    await recovered.close();
  });

  it('an index behind the journal, taken just as the writer began a new segment (its file made, nothing written in it yet): served with every record of the segment before, as a read-write open serves it', async () => {
    const { dir, acked } = await storeWith(2);
    const { result: late, lastSeq } = await indexBehind(dir, {}, (store) => store.append('INBOX', msg('late')));
    // Journal.createSegment makes the file; its header is written with the first records.
    writeFileSync(join(dir, 'journal', segmentFileName(lastSeq + 1)), '');
    const before = everything(dir);
    const reader = await Store.open(dir, { readOnly: true });
    await expectExactly(reader, 'INBOX', new Map([...acked, [late.uid, msg('late')]]), 'the records before the new segment are served');
    await reader.close();
    expect(everything(dir), 'the read-only open changed nothing in the store').toEqual(before);
    const recovered = await Store.open(dir);
    await expectExactly(recovered, 'INBOX', new Map([...acked, [late.uid, msg('late')]]), 'as a read-write open serves them');
    await recovered.close();
  });

  it('EIO while it reads the newest batch\'s bodies back from their pack fails the read-only open with IO (not REFUSED as never acknowledged, nothing served, the store unchanged); the disk readable again, it is served', async () => {
    const { dir, acked } = await storeWith(2);
    const { result: late } = await indexBehind(dir, { inlineBodyBytesMax: 0 }, (store) => store.append('INBOX', msg('late, in a pack', 5000)));
    const before = everything(dir);
    // Reads of pack files fail as a failing disk's do (the real file system underneath otherwise).
    const packReadsFail = (handle: FileHandle): FileHandle => new Proxy(handle, {
      get(target, property) {
        if (property === 'read' && target.path.includes('/packs/')) return async () => { throw systemError('EIO', 'read', target.path); };
        const value = Reflect.get(target, property);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const fs: FileSystem = new Proxy(nodeFileSystem, {
      get(target, property) {
        if (property === 'open') return async (path: string, mode: OpenMode) => packReadsFail(await target.open(path, mode));
        const value = Reflect.get(target, property);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    await expectCode(Store.open(dir, { readOnly: true, fs }), 'IO');
    expect(everything(dir), 'the failed open changed nothing in the store').toEqual(before);
    const reader = await Store.open(dir, { readOnly: true });
    await expectExactly(reader, 'INBOX', new Map([...acked, [late.uid, msg('late, in a pack', 5000)]]), 'the batch is served once its pack reads');
    await reader.close();
  });

  it('a missing or damaged index is REFUSED (no rebuild, no quarantine); torn journal bytes are not cut', async () => {
    const { dir, acked } = await storeWith(2);
    const segment = readdirSync(join(dir, 'journal')).find((n) => n.endsWith('.jnl'))!;
    appendFileSync(join(dir, 'journal', segment), Buffer.from('torn bytes of a write that never finished'));
    let before = everything(dir);
    const store = await Store.open(dir, { readOnly: true });
    await expectExactly(store, 'INBOX', acked, 'beside a torn tail');
    await store.close();
    expect(everything(dir), 'the torn tail is left for a read-write open to cut').toEqual(before);
    writeFileSync(join(dir, 'index', 'CURRENT'), 'MANIFEST-999999\n'); // names a MANIFEST that is not there
    before = everything(dir);
    expect((await expectCode(Store.open(dir, { readOnly: true }), 'REFUSED')).message).toMatch(/cannot be used/);
    rmSync(join(dir, 'index'), { recursive: true });
    before = everything(dir);
    expect((await expectCode(Store.open(dir, { readOnly: true }), 'REFUSED')).message).toMatch(/missing/);
    expect(everything(dir)).toEqual(before);
    expect(readdirSync(join(dir, 'quarantine'))).toEqual([]);
  });

  it('LOCKED beside a writer: a store open for writing in this process, or in another one (after waiting)', async () => {
    const { dir } = await storeWith(1);
    const writer = await Store.open(dir);
    expect((await expectCode(Store.open(dir, { readOnly: true }), 'LOCKED')).message).toMatch(/already open for writing in this process/);
    await writer.close();
    // another process holding the store as a writer does: its pid in LOCK, the kernel lock file open
    const holder = spawn(process.execPath, ['-e', `require('fs').openSync(${JSON.stringify(join(dir, 'lock', 'LOCK'))}); require('fs').writeFileSync(${JSON.stringify(join(dir, 'LOCK'))}, process.pid + '\\n'); console.log('held'); setInterval(() => {}, 1000)`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise((held) => holder.stdout!.once('data', held));
      const started = Date.now();
      const error = await expectCode(Store.open(dir, { readOnly: true, lockWaitMs: 300 }), 'LOCKED');
      expect(error.message).toContain(`process ${holder.pid}`);
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      await expectCode(Store.open(dir, { readOnly: true, create: true }), 'INVALID');
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('reads when LOCK names a live process that does not hold this store (a copy or snapshot of a live store, a reused pid)', async () => {
    const { dir, acked } = await storeWith(2);
    writeFileSync(join(dir, 'LOCK'), `${process.ppid}\n`); // alive, but without this store's lock/LOCK open
    const reader = await Store.open(dir, { readOnly: true, lockWaitMs: 0 });
    await expectExactly(reader, 'INBOX', acked, 'read-only beside a process that is not its writer');
    await reader.close();
  });
});
