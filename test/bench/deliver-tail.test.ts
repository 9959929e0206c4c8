// The counting file system the deliver and import steps measure through: counted calls go on with
// all their arguments.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { countingFileSystem } from '../../src/bench/common.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { tmpDir } from '../helpers/tmp.js';

describe('the deliver step and its counting file system', () => {
  it('passes writevDurable\'s `written` on (a synchronous replica\'s round waits for it) and counts the flush', async () => {
    const { fs, counts } = countingFileSystem();
    const handle = await fs.open(join(tmpDir('counting'), '0000000000000001.jnl'), 'createOrOpen');
    let told = 0;
    await handle.writevDurable([Buffer.from('record '), Buffer.from('body')], 0, () => told++);
    await handle.close();
    expect(told).toBe(1);
    expect(counts.fileSyncs).toBe(1);
    expect((await nodeFileSystem.readFile(join(handle.path))).toString()).toBe('record body');
  });
});
