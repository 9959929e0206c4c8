// The store's inline-body threshold (src/store/inline-setting.ts, INLINE-BODIES): set once, used by
// every later open that names no threshold itself; an open's own option wins; a damaged setting is
// CORRUPT, naming the file, and nothing is written; a bad value is INVALID and changes nothing.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { limits } from '../../src/limits.js';
import { INLINE_BODIES_FILE } from '../../src/store/inline-setting.js';
import { INLINE_PACK } from '../../src/blob/pack-store.js';
import { keys } from '../../src/keys/index-keys.js';
import { Store } from '../../src/store/store.js';
import { codeOf } from '../helpers/errors.js';
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
});
