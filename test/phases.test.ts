// The phase marks of a command (src/phases.ts): what MAILSTORE_BACKUP_PHASES prints for a backup and
// MAILSTORE_PHASES for a compaction, and the bench's note made from it (src/bench/measure/backup.ts).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { phase, phaseNote, phaseTimes } from '../src/phases.js';
import { Store } from '../src/store/store.js';
import { requireBuilt, run, tempDir } from './cli/helpers.js';
import { fill } from './backup/helpers.js';

describe('backup phases', () => {
  it('the note lists each phase in order with whole ms, and is empty without a phases line', () => {
    const stderr = 'a progress line\n{"phases":{"node start":41.6,"modules loaded":80.2,"blobs copied":300.5}}\n';
    expect(phaseNote(stderr)).toBe('node start 42, modules loaded 80, blobs copied 301');
    expect(phaseNote('CORRUPT: INBOX uid 4 is damaged\n')).toBe('');
  });

  it('without MAILSTORE_BACKUP_PHASES a mark records nothing: only node start is reported', () => {
    expect(process.env.MAILSTORE_BACKUP_PHASES).toBeUndefined();
    expect(process.env.MAILSTORE_PHASES).toBeUndefined();
    phase('store and repository opened');
    expect(Object.keys(phaseTimes())).toEqual(['node start']);
  });

  it("an incremental run marks when its copy asked for its last blobs, so 'snapshot encoded' is the encode alone", async () => {
    requireBuilt();
    const dir = tempDir('mailstore-phases-');
    const storeDir = join(dir, 's'), repo = join(dir, 'r');
    const store = await Store.init(storeDir);
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 20);
    await store.close();
    expect((await run(['--store', storeDir, 'backup', '--repo', repo])).code).toBe(0);
    const again = await Store.open(storeDir);
    await fill(again, 'INBOX', 10, 100);
    await again.expunge('INBOX', [2, 3]);
    await again.close();
    const ran = await run(['--store', storeDir, 'backup', '--repo', repo, '--json'], { env: { MAILSTORE_BACKUP_PHASES: '1' } });
    expect(ran.code).toBe(0);
    expect(JSON.parse(ran.stdout.toString())).toMatchObject({ newBlobs: 10, deltaDepth: 1 });
    const line = ran.stderr.split('\n').find((l) => l.startsWith('{"phases":'))!;
    const marks = JSON.parse(line) as { phases: Record<string, number>; cpu: Record<string, number>; main?: Record<string, number> };
    const names = Object.keys(marks.phases);
    // the main thread's own CPU by phase (/proc/thread-self/schedstat), within the process's (which adds the workers')
    expect(Object.keys(marks.main ?? {})).toEqual(names);
    expect(Object.values(marks.main!).every((ms) => Number.isFinite(ms) && ms >= 0)).toBe(true);
    const total = (ms: Record<string, number>) => Object.values(ms).reduce((a, b) => a + b, 0);
    expect(total(marks.main!)).toBeGreaterThan(0);
    expect(total(marks.main!)).toBeLessThanOrEqual(total(marks.cpu) + 5); // rounding: 0.05 ms a phase
    // until session 39 the encode's mark came right after 'index read': the copy's last batches counted as the encode
    expect(names.indexOf('last blobs asked for')).toBeGreaterThan(names.indexOf('index read'));
    expect(names.indexOf('snapshot encoded')).toBe(names.indexOf('last blobs asked for') + 1);
  });

  it('a compaction marks node start, modules, open, its own steps, the tail and close, in order; its result times the tail', async () => {
    requireBuilt();
    const dir = tempDir('mailstore-phases-');
    const storeDir = join(dir, 's');
    const store = await Store.init(storeDir);
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 20);
    await store.expunge('INBOX', Array.from({ length: 18 }, (_, i) => i + 1));
    await store.close();
    const ran = await run(['--store', storeDir, 'compact', '--json'], { env: { MAILSTORE_PHASES: '1' } });
    expect(ran.code).toBe(0);
    const result = JSON.parse(ran.stdout.toString()) as { packsRemoved: number[]; phases: Record<string, number> };
    expect(result.packsRemoved.length).toBe(1);
    expect(Object.keys(result.phases)).toEqual(expect.arrayContaining(['plan', 'copy', 'commit', 'retire', 'tombstones', 'consumer']));
    const line = ran.stderr.split('\n').find((l) => l.startsWith('{"phases":'))!;
    const marks = JSON.parse(line) as { phases: Record<string, number>; cpu: Record<string, number> };
    expect(Object.keys(marks.phases)).toEqual(['node start', 'modules loaded', 'store opened', 'leftovers retired', 'planned', 'copied and committed', 'old packs removed', 'compacted', 'closed']);
    expect(Object.keys(marks.cpu)).toEqual(Object.keys(marks.phases));
    // without the variable the command prints no phases line
    const quiet = await run(['--store', storeDir, 'compact', '--json']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).not.toContain('{"phases":');
  });
});
