// What `mailstore serve` runs beside its socket, started and stopped as one: LMTP listeners,
// the metrics endpoint and the events webhook, all on the one open store. The commit hook that
// feeds them (batch fsync latency, waking event followers) must be given to Store.open, so it
// comes first: `const hooks = serviceHooks(); Store.open(dir, { onCommit: hooks.onCommit })`.
import { MailstoreError } from '../errors.js';
import { lagRecords } from '../events/events.js';
import { ChangeSignal, pause } from '../events/follow.js';
import { consumerCursor, postEvents, webhookForLog, WEBHOOK_CONSUMER, type WebhookOptions } from '../events/webhook.js';
import { eventLimits } from '../limits.js';
import type { Store } from '../store/store.js';
import type { StoreOptions } from '../store/types.js';
import { startLmtp, type LmtpServer } from './lmtp.js';
import { StoreMetrics, startMetrics, type MetricsServer } from './metrics.js';

export interface ServiceHooks {
  metrics: StoreMetrics;
  changes: ChangeSignal;
  /** Give to Store.open. */
  onCommit: NonNullable<StoreOptions['onCommit']>;
}

export function serviceHooks(): ServiceHooks {
  const metrics = new StoreMetrics();
  const changes = new ChangeSignal();
  return {
    metrics,
    changes,
    onCommit: (first, last, mutations, indexKeys, writeSeconds) => {
      metrics.onCommit(first, last, mutations, indexKeys, writeSeconds);
      changes.notify();
    },
  };
}

export interface ServiceOptions {
  /** LMTP listen addresses ('HOST:PORT' or 'unix:PATH'), each a listener. */
  lmtp?: string[];
  lmtpTemplate?: string;
  /** The store's message size limit (StoreOptions.messageBytesMax), for LMTP's 552. */
  messageBytesMax?: number;
  /** 'HOST:PORT' of GET /metrics. */
  metrics?: string;
  /** POST every change there (at least once; consumer events-webhook), following new commits. */
  webhook?: { url: string } & Pick<WebhookOptions, 'retries' | 'backoffMs'>;
  log?: (entry: { event: string; [field: string]: unknown }) => void;
}

export interface Services {
  lmtp: string[];
  metrics?: string;
  /** Stops the webhook, then LMTP (transactions in flight finish), then metrics. */
  close(): Promise<void>;
}

export async function startServices(store: Store, hooks: ServiceHooks, options: ServiceOptions): Promise<Services> {
  const log = options.log ?? (() => {});
  const counted = hooks.metrics.instrument(store); // appends and errors from LMTP are counted
  const lmtp: LmtpServer[] = [];
  let metrics: MetricsServer | undefined;
  const stopWatching: (() => void)[] = []; // collectors of this run's services, removed with them
  const stopWebhook = new AbortController();
  let webhook: Promise<unknown> | undefined;
  const close = async () => {
    stopWebhook.abort();
    await webhook;
    await Promise.all(lmtp.map((server) => server.close()));
    await metrics?.close();
    for (const stop of stopWatching.splice(0)) stop();
  };
  try {
    for (const listen of options.lmtp ?? []) {
      lmtp.push(await startLmtp(counted, { listen, template: options.lmtpTemplate, messageBytesMax: options.messageBytesMax, log }));
    }
    if (options.metrics) {
      stopWatching.push(hooks.metrics.watchJournalFlush(() => store.journalFlush()), hooks.metrics.watchEventLoop());
      metrics = await startMetrics({ listen: options.metrics, registry: hooks.metrics.registry, log });
    }
    if (options.webhook) {
      stopWatching.push(hooks.metrics.watchConsumer(WEBHOOK_CONSUMER, async () => lagRecords(store, await consumerCursor(store))));
      webhook = runWebhook(store, hooks, options.webhook, stopWebhook.signal, log);
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { lmtp: lmtp.map((s) => s.address), metrics: metrics?.address, close };
}

/**
 * The webhook follower; when it gives up (the receiver is down past its retries) it starts again
 * from its stored cursor after a pause, so a long outage delays events and never drops them.
 */
async function runWebhook(store: Store, hooks: ServiceHooks, options: NonNullable<ServiceOptions['webhook']>, signal: AbortSignal, log: NonNullable<ServiceOptions['log']>): Promise<void> {
  let waiting = false;
  while (!signal.aborted) {
    try {
      await postEvents(store, options.url, { ...options, follow: true, signal, changes: hooks.changes, log });
    } catch (error) {
      // a replica (the same --webhook on every node): its primary posts; it waits to be promoted,
      // said once, no failure counted (an alert on errors paged every minute)
      if (error instanceof MailstoreError && error.code === 'READ_ONLY_REPLICA') {
        if (!waiting) log({ event: 'webhook.waiting', url: webhookForLog(options.url), reason: error.message });
        waiting = true;
        await pause(eventLimits.webhookRestartMs, signal);
        continue;
      }
      hooks.metrics.failed(error);
      log({ event: 'webhook.stopped', url: webhookForLog(options.url), error: String(error) });
      if (error instanceof MailstoreError && error.code === 'CLOSED') return;
      await pause(eventLimits.webhookRestartMs, signal);
    }
  }
}
