// An init stopped part way (SIGKILL, a power cut between its files) is finished by running it
// again; a directory holding anything init did not write, mail above all, is still refused.
import { describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MailstoreError } from '../../src/errors.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { initStore } from '../../src/store/identity.js';
import { Store } from '../../src/store/store.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';

describe('init run again after it was stopped part way', () => {
  it('at every point of the first run, all its writes kept (SIGKILL) or as a power cut left them: the second run gives a store that opens and takes mail', async () => {
    const parent = tmpDir('init-crash');
    const ffs = new FaultFileSystem({ seed: 37 });
    await ffs.startRecording(parent);
    await initStore(ffs, join(parent, 's'));
    let states = 0;
    await ffs.forEachCrash(async (dir) => {
      states++;
      const root = join(dir, 's');
      await initStore(nodeFileSystem, root).catch((error: unknown) => {
        if (!(error instanceof MailstoreError && error.code === 'EXISTS')) throw error; // STORE was durable: the first run had finished
      });
      const store = await Store.open(root);
      await store.createMailbox('INBOX');
      expect((await store.append('INBOX', Buffer.from('Subject: x\r\n\r\nx\r\n'))).uid).toBe(1);
      await store.close();
    }, { modes: ['all-kept', 'random'], tmpRoot: tmpDir('init-crash-states') });
    expect(states).toBeGreaterThan(10);
  });

  it('a directory without STORE that holds a journal segment, a pack or any other file is still refused (INVALID), nothing written', async () => {
    for (const [dir, name] of [['journal', '00000000000000000001.jnl'], ['packs', '00000001.pack'], ['.', 'notes.txt'], ['tmp', 'x']]) {
      const root = join(tmpDir('init-mail'), 's');
      for (const sub of ['packs', 'journal', 'quarantine', 'tmp']) mkdirSync(join(root, sub), { recursive: true });
      writeFileSync(join(root, 'packs', 'STORE-ID'), 'x\n');
      writeFileSync(join(root, dir, name), 'mail');
      const error = await initStore(nodeFileSystem, root).catch((e: unknown) => e);
      expect((error as MailstoreError).code).toBe('INVALID');
      expect((error as MailstoreError).message).toMatch(/not empty and holds no store/);
    }
  });
});
