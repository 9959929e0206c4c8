// The daemon and its clients killed: a client killed mid-append leaves no half message; the
// daemon SIGKILLed under load from several client processes loses no acknowledged append, and its
// stale socket is replaced on restart.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { json, repoRoot, requireBuilt } from '../cli/helpers.js';
import { INBOX, clientModule, freshStore, message, serve } from './processes.js';

beforeAll(requireBuilt);

describe('killed', () => {
  it('a client killed mid-append leaves no half message; the same bytes appended again are stored once', async () => {
    const store = await freshStore();
    const daemon = await serve(store);
    try {
      const socket = join(store, 'run', 'mailstore.sock');
      const bytes = Buffer.alloc(4 * 1024 * 1024, 'x');
      // A client that sends the call and half its body, then dies.
      const killed = spawn(process.execPath, ['--input-type=module', '-e', `
        import { encodeFrame } from ${JSON.stringify(join(repoRoot, 'dist/src/daemon/protocol.js'))};
        import { Tag } from 'cbor-x';
        import { createConnection } from 'node:net';
        const s = createConnection(process.argv[1], () => {
          s.write(encodeFrame({ t: 'call', id: 1, m: 'append', a: [${JSON.stringify(INBOX)}, new Tag(${bytes.length}, 40107)], b: 1 }));
          s.write(encodeFrame({ t: 'chunk', id: 1, d: Buffer.alloc(${bytes.length / 2}, 'x') }), () => process.kill(process.pid, 'SIGKILL'));
        });`, socket], { cwd: repoRoot, stdio: 'inherit' });
      expect(await new Promise((resolve) => killed.on('exit', (_code, signal) => resolve(signal)))).toBe('SIGKILL');
      await sleep(200);
      expect((await json(['mailbox', 'status', INBOX], { store })).messages).toBe(0);
      const first = await json(['append', INBOX, '-', '--json'], { store, input: bytes });
      const again = await json(['append', INBOX, '-', '--json'], { store, input: bytes });
      expect([first.deduplicated, again.deduplicated]).toEqual([false, true]);
      const stats = await json(['stats', '--json'], { store });
      expect([stats.messages, stats.blobs]).toEqual([2, 1]);
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
  });

  it('SIGKILLed under load from 3 client processes and restarted: every acknowledged append is there', async () => {
    const store = await freshStore();
    const daemon = await serve(store);
    const socket = join(store, 'run', 'mailstore.sock');
    const writers = [0, 1, 2].map((w) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', `
        import { Client } from ${JSON.stringify(clientModule)};
        const c = await Client.connect(process.argv[1], { reconnectWaitMs: 0 });
        for (let i = 0; ; i++) {
          const n = ${w} * 100000 + i;
          const bytes = Buffer.from('From: a@example.org\\r\\nMessage-ID: <' + n + '@example.org>\\r\\nSubject: ' + n + '\\r\\n\\r\\n' + 'body '.repeat(20 + (n % 50)) + n + '\\r\\n');
          try { const r = await c.append('user/alice/INBOX', bytes); process.stdout.write(r.uid + ' ' + n + '\\n'); }
          catch (e) { process.stderr.write(e.code + ' ' + e.mayHaveCommitted + '\\n'); process.exit(0); }
        }`, socket], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '', err = '';
      child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
      child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
      // 'close', not 'exit': a child's exit can be heard before the last of its output (at load 17,
      // a writer's UNAVAILABLE line was not read yet, and the test failed on '')
      let gone = false;
      child.on('close', () => { gone = true; });
      return { child, out: () => out, err: () => err, gone: () => gone, exited: new Promise((resolve) => child.on('close', resolve)) };
    });
    // Killed once every writer has had appends acknowledged: node starts slowly on a busy machine,
    // and 20 s (before) ran out at load 20 with a writer still starting; now as long as the test's
    // timeout allows. A writer that ended first fails below with what it said.
    for (let waited = 0; writers.some((w) => w.out().split('\n').length < 20 && !w.gone()) && waited < 100_000; waited += 50) await sleep(50);
    daemon.child.kill('SIGKILL');
    await daemon.exited;
    await Promise.all(writers.map((w) => w.exited));
    for (const w of writers) expect(w.err()).toMatch(/^UNAVAILABLE (true|false)\n$/);
    expect(existsSync(socket)).toBe(true); // left behind by the killed daemon: the next one replaces it
    const restarted = await serve(store);
    try {
      const acked = writers.flatMap((w) => w.out().trim().split('\n').filter(Boolean).map((line) => line.split(' ').map(Number)));
      expect(acked.length).toBeGreaterThan(10);
      const { Client } = await import(clientModule) as typeof import('../../src/client/client.js');
      const client = await Client.connect(socket);
      for (const [uid, n] of acked) expect((await client.fetch(INBOX, uid)).equals(message(n))).toBe(true);
      await client.close();
      expect(restarted.stderr()).toMatch(/"event":"stale-socket-replaced"/);
    } finally {
      restarted.child.kill('SIGTERM');
      expect(await restarted.exited).toBe(0);
    }
  });
});
