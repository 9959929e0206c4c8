// A new-store restore owns its target while it builds there: a second restore into the same
// directory is refused (LOCKED) instead of clearing the first one's build, and a mark left by a
// restore that is gone is taken over.
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { bin } from '../cli/helpers.js';
import { dump, expectCode, fill, openRepo, source } from './helpers.js';

async function backedUp(dir: string): Promise<{ repoDir: string; before: unknown }> {
  const store = await Store.init(join(dir, 's'));
  await store.createMailbox('user/alice/INBOX', { owner: 'alice' });
  await fill(store, 'user/alice/INBOX', 200, 1, 20_000);
  const repo = await openRepo(join(dir, 'repo'));
  await runBackup(source(store), repo);
  await repo.close();
  const before = await dump(store);
  await store.close();
  return { repoDir: join(dir, 'repo'), before };
}

async function restoredDump(target: string): Promise<unknown> {
  const store = await Store.open(target);
  try {
    return await dump(store);
  } finally {
    await store.close();
  }
}

describe('the target of a new-store restore', () => {
  it('two restores into one directory at once: one restores, the other is refused (LOCKED) and leaves the first one\'s store whole', async () => {
    const dir = tmpDir('rt');
    const { repoDir, before } = await backedUp(dir);
    for (const made of [true, false]) { // a missing target, and an empty one (a mount point)
      const target = join(dir, made ? 'empty' : 'missing');
      if (made) mkdirSync(target);
      const repos = [await openRepo(repoDir), await openRepo(repoDir)];
      const results = await Promise.allSettled(repos.map((repo) => restoreToNewStore(nodeFileSystem, repo, 'latest', target)));
      for (const repo of repos) await repo.close();
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(failed.map((r) => (r.reason as { code?: string }).code), String(failed[0]?.reason)).toEqual(['LOCKED']);
      expect(readdirSync(target)).not.toContain('RESTORING');
      expect(readdirSync(target)).not.toContain('.restoring');
      expect(await restoredDump(target)).toEqual(before);
    }
  });

  it('a mark of a restore that still runs is left alone (LOCKED, nothing removed); once that process is gone the next restore takes it over', async () => {
    const dir = tmpDir('rt');
    const { repoDir, before } = await backedUp(dir);
    const repo = await openRepo(repoDir);
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    const exited = new Promise((done) => child.once('exit', done));
    try {
      const target = join(dir, 't');
      mkdirSync(join(target, '.restoring', 'packs'), { recursive: true });
      writeFileSync(join(target, '.restoring', 'packs', 'p'), 'being written');
      writeFileSync(join(target, 'RESTORING'), `restoring snapshot abcd here (pid ${child.pid} on ${hostname()}); an interrupted restore is cleared by the next one\n`);
      await expectCode(restoreToNewStore(nodeFileSystem, repo, 'latest', target), 'LOCKED');
      expect(readdirSync(target).sort()).toEqual(['.restoring', 'RESTORING']);
      expect(existsSync(join(target, '.restoring', 'packs', 'p'))).toBe(true);
      // a restore on another host cannot be asked whether it runs: refused the same way
      const far = join(dir, 'far');
      mkdirSync(far);
      writeFileSync(join(far, 'RESTORING'), `restoring snapshot abcd here (pid 1 on not-${hostname()}); an interrupted restore is cleared by the next one\n`);
      await expectCode(restoreToNewStore(nodeFileSystem, repo, 'latest', far), 'LOCKED');
      expect(readdirSync(far)).toEqual(['RESTORING']);

      child.kill('SIGKILL');
      await exited;
      await restoreToNewStore(nodeFileSystem, repo, 'latest', target);
      expect(readdirSync(target)).not.toContain('RESTORING');
      expect(await restoredDump(target)).toEqual(before);
    } finally {
      child.kill('SIGKILL');
      await repo.close();
    }
  });
  it('a file named RESTORING that no restore wrote is someone\'s: the directory is not empty (EXISTS) and nothing in it is removed', async () => {
    const dir = tmpDir('rt');
    const { repoDir } = await backedUp(dir);
    const repo = await openRepo(repoDir);
    try {
      const target = join(dir, 'notes');
      mkdirSync(join(target, 'drafts'), { recursive: true });
      writeFileSync(join(target, 'RESTORING'), 'TODO: restore alice after the migration\n');
      writeFileSync(join(target, 'drafts', 'plan.txt'), 'keep me');
      await expectCode(restoreToNewStore(nodeFileSystem, repo, 'latest', target), 'EXISTS');
      expect(readdirSync(target).sort()).toEqual(['RESTORING', 'drafts']);
      expect(readFileSync(join(target, 'RESTORING'), 'utf8')).toBe('TODO: restore alice after the migration\n');
      expect(readFileSync(join(target, 'drafts', 'plan.txt'), 'utf8')).toBe('keep me');
    } finally {
      await repo.close();
    }
  });

  // Open on a target whose restore was stopped said only "no STORE identity file: not a mailstore, or
  // not mounted", and pointed to 'reconstruct --identity-from-markers', which cannot help there.
  it('stopped by Ctrl-C: opening the target says a restore was interrupted and to run it again, which then restores it whole', async () => {
    const dir = tmpDir('rt');
    const { repoDir, before } = await backedUp(dir);
    const target = join(dir, 'stopped');
    const cli = (args: string[]) => spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    const restore = cli(['restore', '--repo', repoDir, '--to', target]);
    const ended = new Promise<NodeJS.Signals | null>((done) => restore.on('close', (_code, signal) => done(signal)));
    while (!existsSync(join(target, 'RESTORING')) && restore.exitCode === null) await new Promise((r) => setImmediate(r));
    restore.kill('SIGINT');
    expect(await ended).toBe('SIGINT');
    expect(readdirSync(target)).toContain('RESTORING');
    const opened = cli(['--store', target, 'stats']);
    let stderr = '';
    opened.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    expect(await new Promise((done) => opened.on('close', done))).toBe(3);
    expect(stderr).toMatch(/^mailstore: UNMOUNTED: .*a restore into it was interrupted.*Run the same 'mailstore restore/);
    expect(stderr).not.toMatch(/reconstruct/);
    const repo = await openRepo(repoDir);
    try {
      await restoreToNewStore(nodeFileSystem, repo, 'latest', target);
    } finally {
      await repo.close();
    }
    expect(await restoredDump(target)).toEqual(before);
  });
});
