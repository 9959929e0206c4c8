// scrub --repair with quarantine/ unreadable (its mode lost, the store's owner not root): the copy
// of a damaged record into it failed with the raw EACCES of a stat, which the CLI printed as
// "INTERNAL ... (a bug)" (an outside tester's finding, wt47b). It is ACCESS naming the path now,
// and nothing else changed: every other message reads back, the damaged one stays reported.
import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PackedStore as Store } from '../helpers/packed.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { tmpDir } from '../helpers/tmp.js';

describe('scrub --repair with quarantine/ unreadable', () => {
  it('fails ACCESS naming quarantine/, not a plain error; the messages are as before', async () => {
    const root = tmpDir();
    const fs = new FaultFileSystem();
    const store = await Store.open(root, { create: true, fs });
    try {
      await store.createMailbox('INBOX');
      const bodies = [1, 2, 3].map((i) => Buffer.from(`Subject: ${i}\r\n\r\n${String(i).repeat(500)}\r\n`));
      for (const body of bodies) await store.append('INBOX', body);
      const pack = join(root, 'packs', '00000001.pack');
      const bytes = readFileSync(pack);
      bytes[bytes.length - 10] ^= 0x01; // the last message's body
      writeFileSync(pack, bytes);
      const before = await scrub(store);
      expect(before.summary.damage).toBe(1);
      fs.failAll('EACCES', { pathPrefix: join(root, 'quarantine'), ops: ['stat', 'create', 'open', 'rename', 'mkdir'] });
      const error = await repair(store, before).then(() => undefined, (e: unknown) => e);
      expect(error).toMatchObject({ code: 'ACCESS' }); // before: a plain Error (EACCES), "INTERNAL … a bug" on the CLI
      expect((error as { path?: string }).path).toContain(join(root, 'quarantine'));
      fs.clear();
      for (const uid of [1, 2]) expect((await store.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true);
      await expect(store.fetch('INBOX', 3)).rejects.toMatchObject({ code: 'CORRUPT' });
    } finally {
      await store.close();
    }
  });
});
