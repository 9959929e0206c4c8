// The store on file systems other than the ext4/tmpfs the rest of the suite runs on (docs/FAULTS.md,
// "Other file systems"), root only; each test says why when it skips:
//   - a store and its backup repository on a read-only image (squashfs): every command that only
//     reads works there, one that must write says ACCESS.
// Every mount and loop device is released in a finally, also when the test fails.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bin, ok, run } from '../cli/helpers.js';
import { skipReason } from './helpers.js';

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const noRoot = process.getuid?.() !== 0 ? 'needs root (mount)' : undefined;

/** Runs `mount ARGS DIR`; an error naming why when the kernel refuses. */
function mount(args: string[], dir: string): void {
  const result = spawnSync('mount', [...args, dir], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`mount ${args.join(' ')} ${dir} failed: ${result.stderr.trim()}`);
}

/** Unmounts (lazily if busy: a loop device goes with its last user) and removes the work directory. */
function cleanUp(work: string, mounted: string[]): void {
  for (const dir of mounted.reverse()) spawnSync('umount', ['-l', dir]);
  rmSync(work, { recursive: true, force: true });
}

const message = (i: number, bytes: number) => `From: a@example.org\r\nSubject: m${i}\r\nMessage-ID: <m${i}@example.org>\r\n\r\n${`line ${i} `.repeat(bytes / 8)}\r\n`;

describe('read-only media (root only)', () => {
  const skip = noRoot ?? (!has('mksquashfs') ? 'mksquashfs is missing (apt-get install -y squashfs-tools)' : undefined);
  it.skipIf(skipReason(!!skip, `read-only media: ${skip}`))('a store and its backup on a squashfs image: messages, fetch, export, scrub, backup check, backup and restore from it work; a change is ACCESS', async () => {
    const work = mkdtempSync(join(tmpdir(), 'mailstore-ro-media-'));
    const mounted: string[] = [];
    try {
      const source = join(work, 'source');
      mkdirSync(source);
      const store = join(source, 'store');
      await ok(['init'], { store });
      await ok(['mailbox', 'create', 'INBOX'], { store });
      const sent = [message(1, 200), message(2, 100_000), message(3, 300)]; // the big one in a pack
      for (const bytes of sent) await ok(['append', 'INBOX', '-'], { store, input: bytes });
      await ok(['backup', '--repo', join(source, 'repo')], { store });
      const image = join(work, 'spool.sqfs');
      const made = spawnSync('mksquashfs', [source, image, '-quiet', '-noappend'], { encoding: 'utf8' });
      expect(made.status, made.stderr).toBe(0);
      const media = join(work, 'media');
      mkdirSync(media);
      try {
        mount(['-o', 'loop,ro', image], media);
      } catch (error) {
        console.warn(`SKIPPED: read-only media: ${(error as Error).message}`);
        return;
      }
      mounted.push(media);
      const roStore = join(media, 'store');
      const roRepo = join(media, 'repo');

      expect((await ok(['messages', 'INBOX'], { store: roStore })).trim().split('\n')).toHaveLength(3);
      expect(await ok(['fetch', 'INBOX', '2'], { store: roStore })).toBe(sent[1]);
      const mbox = join(work, 'out.mbox');
      await ok(['export', 'INBOX', '--format', 'mbox', '--out', mbox], { store: roStore });
      for (const bytes of sent) expect(readFileSync(mbox, 'latin1')).toContain(bytes.split('\r\n\r\n')[1]);
      const scrub = await run(['scrub', '--json'], { store: roStore });
      expect(scrub.code, scrub.stderr).toBe(0);
      expect(JSON.parse(scrub.stdout.toString()).summary).toMatchObject({ damage: 0, blobsVerified: 1 });
      await ok(['backup', 'check', '--repo', roRepo, '--read-data'], { store: roStore });
      await ok(['backup', '--repo', join(work, 'repo2')], { store: roStore }); // a read-only snapshot of the spool, backed up
      const restored = join(work, 'restored');
      await ok(['restore', '--repo', roRepo, '--to', restored], { store: restored });
      expect(await ok(['fetch', 'INBOX', '2'], { store: restored })).toBe(sent[1]);
      await ok(['restore', '--repo', join(work, 'repo2'), '--to', join(work, 'restored2')], { store: join(work, 'restored2') });
      expect(await ok(['fetch', 'INBOX', '3'], { store: join(work, 'restored2') })).toBe(sent[2]);

      for (const args of [['append', 'INBOX', '-'], ['scrub', '--time-budget', '1s'], ['snapshot']]) {
        const refused = await run(args, { store: roStore, input: message(4, 100) });
        expect(refused.code, `${args.join(' ')}: ${refused.stderr}`).toBe(2);
        expect(refused.stderr, args.join(' ')).toMatch(/^mailstore: ACCESS: .*Read-only file system/);
      }
    } finally {
      cleanUp(work, mounted);
    }
  }, 60_000);
});
