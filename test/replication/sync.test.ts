// Synchronous replicas: an acknowledged change is durable on N replicas; with too few replicas the
// policy is explicit (refuse before writing, or async and say so); a replica that stops answering
// while a change waits makes it fail UNAVAILABLE saying it may have committed, never a silent success.
import { describe, expect, it } from 'vitest';
import net from 'node:net';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { lastSeqOf, readPendingRounds } from '../../src/replication/pending-rounds.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf, keyFile, msg, quiet, until } from './helpers.js';

describe('synchronous replicas', () => {
  it('refuse: nothing is written without the replica; with it, every acknowledged append is already on the replica', async () => {
    const key = keyFile();
    const primaryStore = await Store.open(tmpDir('primary'), { create: true });
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, syncReplicas: 1, syncFallback: 'refuse', log: quiet });
    const before = primaryStore.changes.lastSeq;
    expect(await primaryStore.append('INBOX', msg(1)).catch((e: unknown) => e)).toMatchObject({ code: 'UNAVAILABLE', mayHaveCommitted: false });
    expect(primaryStore.changes.lastSeq).toBe(before); // refused before anything was written
    expect((await primaryStore.status('INBOX')).messages).toBe(0);
    const replica = await startReplica(join(tmpDir('replica'), 'r'), { primary: `127.0.0.1:${(await primary.status()).port}`, keyFile: key, log: quiet });
    try {
      await until(async () => (await primary.status()).replicas.some((r) => r.connected));
      await Promise.all(Array.from({ length: 40 }, async (_, i) => {
        const { uid } = await primaryStore.append('INBOX', msg(i));
        // acknowledged: the replica has it durable at this very moment, committed (its journal) or as
        // a tentative round (its pending file; committed once the primary's commit notice arrives)
        const pending = await readPendingRounds(replica.store);
        const held = Math.max(replica.store.changes.lastSeq, ...pending.rounds.map(lastSeqOf));
        expect(held).toBeGreaterThanOrEqual((await primaryStore.messageInfo('INBOX', uid)).modseq);
      }));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq);
      expect((await replica.store.status('INBOX')).messages).toBe(40);
    } finally {
      await replica.close();
    }
    await until(async () => !(await primary.status()).replicas.some((r) => r.connected));
    expect(await codeOf(primaryStore.append('INBOX', msg(100)))).toBe('UNAVAILABLE');
    await primary.close();
    await primaryStore.close();
  }, 40_000);

  it('a replica that stops answering while a change waits: UNAVAILABLE after the wait, saying it may have committed', async () => {
    const key = keyFile();
    const primaryStore = await Store.open(tmpDir('primary'), { create: true });
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, syncReplicas: 1, syncFallback: 'refuse', syncWaitMs: 500, log: quiet });
    // a proxy whose forwarding can be frozen
    let frozen = false;
    const held: Buffer[] = [];
    const server = net.createServer((client) => {
      const up = net.connect((primary as unknown as { port?: number }).port ?? port, '127.0.0.1');
      up.on('data', (d) => (frozen ? held.push(d) : client.write(d)));
      client.on('data', (d) => up.write(d));
      const end = () => { client.destroy(); up.destroy(); };
      client.on('error', end); up.on('error', end); client.on('close', end); up.on('close', end);
    });
    const port = (await primary.status()).port;
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const replica = await startReplica(join(tmpDir('replica'), 'r'), { primary: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, keyFile: key, log: quiet });
    try {
      await until(async () => (await primary.status()).replicas.some((r) => r.connected));
      await primaryStore.append('INBOX', msg(1));
      frozen = true;
      const seqBefore = primaryStore.changes.lastSeq;
      const started = Date.now();
      const error = await primaryStore.append('INBOX', msg(2)).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(MailstoreError);
      expect((error as MailstoreError).code).toBe('UNAVAILABLE');
      expect((error as MailstoreError).message).toMatch(/may have committed/);
      // what a program reads (an outside test found it absent, session 48: taken for "not made" and retried)
      expect((error as MailstoreError).mayHaveCommitted).toBe(true);
      expect(Date.now() - started).toBeGreaterThanOrEqual(450);
      expect(primaryStore.changes.lastSeq).toBe(seqBefore + 1); // it is durable here: the message says so
    } finally {
      await replica.close();
      server.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 30_000);

  it('async: without the replica the change goes on, and the log and a counter say it is unprotected', async () => {
    const key = keyFile();
    const primaryStore = await Store.open(tmpDir('primary'), { create: true });
    await primaryStore.createMailbox('INBOX');
    const lines: string[] = [];
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, syncReplicas: 1, syncFallback: 'async', log: (l) => lines.push(l) });
    try {
      await primaryStore.append('INBOX', msg(1));
      expect(lines.some((l) => /UNPROTECTED/.test(l))).toBe(true);
      expect((await primary.status()).unprotectedCommits).toBeGreaterThan(0);
    } finally {
      await primary.close();
      await primaryStore.close();
    }
  }, 20_000);
});
