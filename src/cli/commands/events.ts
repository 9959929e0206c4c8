// `mailstore events`: the store's changes as RFC 5423 events, one per line, each with the cursor
// to resume after it (src/events/). Without a daemon, --follow opens the store for each look and
// closes it again, so other commands can still write between looks.
import type { Command } from 'commander';
import { formatCursor, parseCursor, type EventCursor } from '../../events/cursor.js';
import { FollowLooks } from '../../events/follow-looks.js';
import { randomUUID } from 'node:crypto';
import { procedures } from '../../daemon/procedures.js';
import { Store } from '../../store/store.js';
import { readEvents, type MailEvent } from '../../events/events.js';
import { ChangeSignal } from '../../events/follow.js';
import { eventLimits } from '../../limits.js';
import { StoppedWaiting, catchInterrupt } from '../interrupt.js';
import { warn, withReadStore, writeStdout } from '../context.js';
import { jsonText, printable } from '../../printable.js';
import { isMailstoreError } from '../../errors.js';
import { lacksProcedure } from '../../client/client.js';
import type { MailStore } from '../../store/api.js';
import { monotonicMs } from '../../monotonic.js';

/** Output is handed to stdout in chunks of about this many bytes. */
const OUTPUT_CHUNK_BYTES = 64 * 1024;

export function register(program: Command): void {
  program
    .command('events')
    .description('list the changes (MessageNew, MessageExpunge, FlagsSet, FlagsClear, MailboxCreate, MailboxRename, MailboxDelete, AclChange) in commit order, one per line; changes nothing')
    .option('--since <cursor>', 'only the changes after this cursor (as an earlier event printed it; 0: from the oldest change the journal still holds; one whose changes were retired is NOT_FOUND)', '0')
    .option('--follow', 'keep listing new changes as they are committed, until Ctrl-C or SIGTERM (then exit 0)')
    .option('--json', 'one JSON object per line')
    .addHelpText('after', `
Each event carries a cursor (SEQ.SLOT: its journal record and place in it). Give the last one you
handled to --since to resume after it: nothing is skipped, nothing repeated. A consumer that must
not miss a change stores its cursor only after it has handled the event (at least once).`)
    .action(async (options: { since: string; follow?: boolean; json?: boolean }, command: Command) => {
      let since = parseCursor(options.since);
      const out = new Output(Boolean(options.json));
      if (!options.follow) {
        try {
          await withReadStore(command, async (store) => {
            // from the daemon when one serves the store, else read here
            const events = store instanceof Store ? readEvents(store, since) : procedures(store).events(formatCursor(since));
            for await (const event of events) await out.add(event);
          });
        } finally {
          await out.flush(); // the events before a failure (a damaged record) are listed, then the error
        }
        return;
      }
      await follow(command, since, out);
    });
}

/**
 * Looks for new events every followPollMs until Ctrl-C, the store open only while it looks. A look
 * the daemon's restart cut short (UNAVAILABLE; LOCKED while the new one opens the store) is tried
 * again from the last event printed, waiting followRetryMinMs, doubling up to followRetryMaxMs, as
 * a replica reconnects; only a daemon away for longer than followReconnectMs ends the follow.
 */
async function follow(command: Command, since: EventCursor, out: Output): Promise<EventCursor> {
  const interrupt = catchInterrupt('following events');
  const pause = new ChangeSignal();
  const stop = new AbortController();
  const poll = setInterval(() => { if (interrupt.requested) stop.abort(); }, 100);
  let retryMs: number = eventLimits.followRetryMinMs;
  let awaySince: number | undefined;
  // names and flags remembered across looks, here or in the daemon (the follower's id): each look
  // that read them afresh gave a message's next flag change as FlagsSet allFlags, never FlagsClear
  let looks: FollowLooks | undefined;
  const follower = randomUUID();
  let olderDaemon = false;
  try {
    while (!stop.signal.aborted) {
      const looked = await withReadStore(command, async (store) => {
        if (!(store instanceof Store)) { // through the daemon: it reads, this process remembers where it got to
          for await (const event of daemonLook(store, follower, since, olderDaemon, () => { olderDaemon = true; })) { await out.add(event); since = parseCursor(event.cursor); }
          return;
        }
        if (!looks || formatCursor(looks.position) !== formatCursor(since)) looks = new FollowLooks(since); // after a look through a daemon: from its cursor, afresh
        for await (const event of looks.look(store)) await out.add(event);
        since = looks.position;
      }).then(() => true, (error: unknown) => {
        if (error instanceof StoppedWaiting) return true; // Ctrl-C while the store was held: the follow ends, as it does
        if (!isMailstoreError(error, 'UNAVAILABLE') && !isMailstoreError(error, 'LOCKED')) throw error;
        awaySince ??= monotonicMs();
        if (monotonicMs() - awaySince + retryMs > eventLimits.followReconnectMs) throw error;
        warn(`events: ${error.message}; trying again in ${retryMs} ms, from cursor ${formatCursor(since)}`);
        return false;
      });
      await out.flush();
      if (looked) {
        awaySince = undefined;
        retryMs = eventLimits.followRetryMinMs;
        await pause.wait(eventLimits.followPollMs, stop.signal);
      } else {
        await pause.wait(retryMs, stop.signal);
        retryMs = Math.min(retryMs * 2, eventLimits.followRetryMaxMs);
      }
    }
    return since;
  } finally {
    clearInterval(poll);
    interrupt.dispose();
    await out.flush();
  }
}

/**
 * One look through the daemon: its followEvents keeps this follower's names and flags between
 * looks; a daemon before session 50 has only events, which reads each look afresh.
 */
async function* daemonLook(store: MailStore, follower: string, since: EventCursor, older: boolean, isOlder: () => void): AsyncGenerator<MailEvent> {
  if (!older) {
    try {
      yield* procedures(store).followEvents(follower, formatCursor(since));
      return;
    } catch (error) {
      if (!lacksProcedure(error, 'followEvents')) throw error;
      isOlder();
    }
  }
  yield* procedures(store).events(formatCursor(since));
}

/** Lines for people or JSON lines for scripts, written in chunks (a pipe gets whole lines). */
class Output {
  private pending: string[] = [];
  private bytes = 0;

  constructor(private readonly json: boolean) {}

  async add(event: MailEvent): Promise<void> {
    const line = this.json ? jsonText(event) : printable(describe(event));
    this.pending.push(line);
    this.bytes += line.length + 1;
    if (this.bytes >= OUTPUT_CHUNK_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const text = this.pending.join('\n') + '\n';
    this.pending = [];
    this.bytes = 0;
    await writeStdout(Buffer.from(text));
  }
}

function describe(e: MailEvent): string {
  const head = `${e.cursor.padEnd(9)} ${e.event.padEnd(14)} ${e.mailbox}`;
  switch (e.event) {
    case 'MessageNew': return `${head} uid ${e.uid} (${e.size} bytes${e.envelopeFrom ? `, from ${e.envelopeFrom}` : ''})`;
    case 'MessageExpunge': return `${head} uids ${e.uids!.join(',')}`;
    case 'FlagsSet': case 'FlagsClear': return `${head} uid ${e.uid} ${e.flags!.join(' ') || '(none)'}${e.allFlags ? ' (all flags now)' : ''}`;
    case 'MailboxRename': return e.oldMailbox === undefined ? head : `${head} (was ${e.oldMailbox})`; // not known to a reader that started after it
    case 'AclChange': return e.identifier === undefined ? `${head} owner ${e.owner ?? '(none)'}` : `${head} ${e.identifier} ${e.rights || '(removed)'}`;
    default: return head;
  }
}
