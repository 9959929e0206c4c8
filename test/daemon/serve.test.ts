// `mailstore serve` as a process: SIGTERM exits 0 and leaves the store closed; the CLI goes through
// it (parallel appends, scrub, no LOCKED); what needs the store to itself is LOCKED beside it.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/client/client.js';
import { Store } from '../../src/store/store.js';
import { json, ok, requireBuilt, run, tempDir } from '../cli/helpers.js';
import { INBOX, freshStore, message, serve } from './processes.js';
import { logEvents } from '../helpers/log-events.js';

beforeAll(requireBuilt);

describe('mailstore serve', () => {
  it('SIGTERM: exits 0, removes its socket, releases the store; SIGHUP reopens --log; the log is JSON lines', async () => {
    const store = await freshStore();
    const log = join(store, '..', 'daemon.log');
    const daemon = await serve(store, ['--log', log]);
    const socket = join(store, 'run', 'mailstore.sock');
    expect(existsSync(socket)).toBe(true);
    renameSync(log, `${log}.1`);
    daemon.child.kill('SIGHUP');
    for (let i = 0; i < 40 && !existsSync(log); i++) await sleep(50);
    await ok(['append', INBOX, '-'], { store, input: message(1) });
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    expect(existsSync(socket)).toBe(false);
    // (under load the first lines may still be gathered when the file is renamed: they land in the reopened one)
    for (const line of readFileSync(`${log}.1`, 'utf8').split('\n').filter(Boolean)) expect(JSON.parse(line)).toHaveProperty('event');
    expect(readFileSync(log, 'utf8')).toMatch(/"event":"log-reopened"/);
    expect(readFileSync(log, 'utf8')).toMatch(/"event":"stopped"/);
    expect((await json(['mailbox', 'status', INBOX, '--no-wait'], { store })).messages).toBe(1); // opened directly: the lock is free
    expect(readFileSync(`${log}.1`, 'utf8')).not.toMatch(/"event":"store-opened"/); // an ordinary open: nothing to say
    // a daemon that opens the store without its index logs the rebuild (a warning) before it serves
    rmSync(join(store, 'index'), { recursive: true });
    const again = await serve(store, ['--log', log]);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
    const opened = logEvents(log).find((e) => e.event === 'store-opened');
    expect(opened).toMatchObject({ level: 'warn' });
    expect(opened?.notice).toMatch(/^the index was rebuilt at open \(index is missing\)/);
  });

  it('an automatic snapshot whose journal archive is gone (unmounted) warns journal-not-retired, not only an info line: the journal grows until it is back', async () => {
    const store = await freshStore();
    const archive = join(tempDir('mailstore-archive-'), 'archive');
    mkdirSync(archive);
    await ok(['snapshot', '--journal-archive', archive], { store });
    rmSync(archive, { recursive: true }); // its disk not mounted after a reboot
    const log = join(store, '..', 'daemon.log');
    const daemon = await serve(store, ['--log', log], { limits: { snapshotEveryRecords: 20, snapshotAutoPauseFactor: 0 } });
    const client = await Client.connect(join(store, 'run', 'mailstore.sock'));
    const warnings = () => logEvents(log).filter((e) => e.level === 'warn');
    try {
      for (let i = 0; i < 200 && !warnings().some((e) => e.event === 'journal-not-retired'); i++) await client.append(INBOX, message(i));
    } finally {
      await client.close();
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
    }
    const warned = warnings().find((e) => e.event === 'journal-not-retired');
    expect(warned?.why).toMatch(/the journal archive .* is not a directory \(not mounted\?\): nothing was retired/);
  });

  // issue 12: "a consumer that falls too far behind is reported (stats, an event), never silently
  // skipped". Before session 49 the daemon said it only in its info-level 'snapshot' line (heldBy,
  // since 0ff93707), which an admin's alerts on warnings never saw.
  it('a consumer past limits.consumerLagRecordsWarn warns consumer-behind at an automatic snapshot, naming it and its lag; it keeps its records', async () => {
    const store = await freshStore();
    const opened = await Store.open(store);
    await opened.changes.register('slowpoke');
    const pinned = opened.changes.lastSeq;
    await opened.close();
    const log = join(store, '..', 'daemon.log');
    const daemon = await serve(store, ['--log', log], { limits: { snapshotEveryRecords: 20, snapshotAutoPauseFactor: 0, consumerLagRecordsWarn: 30 } });
    const client = await Client.connect(join(store, 'run', 'mailstore.sock'));
    const behind = () => logEvents(log).find((e) => e.level === 'warn' && e.event === 'consumer-behind');
    try {
      for (let i = 0; i < 300 && !behind(); i++) await client.append(INBOX, message(i));
    } finally {
      await client.close();
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
    }
    const warned = behind();
    expect(warned).toMatchObject({ consumer: 'slowpoke', seq: pinned, warnRecords: 30 });
    expect(warned!.lagRecords).toBeGreaterThan(30);
    const consumers = await json(['consumers', '--json'], { store });
    expect(JSON.stringify(consumers)).toContain('slowpoke');
  });

  it('the CLI goes through it: 8 parallel appends with distinct uids, scrub clean, no LOCKED; reconstruct is LOCKED; a second daemon is refused', async () => {
    const store = await freshStore();
    const daemon = await serve(store);
    try {
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => run(['append', INBOX, '-', '--json', '--no-wait'], { store, input: message(i) })));
      for (const r of results) expect(r.code, r.stderr).toBe(0);
      const uids = results.map((r) => JSON.parse(r.stdout.toString()).uid as number);
      expect(new Set(uids).size).toBe(8);
      expect((await run(['fetch', INBOX, String(uids[3])], { store })).stdout.equals(message(3))).toBe(true);
      expect((await run(['scrub', '--no-wait'], { store })).code).toBe(0);
      const reconstruct = await run(['reconstruct', '--check'], { store });
      expect(reconstruct.code).toBe(2);
      expect(reconstruct.stderr).toMatch(/^mailstore: LOCKED: the daemon \(process \d+\) serves the store/);
      const second = await run(['serve', '--no-wait'], { store });
      expect(second.code).toBe(2);
      expect(second.stderr).toMatch(/LOCKED/);
      // one that waits says so in its log (stderr is no terminal here): it was silent for the whole wait
      const waiting = await run(['serve', '--wait', '2'], { store });
      expect(waiting.code).toBe(2);
      const waited = waiting.stderr.split('\n').filter((line) => line.includes('"waiting-for-lock"'));
      expect(waited).toHaveLength(1);
      expect(waited[0]).toMatch(new RegExp(`"level":"warn".*"holder":"process ${daemon.child.pid} \\(.*serve.*\\)".*"waitSeconds":2`));
    } finally {
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
    }
  });

  it('a typo in --lmtp or --lmtp-template is INVALID (exit 5) before the lock: not LOCKED after --wait beside a running daemon', async () => {
    const store = await freshStore();
    const daemon = await serve(store);
    try {
      for (const [args, said] of [[['--lmtp-template', 'user/{locl}/INBOX'], /INVALID: LMTP template .*\{locl\}.*no placeholder/], [['--lmtp', '127.0.0.1:99999'], /INVALID: LMTP listen address "127.0.0.1:99999"/]] as const) {
        const second = await run(['serve', '--wait', '3', ...args], { store });
        expect(second.code, second.stderr).toBe(5);
        expect(second.stderr).toMatch(said);
        expect(second.stderr).not.toMatch(/waiting-for-lock|LOCKED/);
      }
    } finally {
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
    }
  });

  it('a daemon that holds the store and does not answer (stopped, hung) is LOCKED saying so, not "stop it or wait" as if it were a command busy with the store', async () => {
    const store = await freshStore();
    const daemon = await serve(store);
    daemon.child.kill('SIGSTOP');
    try {
      const status = await run(['--wait', '1', 'mailbox', 'status', INBOX], { store });
      expect(status.code, status.stderr).toBe(2);
      expect(status.stderr).toMatch(new RegExp(`^mailstore: LOCKED: the store at .* is in use by process ${daemon.child.pid} \\(.*serve.*\\) \\(LOCK\\), a daemon whose socket ${join(store, 'run', 'mailstore.sock')} does not answer`));
      expect(status.stderr).not.toMatch(/stop it or wait/);
    } finally {
      daemon.child.kill('SIGCONT');
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
    }
  });

});
