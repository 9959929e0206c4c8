// The store's inline-body threshold (src/store/inline-setting.ts, INLINE-BODIES): set once, used by
// every later open that names no threshold itself; an open's own option wins; a damaged setting is
// CORRUPT, naming the file, and nothing is written; a bad value is INVALID and changes nothing. An
// unreadable one (EACCES, EIO) is ACCESS or IO: an open never falls back to the default threshold,
// which would change where bodies go.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { limits } from '../../src/limits.js';
import { INLINE_BODIES_FILE } from '../../src/store/inline-setting.js';
import { INLINE_PACK } from '../../src/blob/pack-store.js';
import { keys } from '../../src/keys/index-keys.js';
import { Store } from '../../src/store/store.js';
import { codeOf } from '../helpers/errors.js';
import { FaultFileSystem, type FaultKind } from '../sim/faultfs.js';
import { fingerprint } from '../sim/helpers.js';
import { tmpDir } from '../helpers/tmp.js';

const message = (bytes: number) => Buffer.concat([Buffer.from('Subject: s\r\n\r\n'), Buffer.alloc(bytes, 0x61)]);

/** Where a delivered body lives (by its hash): inside its journal record, or in a pack. */
async function placeOf(store: Store, hash: string): Promise<'inline' | 'pack'> {
  const blob = (await store.maintenance().index.get<{ p: number }>(keys.blob(Buffer.from(hash, 'hex'))))!;
  return blob.p === INLINE_PACK ? 'inline' : 'pack';
}

describe('the inline bodies setting', () => {
  it('defaults to the measured threshold; a stored setting is used by the next open; an open option wins; default removes it', async () => {
    const root = tmpDir();
    let store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    expect(await store.inlineBodies()).toEqual({ inlineBytesMax: limits.inlineBodyBytesDefault, setting: undefined });
    expect(limits.inlineBodyBytesDefault).toBe(limits.inlineBodyBytesMeasured);
    const small = await store.append('INBOX', message(1000));
    expect(await placeOf(store, small.hash)).toBe('inline');
    await store.setInlineBodies(0); // applies to the next append at once
    const packed = await store.append('INBOX', message(1001));
    expect(await placeOf(store, packed.hash)).toBe('pack');
    await store.close();
    expect(readFileSync(join(root, INLINE_BODIES_FILE), 'utf8')).toMatch(/^inline-bytes-max 0\ncrc32 [0-9a-f]{8}\n$/);
    store = await Store.open(root);
    expect(await store.inlineBodies()).toEqual({ inlineBytesMax: 0, setting: 0 });
    expect(await placeOf(store, (await store.append('INBOX', message(1002))).hash)).toBe('pack');
    await store.close();
    store = await Store.open(root, { inlineBodyBytesMax: 2048 }); // this open only
    expect((await store.inlineBodies()).inlineBytesMax).toBe(2048);
    expect(await placeOf(store, (await store.append('INBOX', message(1003))).hash)).toBe('inline');
    await store.setInlineBodies(undefined);
    await store.close();
    store = await Store.open(root);
    expect(await store.inlineBodies()).toEqual({ inlineBytesMax: limits.inlineBodyBytesDefault, setting: undefined });
    for (const [uid, size] of [[1, 1000], [2, 1001], [3, 1002], [4, 1003]]) expect((await store.fetch('INBOX', uid)).equals(message(size))).toBe(true);
    await store.close();
  });

  it('a damaged setting is CORRUPT at open, naming the file; a bad value is INVALID and leaves the setting as it was', async () => {
    const root = tmpDir();
    const store = await Store.open(root, { create: true });
    await store.setInlineBodies(4096);
    expect(await codeOf(store.setInlineBodies(-1))).toBe('INVALID');
    expect(await codeOf(store.setInlineBodies(limits.inlineBodyBytesSettingMax + 1))).toBe('INVALID');
    expect(await codeOf(store.setInlineBodies(1.5))).toBe('INVALID');
    expect((await store.inlineBodies()).setting).toBe(4096);
    await store.close();
    expect(await codeOf(Store.open(root, { inlineBodyBytesMax: -5 }))).toBe('INVALID');
    const path = join(root, INLINE_BODIES_FILE);
    writeFileSync(path, readFileSync(path, 'utf8').replace('4096', '4097')); // the checksum no longer matches
    const error = await Store.open(root).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CORRUPT', path });
    const reopened = await Store.open(root, { inlineBodyBytesMax: 0 }); // an explicit threshold does not read it
    await reopened.setInlineBodies(4096); // and it can be written again
    await reopened.close();
    await (await Store.open(root)).close();
  });

  /** A closed store whose setting sends every body to a pack (0), with two messages in it. */
  async function packedByItsSetting() {
    const root = tmpDir();
    const store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    await store.setInlineBodies(0);
    for (const size of [100, 200]) await store.append('INBOX', message(size));
    await store.close();
    const path = join(root, INLINE_BODIES_FILE);
    return { root, path, good: readFileSync(path) };
  }

  /** The open was refused: nothing was written, and with the file mended the setting (0) is what the next open uses. */
  async function expectRefusedThenMended(root: string, path: string, good: Buffer, before: Record<string, string>): Promise<void> {
    expect(fingerprint(root, ['index']), 'a refused open writes nothing').toEqual(before);
    rmSync(path, { recursive: true, force: true });
    writeFileSync(path, good);
    const store = await Store.open(root); // the lock was released too
    try {
      expect(await store.inlineBodies()).toEqual({ inlineBytesMax: 0, setting: 0 });
      expect(await placeOf(store, (await store.append('INBOX', message(300))).hash), 'never the default threshold').toBe('pack');
      for (const [uid, size] of [[1, 100], [2, 200], [3, 300]]) expect((await store.fetch('INBOX', uid)).equals(message(size))).toBe(true);
    } finally {
      await store.close();
    }
  }

  const withChecksum = (text: string) => `${text}\ncrc32 ${crc32(Buffer.from(text)).toString(16).padStart(8, '0')}\n`;
  const DAMAGED: [string, (good: Buffer) => Buffer | string][] = [
    ['its checksum line cut off', (good) => good.toString('utf8').split('\n')[0]],
    ['empty', () => ''],
    ['garbage bytes', () => Buffer.from([0xff, 0x00, 0x13, 0x37, 0x0a, 0xfe])],
    ['a bit flipped in the value', (good) => { const bytes = Buffer.from(good); bytes[bytes.indexOf('0')] ^= 0x02; return bytes; }],
    ['a value above the setting maximum, checksummed', () => withChecksum(`inline-bytes-max ${limits.inlineBodyBytesSettingMax + 1}`)],
    ['another setting\'s text, checksummed', () => withChecksum('/var/archive/journal')],
  ];

  for (const [name, damage] of DAMAGED) {
    it(`INLINE-BODIES ${name}: open is CORRUPT naming the file, never the default threshold; mended, the setting holds`, async () => {
      const { root, path, good } = await packedByItsSetting();
      writeFileSync(path, damage(good));
      const before = fingerprint(root, ['index']);
      const error = await Store.open(root).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CORRUPT', path });
      expect((error as Error).message).toMatch(/mailstore config --inline-bytes-max/);
      await expectRefusedThenMended(root, path, good, before);
    });
  }

  const UNREADABLE: [FaultKind, string][] = [['EACCES', 'ACCESS'], ['EIO', 'IO']];
  for (const [fault, code] of UNREADABLE) {
    it(`INLINE-BODIES unreadable (${fault}): open is ${code} naming the file, never the default threshold; readable again, the setting holds`, async () => {
      const { root, path, good } = await packedByItsSetting();
      const ffs = new FaultFileSystem();
      ffs.failAll(fault, { pathPrefix: path, ops: ['read'] });
      const before = fingerprint(root, ['index']);
      const error = await Store.open(root, { fs: ffs }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code, path });
      expect((error as Error).message).toMatch(new RegExp(`reading the inline bodies setting .*${fault}`));
      expect(ffs.firedFaults().map((f) => f.path)).toEqual([path]);
      await expectRefusedThenMended(root, path, good, before);
    });
  }

  it('INLINE-BODIES replaced by a directory: open is IO (EISDIR) naming the file, never the default', async () => {
    const { root, path, good } = await packedByItsSetting();
    rmSync(path);
    mkdirSync(path);
    const before = fingerprint(root, ['index']);
    const error = await Store.open(root).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IO', path });
    expect((error as Error).message).toMatch(/reading the inline bodies setting .*EISDIR/);
    await expectRefusedThenMended(root, path, good, before);
  });

  it('damaged while the store is open: inlineBodies() is CORRUPT; the threshold in use stays the one read at open', async () => {
    const { root, path } = await packedByItsSetting();
    const store = await Store.open(root);
    try {
      writeFileSync(path, 'inline-bytes-max 65536\n');
      expect(await codeOf(store.inlineBodies())).toBe('CORRUPT');
      expect(await placeOf(store, (await store.append('INBOX', message(300))).hash)).toBe('pack');
    } finally {
      await store.close();
    }
  });
});
