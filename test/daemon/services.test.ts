// startServices (src/daemon/services.ts): LMTP, metrics and the events webhook on one store, as
// `mailstore serve` runs them: a delivery over LMTP is counted in /metrics and posted to the webhook.
import { createServer, type Server } from 'node:http';
import { describe, expect, it } from 'vitest';
import { eventLimits } from '../../src/limits.js';
import { msg, startPair, until } from '../replication/helpers.js';
import { serviceHooks, startServices } from '../../src/daemon/services.js';
import type { MailEvent } from '../../src/events/events.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { converse } from './lmtp-client.js';

/** A webhook receiver on loopback: the events of every POST it took, in order. */
async function eventReceiver(): Promise<{ posted: MailEvent[]; receiver: Server }> {
  const posted: MailEvent[] = [];
  const receiver = createServer((request, response) => {
    let body = '';
    request.on('data', (c: Buffer) => { body += c.toString(); });
    request.on('end', () => {
      posted.push(...(JSON.parse(body) as { events: MailEvent[] }).events);
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  return { posted, receiver };
}

describe('services', () => {
  it('delivers over LMTP, counts it in /metrics, posts it to the webhook, and closes', async () => {
    const { posted, receiver } = await eventReceiver();
    const hooks = serviceHooks();
    const store = await Store.open(tmpDir('services'), { create: true, onCommit: hooks.onCommit });
    const log: { event: string }[] = [];
    try {
      await store.createMailbox('user/alice/INBOX');
      const url = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
      const services = await startServices(store, hooks, { lmtp: ['127.0.0.1:0'], metrics: '127.0.0.1:0', webhook: { url }, log: (e) => log.push(e) });
      const c = await converse({ port: Number(services.lmtp[0].split(':')[1]) });
      c.send('LHLO x\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n');
      await c.replies(4);
      c.send('Subject: hi\r\n\r\nbody\r\n.\r\n');
      expect(await c.replies(1)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1']);
      // waited at most 5 s, then asserted: under load the webhook's two posts can take longer
      await until(() => posted.length >= 2, 30_000, 'the events posted');
      expect(posted.map((e) => e.event)).toEqual(['MailboxCreate', 'MessageNew']);
      const text = await (await fetch(`http://${services.metrics}/metrics`)).text();
      expect(text).toMatch(/^mailstore_appends_total 1$/m);
      expect(text).toMatch(/^mailstore_batch_fsync_seconds_count [1-9]/m);
      expect(text).toMatch(/^mailstore_consumer_lag_records\{consumer="events-webhook"\} [0-9]+$/m);
      await services.close();
      expect(log.some((e) => e.event === 'lmtp.delivered')).toBe(true);
      await expect(fetch(`http://${services.metrics}/metrics`)).rejects.toThrow();
    } finally {
      await store.close();
      await new Promise((resolve) => receiver.close(resolve));
    }
  });

  it('on a replica the webhook waits (logged once, no error counted) and posts nothing; promoted, it posts from the cursor its primary stored', async () => {
    const { posted, receiver } = await eventReceiver();
    const restartMs = eventLimits.webhookRestartMs;
    eventLimits.webhookRestartMs = 30;
    const pair = await startPair();
    const log: { event: string }[] = [];
    try {
      await pair.primaryStore.append('INBOX', msg(1));
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica caught up');
      const hooks = serviceHooks();
      const url = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
      const services = await startServices(pair.replica.store, hooks, { metrics: '127.0.0.1:0', webhook: { url }, log: (e) => log.push(e) });
      // The waiting line is a state: it took 300 ms for it before asserting it (a loaded machine
      // may not have logged it yet). Then several restarts (one a webhookRestartMs, 30 ms): fewer
      // under load only weaken the once-only check, never fail it.
      await until(() => log.some((e) => e.event === 'webhook.waiting'), 30_000, 'the webhook said it waits');
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(posted).toEqual([]);
      expect(log.filter((e) => e.event === 'webhook.waiting')).toHaveLength(1);
      expect(log.filter((e) => e.event === 'webhook.stopped')).toEqual([]);
      expect(await (await fetch(`http://${services.metrics}/metrics`)).text()).not.toMatch(/READ_ONLY_REPLICA/);
      await pair.replica.promote();
      await until(() => posted.length >= 2, 15_000, 'the events posted');
      expect(posted.map((e) => e.event)).toEqual(['MailboxCreate', 'MessageNew']);
      await services.close();
    } finally {
      eventLimits.webhookRestartMs = restartMs;
      await pair.close();
      await new Promise((resolve) => receiver.close(resolve));
    }
  });
});
