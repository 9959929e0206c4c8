// Retention under a wrong system clock (src/store/clock.ts): real processes under libfaketime
// (apt-get install faketime; .ci/run installs it), which moves the wall clock of a process while
// /proc/uptime, which the store reads for this boot's start, keeps the truth, as a step of the
// real clock does.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bin, requireBuilt, tempDir } from './helpers.js';
// the real clock's command lines run in this process (in-process.ts): fast, and /proc is the same
import { json, ok as okHere, run } from './in-process.js';

const faketime = spawnSync('faketime', ['-f', '+0', 'true']).status === 0;
if (!faketime) console.log('the wrong-clock tests of retention are skipped: faketime is not installed (apt-get install faketime)');

/** The CLI with the wall clock moved by `offset` (libfaketime's -f: '+400d', '-9000d'). */
function cli(offset: string, store: string, args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('faketime', ['-f', offset, process.execPath, bin, '--store', store, ...args], { encoding: 'utf8', input, timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function ok(offset: string, store: string, args: string[], input?: string): string {
  const result = cli(offset, store, args, input);
  expect(result.status, result.stderr).toBe(0);
  return result.stdout;
}

async function dates(store: string): Promise<number[]> {
  return ((await json(['--store', store, 'messages', 'M'])) as { internalDate: string }[]).map((m) => Date.parse(m.internalDate));
}

async function newStore(): Promise<string> {
  requireBuilt();
  const store = join(tempDir('mailstore-clock-'), 's');
  await okHere(['--store', store, 'init']);
  await okHere(['--store', store, 'mailbox', 'create', 'M']);
  for (const n of [1, 2]) await okHere(['--store', store, 'append', 'M', '-'], { input: `Subject: ${n}\r\n\r\nbody\r\n` });
  return store;
}

/** The real clock's run of a command line, in this process. */
async function real(store: string, args: string[]): Promise<{ status: number | null; stderr: string }> {
  const result = await run(['--store', store, ...args]);
  return { status: result.code, stderr: result.stderr };
}

describe.skipIf(!faketime)('retention under a wrong clock', () => {
  it('a clock stepped forward 400 days (a typo in date -s): expunge --before 30d refuses and keeps every message; once set right and trusted, it keeps the recent ones', { timeout: 60_000 }, async () => {
    const store = await newStore();
    const refused = cli('+400d', store, ['expunge', 'M', '--before', '30d']);
    expect(refused.status, refused.stderr).toBe(3);
    expect(refused.stderr).toMatch(/REFUSED: retention deletes by the clock, and the system clock was stepped forward by 400 days .*nothing was expunged.*mailstore clock trust/);
    expect(await dates(store)).toHaveLength(2);
    // the clock set right again: the store saw 400 days ahead, so it cannot tell which is right
    const back = await real(store, ['expunge', 'M', '--before', '30d', '--dry-run']);
    expect(back.status).toBe(3);
    expect(back.stderr).toMatch(/behind the latest time this store has seen/);
    const trusted = await json(['--store', store, 'clock', 'trust']);
    expect(trusted).toMatchObject({ steps: [] });
    expect(trusted.untrusted).toBeUndefined();
    expect(await json(['--store', store, 'expunge', 'M', '--before', '30d'])).toMatchObject({ mailboxes: [{ mailbox: 'M', uids: [] }] });
    expect(await dates(store)).toHaveLength(2);
  });

  it('a boot with the clock 9000 days behind (a dead RTC battery): mail delivered then is dated no earlier than the store had seen, retention refuses until trusted, then keeps it', { timeout: 60_000 }, async () => {
    const store = await newStore();
    const [first] = await dates(store);
    ok('-9000d', store, ['append', 'M', '-'], 'Subject: under a clock in 2002\r\n\r\nbody\r\n');
    const behind = cli('-9000d', store, ['expunge', 'M', '--before', '30d']);
    expect(behind.status).toBe(3);
    expect(behind.stderr).toMatch(/the system clock \(200\d-.*\) is before this store was created/);
    // NTP puts the clock right: the step is seen, and retention waits for the admin's word
    const stepped = await real(store, ['expunge', 'M', '--before', '30d']);
    expect(stepped.status).toBe(3);
    expect(stepped.stderr).toMatch(/stepped back by 9000 days at about 2002-.*, then forward by 9000 days/);
    const report = await json(['--store', store, 'clock']);
    expect(report.untrusted).toMatch(/then forward by 9000 days/);
    await okHere(['--store', store, 'clock', 'trust']);
    expect(await json(['--store', store, 'expunge', 'M', '--before', '30d'])).toMatchObject({ mailboxes: [{ uids: [] }] });
    const kept = await dates(store);
    expect(kept).toHaveLength(3);
    expect(kept[2]).toBeGreaterThanOrEqual(first); // not 2002: the 30-day run would have taken it
  });
});
