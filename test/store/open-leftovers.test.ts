// What a writer killed between a temp file's write and its rename leaves in the store's own
// directories (writeFileDurable's `.NAME.PID.N.tmp`, LOCK's `LOCK.PID.tmp`): nothing else ever names
// it, so without the next open removing it each such crash left a file for good.
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

/** The pid of a process that has exited. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

describe('a read-write open', () => {
  it('removes temp files of dead writers from the store root and consumers/, and leaves a live writer\'s and every other file', async () => {
    const dir = tmpDir('leftovers');
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.changes.register('events', 0);
    await store.close();
    const dead = deadPid();
    const leftovers = [join('consumers', `.compact.${dead}.12.tmp`), join('consumers', `.replica-0a1b2c3d4e5f6071.${dead}.3.tmp`),
      `.REPLICATION.${dead}.1.tmp`, `.scrub-cursor.json.${dead}.7.tmp`, `LOCK.${dead}.tmp`];
    const kept = [join('consumers', `.events.${process.ppid}.2.tmp`), 'notes.tmp', join('consumers', 'events')]; // a live process's write, an admin's file, a cursor
    for (const name of leftovers) writeFileSync(join(dir, name), '{"seq":1');
    for (const name of kept.slice(0, 2)) writeFileSync(join(dir, name), 'x');
    const again = await Store.open(dir);
    await again.close();
    expect(leftovers.filter((name) => existsSync(join(dir, name)))).toEqual([]);
    expect(kept.filter((name) => existsSync(join(dir, name)))).toEqual(kept);
    // a read-only open changes nothing
    for (const name of leftovers) writeFileSync(join(dir, name), '{"seq":1');
    await (await Store.open(dir, { readOnly: true })).close();
    expect(leftovers.filter((name) => existsSync(join(dir, name)))).toEqual(leftovers);
  });
});
