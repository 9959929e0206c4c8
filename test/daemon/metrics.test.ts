// The daemon's Prometheus metrics (src/daemon/metrics.ts), scraped over loopback from a store
// that appended, failed and committed.
import { promises as fsp } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry, StoreMetrics, startMetrics, type MetricsServer } from '../../src/daemon/metrics.js';
import { START } from '../../src/events/cursor.js';
import { lagRecords } from '../../src/events/events.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { serviceHooks, startServices } from '../../src/daemon/services.js';
import { bindfsUnavailable, hangableDir, releaseAll } from '../helpers/bindfs.js';

const servers: MetricsServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

/** name{labels} -> value, from the text format. */
function parse(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    values.set(line.slice(0, at), line.slice(at + 1) === '+Inf' ? Infinity : Number(line.slice(at + 1)));
  }
  return values;
}

describe('metrics', () => {
  // a figure read from a store whose disk hung (a consumer's lag: a LevelDB read) never came, and
  // the scrape waited with it: Prometheus saw the daemon down instead of the stall
  it.skipIf(bindfsUnavailable())('a scrape answers while a figure waits on a hung mount: the figure read before, and the late count', async () => {
    const { dir, mount } = await hangableDir();
    const registry = new Registry();
    const entries = registry.gauge('t_entries', 'entries of a directory');
    registry.onCollect(async () => entries.set((await fsp.readdir(dir)).length));
    await fsp.writeFile(`${dir}/a`, '');
    expect(parse(await registry.render()).get('mailstore_metrics_collect_late_total')).toBe(0);
    try {
      mount.hang();
      const values = parse(await registry.render());
      expect(values.get('t_entries')).toBe(1);
      expect(values.get('mailstore_metrics_collect_late_total')).toBe(1);
    } finally {
      mount.resume();
      releaseAll();
    }
  });

  it('renders counters, labelled gauges and a cumulative histogram in the text format', async () => {
    const registry = new Registry();
    registry.counter('t_total', 'a counter').inc(3);
    registry.gauge('t_gauge', 'a gauge').set(2.5, { who: 'a "quoted"\\name' });
    const h = registry.histogram('t_seconds', 'a histogram', [0.1, 1]);
    for (const v of [0.05, 0.5, 5]) h.observe(v);
    const text = await registry.render();
    expect(text).toContain('# TYPE t_total counter\nt_total 3\n');
    expect(text).toContain('t_gauge{who="a \\"quoted\\"\\\\name"} 2.5');
    expect(text).toContain('t_seconds_bucket{le="0.1"} 1\nt_seconds_bucket{le="1"} 2\nt_seconds_bucket{le="+Inf"} 3\nt_seconds_sum 5.55\nt_seconds_count 3');
  });

  it('counts appends, bytes, batch fsyncs, errors by code, the last scrub and consumer lag; served at GET /metrics', async () => {
    const metrics = new StoreMetrics();
    const raw = await Store.open(tmpDir('metrics'), { create: true, onCommit: metrics.onCommit });
    const store = metrics.instrument(raw);
    try {
      await store.createMailbox('INBOX');
      await store.append('INBOX', Buffer.from('Subject: a\r\n\r\n1\r\n'));
      await store.appendBatch('INBOX', [{ bytes: Buffer.from('Subject: b\r\n\r\n22\r\n') }, { bytes: Buffer.from('Subject: c\r\n\r\n333\r\n') }]);
      await expect(store.append('Nowhere', Buffer.from('x'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(store.append('', Buffer.from('x'))).rejects.toMatchObject({ code: 'INVALID' });
      metrics.scrubbed('findings', new Date(1_700_000_000_000));
      metrics.watchConsumer('events-webhook', () => lagRecords(raw, START));
      const server = await startMetrics({ listen: '127.0.0.1:0', registry: metrics.registry });
      servers.push(server);
      const response = await fetch(`http://${server.address}/metrics`);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const values = parse(await response.text());
      expect(values.get('mailstore_appends_total')).toBe(3);
      expect(values.get('mailstore_append_bytes_total')).toBe(17 + 18 + 19);
      expect(values.get('mailstore_batch_fsync_seconds_count')).toBe(3); // create, append, appendBatch
      expect(values.get('mailstore_batch_fsync_seconds_sum')).toBeGreaterThan(0);
      expect(values.get('mailstore_errors_total{code="NOT_FOUND"}')).toBe(1);
      expect(values.get('mailstore_errors_total{code="INVALID"}')).toBe(1);
      expect(values.get('mailstore_last_scrub_timestamp_seconds')).toBe(1_700_000_000);
      expect(values.get('mailstore_last_scrub_result')).toBe(1);
      expect(values.get('mailstore_consumer_lag_records{consumer="events-webhook"}')).toBe(3);
      await store.append('INBOX', Buffer.from('Subject: d\r\n\r\n4\r\n'));
      expect(parse(await (await fetch(`http://${server.address}/metrics`)).text()).get('mailstore_consumer_lag_records{consumer="events-webhook"}')).toBe(4);
      // a lone writer's journal flush: which way, and the medians (each way measured after 7 commits of it)
      metrics.watchJournalFlush(() => raw.journalFlush());
      for (let i = 0; i < 14; i++) await store.append('INBOX', Buffer.from(`Subject: e${i}\r\n\r\n${i}\r\n`));
      const flush = parse(await (await fetch(`http://${server.address}/metrics`)).text());
      const thread = flush.get('mailstore_journal_flush_median_seconds{way="thread"}')!, pool = flush.get('mailstore_journal_flush_median_seconds{way="pool"}')!;
      expect(thread).toBeGreaterThan(0);
      expect(pool).toBeGreaterThan(0);
      expect(flush.get('mailstore_journal_flush_in_thread')).toBe(thread <= pool ? 1 : 0);
      expect((await fetch(`http://${server.address}/other`)).status).toBe(404);
      expect((await fetch(`http://${server.address}/metrics`, { method: 'POST' })).status).toBe(404);
      await expect(startMetrics({ listen: server.address, registry: metrics.registry })).rejects.toMatchObject({ code: 'EXISTS' });
      await expect(startMetrics({ listen: 'unix:/tmp/x', registry: metrics.registry })).rejects.toMatchObject({ code: 'INVALID' });
    } finally {
      await raw.close();
    }
  });

  it("shows the event loop's longest stall since the last scrape (one client's big call holds every other one)", async () => {
    const metrics = new StoreMetrics();
    const stop = metrics.watchEventLoop();
    const server = await startMetrics({ listen: '127.0.0.1:0', registry: metrics.registry });
    servers.push(server);
    try {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = Date.now();
      while (Date.now() - started < 300) { /* a call that holds the loop */ }
      await new Promise((resolve) => setTimeout(resolve, 30));
      const values = parse(await (await fetch(`http://${server.address}/metrics`)).text());
      expect(values.get('mailstore_event_loop_delay_max_seconds')).toBeGreaterThanOrEqual(0.25);
      expect(values.get('mailstore_event_loop_delay_p99_seconds')).toBeLessThanOrEqual(values.get('mailstore_event_loop_delay_max_seconds')!);
    } finally {
      stop();
    }
  });

  it('services stopped and started again (the same hooks, another store) leave no collector of the first behind: the scrape answers, each gauge read once', async () => {
    const hooks = serviceHooks();
    const first = await Store.open(tmpDir('metrics-restart'), { create: true });
    const options = { metrics: '127.0.0.1:0', webhook: { url: 'http://127.0.0.1:9/' } };
    await (await startServices(first, hooks, options)).close();
    await first.close();
    const second = await Store.open(tmpDir('metrics-restart'), { create: true });
    const services = await startServices(second, hooks, options);
    try {
      const response = await fetch(`http://${services.metrics}/metrics`);
      expect(response.status).toBe(200); // the first store's consumer lag was read from a closed store: CLOSED, every scrape 500
      expect(parse(await response.text()).get('mailstore_consumer_lag_records{consumer="events-webhook"}')).toBe(0);
      expect((hooks.metrics.registry as unknown as { collectors: unknown[] }).collectors).toHaveLength(3);
    } finally {
      await services.close();
      await second.close();
    }
    expect((hooks.metrics.registry as unknown as { collectors: unknown[] }).collectors).toHaveLength(0);
  });
});
