// scrub --repair with quarantine/ unreadable (its mode lost, the store's owner not root): the copy
// of a damaged record into it failed with the raw EACCES of a stat, which the CLI printed as
// "INTERNAL ... (a bug)" (an outside tester's finding, wt47b). It is ACCESS naming the path now,
// and nothing else changed: every other message reads back, the damaged one stays reported.
// A plain scrub (and `stats`) with quarantine/ unreadable took it for empty: the notice that mail
// waits there was never said. It is ACCESS naming it now (exit 2), as an unreadable pack is.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PackedStore as Store } from '../helpers/packed.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { tmpDir } from '../helpers/tmp.js';
import { skipReason } from '../sim/helpers.js';
import { bin } from '../cli/helpers.js';
import { AS_NOBODY, nobodyCannotReach } from '../helpers/nobody.js';

/** `test` on a new store (INBOX made) on a FaultFileSystem, closed after. */
async function onFaultFs(test: (store: Store, fs: FaultFileSystem, root: string) => Promise<void>): Promise<void> {
  const root = tmpDir();
  const fs = new FaultFileSystem();
  const store = await Store.open(root, { create: true, fs });
  try {
    await store.createMailbox('INBOX');
    await test(store, fs, root);
  } finally {
    await store.close();
  }
}

describe('scrub --repair with quarantine/ unreadable', () => {
  it('fails ACCESS naming quarantine/, not a plain error; the messages are as before', () => onFaultFs(async (store, fs, root) => {
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
  }));
});

describe('scrub and stats with quarantine/ unreadable', () => {
  it('fail ACCESS naming the directory they could not read, quarantine/ or one below it; readable again, the notice is back', () => onFaultFs(async (store, fs, root) => {
    await store.append('INBOX', Buffer.from('Subject: 1\r\n\r\nbody\r\n'));
    mkdirSync(join(root, 'quarantine', 'journal-tail-1'));
    writeFileSync(join(root, 'quarantine', 'journal-tail-1', 'tail'), Buffer.alloc(100));
    for (const unreadable of [join(root, 'quarantine'), join(root, 'quarantine', 'journal-tail-1')]) {
      fs.failAll('EACCES', { pathPrefix: unreadable, ops: ['readdir'] });
      for (const call of [() => scrub(store), () => scrub(store, { mailbox: 'INBOX' }), () => store.stats()]) {
        const error = await call().then(() => undefined, (e: unknown) => e);
        expect(error).toMatchObject({ code: 'ACCESS', path: unreadable }); // before: resolved, quarantine { entries: 0 } (or its bytes left out)
        expect((error as Error).message).toContain('quarantine/');
      }
      fs.clear();
    }
    const report = await scrub(store);
    expect(report.summary.damage).toBe(0);
    expect(report.summary.quarantine).toEqual({ entries: 1, bytes: 100 });
  }));

  // a clone under /root (CI's) is out of nobody's reach: skipped there, as drills.test.ts's and environment.test.ts's runs as nobody are
  const privSkip = nobodyCannotReach(bin);
  it.skipIf(skipReason(!!privSkip, `quarantine/ unreadable to the CLI: ${privSkip}`))('the CLI as the store\'s owner, quarantine/ mode 000: scrub and stats exit 2 with ACCESS naming it', async () => {
    const work = tmpDir('quarantine-mode');
    chmodSync(work, 0o755);
    const dir = join(work, 'store');
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', Buffer.from('Subject: 1\r\n\r\nbody\r\n'));
    await store.close();
    writeFileSync(join(dir, 'quarantine', 'journal-tail-1'), Buffer.alloc(100));
    spawnSync('chown', ['-R', 'nobody:nogroup', dir]);
    const cli = (args: string[]) => spawnSync('setpriv', [...AS_NOBODY, process.execPath, bin, '--store', dir, ...args], { encoding: 'utf8', cwd: work });
    chmodSync(join(dir, 'quarantine'), 0o000);
    for (const args of [['scrub'], ['scrub', '--quiet'], ['stats']]) {
      const result = cli(args);
      // before: scrub exit 0, "clean" and no word of quarantine/; stats "quarantine  empty"
      expect(result.status, `${args.join(' ')}: ${result.stdout}${result.stderr}`).toBe(2);
      expect(result.stderr).toContain(`mailstore: ACCESS: counting what quarantine/ holds (damaged or replaced data set aside, for an admin to look at): cannot read ${join(dir, 'quarantine')}: EACCES (check ownership, mode`);
    }
    const json = cli(['scrub', '--json']);
    expect(json.status).toBe(2);
    expect(JSON.parse(json.stdout).error).toMatchObject({ code: 'ACCESS', path: join(dir, 'quarantine'), exitCode: 2 });
    chmodSync(join(dir, 'quarantine'), 0o750);
    const again = cli(['scrub', '--quiet']);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toContain('clean; quarantine/ holds 1 entry (100 B)');
  });
});
