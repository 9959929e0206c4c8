// Disaster drills (issue 18): each row of RECOVERY.md's "Disaster recovery" table, broken on
// purpose and recovered with exactly the commands the row documents, through the built CLI.
// Each asserts the exit codes and that nothing acknowledged was lost.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
// every body in a pack: these tests damage or lose pack records or the journal (helpers/packed.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import { keys } from '../../src/keys/index-keys.js';
import { hashBytes } from '../../src/hash/blake3.js';
import type { BlobRecord } from '../../src/store/records.js';
import { bin, repoRoot, requireBuilt, sha256 as sha, tempDir } from './helpers.js';
// the documented commands in this process (in-process.ts, which checks a sample against the spawned
// command); what only a process shows is commands.test.ts's and environment.test.ts's
import { run } from './in-process.js';
import { AS_NOBODY, nobodyCannotReach } from '../helpers/nobody.js';

beforeAll(requireBuilt);

type Acked = Map<string, Buffer>; // "mailbox:uid" -> bytes

/** A store with a few users' mailboxes, ACLs, flags and an expunge; every acknowledged message. */
async function store(): Promise<{ dir: string; acked: Acked; flags: Map<string, string[]> }> {
  const dir = join(tempDir(), 'store');
  const s = await Store.open(dir, { create: true, packBytesMax: 32 * 1024 });
  const acked: Acked = new Map();
  const flags = new Map<string, string[]>();
  try {
    for (const user of ['alice', 'bob']) {
      for (const box of ['INBOX', 'Sent']) await s.createMailbox(`user/${user}/${box}`, { owner: user });
      for (let i = 0; i < 12; i++) {
        const box = `user/${user}/${i % 3 ? 'INBOX' : 'Sent'}`;
        const bytes = Buffer.from(`From: ${user}@example.org\r\nSubject: ${user} ${i}\r\n\r\n${'body '.repeat(100 + i * 40)}\r\n`);
        const r = await s.append(box, bytes, { flags: i % 2 ? ['\\Seen'] : [] });
        acked.set(`${box}:${r.uid}`, bytes);
        flags.set(`${box}:${r.uid}`, i % 2 ? ['\\Seen'] : []);
      }
      await s.setAcl(`user/${user}/INBOX`, 'helpdesk', 'lr');
      await s.expunge(`user/${user}/INBOX`, 1);
      acked.delete(`user/${user}/INBOX:1`);
      flags.delete(`user/${user}/INBOX:1`);
    }
  } finally {
    await s.close();
  }
  return { dir, acked, flags };
}

/** Every acknowledged message reads back exactly, with its flags; the ACLs are there. */
async function expectAllThere(dir: string, acked: Acked, flags?: Map<string, string[]>): Promise<void> {
  const s = await Store.open(dir);
  try {
    for (const [ref, bytes] of acked) {
      const [box, uid] = [ref.slice(0, ref.lastIndexOf(':')), Number(ref.slice(ref.lastIndexOf(':') + 1))];
      expect((await s.fetch(box, uid)).equals(bytes), ref).toBe(true);
      if (flags) expect((await s.messageInfo(box, uid)).flags, ref).toEqual(flags.get(ref));
    }
    if (flags) for (const user of ['alice', 'bob']) expect(await s.getAcl(`user/${user}/INBOX`)).toMatchObject({ helpdesk: 'lr', [user]: expect.any(String) });
  } finally {
    await s.close();
  }
}

const mailstore = (dir: string, ...args: string[]) => run(args, { store: dir });

describe('disaster drills (RECOVERY.md, followed literally)', () => {
  it('lost journal/ (the whole directory): `mailstore scrub` refuses (exit 3), `mailstore reconstruct` writes a new journal from the index (source: index), nothing lost', async () => {
    const { dir, acked, flags } = await store();
    rmSync(join(dir, 'journal'), { recursive: true });
    expect((await mailstore(dir, 'scrub')).code).toBe(3); // journal/ gone entirely: UNMOUNTED until reconstructed
    const done = await mailstore(dir, 'reconstruct');
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout.toString()).toMatch(/^source: index/);
    expect((await mailstore(dir, 'scrub')).code).toBe(0);
    await expectAllThere(dir, acked, flags);
    rmSync(join(dir, 'index'), { recursive: true }); // the new journal alone holds it all
    await expectAllThere(dir, acked, flags);
  });

  it('lost STORE, the store directory there (packs/ and journal/ markers): every command refuses (exit 3), `reconstruct` too, naming `mailstore reconstruct --identity-from-markers`, which writes it again (exit 0), nothing lost; with a marker missing too it still refuses and writes nothing', async () => {
    const { dir, acked, flags } = await store();
    const identity = readFileSync(join(dir, 'STORE'), 'utf8');
    rmSync(join(dir, 'STORE'));
    const refused = await mailstore(dir, 'scrub');
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/UNMOUNTED: .*no STORE identity file.*'mailstore reconstruct --identity-from-markers' writes it again/);
    expect((await mailstore(dir, 'reconstruct')).code).toBe(3); // without the flag: maybe an unmounted partition
    expect(existsSync(join(dir, 'STORE'))).toBe(false);
    const partial = join(tempDir(), 'partial');
    cpSync(dir, partial, { recursive: true });
    rmSync(join(partial, 'journal', 'STORE-ID')); // journal/ not itself: maybe another partition, not mounted
    expect((await mailstore(partial, 'reconstruct', '--identity-from-markers')).code).toBe(3);
    expect(existsSync(join(partial, 'STORE'))).toBe(false);
    const done = await mailstore(dir, 'reconstruct', '--identity-from-markers');
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout.toString()).toMatch(/STORE was missing or damaged: written again from the packs\/ and journal\/ markers/);
    expect(JSON.parse(readFileSync(join(dir, 'STORE'), 'utf8').split('\n')[0]).storeId).toBe(JSON.parse(identity.split('\n')[0]).storeId);
    expect((await mailstore(dir, 'scrub')).code).toBe(0);
    await expectAllThere(dir, acked, flags);
  });

  it('STORE damaged (a flipped byte): every command refuses (exit 3) naming `reconstruct --identity-from-markers`, which writes it again (exit 0; the damaged one to quarantine/), nothing lost; another store\'s STORE there (it reads) is not replaced', async () => {
    const { dir, acked, flags } = await store();
    const identity = readFileSync(join(dir, 'STORE'));
    const damaged = Buffer.from(identity);
    damaged[40] ^= 0x01;
    writeFileSync(join(dir, 'STORE'), damaged);
    const refused = await mailstore(dir, 'scrub');
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/checksum mismatch.*'mailstore reconstruct --identity-from-markers' writes it again/);
    const done = await mailstore(dir, 'reconstruct', '--identity-from-markers');
    expect(done.code, done.stderr).toBe(0); // before: refused (exit 3), STORE 'is there'
    expect(done.stdout.toString()).toMatch(/STORE was missing or damaged: written again/);
    expect(JSON.parse(readFileSync(join(dir, 'STORE'), 'utf8').split('\n')[0]).storeId).toBe(JSON.parse(identity.toString().split('\n')[0]).storeId);
    expect(readdirSync(join(dir, 'quarantine')).filter((n) => n.startsWith('STORE-damaged-')).length).toBe(1);
    expect((await mailstore(dir, 'scrub')).code).toBe(0);
    await expectAllThere(dir, acked, flags);
    const other = tempDir();
    expect((await mailstore(other, 'init')).code).toBe(0);
    writeFileSync(join(dir, 'STORE'), readFileSync(join(other, 'STORE')));
    expect((await mailstore(dir, 'reconstruct', '--identity-from-markers')).code).toBe(3);
    expect(readFileSync(join(dir, 'STORE'))).toEqual(readFileSync(join(other, 'STORE')));
  });

  it('lost journal segments (journal/STORE-ID kept): `mailstore scrub` exits 1, `mailstore reconstruct` repairs it, nothing lost', async () => {
    const { dir, acked, flags } = await store();
    for (const name of readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl'))) rmSync(join(dir, 'journal', name));
    expect((await mailstore(dir, 'scrub')).code).toBe(1);
    const done = await mailstore(dir, 'reconstruct');
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout.toString()).toMatch(/^source: index/);
    expect((await mailstore(dir, 'scrub')).code).toBe(0);
    await expectAllThere(dir, acked, flags);
  });

  it('lost index: the next open rebuilds it from the journal; `mailstore reconstruct --check` exits 0, nothing lost', async () => {
    const { dir, acked, flags } = await store();
    rmSync(join(dir, 'index'), { recursive: true });
    const scrub = await mailstore(dir, 'scrub');
    expect(scrub.code).toBe(0);
    // the admin hears what the open did, on stderr (stdout stays the command's own)
    expect(scrub.stderr).toMatch(/^mailstore: the index was rebuilt at open \(index is missing\) from (the whole journal|snapshot) /m);
    expect(scrub.stdout.toString()).not.toContain('rebuilt at open');
    const again = await mailstore(dir, 'reconstruct', '--check');
    expect(again.code).toBe(0);
    expect(again.stderr).not.toContain('rebuilt at open'); // once rebuilt, an ordinary open says nothing
    await expectAllThere(dir, acked, flags);
  });

  it('lost packs with a copy: `scrub` refuses (exit 3), `scrub --repair --force --source COPY` restores them (exit 0)', async () => {
    const { dir, acked, flags } = await store();
    const copy = join(tempDir(), 'copy');
    cpSync(dir, copy, { recursive: true });
    for (const name of readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack'))) rmSync(join(dir, 'packs', name));
    const refused = await mailstore(dir, 'scrub');
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/UNMOUNTED/);
    const repaired = await mailstore(dir, 'scrub', '--repair', '--force', '--source', copy);
    expect(repaired.code, repaired.stderr).toBe(0);
    expect((await mailstore(dir, 'scrub')).code).toBe(0);
    await expectAllThere(dir, acked, flags);
  });

  it('lost packs without a copy: every command refuses (exit 3), even with --force, and nothing is changed or deleted', async () => {
    const { dir } = await store();
    for (const name of readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack'))) rmSync(join(dir, 'packs', name));
    // every file but LevelDB's own (its open compacts its log) and the lock files, with its bytes
    const tree = (at = dir): string[] => readdirSync(at).filter((n) => !['LOCK', 'lock', 'index'].includes(n)).sort().flatMap((n) => {
      const path = join(at, n);
      return statSync(path).isDirectory() ? [`${path}/`, ...tree(path)] : [`${path} ${sha(readFileSync(path))}`];
    });
    const before = tree();
    for (const args of [['scrub'], ['scrub', '--repair'], ['scrub', '--repair', '--force'], ['reconstruct']]) {
      const r = await mailstore(dir, ...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(3);
      expect(r.stderr).toMatch(/UNMOUNTED/);
    }
    expect(tree()).toEqual(before);
  });

  it('lost packs, no copy but a backup repository: the backup restored into a directory of its own is the `--source` of `scrub --repair --force` (exit 0), nothing lost', async () => {
    const { dir, acked, flags } = await store();
    const repo = join(tempDir(), 'repo');
    expect((await mailstore(dir, 'backup', '--repo', repo)).code).toBe(0);
    for (const name of readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack'))) rmSync(join(dir, 'packs', name));
    expect((await mailstore(dir, 'scrub')).code).toBe(3);
    const restored = join(tempDir(), 'restored');
    expect((await run(['restore', '--repo', repo, '--snapshot', 'latest', '--to', restored])).code).toBe(0);
    // the expunged messages' bodies (refcount 0) are in no backup: dropped, as the nightly scrub would need anyway
    const repaired = await mailstore(dir, 'scrub', '--repair', '--force', '--source', restored, '--drop-unreferenced');
    expect(repaired.code, repaired.stdout.toString() + repaired.stderr).toBe(0);
    expect((await mailstore(dir, 'scrub')).code).toBe(0);
    await expectAllThere(dir, acked, flags);
  });

  it('one damaged blob, no copy anywhere: scrub names it (exit 1), `scrub --repair` quarantines it and exits 1, every other message intact, the damaged one is CORRUPT (exit 6)', async () => {
    const { dir, acked } = await store();
    const [victim, bytes] = [...acked][5];
    const s = await Store.open(dir);
    const blob = (await s.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(bytes))))!;
    await s.close();
    const path = join(dir, 'packs', `${String(blob.p).padStart(8, '0')}.pack`);
    const pack = readFileSync(path);
    pack[blob.o + 48 + 20] ^= 0x01;
    writeFileSync(path, pack);
    const found = await mailstore(dir, 'scrub');
    expect(found.code).toBe(1);
    expect(found.stdout.toString()).toContain(victim);
    const repaired = await mailstore(dir, 'scrub', '--repair');
    expect(repaired.code).toBe(1);
    expect(repaired.stdout.toString()).toContain(victim);
    expect(readdirSync(join(dir, 'quarantine')).filter((n) => n.startsWith('blob-')).length).toBe(1);
    const [box, uid] = [victim.slice(0, victim.lastIndexOf(':')), victim.slice(victim.lastIndexOf(':') + 1)];
    expect((await mailstore(dir, 'fetch', box, uid)).code).toBe(6);
    acked.delete(victim);
    await expectAllThere(dir, acked);
  });

  it('one damaged blob no message uses, no copy: scrub exits 1 every night; `scrub --repair --drop-unreferenced` clears it (exit 0, nothing deleted); the next `scrub --quiet` exits 0 in one line', async () => {
    const { dir, acked, flags } = await store();
    // user/alice/INBOX uid 1 was expunged by store(): its body (i = 1) is in the packs, used by no message
    const gone = Buffer.from(`From: alice@example.org\r\nSubject: alice 1\r\n\r\n${'body '.repeat(140)}\r\n`);
    const s = await Store.open(dir);
    const blob = (await s.db.get<BlobRecord>(keys.blob(hashBytes(gone))))!;
    expect(blob.r).toBe(0);
    await s.close();
    const path = join(dir, 'packs', `${String(blob.p).padStart(8, '0')}.pack`);
    const pack = readFileSync(path);
    pack[blob.o + 48 + 20] ^= 0x01;
    writeFileSync(path, pack);
    const found = await mailstore(dir, 'scrub');
    expect(found.code).toBe(1);
    expect(found.stdout.toString()).toContain('no message uses it');
    const cleared = await mailstore(dir, 'scrub', '--repair', '--drop-unreferenced');
    expect(cleared.code, cleared.stdout.toString() + cleared.stderr).toBe(0);
    expect(readFileSync(path).equals(pack)).toBe(true); // the damaged record is still there, untouched
    expect(readdirSync(join(dir, 'quarantine')).filter((n) => n.startsWith('blob-')).length).toBe(1);
    const nightly = await mailstore(dir, 'scrub', '--quiet');
    expect(nightly.code).toBe(0);
    expect(nightly.stdout.toString().trim().split('\n')).toHaveLength(1);
    await expectAllThere(dir, acked, flags);
  });

  // As `nobody`, which must be able to reach the built CLI: a checkout under a 0700 directory
  // (mktemp -d) cannot be run by it, and the drill says so instead of failing.
  const nobodySkip = nobodyCannotReach(bin);
  if (nobodySkip) console.warn(`SKIPPED: the unreadable-directory drill: ${nobodySkip}`);
  it.skipIf(nobodySkip !== undefined)('an unreadable directory: ACCESS (exit 2) naming it; once its mode is back, everything is there', async () => {
    const { dir, acked } = await store();
    const parent = join(dir, '..');
    chmodSync(parent, 0o755);
    spawnSync('chmod', ['-R', 'a+rwX', dir]);
    const asNobody = (...args: string[]) => spawnSync('setpriv', [...AS_NOBODY, process.execPath, bin, ...args], { cwd: repoRoot, env: { ...process.env, MAILSTORE_DIR: dir }, encoding: 'utf8' });
    for (const sub of ['packs', 'journal']) {
      chmodSync(join(dir, sub), 0o000);
      const r = asNobody('scrub');
      chmodSync(join(dir, sub), 0o777);
      expect(r.status, `${sub}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`ACCESS: .*${sub}`));
    }
    expect(asNobody('scrub').status).toBe(0);
    await expectAllThere(dir, acked);
  });

  it('a store copied while live, in the documented order (index/, journal/, packs/, then the rest, each `cp -a`) under a writer: `mailstore scrub` on the copy exits 0 and it holds a prefix of the acknowledged writes, each exact', async () => {
    const dir = join(tempDir(), 'live');
    const s = await Store.open(dir, { create: true, packBytesMax: 64 * 1024 });
    await s.createMailbox('M');
    await s.close();
    const storeModule = join(repoRoot, 'dist/src/store/store.js');
    const writer = spawn(process.execPath, ['--input-type=module', '-e', `
      const { Store } = await import(${JSON.stringify(storeModule)});
      const s = await Store.open(${JSON.stringify(dir)});
      for (let i = 0; ; i++) {
        const bytes = Buffer.from('Subject: live ' + i + '\\r\\n\\r\\n' + 'x'.repeat(500 + (i * 977) % 9000) + '\\r\\n');
        const r = await s.append('M', bytes);
        process.stdout.write(r.uid + ' ' + i + '\\n');
      }`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const acks: [number, number][] = [];
    let buffered = '';
    writer.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) acks.push(line.split(' ').map(Number) as [number, number]);
    });
    try {
      while (acks.length < 40) await new Promise((r) => setTimeout(r, 20));
      const ackedBeforeCopy = acks.length;
      const copy = join(tempDir(), 'copy');
      // index/ again from scratch when LevelDB removed a table it had compacted away while cp read the directory (RECOVERY.md)
      const cp = spawnSync('sh', ['-c', 'mkdir "$2" && for n in 1 2 3 4 5; do rm -rf "$2/index"; cp -a "$1/index" "$2/" && break; [ $n = 5 ] && exit 1; done && for d in journal packs STORE quarantine tmp; do cp -a "$1/$d" "$2/" || exit 1; sleep 0.1; done', 'sh', dir, copy]);
      expect(cp.status, cp.stderr?.toString()).toBe(0);
      const scrubbed = await mailstore(copy, 'scrub');
      expect(scrubbed.code, scrubbed.stdout.toString() + scrubbed.stderr).toBe(0);
      const c = await Store.open(copy);
      try {
        const present: number[] = [];
        for await (const m of c.messages('M')) present.push(m.uid);
        expect(present).toEqual(present.map((_, k) => k + 1)); // a prefix: uids 1..n, no holes
        expect(present.length).toBeGreaterThanOrEqual(ackedBeforeCopy);
        for (const uid of present) {
          const i = acks.find(([u]) => u === uid)?.[1] ?? uid - 1;
          const expected = Buffer.from(`Subject: live ${i}\r\n\r\n${'x'.repeat(500 + (i * 977) % 9000)}\r\n`);
          expect((await c.fetch('M', uid)).equals(expected), `uid ${uid}`).toBe(true);
        }
        expect(present.length).toBeLessThanOrEqual(acks.length + 1);
      } finally {
        await c.close();
      }
    } finally {
      writer.kill('SIGKILL');
    }
  });
});
