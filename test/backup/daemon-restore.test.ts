// `mailstore restore --mailbox/--user --as` into a live store that `mailstore serve` holds: the
// restore goes through the daemon (an open beside it would be LOCKED), a taken name is still
// refused before anything is written, and the restored mailbox is there for the daemon's clients.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { json, requireBuilt, run, tempDir } from '../cli/helpers.js';
import { INBOX, freshStore, message, serve } from '../daemon/processes.js';

describe('restore into a store its daemon serves', () => {
  it('goes through serve: EXISTS without --as, the mailbox restored with --as, bytes and flags as they were; the daemon keeps serving', { timeout: 120_000 }, async () => {
    requireBuilt();
    const store = await freshStore();
    const repo = join(tempDir('mailstore-restore-daemon-'), 'repo');
    const daemon = await serve(store);
    try {
      for (let i = 0; i < 6; i++) expect((await run(['append', INBOX, '-', ...(i % 2 ? ['--flags', '\\Seen'] : [])], { store, input: message(i) })).code).toBe(0);
      const saved = await json(['backup', '--repo', repo], { store });
      expect(saved).toMatchObject({ messages: 6, newBlobs: 6 });

      const taken = await run(['restore', '--repo', repo, '--mailbox', INBOX, '--to', store, '--no-wait']);
      expect(taken.code, taken.stderr.toString()).toBe(5);
      expect(taken.stderr.toString()).toMatch(/EXISTS: .*already has a mailbox user\/alice\/INBOX.*--as/);
      expect(taken.stderr.toString()).not.toMatch(/LOCKED/);

      // --no-wait: an open of its own would fail LOCKED at once; through the daemon it succeeds
      const restored = await json(['restore', '--repo', repo, '--mailbox', INBOX, '--as', 'user/alice/Restored', '--to', store, '--no-wait']);
      expect(restored).toMatchObject({ messages: 6, mailboxes: 1 });
      const listed = await json<{ uid: number; flags: string[] }[]>(['messages', 'user/alice/Restored', '--json'], { store });
      expect(listed.map((m) => m.uid)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(listed.map((m) => m.flags.includes('\\Seen'))).toEqual([false, true, false, true, false, true]);
      for (let uid = 1; uid <= 6; uid++) expect((await run(['fetch', 'user/alice/Restored', String(uid)], { store })).stdout.equals(message(uid - 1))).toBe(true);
      expect(daemon.child.exitCode).toBeNull();
      // the original is untouched
      expect(await json<unknown[]>(['messages', INBOX, '--json'], { store })).toHaveLength(6);
      expect((await run(['scrub', '--no-wait'], { store })).code).toBe(0);
    } finally {
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
    }
  });
});
