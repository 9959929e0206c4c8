// Posting change events to a webhook (an HTTP endpoint of another system: a search indexer, a
// push notifier), at least once across restarts: the consumer's cursor is stored in the store
// (meta key consumer/NAME, a journaled record) only after the receiver answered 2xx for every
// event up to it. A crash between the answer and the cursor's record sends those events again,
// with the same cursors; an event is never skipped. Receivers deduplicate by `cursor`.
import { MailstoreError } from '../errors.js';
import { eventLimits } from '../limits.js';
import type { Store } from '../store/store.js';
import { formatCursor, isAfter, parseCursor, START, type EventCursor } from './cursor.js';
import { followEvents, pause, type ChangeSignal } from './follow.js';
import { readEvents, type MailEvent } from './events.js';
import { checkWritableRole } from '../store/role.js';
import { EventContext } from './events.js';
import { SeenLog, type SeenBefore } from './seen-log.js';

export type WebhookStore = Pick<Store, 'root' | 'maintenance' | 'getMeta' | 'setMeta' | 'changes' | 'replication'>;

export interface WebhookOptions {
  /** The consumer's name: its cursor is the meta key consumer/NAME (default events-webhook). */
  consumer?: string;
  /** Failed attempts of one POST retried this many times, waiting backoffMs, doubling (then IO). */
  retries?: number;
  backoffMs?: number;
  batchEvents?: number;
  /** Keep posting new events as they are committed, until `signal` aborts. */
  follow?: boolean;
  signal?: AbortSignal;
  /** Notified on every commit (StoreOptions.onCommit), so a follower does not wait for its poll. */
  changes?: ChangeSignal;
  log?: (entry: { event: string; [field: string]: unknown }) => void;
}

export interface WebhookResult {
  posted: number;
  batches: number;
  /** The consumer's cursor now (stored under consumer/NAME). */
  cursor: string;
}

export const WEBHOOK_CONSUMER = 'events-webhook';

/** The meta key of a consumer's durable cursor. */
export function consumerKey(consumer: string): string {
  return `consumer/${consumer}`;
}

/**
 * The batch a consumer is posting, stored before its POST: its events are those after cursor
 * `from` up to cursor `to`. Events depend on what their reader saw before them (a message's
 * earlier flags, a mailbox's name), so the same records read again after a restart with nothing
 * seen gave other events and cursors (`28.1` FlagsSet allFlags where the first post said `28.0`
 * FlagsSet): a receiver deduplicating by cursor kept both. `seen` is what the reader knew before
 * those records of what they looked up; read again knowing it, they give the same events, bytes
 * and cursors. A batch whose cursor was not stored is posted again from here, as it was.
 *
 * Session 50 stored the events themselves (`events`): a journal record the size of the batch for
 * every batch (~16 KB for 80 events; +53 % over the journal bytes of the deliveries and flag
 * changes posted). Such a record is still posted as stored; this format stores `events: []`, so
 * that code of session 50 (a replica promoted before it was upgraded) reads it as no batch
 * instead of failing, and reads the records again as it did before.
 */
interface PendingBatch {
  from: string;
  to?: string;
  seen?: SeenBefore;
  events: MailEvent[];
}

function pendingKey(consumer: string): string {
  return `consumer/${consumer}/pending`;
}

/**
 * A URL the webhook can post to: http or https, without a user name or password (fetch refuses
 * those, and the URL is logged). Anything else was retried and restarted without end while the
 * consumer held the journal back; it is INVALID before anything starts.
 */
export function checkWebhookUrl(url: unknown): string {
  let parsed: URL | undefined;
  try {
    parsed = typeof url === 'string' ? new URL(url) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    throw new MailstoreError('INVALID', `the webhook takes an http:// or https:// URL, got ${JSON.stringify(url)}`);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new MailstoreError('INVALID', `the webhook URL for ${parsed.host} has a user name or password in it, which cannot be sent (and would be logged): let the receiver take a secret in its path or allow this host`);
  }
  return url as string;
}

/**
 * The webhook as logs and errors name it: its origin, the path and query left out, since a
 * receiver's secret lives there (a URL cannot carry a password: checkWebhookUrl).
 */
export function webhookForLog(url: string): string {
  const parsed = new URL(url);
  return parsed.pathname === '/' && parsed.search === '' ? parsed.origin : `${parsed.origin}/...`;
}

/**
 * Moves an events consumer's cursor (the webhook's) by hand: how an admin gets a webhook going
 * again that stopped on a cursor it cannot read past (its records retired while it was down, a
 * journal gap: readEvents refuses those rather than skip what is between), or sends events again.
 * The cursor must name a record the journal holds (or 0: from the oldest one it holds) and not one
 * past its newest. The consumer's pin on the journal goes there first (records are held before the
 * cursor that needs them is stored), then the cursor. Only a consumer of events: one with a stored
 * cursor, or the webhook's own name. For a running daemon's webhook, best while it is failing: a
 * batch it is posting meanwhile stores its own cursor after this one.
 */
export async function setConsumerCursor(store: WebhookStore, cursorText: string, consumer = WEBHOOK_CONSUMER): Promise<{ consumer: string; cursor: string; previous: string }> {
  const cursor = parseCursor(cursorText);
  const previous = await store.getMeta<string>(consumerKey(consumer));
  if (previous === undefined && consumer !== WEBHOOK_CONSUMER) {
    throw new MailstoreError('NOT_FOUND', `no events consumer named ${consumer} (only an events consumer's cursor is moved here; 'mailstore consumers' lists every consumer)`);
  }
  const { firstSeq, lastSeq } = store.changes;
  if (cursor.seq > lastSeq) throw new MailstoreError('INVALID', `cursor ${cursorText} is past the store's newest change (seq ${lastSeq})`);
  if (cursor.seq !== 0 && cursor.seq < firstSeq - 1) {
    throw new MailstoreError('NOT_FOUND', `the changes before seq ${firstSeq} were retired; give ${firstSeq - 1} (the oldest change kept) or later, or 0`);
  }
  const pin = cursor.seq === 0 ? Math.max(0, firstSeq - 1) : pinOf(cursor);
  const pinned = await store.changes.cursor(consumer);
  if (pinned) await store.changes.rewind(consumer, pin);
  else await store.changes.register(consumer, pin);
  const text = formatCursor(cursor);
  await store.setMeta(consumerKey(consumer), text);
  return { consumer, cursor: text, previous: previous ?? '0' };
}

/** Where a consumer at `cursor` pins the journal: the last record it has wholly posted. */
function pinOf(cursor: EventCursor): number {
  return cursor.slot === Infinity ? cursor.seq : Math.max(0, cursor.seq - 1);
}

/** The first record a read after `cursor` reads (again, when the cursor is inside it). */
function firstRecordAfter(cursor: EventCursor): number {
  return pinOf(cursor) + 1;
}

/** A consumer's stored cursor ("0" when it never committed one). */
export async function consumerCursor(store: Pick<Store, 'getMeta'>, consumer = WEBHOOK_CONSUMER): Promise<EventCursor> {
  const stored = await store.getMeta<string>(consumerKey(consumer));
  return stored === undefined ? START : parseCursor(stored);
}

/**
 * POSTs every event after the consumer's cursor to `url` as JSON {consumer, events: [...]}, in
 * batches; the cursor moves after each accepted batch. With `follow`, goes on until `signal`.
 */
export async function postEvents(store: WebhookStore, url: string, options: WebhookOptions = {}): Promise<WebhookResult> {
  checkWebhookUrl(url);
  const consumer = options.consumer ?? WEBHOOK_CONSUMER;
  checkCursorWritable(store);
  const release = store.changes.claim(consumer);
  try {
    return await postClaimed(store, url, consumer, options);
  } finally {
    release();
  }
}

async function postClaimed(store: WebhookStore, url: string, consumer: string, options: WebhookOptions): Promise<WebhookResult> {
  const batchEvents = options.batchEvents ?? eventLimits.webhookBatchEvents;
  const cursor = await consumerCursor(store, consumer);
  // Registered as a change-log consumer too (src/store/changes.ts): the journal records it has not
  // posted are never retired under it. Its pin is the last record it has wholly posted.
  await store.changes.register(consumer, Math.min(pinOf(cursor), store.changes.lastSeq));
  let stored = (await store.getMeta<string>(consumerKey(consumer))) ?? '0';
  const result: WebhookResult = { posted: 0, batches: 0, cursor: stored };
  const seen = new SeenLog();
  const context = new EventContext(store).logging(seen);
  // a batch posted (or about to be) when the last run stopped before storing its cursor: again as it was
  const pending = await store.getMeta<PendingBatch>(pendingKey(consumer));
  const current = pending?.from === stored ? pending : undefined;
  let batch: MailEvent[] = current?.events?.length ? current.events : []; // session 50's format
  let batchStored = batch.length > 0;
  // this format: read again knowing what the first read knew, up to the same last event
  let repostTo = current?.to === undefined ? undefined : parseCursor(current.to);
  if (repostTo) context.knowing(current!.seen ?? {});
  // Posts what was gathered and then stores the cursor; nothing when stopped (the cursor stays).
  const flush = async () => {
    if (batch.length === 0) return;
    checkCursorWritable(store); // a primary fenced while following
    if (repostTo) {
      // the records no longer give the stored batch (a journal rewritten by reconstruct): this is another one
      options.log?.({ event: 'webhook.repost-differs', consumer, from: stored, to: formatCursor(repostTo) });
      repostTo = undefined;
    }
    const from = parseCursor(stored);
    if (!batchStored) await storeBatch(store, url, consumer, { from: stored, to: batch[batch.length - 1].cursor, seen: seen.before(firstRecordAfter(from)), events: [] }, batch.length);
    batchStored = true;
    if (!(await postWithRetries(url, { consumer, events: batch }, options))) return;
    stored = batch[batch.length - 1].cursor;
    await store.setMeta(consumerKey(consumer), stored);
    const pinned = (await store.changes.cursor(consumer))?.seq ?? 0;
    await store.changes.advance(consumer, Math.max(pinned, pinOf(parseCursor(stored))));
    seen.dropBefore(firstRecordAfter(parseCursor(stored)));
    result.posted += batch.length;
    result.batches++;
    result.cursor = stored;
    options.log?.({ event: 'webhook.posted', consumer, events: batch.length, cursor: stored });
    batch = [];
    batchStored = false;
  };
  await flush();
  if (options.signal?.aborted) return result;
  const from = parseCursor(stored);
  // a follower posts what it has whenever it has caught up, not only when a batch is full
  const events = options.follow ? followEvents(store, from, { signal: options.signal, changes: options.changes, onCaughtUp: flush, context }) : readEvents(store, from, { context });
  for await (const event of events) {
    batch.push(event);
    if (repostTo) {
      const at = parseCursor(event.cursor);
      if (isAfter(at, repostTo.seq, repostTo.slot)) continue; // not yet the stored batch's last event
      // its last event; past it, the records give another batch now (flush says so)
      if (!isAfter(repostTo, at.seq, at.slot)) {
        repostTo = undefined;
        batchStored = true;
      }
      await flush();
      continue;
    }
    if (batch.length >= batchEvents) await flush();
  }
  await flush();
  return result;
}

/**
 * Stores the batch before its POST. When that fails (a full disk: NO_SPACE) nothing is posted and
 * the cursor stays: the run fails saying so, and the next one posts from the same cursor.
 */
async function storeBatch(store: WebhookStore, url: string, consumer: string, pending: PendingBatch, events: number): Promise<void> {
  try {
    await store.setMeta(pendingKey(consumer), pending);
  } catch (error) {
    if (!(error instanceof MailstoreError)) throw error;
    throw new MailstoreError(error.code, `webhook ${webhookForLog(url)}: the batch of ${events} events after cursor ${pending.from} could not be stored before its POST, so it was not posted and the cursor stays at ${pending.from} (nothing is skipped: the next run posts from there): ${error.message}`, { path: error.path, cause: error });
  }
}

/**
 * A replica (or a fenced primary) cannot store the cursor: its primary posts these events, and
 * posting them here too sent each again at every restart of the webhook (a daemon started with
 * --webhook on both nodes). Refused before anything is posted; once promoted, the webhook goes on
 * from the cursor its primary stored (a journaled record, replicated).
 */
function checkCursorWritable(store: WebhookStore): void {
  checkWritableRole(store.root, store.replication().role());
}

/**
 * The signal of one POST: aborted after `ms` (as AbortSignal.timeout) or when `stop` fires; `done()`
 * takes its timer and its listener on `stop` back. Not AbortSignal.any([timeout, stop]): Node 20
 * keeps a WeakRef to each such signal in the stop signal's dependants for as long as the stop
 * signal lives (nodejs/node#55351), one per POST for the daemon's whole life.
 */
function requestSignal(ms: number, stop: AbortSignal | undefined): { signal: AbortSignal; done: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), ms);
  timer.unref();
  const stopped = () => controller.abort(stop!.reason);
  stop?.addEventListener('abort', stopped, { once: true });
  return { signal: controller.signal, done: () => { clearTimeout(timer); stop?.removeEventListener('abort', stopped); } };
}

/**
 * Reads a short answer body to its end, so that the connection is reused; a longer one is
 * cancelled (its connection closed): read whole, an answer without end grew the daemon's memory by
 * all the receiver sent until webhookTimeoutMs, and held the batch's acceptance that long.
 */
async function discardAnswer(response: Response): Promise<void> {
  const reader = response.body?.getReader();
  if (!reader) return;
  let bytes = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      bytes += value.length;
      if (bytes > eventLimits.webhookAnswerBytesMax) return await reader.cancel();
    }
  } catch {
    // the answer's status is what counts; its body was only read to reuse the connection
  }
}

/** True once the receiver accepted; false when `signal` stopped it first; IO after the retries. */
async function postWithRetries(url: string, body: { consumer: string; events: MailEvent[] }, options: WebhookOptions): Promise<boolean> {
  const retries = options.retries ?? eventLimits.webhookRetries;
  let wait = options.backoffMs ?? eventLimits.webhookBackoffMs;
  let last = '';
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      await pause(wait, options.signal);
      wait = Math.min(wait * 2, eventLimits.webhookBackoffMaxMs);
    }
    if (options.signal?.aborted) return false;
    // the stop signal too: a receiver that black-holed held the daemon's stop for the whole timeout
    const request = requestSignal(eventLimits.webhookTimeoutMs, options.signal);
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-mailstore-cursor': body.events[body.events.length - 1].cursor },
        body: JSON.stringify(body),
        signal: request.signal,
        // fetch would follow a 301/302/303 with a GET without the body, and that GET's 2xx would
        // count as the batch accepted: events lost. A redirect is a failed attempt (fix the URL).
        redirect: 'manual',
      });
      await discardAnswer(response);
      if (response.ok) return true;
      const location = response.headers.get('location');
      last = `HTTP ${response.status}${location ? ` (redirected to ${location}: give the webhook that URL)` : ''}`;
    } catch (error) {
      if (options.signal?.aborted) return false;
      last = String((error as Error).cause ?? error);
    } finally {
      request.done();
    }
    options.log?.({ event: 'webhook.failed', url: webhookForLog(url), attempt: attempt + 1, error: last });
  }
  const named = webhookForLog(url);
  throw new MailstoreError('IO', `webhook ${named} did not accept ${body.events.length} events after ${retries + 1} attempts (last: ${last}); the cursor stays at the last accepted batch`, { path: named });
}
