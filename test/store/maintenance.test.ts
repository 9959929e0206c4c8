// The two narrow interfaces of src/store/maintenance.ts and src/store/administration.ts: what they
// hand out is the store's current state, also after maintenance replaced the index underneath.
import { expect, it } from 'vitest';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { keys } from '../../src/keys/index-keys.js';
import { meta } from '../../src/store/apply.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { describeEachFs } from '../helpers/filesystems.js';
import { tmpDir } from '../helpers/tmp.js';
import { PACKED } from '../helpers/packed.js';

/** Every file below `dir` with its size: what a refused change must leave as it was. */
function files(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const entry of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    const stat = statSync(join(dir, entry));
    if (stat.isFile()) out[entry] = stat.size;
  }
  return out;
}

const msg = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);

describeEachFs('store.maintenance() and store.administration()', ({ Store }) => {
  it('read the index that is installed now: after reconstructIndex swapped it, not the closed one', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    const maintenance = store.maintenance();
    const administration = store.administration();
    const before = maintenance.index;
    const rebuilt = await maintenance.reconstructIndex();
    expect(rebuilt.differences).toBe(0);
    expect(maintenance.index, 'the swap installed a new index').not.toBe(before);
    expect(administration.index).toBe(maintenance.index);
    expect(await maintenance.index.get(keys.blob(hashBytes(msg(1)))), 'the blob is known to the new index').toMatchObject({ r: 1 });
    const names: Buffer[] = [];
    for await (const [key] of administration.index.entries({ prefix: keys.name(['INBOX']) })) names.push(key);
    expect(names).toHaveLength(1);
    // A change through the administration interface lands in the new index and is read back by the Store.
    const appliedBefore = (await maintenance.index.get<number>(meta.appliedSeq))!;
    await administration.mutate({ prepare: async () => ({ ops: [{ op: 'meta.set', key: 'user/probe', value: 7 }], result: undefined }) });
    expect(await store.getMeta('probe')).toBe(7);
    expect(await maintenance.index.get<number>(meta.appliedSeq)).toBe(appliedBefore + 1);
    expect((await store.fetch('INBOX', 1)).equals(msg(1))).toBe(true);
    await store.close();
  });

  it('the maintenance writes of a read-only open (rewriteJournalFromIndex too) are refused with ACCESS; nothing in the store changes', async () => {
    const dir = tmpDir();
    const writer = await Store.open(dir, { create: true, ...PACKED }); // the body in a pack: relocateBlobs below would move it
    await writer.createMailbox('INBOX');
    await writer.append('INBOX', msg(2));
    await writer.close();
    const before = files(dir);
    const store = await Store.open(dir, { readOnly: true });
    const maintenance = store.maintenance();
    expect(await maintenance.packs.listPacks()).toHaveLength(1);
    expect(maintenance.journal.lastSeq).toBeGreaterThan(0);
    await expect(maintenance.relocateBlobs([{ hash: hashBytes(msg(2)), bytes: msg(2) }])).rejects.toMatchObject({ code: 'ACCESS' });
    await expect(maintenance.adoptBlobs('INBOX', [])).rejects.toMatchObject({ code: 'ACCESS' });
    await expect(maintenance.rewriteJournalFromIndex()).rejects.toMatchObject({ code: 'ACCESS' });
    expect(() => store.administration().mutate({ prepare: async () => ({ ops: [], result: undefined }) })).toThrow(expect.objectContaining({ code: 'ACCESS' }));
    await store.close();
    expect(files(dir), 'no journal written or swapped, no index installed').toEqual(before);
    const again = await Store.open(dir);
    expect((await again.status('INBOX')).messages, 'nothing was lost').toBe(1);
    await again.close();
  });
});
