// STORE's format version is the one gate every mailstore checks before it reads anything else
// (docs/FORMAT.md, "Compatibility"). Code before session 32 opens exactly version 1 and misreads
// what later code writes (it cut an acknowledged inline-body record as a torn batch, and over a
// retired journal it rebuilt an empty store whose packs a compaction would then reclaim), so a
// store this code has written must not say version 1; a version 1 store is upgraded, crash-safely.
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Store, openNotices } from '../../src/store/store.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { codeOf } from '../helpers/errors.js';
import { tmpDir } from '../helpers/tmp.js';

const msg = (i: number) => Buffer.from(`Subject: m${i}\r\n\r\n${'x'.repeat(100 + i)}\r\n`);

/** STORE's JSON line. */
const identityOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'STORE'), 'utf8').split('\n')[0]) as { version: number; storeId: string; created: string };

/** STORE as docs/FORMAT.md gives it (a hand-written writer: what an older mailstore wrote). */
function writeIdentity(dir: string, fields: Record<string, unknown>): void {
  const body = JSON.stringify(fields);
  writeFileSync(join(dir, 'STORE'), `${body}\ncrc32 ${crc32(Buffer.from(body)).toString(16).padStart(8, '0')}\n`);
}

/** A store with three messages (one an inline body) whose STORE says version 1, as before session 32. */
async function versionOneStore(label: string): Promise<string> {
  const dir = tmpDir(label);
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('user/alice/INBOX', { owner: 'alice' });
  for (let i = 1; i <= 3; i++) await store.append('user/alice/INBOX', msg(i), { flags: i === 2 ? ['\\Seen'] : [] });
  await store.close();
  writeIdentity(dir, { ...identityOf(dir), version: 1 });
  return dir;
}

async function bodies(store: Store): Promise<string[]> {
  const out: string[] = [];
  for await (const m of store.messages('user/alice/INBOX')) out.push(`${m.uid} ${m.flags.join(',')} ${(await store.fetch('user/alice/INBOX', m.uid)).toString()}`);
  return out;
}

const expected = [1, 2, 3].map((i) => `${i} ${i === 2 ? '\\Seen' : ''} ${msg(i).toString()}`);

describe('the store format version', () => {
  it('a store this mailstore creates is not of version 1, which every mailstore before session 32 opens (and misreads)', async () => {
    const dir = tmpDir('store-version-new');
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1)); // an inline body: such older code cut its record as a torn batch
    await store.close();
    expect(identityOf(dir).version).toBe(2);
  });

  it('a version 1 store is opened with everything in it; a read-write open upgrades STORE (a notice says so), a read-only one leaves it', async () => {
    const dir = await versionOneStore('store-version-old');
    const before = identityOf(dir);
    const reader = await Store.open(dir, { readOnly: true });
    expect(await bodies(reader)).toEqual(expected);
    await reader.close();
    expect(identityOf(dir)).toEqual(before);

    const store = await Store.open(dir);
    expect(identityOf(dir)).toEqual({ ...before, version: 2 });
    expect(openNotices(store.health).join('\n')).toMatch(/upgraded from format version 1 to 2/);
    expect(await bodies(store)).toEqual(expected);
    expect((await store.append('user/alice/INBOX', msg(4))).uid).toBe(4);
    await store.close();
    const again = await Store.open(dir);
    expect(openNotices(again.health)).toEqual([]);
    expect((await bodies(again)).slice(0, 3)).toEqual(expected);
    await again.close();
  });

  it('a version a newer mailstore wrote is refused INVALID before anything is written', async () => {
    const dir = await versionOneStore('store-version-future');
    writeIdentity(dir, { ...identityOf(dir), version: 3 });
    const files = readdirSync(dir).sort();
    const identity = readFileSync(join(dir, 'STORE'));
    await expect(Store.open(dir)).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(/store format version 3 is not supported.*newer mailstore/) });
    expect(await codeOf(Store.open(dir, { readOnly: true }))).toBe('INVALID');
    expect(readdirSync(dir).sort()).toEqual(files);
    expect(readFileSync(join(dir, 'STORE'))).toEqual(identity);
  });

  it('a STORE whose store id is not a UUID (hand-edited, or another program\'s) is refused UNMOUNTED before anything is written, not a store whose every journal segment then reads as damaged', async () => {
    const dir = await versionOneStore('store-id-absurd');
    const good = identityOf(dir);
    for (const storeId of ['zz', '../..', '', 'x'.repeat(100000)]) {
      writeIdentity(dir, { ...good, version: 2, storeId });
      for (const area of ['packs', 'journal']) writeFileSync(join(dir, area, 'STORE-ID'), `${storeId}\n`); // consistent, as one hand would make it
      const files = readdirSync(dir).sort();
      await expect(Store.open(dir)).rejects.toMatchObject({ code: 'UNMOUNTED', message: expect.stringMatching(/not a UUID/) });
      expect(readdirSync(dir).sort()).toEqual(files);
    }
    writeIdentity(dir, { ...good, version: 2 });
    for (const area of ['packs', 'journal']) writeFileSync(join(dir, area, 'STORE-ID'), `${good.storeId}\n`);
    const store = await Store.open(dir);
    expect(await bodies(store)).toEqual(expected);
    await store.close();
  });

  it('a crash at any point of the upgrade leaves a store that opens with its mail, STORE of version 1 or 2', async () => {
    const dir = await versionOneStore('store-version-crash');
    const ffs = new FaultFileSystem({ seed: 32 });
    await ffs.startRecording(dir, { exclude: ['index', 'lock'] });
    await (await Store.open(dir, { fs: ffs })).close();
    const upgrade = ffs.ops().findIndex((op) => op.kind === 'rename' && op.to.endsWith('/STORE'));
    expect(upgrade).toBeGreaterThanOrEqual(0);
    const states = ffs.crashStates().filter((c) => c.afterOp <= upgrade + 2);
    expect(states.length).toBeGreaterThan(3);
    for (const state of states) {
      const target = tmpDir('store-version-crashed');
      const report = await ffs.materializeCrash(target, state.afterOp, state.seed, { mode: state.mode });
      expect([1, 2], report.reproduce).toContain(identityOf(target).version);
      const store = await Store.open(target);
      expect(identityOf(target).version, report.reproduce).toBe(2);
      expect(await bodies(store), report.reproduce).toEqual(expected);
      await store.close();
    }
  });
});
