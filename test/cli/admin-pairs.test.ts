// Two admins at once: long-running admin commands started together on one store (and one backup
// repository), with and without a serving daemon, some killed part way. Each pair either both
// works, or one waits or is refused with LOCKED naming the other (its pid and command, or the
// daemon); afterwards scrub is clean and every acknowledged message is there with its flags.
// The fast form runs a few pairs; MAILSTORE_ADMIN_MATRIX=1 runs every pair of COMMANDS both ways,
// a few triples, and each pair with one side SIGKILLed at a random moment (a long run).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isDamage } from '../../src/scrub/findings.js';
import { scrub } from '../../src/scrub/scrub.js';
import { Store } from '../../src/store/store.js';
import { serve, type Daemon } from '../daemon/processes.js';
import { prng } from '../helpers/prng.js';
import { finish, ok, requireBuilt, start, tempDir, type RunResult } from './helpers.js';

beforeAll(requireBuilt);

const FULL = process.env.MAILSTORE_ADMIN_MATRIX === '1';
const ALICE = 'user/alice/INBOX';

interface Site { dir: string; store: string; repo: string; mbox: string }

/** Each command's arguments on a site; names made fresh per call where two runs must not collide. */
const COMMANDS: Record<string, (site: Site, n: number) => string[]> = {
  scrub: () => ['scrub', '--json'],
  repair: () => ['scrub', '--repair', '--json'],
  compact: () => ['compact', '--json'],
  snapshot: () => ['snapshot', '--json'],
  backup: (s) => ['backup', '--repo', s.repo, '--json'],
  forget: (s) => ['backup', 'forget', '--repo', s.repo, '--keep-last', '1', '--prune', '--json'],
  check: (s) => ['backup', 'check', '--repo', s.repo, '--read-data'],
  restore: (s, n) => ['restore', '--repo', s.repo, '--to', join(s.dir, `restored-${n}`), '--json'],
  restoreLive: (s, n) => ['restore', '--repo', s.repo, '--mailbox', ALICE, '--as', `user/alice/restored-${n}`, '--to', s.store, '--json'],
  reconstruct: () => ['reconstruct', '--json'],
  export: (s, n) => ['export', ALICE, '--format', 'mbox', '--out', join(s.dir, `export-${n}.mbox`), '--json'],
  import: (s, n) => ['import', s.mbox, '--mailbox', `user/bob${n}`, '--json'],
  deleteTree: () => ['mailbox', 'delete', 'user/carol', '--recursive', '--force', '--json'],
};

/** A store with mail in user/alice (some flagged, some seen) and a tree user/carol, and a backup repository holding one snapshot. */
async function site(messages: number): Promise<Site> {
  const dir = tempDir('mailstore-admin-pairs-');
  const s: Site = { dir, store: join(dir, 'store'), repo: join(dir, 'repo'), mbox: join(dir, 'bob.mbox') };
  const store = await Store.open(s.store, { create: true });
  try {
    for (const box of [ALICE, 'user/carol/INBOX', 'user/carol/Lists/a']) await store.createMailbox(box);
    const bodies = Array.from({ length: messages }, (_, i) => ({ bytes: Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\n${'line\r\n'.repeat(10 + i % 40)}${i}\r\n`) }));
    await store.appendBatch(ALICE, bodies);
    await store.appendBatch('user/carol/Lists/a', bodies.slice(0, messages / 2));
    await store.setFlags(ALICE, Array.from({ length: messages / 4 }, (_, i) => i + 1), { add: ['\\Flagged', '$Important'] });
    await store.expunge(ALICE, [messages]); // something for compact and forget to reclaim
  } finally {
    await store.close();
  }
  writeFileSync(s.mbox, Array.from({ length: 40 }, (_, i) => `From b@example.org Sat Nov 28 10:45:25 2026\nSubject: bob ${i}\n\nbody ${i}\n\n`).join(''));
  await ok(['backup', '--repo', s.repo], { store: s.store });
  return s;
}

/** uid, hash and flags of every message of user/alice/INBOX: what was acknowledged before the pair ran. */
async function aliceMessages(path: string): Promise<string[]> {
  const store = await Store.open(path);
  try {
    const list: string[] = [];
    for await (const m of store.messages(ALICE)) list.push(`${m.uid} ${m.hash} ${[...m.flags].sort().join(' ')}`);
    return list;
  } finally {
    await store.close();
  }
}

/** Exit 0, or refused with LOCKED naming who holds what: the store's holder (pid and command), a repository's (pid, host, command), or the daemon. */
function expectWorkedOrRefused(result: RunResult, label: string): void {
  if (result.code === 0) return;
  expect(result.code, `${label}: ${result.stderr}`).toBe(2);
  expect(result.stderr, label).toMatch(/^mailstore: LOCKED: .*(in use by process \d+ \(mailstore |in use by pid \d+ on .* \(mailstore |the daemon \(process \d+\) serves)/m);
}

/** Runs the named commands together on a fresh site, `daemon` or not, then checks what the header says. */
async function together(names: string[], options: { daemon: boolean; killOne?: number; messages?: number }): Promise<RunResult[]> {
  const s = await site(options.messages ?? 200);
  const before = await aliceMessages(s.store);
  let daemon: Daemon | undefined;
  if (options.daemon) daemon = await serve(s.store);
  let results: RunResult[];
  try {
    const children = names.map((name, i) => start(COMMANDS[name](s, i), { store: s.store }));
    const finished = children.map((child) => finish(child));
    if (options.killOne !== undefined) {
      const random = prng(options.killOne);
      const victim = children[options.killOne % children.length];
      setTimeout(() => victim.kill('SIGKILL'), Math.floor(random() * 1500));
    }
    results = await Promise.all(finished);
  } finally {
    if (daemon) {
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited, daemon.stderr()).toBe(0);
    }
  }
  const label = names.join(' + ') + (options.daemon ? ' (daemon)' : '');
  results.forEach((result, i) => { if (result.signal !== 'SIGKILL') expectWorkedOrRefused(result, `${label}: ${names[i]}`); });
  // what alice had is there with its flags (nothing of the pairs touches her INBOX but to read it)
  expect(await aliceMessages(s.store), label).toEqual(before);
  const store = await Store.open(s.store);
  try {
    const report = await scrub(store);
    expect(report.findings.filter(isDamage), label).toEqual([]);
  } finally {
    await store.close();
  }
  await ok(['backup', 'check', '--repo', s.repo], { store: s.store }); // the repository too, whoever was killed
  return results;
}

describe('two admin commands at once on one store', () => {
  it('without a daemon: a repair under a compaction, a forget --prune under a backup of the same repository', { timeout: 120_000 }, async () => {
    await together(['compact', 'repair'], { daemon: false });
    const [backup, forget] = await together(['backup', 'forget'], { daemon: false });
    // one of them holds the repository first: the other works after it or is refused naming it
    expect([backup.code, forget.code]).toContain(0);
  });

  it('with a daemon: a repair under a compaction go through it; reconstruct is refused naming the daemon', { timeout: 120_000 }, async () => {
    await together(['compact', 'repair'], { daemon: true });
    const [, reconstruct] = await together(['scrub', 'reconstruct'], { daemon: true });
    expect(reconstruct.code).toBe(2);
  });
});

describe.runIf(FULL)('the whole matrix (MAILSTORE_ADMIN_MATRIX=1)', () => {
  const names = Object.keys(COMMANDS);
  const pairs = names.flatMap((a, i) => names.slice(i).map((b) => [a, b]));
  for (const daemon of [false, true]) {
    for (const pair of pairs) {
      it(`${pair.join(' + ')}${daemon ? ' (daemon)' : ''}`, { timeout: 300_000 }, async () => {
        await together(pair, { daemon });
      });
      it(`${pair.join(' + ')}${daemon ? ' (daemon)' : ''}, one SIGKILLed`, { timeout: 300_000 }, async () => {
        await together(pair, { daemon, killOne: pair.join().length });
      });
    }
    for (const triple of [['backup', 'forget', 'compact'], ['repair', 'compact', 'backup'], ['import', 'deleteTree', 'export'], ['restore', 'forget', 'check']]) {
      it(`${triple.join(' + ')}${daemon ? ' (daemon)' : ''}`, { timeout: 300_000 }, async () => {
        await together(triple, { daemon });
      });
    }
  }
});
