// Which processes bound V8's young generation (src/young-generation.ts; issue 16, peak RSS): the
// daemon and the long passes (scrub, reconstruct) do, a short command (append) does not, since any
// flag set makes the chunks loaded after it miss their code cache. A preload records each
// v8.setFlagsFromString the CLI makes, in a file of the test's.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bin, newStore, ok, repoRoot, requireBuilt, tempDir } from './helpers.js';

beforeAll(requireBuilt);

const BOUND = '--semi-space-growth-factor=1';

/** A preload that appends every flag the process sets to $FLAGS_SEEN, and the env that loads it. */
function recording(): { env: Record<string, string>; seen: () => string[] } {
  const dir = tempDir('mailstore-young-');
  const hook = join(dir, 'hook.cjs');
  const seenPath = join(dir, 'flags');
  writeFileSync(hook, `const v8 = require('node:v8'); const fs = require('node:fs'); const set = v8.setFlagsFromString;
v8.setFlagsFromString = (flags) => { fs.appendFileSync(process.env.FLAGS_SEEN, flags + '\\n'); return set(flags); };\n`);
  return {
    env: { NODE_OPTIONS: `--require ${hook}`, FLAGS_SEEN: seenPath },
    seen: () => (existsSync(seenPath) ? readFileSync(seenPath, 'utf8').split('\n').filter(Boolean) : []),
  };
}

describe('the young generation bound', () => {
  it('keeps the new space at its size once set, where it grows without', () => {
    // the mechanism on this node: V8 reads the growth factor at each scavenge, not only at start
    const script = `import(${JSON.stringify(join(repoRoot, 'dist/src/young-generation.js'))}).then((module) => {
      const v8 = require('node:v8');
      const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
      if (process.argv[1] === 'bound') module.boundYoungGeneration();
      const start = newSpace();
      let keep = [], most = 0;
      for (let round = 0; round < 100; round++) {
        for (let i = 0; i < 100000; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 50000) keep = []; }
        most = Math.max(most, newSpace());
      }
      console.log(JSON.stringify({ start, most }));
    })`;
    const measure = (mode: string) => {
      const result = spawnSync(process.execPath, ['-e', script, mode], { encoding: 'utf8' });
      expect(result.status, result.stderr).toBe(0);
      return JSON.parse(result.stdout) as { start: number; most: number };
    };
    const free = measure('free');
    const bound = measure('bound');
    // (space_size counts one semi-space until both have been used: 1 MiB, then 2, at node 20's start)
    expect(free.most).toBeGreaterThan(4 * free.start);
    expect(bound.most).toBeLessThanOrEqual(2 * bound.start);
  });

  it('is set by scrub and reconstruct, not by append', async () => {
    const store = await newStore(['INBOX']);
    const append = recording();
    await ok(['append', 'INBOX'], { store, input: 'Subject: a\r\n\r\nbody\r\n', env: append.env });
    expect(append.seen()).not.toContain(BOUND);
    const scrub = recording();
    await ok(['scrub'], { store, env: scrub.env });
    expect(scrub.seen()).toContain(BOUND);
    const reconstruct = recording();
    await ok(['reconstruct', '--check'], { store, env: reconstruct.env });
    expect(reconstruct.seen()).toContain(BOUND);
  });

  it('is set by the daemon', async () => {
    const store = await newStore(['INBOX']);
    const serve = recording();
    const daemon = spawn(process.execPath, [bin, '--store', store, 'serve'], { cwd: repoRoot, env: { ...process.env, ...serve.env }, stdio: 'ignore' });
    try {
      const socket = join(store, 'run', 'mailstore.sock');
      for (let i = 0; i < 300 && !existsSync(socket); i++) await new Promise((done) => setTimeout(done, 100));
      expect(existsSync(socket)).toBe(true);
      expect(serve.seen()).toContain(BOUND);
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((done) => daemon.on('close', done));
    }
  });
});
