// Prometheus metrics for the daemon (text exposition format 0.0.4, GET /metrics): what an admin
// graphs and alerts on, namely appends and bytes, batch fsync latency, errors by code, the last
// scrub, and how far each change-log consumer is behind. A tiny registry of our own: counters,
// gauges and one histogram are all it needs, and prom-client would bring its dependencies (and
// its default process metrics) for that.
import { createServer, type Server } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { assert, isMailstoreError } from '../errors.js';
import type { AppendResult, JournalFlushChoice } from '../store/types.js';
import { formatHostPort, listenError, parseListen } from './address.js';
import { daemonLimits } from '../limits.js';
import { answeredWithin } from '../within.js';

type Labels = Record<string, string>;

interface Metric {
  render(): string[];
}

function labelText(labels: Labels): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return pairs.length ? `{${pairs.join(',')}}` : '';
}

function number(value: number): string {
  return value === Infinity ? '+Inf' : value === -Infinity ? '-Inf' : Number.isNaN(value) ? 'NaN' : String(value);
}

/** A counter or gauge: one value per label set. */
class Series implements Metric {
  private readonly values = new Map<string, { labels: Labels; value: number }>();

  constructor(readonly name: string, private readonly help: string, private readonly type: 'counter' | 'gauge') {}

  private entry(labels: Labels) {
    const key = labelText(labels);
    let entry = this.values.get(key);
    if (!entry) this.values.set(key, (entry = { labels, value: 0 }));
    return entry;
  }

  inc(by = 1, labels: Labels = {}): void {
    this.entry(labels).value += by;
  }

  set(value: number, labels: Labels = {}): void {
    this.entry(labels).value = value;
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels))?.value ?? 0;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    for (const { labels, value } of this.values.values()) lines.push(`${this.name}${labelText(labels)} ${number(value)}`);
    return lines;
  }
}

export class Histogram implements Metric {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(readonly name: string, private readonly help: string, private readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) this.counts[i]++;
    this.sum += value;
    this.count++;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((le, i) => lines.push(`${this.name}_bucket{le="${number(le)}"} ${this.counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return lines;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];
  private readonly collectors: (() => void | Promise<void>)[] = [];
  /** Collectors that did not answer within daemonLimits.metricsCollectMs: that scrape gave the figures read before. */
  private readonly collectsLate = this.counter('mailstore_metrics_collect_late_total', `Figures a scrape could not read from the store within ${daemonLimits.metricsCollectMs / 1000} s (a hung disk): it answered with the ones read before.`);

  counter(name: string, help: string): Series {
    return this.add(new Series(name, help, 'counter'));
  }

  gauge(name: string, help: string): Series {
    return this.add(new Series(name, help, 'gauge'));
  }

  histogram(name: string, help: string, buckets: number[]): Histogram {
    return this.add(new Histogram(name, help, buckets));
  }

  /**
   * Runs before every scrape: gauges read at that moment (consumer lag). Returns the function that
   * removes it: a stopped service's collector read a closed store, and every scrape failed.
   */
  onCollect(collect: () => void | Promise<void>): () => void {
    this.collectors.push(collect);
    return () => {
      const at = this.collectors.indexOf(collect);
      if (at >= 0) this.collectors.splice(at, 1);
    };
  }

  async render(): Promise<string> {
    const answered = await Promise.all(this.collectors.map((collect) => answeredWithin(Promise.resolve().then(collect), daemonLimits.metricsCollectMs)));
    this.collectsLate.inc(answered.filter((done) => !done).length);
    return this.metrics.flatMap((m) => m.render()).join('\n') + '\n';
  }

  private add<T extends Metric>(metric: T): T {
    this.metrics.push(metric);
    return metric;
  }
}

/** Batch write + fdatasync latency buckets, seconds: an SSD's fdatasync is ~0.1-2 ms, a disk's ~5-30 ms. */
const FSYNC_BUCKETS_SECONDS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** The daemon's metrics, with the hooks that feed them. */
export class StoreMetrics {
  readonly registry: Registry;
  readonly appends: Series;
  readonly appendBytes: Series;
  readonly batchFsync: Histogram;
  readonly errors: Series;
  readonly lastScrubTime: Series;
  readonly lastScrubResult: Series;
  readonly consumerLag: Series;
  readonly journalFlushMedian: Series;
  readonly journalFlushInThread: Series;
  readonly loopDelayMax: Series;
  readonly loopDelayP99: Series;
  readonly ioStalled: Series;

  constructor(registry = new Registry()) {
    this.registry = registry;
    this.appends = registry.counter('mailstore_appends_total', 'Messages appended: LMTP deliveries and appends through the socket (the CLI, imports and clients).');
    this.appendBytes = registry.counter('mailstore_append_bytes_total', 'Bytes of the messages appended (before deduplication).');
    this.batchFsync = registry.histogram('mailstore_batch_fsync_seconds', 'Group commit: pack and journal writes and fdatasyncs of one batch.', FSYNC_BUCKETS_SECONDS);
    this.errors = registry.counter('mailstore_errors_total', 'Operations that failed, by MailstoreError code (INTERNAL: not a MailstoreError).');
    this.lastScrubTime = registry.gauge('mailstore_last_scrub_timestamp_seconds', 'When the last scrub finished (unix time).');
    this.lastScrubResult = registry.gauge('mailstore_last_scrub_result', 'The last scrub: 0 clean, 1 findings, 2 could not run.');
    this.consumerLag = registry.gauge('mailstore_consumer_lag_records', 'Journal records a change-log consumer has not handled yet.');
    this.journalFlushMedian = registry.gauge('mailstore_journal_flush_median_seconds', "A lone writer's journal-only commit, write to durable: the median of the last few, by way (thread: write and fdatasync in the daemon's thread; pool: the fdatasync through the thread pool).");
    this.journalFlushInThread = registry.gauge('mailstore_journal_flush_in_thread', "1 while a lone writer's journal-only commits flush in the daemon's thread (measured faster), 0 while through the thread pool.");
    this.loopDelayMax = registry.gauge('mailstore_event_loop_delay_max_seconds', "The daemon's longest event-loop stall since the last scrape: every client (LMTP deliveries, IMAP reads) waited that long.");
    this.loopDelayP99 = registry.gauge('mailstore_event_loop_delay_p99_seconds', "The 99th percentile of the daemon's event-loop delay since the last scrape.");
    this.ioStalled = registry.gauge('mailstore_io_stalled_seconds', "The longest-waiting file-system call of the daemon's that has not returned for limits.stallReportMs (10 s) or more, seconds; 0: none (a hung mount or a failing disk: the log's io-stalled line names the call and the path).");
  }

  /**
   * The event loop's stalls, read and reset at every scrape: one client's big call holds every other
   * one (measured by hand in session 36 with a preload script: a 100k-uid copy held the loop for
   * seconds). Returns the function that stops watching.
   */
  watchEventLoop(): () => void {
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const remove = this.registry.onCollect(() => {
      this.loopDelayMax.set(delay.count > 0 ? delay.max / 1e9 : 0);
      this.loopDelayP99.set(delay.count > 0 ? delay.percentile(99) / 1e9 : 0);
      delay.reset();
    });
    return () => { remove(); delay.disable(); };
  }

  /** The store's FlushChoice, read at every scrape: which way a lone writer's journal commits flush, and the medians that chose it. Returns the function that stops watching. */
  watchJournalFlush(describe: () => JournalFlushChoice): () => void {
    return this.registry.onCollect(() => {
      const choice = describe();
      this.journalFlushInThread.set(choice.preferThread ? 1 : 0);
      if (choice.threadMedianMs !== null) this.journalFlushMedian.set(choice.threadMedianMs / 1000, { way: 'thread' });
      if (choice.poolMedianMs !== null) this.journalFlushMedian.set(choice.poolMedianMs / 1000, { way: 'pool' });
    });
  }

  /** The calls the stall watch (fs/stall-watch.ts) reports waiting, read at every scrape. Returns the function that stops watching. */
  watchStalls(ongoing: () => readonly { seconds: number }[]): () => void {
    return this.registry.onCollect(() => this.ioStalled.set(Math.max(0, ...ongoing().map((stall) => stall.seconds))));
  }

  /** For StoreOptions.onCommit. */
  readonly onCommit = (_first: number, _last: number, _mutations: number, _indexKeys: number, writeSeconds: number): void => {
    this.batchFsync.observe(writeSeconds);
  };

  appended(results: AppendResult[]): void {
    this.appends.inc(results.length);
    this.appendBytes.inc(results.reduce((sum, r) => sum + r.size, 0));
  }

  failed(error: unknown): void {
    this.errors.inc(1, { code: isMailstoreError(error) ? error.code : 'INTERNAL' });
  }

  scrubbed(result: 'clean' | 'findings' | 'failed', at = new Date()): void {
    this.lastScrubTime.set(Math.floor(at.getTime() / 1000));
    this.lastScrubResult.set(result === 'clean' ? 0 : result === 'findings' ? 1 : 2);
  }

  /** The lag of `consumer` is read at every scrape. Returns the function that stops watching. */
  watchConsumer(consumer: string, lag: () => number | Promise<number>): () => void {
    return this.registry.onCollect(async () => this.consumerLag.set(await lag(), { consumer }));
  }

  /**
   * Wraps a store (or the daemon's client) so that appends and failures are counted: every
   * method that returns a promise is watched; the store itself is unchanged.
   */
  instrument<T extends object>(store: T): T {
    return new Proxy(store, {
      get: (target, property, receiver) => {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const out = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (!(out instanceof Promise)) return out;
          return out.then((result: unknown) => {
            if (property === 'append') this.appended([result as AppendResult]);
            else if (property === 'appendBatch') this.appended(result as AppendResult[]);
            return result;
          }, (error: unknown) => {
            this.failed(error);
            throw error;
          });
        };
      },
    });
  }
}

export interface MetricsServer {
  /** 'HOST:PORT' with the real port. */
  readonly address: string;
  close(): Promise<void>;
}

/** Serves GET /metrics on `listen` ('HOST:PORT'; 127.0.0.1 unless the scraper is elsewhere). */
export async function startMetrics(options: { listen: string; registry: Registry; log?: (entry: { event: string; [field: string]: unknown }) => void }): Promise<MetricsServer> {
  const address = parseListen(options.listen, 'metrics', { unix: false });
  assert(!('path' in address), 'parseListen gives no unix: path without unix: true');
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
      return;
    }
    options.registry.render().then(
      (text) => response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics could not be collected: ${String(error)}\n`),
    );
  });
  // an idle connection lives up to the headers timeout (60 s): a crowd of them (a scan, a scraper
  // looping) took every descriptor the store had left, and it stopped
  server.maxConnections = daemonLimits.metricsConnectionsMax;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(listenError(error, 'metrics', options.listen)));
    server.listen(address.port, address.host, () => resolve());
  });
  // a failed accept (ENOBUFS, ENOMEM) is emitted as 'error': unheard (the once() above took only the
  // first), it was an uncaught exception that stopped the daemon; the server goes on accepting
  server.on('error', (error: NodeJS.ErrnoException) => options.log?.({ event: 'metrics.accept-failed', error: error.code ?? error.message, level: 'warn' }));
  const bound = server.address();
  return {
    address: formatHostPort(address.host, typeof bound === 'object' && bound ? bound.port : address.port),
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
