// An admin's bad day (issue 14): the nightly `backup --repo /mnt/backup` runs while the backup disk
// is not mounted. It used to find an empty directory (the mount point), make a new repository there
// and copy the whole store onto the file system below it, reporting success. Now the store
// remembers each repository it backed up into (BACKUPS) and a backup that finds none where it
// backed up before is refused (UNMOUNTED, exit 3) with nothing written; so is one at a mount point
// /etc/fstab names with nothing mounted (a real loop-mounted ext4 in a private mount namespace).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bin, requireBuilt, tempDir } from '../cli/helpers.js';
import { json, ok, run } from '../cli/in-process.js';
import { INBOX, freshStore, message, serve } from '../daemon/processes.js';
import { BACKUPS_FILE } from '../../src/store/backup-records.js';

interface Saved { snapshot: string; messages: number; newBlobs: number; parent?: string }

/** What a refused run must leave: the store's files as they were (BACKUPS, the journal's newest segment). */
function storeState(store: string): string {
  const journal = readdirSync(join(store, 'journal')).sort();
  return JSON.stringify({ backups: existsSync(join(store, BACKUPS_FILE)) ? readFileSync(join(store, BACKUPS_FILE), 'utf8') : null, journal, last: readFileSync(join(store, 'journal', journal.at(-1)!)).toString('base64') });
}

function repositoryId(repo: string): string {
  return (JSON.parse(readFileSync(join(repo, 'config'), 'utf8').split('\n')[0]) as { id: string }).id;
}

describe('a backup disk that is not mounted', () => {
  it('no repository where the store backed up before (an empty or missing directory) is refused, UNMOUNTED naming it, nothing written; mounted again, the incremental goes on; another disk there is taken; --new-repository starts one', { timeout: 90_000 }, async () => {
    requireBuilt();
    const dir = tempDir('mailstore-backup-unmounted-');
    const store = join(dir, 's');
    const repo = join(dir, 'mnt');
    await ok(['--store', store, 'init']);
    await ok(['--store', store, 'mailbox', 'create', 'M']);
    for (let i = 0; i < 3; i++) await ok(['--store', store, 'append', 'M', '-'], { input: message(i) });
    const first = await json<Saved>(['--store', store, 'backup', '--repo', repo]);
    const id = repositoryId(repo);
    expect(JSON.parse(readFileSync(join(store, BACKUPS_FILE), 'utf8').split('\n')[0])).toEqual({ records: [{ id, path: repo, snapshot: first.snapshot, time: expect.any(Number) }] });

    // the disk unmounted: its mount point is an empty directory
    renameSync(repo, join(dir, 'disk'));
    mkdirSync(repo);
    await ok(['--store', store, 'append', 'M', '-'], { input: message(3) });
    const before = storeState(store);
    const refused = await run(['--store', store, 'backup', '--repo', repo]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(`UNMOUNTED: no backup repository at ${repo}`);
    expect(refused.stderr).toContain(`repository ${id} there, last snapshot ${first.snapshot.slice(0, 12)} at `);
    expect(refused.stderr).toMatch(/mount the backup disk .*--new-repository/);
    expect(readdirSync(repo)).toEqual([]);
    expect(storeState(store)).toBe(before);
    // ...or not even the directory (a mount point under /mnt that an automounter removed)
    spawnSync('rmdir', [repo]);
    expect((await run(['--store', store, 'backup', '--repo', repo])).code).toBe(3);
    expect(existsSync(repo)).toBe(false);
    expect(storeState(store)).toBe(before);

    // mounted again: the incremental run builds on the last snapshot
    renameSync(join(dir, 'disk'), repo);
    const second = await json<Saved>(['--store', store, 'backup', '--repo', repo]);
    expect(second).toMatchObject({ messages: 4, newBlobs: 1, parent: first.snapshot });

    // a rotated disk: another repository at the same path is fine, and recorded beside the first
    renameSync(repo, join(dir, 'disk'));
    await ok(['--store', store, 'backup', '--repo', join(dir, 'other')]);
    renameSync(join(dir, 'other'), repo);
    expect((await json<Saved>(['--store', store, 'backup', '--repo', repo])).messages).toBe(4);
    const records = (JSON.parse(readFileSync(join(store, BACKUPS_FILE), 'utf8').split('\n')[0]) as { records: { id: string; path: string }[] }).records;
    expect(records.map((r) => [r.id, r.path])).toEqual([[id, repo], [repositoryId(repo), repo]]);

    // both disks away: --new-repository starts a new one there on purpose
    renameSync(repo, join(dir, 'disk2'));
    expect((await run(['--store', store, 'backup', '--repo', repo])).code).toBe(3);
    const fresh = await json<Saved>(['--store', store, 'backup', '--repo', repo, '--new-repository']);
    expect(fresh).toMatchObject({ messages: 4, newBlobs: 4 });
    expect(fresh.parent).toBeUndefined();

    // a damaged record: nothing tells whether a repository was at a path, so none is made; a backup
    // into an existing repository goes on and writes the record again
    writeFileSync(join(store, BACKUPS_FILE), '{"records":[]}\ncrc32 00000000\n');
    const damaged = await run(['--store', store, 'backup', '--repo', join(dir, 'elsewhere')]);
    expect(damaged.code).toBe(3);
    expect(damaged.stderr).toContain(`REFUSED: no backup repository at ${join(dir, 'elsewhere')}, and the store's record of its backups (${join(store, BACKUPS_FILE)}) is damaged`);
    expect(existsSync(join(dir, 'elsewhere'))).toBe(false);
    const mended = await json<Saved>(['--store', store, 'backup', '--repo', repo]);
    expect(readFileSync(join(store, BACKUPS_FILE), 'utf8')).toContain(mended.snapshot);
  });

  it('through the daemon: the daemon records the backup, and a backup into the empty mount point is refused the same way', { timeout: 90_000 }, async () => {
    requireBuilt();
    const store = await freshStore();
    const dir = tempDir('mailstore-backup-unmounted-daemon-');
    const repo = join(dir, 'mnt');
    const daemon = await serve(store);
    try {
      for (let i = 0; i < 2; i++) expect((await run(['append', INBOX, '-'], { store, input: message(i) })).code).toBe(0);
      const first = await json<Saved>(['backup', '--repo', repo], { store });
      expect(readFileSync(join(store, BACKUPS_FILE), 'utf8')).toContain(first.snapshot);
      renameSync(repo, join(dir, 'disk'));
      mkdirSync(repo);
      const refused = await run(['backup', '--repo', repo], { store });
      expect(refused.code).toBe(3);
      expect(refused.stderr).toContain(`repository ${repositoryId(join(dir, 'disk'))} there`);
      expect(readdirSync(repo)).toEqual([]);
      expect(daemon.child.exitCode).toBeNull();
    } finally {
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
    }
  });

  it('through a daemon of an older version (no backupRecords/recordBackup procedures: the package upgraded, the daemon not yet restarted): a new repository is refused unless --new-repository (the records cannot be read), backups into it are saved with a warning naming the restart', { timeout: 90_000 }, async () => {
    requireBuilt();
    const store = await freshStore();
    const dir = tempDir('mailstore-backup-old-daemon-');
    const repo = join(dir, 'repo');
    const daemon = await serve(store, [], { without: ['backupRecords', 'recordBackup'] });
    try {
      expect((await run(['append', INBOX, '-'], { store, input: message(0) })).code).toBe(0);
      const refused = await run(['backup', '--repo', repo], { store });
      expect(refused.code).toBe(5);
      expect(refused.stderr).toMatch(/INVALID: the daemon has no procedure "backupRecords": it runs an older mailstore than this one .*Restart it/);
      expect(existsSync(join(repo, 'config'))).toBe(false);
      const saved = await run(['backup', '--repo', repo, '--new-repository', '--json'], { store });
      expect(saved.code, saved.stderr).toBe(0);
      expect((JSON.parse(saved.stdout) as Saved).messages).toBe(1);
      expect(saved.stderr).toMatch(/the backup is saved, but the store could not record it \(.*older mailstore.*Restart it/);
      const again = await run(['backup', '--repo', repo, '--json'], { store });
      expect(again.code, again.stderr).toBe(0);
      expect((JSON.parse(again.stdout) as Saved).parent).toBe((JSON.parse(saved.stdout) as Saved).snapshot);
      expect(existsSync(join(store, BACKUPS_FILE))).toBe(false);
      expect(daemon.child.exitCode).toBeNull();
    } finally {
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
    }
    expect((await json<{ messages: number }>(['restore', '--repo', repo, '--to', join(dir, 'r')])).messages).toBe(1);
  });

  it('a new repository on the store\'s own file system is made, with a warning on stderr', { timeout: 60_000 }, async () => {
    requireBuilt();
    const dir = tempDir('mailstore-backup-same-disk-');
    const store = join(dir, 's');
    await ok(['--store', store, 'init']);
    const made = await run(['--store', store, 'backup', '--repo', join(dir, 'repo')]);
    expect(made.code).toBe(0);
    expect(made.stderr).toMatch(/WARNING: the new backup repository .*repo is on the same file system as the store/);
    const again = await run(['--store', store, 'backup', '--repo', join(dir, 'repo')]);
    expect(again.code).toBe(0);
    expect(again.stderr).not.toContain('same file system');
  });

  it('a store the backup may only read (its directory immutable, as a read-only open or a full disk leaves it): the snapshot is saved and restores, BACKUPS is not written, and stderr says the backup could not be recorded', { timeout: 60_000 }, async (context) => {
    requireBuilt();
    const dir = tempDir('mailstore-backup-unrecorded-');
    const store = join(dir, 's');
    await ok(['--store', store, 'init']);
    await ok(['--store', store, 'mailbox', 'create', 'M']);
    await ok(['--store', store, 'append', 'M', '-'], { input: Buffer.from('Subject: kept\r\n\r\nkept\r\n') });
    const locked = spawnSync('chattr', ['+i', store], { encoding: 'utf8' });
    if (locked.status !== 0) return context.skip(`chattr +i on ${store}: ${locked.stderr.trim() || 'not available'} (needs root and ext4/xfs/btrfs)`);
    try {
      const saved = await run(['--store', store, 'backup', '--repo', join(dir, 'repo'), '--json']);
      expect(saved.code, saved.stderr.toString()).toBe(0);
      expect((JSON.parse(saved.stdout.toString()) as Saved).messages).toBe(1);
      expect(saved.stderr.toString()).toMatch(/the backup is saved, but the store could not record it/);
      expect(existsSync(join(store, BACKUPS_FILE))).toBe(false);
    } finally {
      spawnSync('chattr', ['-i', store]);
    }
    expect((await json<{ messages: number }>(['restore', '--repo', join(dir, 'repo'), '--to', join(dir, 'r')])).messages).toBe(1);
    expect(await ok(['--store', join(dir, 'r'), 'fetch', 'M', '1'])).toBe('Subject: kept\r\n\r\nkept\r\n');
  });
});

/**
 * Runs `script` as root in a private mount namespace (unshare: the mounts and the /etc/fstab bound
 * over it are this test's alone); undefined and the reason when the kernel or the user cannot.
 */
function inMountNamespace(script: string): { code: number | null; stdout: string; stderr: string } | string {
  if (process.getuid?.() !== 0) return 'needs root (unshare --mount, mount -o loop)';
  const probe = spawnSync('unshare', ['--mount', '--propagation', 'private', 'true'], { encoding: 'utf8' });
  if (probe.status !== 0) return `unshare --mount failed: ${probe.stderr.trim()}`;
  if (spawnSync('sh', ['-c', 'command -v mkfs.ext4'], { encoding: 'utf8' }).status !== 0) return 'no mkfs.ext4 (apt-get install -y e2fsprogs)';
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('a mount point /etc/fstab names, with nothing mounted', () => {
  it('mounted: the backup goes in; unmounted: refused (UNMOUNTED, exit 3) even for a store that never backed up there, backups and restore UNMOUNTED too, nothing written to the mount point; mounted again: the incremental goes on', { timeout: 150_000 }, (context) => {
    requireBuilt();
    const dir = tempDir('mailstore-backup-fstab-');
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    writeFileSync(join(dir, 'fstab'), `# the backup disk\n/dev/disk/by-label/backup ${mnt} ext4 noauto,nofail 0 2\n`);
    const cli = `node ${bin}`;
    const result = inMountNamespace(`set -u
      cd ${dir}
      mount --bind fstab /etc/fstab || exit 90
      truncate -s 32M img && mkfs.ext4 -q -F img || exit 91
      mount -o loop img mnt || exit 92
      ${cli} --store s init >/dev/null && ${cli} --store s mailbox create M >/dev/null || exit 93
      for i in 1 2 3; do printf 'Subject: %s\\r\\n\\r\\nbody %s\\r\\n' $i $i | ${cli} --store s append M - >/dev/null || exit 94; done
      ${cli} --store s backup --repo mnt/repo --json > first.json 2> first.err; echo "first $?"
      umount mnt || exit 95
      ${cli} --store s2 init >/dev/null || exit 96
      ${cli} --store s backup --repo mnt/repo > /dev/null 2> refused.err; echo "refused $?"
      ${cli} --store s2 backup --repo mnt/repo > /dev/null 2> never.err; echo "never $?"
      ${cli} --store s2 backup --repo mnt > /dev/null 2> point.err; echo "point $?"
      ${cli} backups --repo mnt/repo > /dev/null 2> list.err; echo "list $?"
      ${cli} restore --repo mnt/repo --to r > /dev/null 2>&1; echo "restore $?"
      echo "left $(ls -A mnt | wc -l)"
      printf 'Subject: 4\\r\\n\\r\\nbody 4\\r\\n' | ${cli} --store s append M - >/dev/null || exit 97
      mount -o loop img mnt || exit 98
      ${cli} --store s backup --repo mnt/repo --json > second.json 2> second.err; echo "second $?"
      umount mnt`);
    if (typeof result === 'string') { context.skip(result); return; }
    expect(result.code, result.stderr + result.stdout).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual(['first 0', 'refused 3', 'never 3', 'point 3', 'list 3', 'restore 3', 'left 0', 'second 0']);
    // on its own disk: no warning about the store's file system
    expect(readFileSync(join(dir, 'first.err'), 'utf8')).not.toContain('same file system');
    expect(readFileSync(join(dir, 'never.err'), 'utf8')).toContain(`UNMOUNTED: no backup repository at ${mnt}/repo, and it is at or under ${mnt}, a mount point in /etc/fstab (/dev/disk/by-label/backup) with nothing mounted on it`);
    expect(readFileSync(join(dir, 'point.err'), 'utf8')).toContain('--new-repository');
    expect(readFileSync(join(dir, 'refused.err'), 'utf8')).toContain('UNMOUNTED');
    // the other commands say the disk is not mounted, not "no repository; 'mailstore backup' creates one"
    expect(readFileSync(join(dir, 'list.err'), 'utf8')).toContain(`UNMOUNTED: no backup repository at ${mnt}/repo, and it is at or under ${mnt}, a mount point in /etc/fstab`);
    expect(existsSync(join(dir, 'r'))).toBe(false);
    expect(existsSync(join(dir, 's2', BACKUPS_FILE))).toBe(false);
    const first = JSON.parse(readFileSync(join(dir, 'first.json'), 'utf8')) as Saved;
    const second = JSON.parse(readFileSync(join(dir, 'second.json'), 'utf8')) as Saved;
    expect(first).toMatchObject({ messages: 3, newBlobs: 3 });
    expect(second).toMatchObject({ messages: 4, newBlobs: 1, parent: first.snapshot });
  });
});
