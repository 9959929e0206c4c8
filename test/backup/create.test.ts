// Two first backups into one new repository at once (two stores' nightly runs on a freshly
// mounted backup disk): one config is written and both runs use it. When each wrote its own, the
// later one replaced the earlier, and the files sealed with the earlier one's keys never read again.
import { mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FileSystem } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import type { IndexFile, Repository } from '../../src/backup/repository.js';
import { tmpDir } from '../helpers/tmp.js';
import { openRepo } from './helpers.js';

/** A file system on which a config is put in place only once `parties` creators have got that far. */
function meetingAtConfig(parties: number): FileSystem {
  let waiting = 0;
  let open!: () => void;
  const met = new Promise<void>((resolve) => { open = resolve; });
  const meet = async (to: string) => {
    if (!to.endsWith('/config')) return;
    if (++waiting >= parties) open();
    await met;
  };
  const fs = Object.create(nodeFileSystem) as FileSystem;
  fs.rename = async (from, to) => { await meet(to); return nodeFileSystem.rename(from, to); };
  fs.renameNoReplace = async (from, to) => { await meet(to); return nodeFileSystem.renameNoReplace(from, to); };
  return fs;
}

describe('creating a repository', () => {
  for (const secret of [undefined, randomBytes(32)]) {
    for (const mounted of [false, true]) {
      it(`two creators at once (${secret ? 'encrypted' : 'clear'}, ${mounted ? 'an empty mount point' : 'a missing directory'}): both open the one config, and each reads what the other wrote`, async () => {
        const dir = join(tmpDir('bkn'), 'repo');
        if (mounted) mkdirSync(dir);
        const fs = meetingAtConfig(2);
        const [a, b] = await Promise.all([openRepo(dir, secret, fs), openRepo(dir, secret, fs)]) as [Repository, Repository];
        expect(b.config).toEqual(a.config);
        const index: IndexFile = { files: [{ file: 'ab'.repeat(32), blobs: [[randomBytes(32), 16, 100]] }] };
        const name = await a.writeIndex(index);
        expect((await b.readMetadata<IndexFile>('index', name)).files[0]!.file).toBe(index.files[0]!.file);
        const reopened = await openRepo(dir, secret);
        expect(reopened.config).toEqual(a.config);
        for (const repo of [a, b, reopened]) await repo.close();
      });
    }
  }
});
