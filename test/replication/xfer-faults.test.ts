// XFER meeting a full disk at its target and a damaged message at its source: it fails before its
// switch, the user stays at the source whole, the target keeps none of it.
import { afterEach, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { xferUser } from '../../src/replication/xfer.js';
import { tmpDir } from '../helpers/tmp.js';
import { mountTmpfs, noRoot, unmountAll } from '../helpers/tmpfs.js';
import { codeOf, keyFile, msg, quiet } from './helpers.js';

afterEach(unmountAll);

describe('xfer faults', () => {
  it.skipIf(noRoot)('a target whose disk fills half-way: NO_SPACE before the switch, every message still at the source', async () => {
    const key = keyFile();
    const mnt = tmpDir('tmpfs');
    expect(mountTmpfs(mnt, '4m')).toBeUndefined();
    const a = await Store.open(tmpDir('a'), { create: true });
    const b = await Store.open(join(mnt, 'b'), { create: true });
    const target = await startPrimary(b, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    try {
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      const bodies = Array.from({ length: 60 }, (_, i) => msg(i + 1, 100_000 + i));
      for (const body of bodies) await a.append('user/bob/INBOX', body);
      const code = await codeOf(xferUser(a, { user: 'bob', to: `127.0.0.1:${(await target.status()).port}`, keyFile: key, log: quiet }));
      expect(code).toBe('NO_SPACE');
      for (const [i, body] of bodies.entries()) expect(Buffer.compare(await a.fetch('user/bob/INBOX', i + 1), body)).toBe(0);
      expect((await b.listMailboxes()).map((m) => m.name)).toEqual([]);
      await b.createMailbox('user/other/INBOX');
      await b.append('user/other/INBOX', msg(1));
    } finally {
      await target.close();
      await a.close();
      await b.close();
    }
  }, 60_000);

  it('a source message whose bytes were damaged on disk: the XFER stops CORRUPT before its switch, the user stays at the source', async () => {
    const key = keyFile();
    const dirA = tmpDir('a');
    const a = await Store.open(dirA, { create: true, inlineBodyBytesMax: 0 });
    const b = await Store.open(tmpDir('b'), { create: true });
    const target = await startPrimary(b, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    try {
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      const marker = 'DAMAGE-ME-'.repeat(400);
      await a.append('user/bob/INBOX', msg(1, 10));
      await a.append('user/bob/INBOX', Buffer.from(`Subject: x\r\n\r\n${marker}\r\n`));
      await a.append('user/bob/INBOX', msg(3, 10));
      let flipped = 0;
      const packs = join(dirA, 'packs');
      const walk = (dir: string) => {
        for (const entry of readdirSync(dir, { withFileTypes: true })) {
          const path = join(dir, entry.name);
          if (entry.isDirectory()) walk(path);
          else {
            const bytes = readFileSync(path);
            const at = bytes.indexOf('DAMAGE-ME-DAMAGE');
            if (at >= 0) { bytes[at + 100] ^= 0xff; writeFileSync(path, bytes); flipped++; }
          }
        }
      };
      walk(packs);
      expect(flipped).toBe(1);
      const code = await codeOf(xferUser(a, { user: 'bob', to: `127.0.0.1:${(await target.status()).port}`, keyFile: key, log: quiet }));
      expect(code).toBe('CORRUPT');
      expect((await a.listMailboxes()).map((m) => m.name)).toEqual(['user/bob/INBOX']);
      expect(Buffer.compare(await a.fetch('user/bob/INBOX', 3), msg(3, 10))).toBe(0);
      expect((await b.listMailboxes()).map((m) => m.name)).toEqual([]);
    } finally {
      await target.close();
      await a.close();
      await b.close();
    }
  }, 60_000);
});
