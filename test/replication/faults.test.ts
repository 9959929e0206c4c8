// Faults on the way: a replica in a child process killed with SIGKILL in the middle of applying,
// and a proxy between primary and replica that cuts, stalls and corrupts the byte stream. After
// each, the replica is a prefix of the primary's history, and after catch-up it equals it.
import { describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { tmpDir } from '../helpers/tmp.js';
import { keyFile, logicalState, msg, quiet, pairBehindProxy, samePacks, until } from './helpers.js';

const dist = resolve(import.meta.dirname, '../../dist/src/replication/replica.js');

/** A replica in its own process (built code), printing its seq as it goes. */
function childReplica(root: string, primary: string, key: string): { child: ChildProcess; seq: () => number } {
  const script = `import { startReplica } from ${JSON.stringify(dist)};
    const r = await startReplica(${JSON.stringify(root)}, { primary: ${JSON.stringify(primary)}, keyFile: ${JSON.stringify(key)}, log: () => {} });
    setInterval(() => process.stdout.write(r.status().seq + '\\n'), 5);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let seq = 0;
  child.stdout!.on('data', (b: Buffer) => { const lines = b.toString().trim().split('\n'); seq = Number(lines[lines.length - 1]) || seq; });
  return { child, seq: () => seq };
}

/** Every message on the replica is on the primary with the same metadata and bytes (appends only). */
async function isPrefix(replica: Store, primary: Store, mailbox: string): Promise<number> {
  let n = 0;
  for await (const m of replica.messages(mailbox)) {
    expect(await primary.messageInfo(mailbox, m.uid)).toEqual(m);
    expect((await replica.fetch(mailbox, m.uid)).equals(await primary.fetch(mailbox, m.uid))).toBe(true);
    n++;
  }
  return n;
}

describe('replication under faults', () => {
  it('a replica killed with SIGKILL mid-apply recovers as a prefix and catches up', async () => {
    expect(existsSync(dist), 'build first: npx tsc -p .').toBe(true);
    const key = keyFile();
    const p = tmpDir('primary');
    const primaryStore = await Store.open(p, { create: true, packBytesMax: 256 * 1024 });
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    const r = join(tmpDir('replica'), 'r');
    try {
      for (let round = 0; round < 3; round++) {
        const { child, seq } = childReplica(r, address, key);
        const writing = (async () => {
          for (let i = 0; i < 150; i++) await Promise.all([1, 2, 3].map((k) => primaryStore.append('INBOX', msg(round * 1000 + i * 3 + k, 2000))));
        })();
        await until(() => seq() > primaryStore.changes.lastSeq / 2 && seq() > 0, 20_000, 'the child replica to apply');
        child.kill('SIGKILL');
        await new Promise((done) => child.once('exit', done));
        await writing;
        const replica = await Store.open(r); // recovery of the killed replica (a direct open: read-only to clients)
        try {
          expect(replica.changes.lastSeq).toBeLessThanOrEqual(primaryStore.changes.lastSeq);
          expect(await isPrefix(replica, primaryStore, 'INBOX')).toBeGreaterThan(0);
        } finally {
          await replica.close();
        }
      }
      const replica = await startReplica(r, { primary: address, keyFile: key, log: quiet });
      try {
        await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'catch-up');
        expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
      } finally {
        await replica.close();
      }
      samePacks(p, r);
    } finally {
      await primary.close();
      await primaryStore.close();
    }
  }, 60_000);

  it('a proxy that cuts, stalls and corrupts the stream: the replica reconnects and ends identical', async () => {
    const pair = await pairBehindProxy();
    const { primaryStore, proxy, replica } = pair;
    try {
      for (let i = 1; i <= 300; i++) {
        await primaryStore.append('INBOX', msg(i, 3000));
        if (i % 60 === 0) proxy.cut();
        if (i % 90 === 0) proxy.stall(300);
        if (i === 150) proxy.flipNextByte();
      }
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 30_000, 'catch-up through the proxy');
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
      expect(proxy.connections()).toBeGreaterThan(3);
    } finally {
      await pair.end();
    }
    samePacks(primaryStore.root, pair.replicaDir);
  }, 60_000);
});
