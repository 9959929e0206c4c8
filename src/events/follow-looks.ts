// One follower's looks at the change log (`events --follow`): each look lists the events after the
// last one, reading with what the looks before it saw (names, flags), so a look that starts
// later does not forget a message's flags (FlagsSet/FlagsClear, not FlagsSet allFlags) or a
// mailbox's past name. Without a daemon the CLI keeps one; a daemon keeps one a follower
// (followSession), so the same changes give the same events either way.
import { formatCursor, type EventCursor } from './cursor.js';
import { EventContext, readEvents, type EventSource, type MailEvent } from './events.js';

export class FollowLooks {
  private context?: EventContext;
  /** Where the next look reads from: after the last record a whole look read. */
  private next: EventCursor;
  /** The cursor of the last event handed out (or the cursor the follow began at). */
  handedOut: string;

  constructor(since: EventCursor) {
    this.next = since;
    this.handedOut = formatCursor(since);
  }

  /** Where the next look starts (to say where a follow goes on from). */
  get position(): EventCursor {
    return this.next;
  }

  /** The events after the last look's, up to the journal's committed end, read from `store` (a new open each look is fine). */
  async *look(store: EventSource): AsyncGenerator<MailEvent> {
    this.context = this.context?.reading(store) ?? new EventContext(store);
    const since = this.next;
    let readTo = since.slot === Infinity ? since.seq : since.seq - 1;
    for await (const event of readEvents(store, since, { context: this.context, onRecord: (seq) => { readTo = seq; } })) {
      this.handedOut = event.cursor;
      yield event;
    }
    this.next = { seq: Math.max(readTo, since.seq), slot: readTo >= since.seq ? Infinity : since.slot };
  }
}

/** A daemon's followers (`events --follow` through it), by the id each gives; the least recently used go first. */
const sessions = new WeakMap<object, Map<string, FollowLooks>>();

/**
 * The events of a follower's next look, read in the daemon with what its looks before saw: the
 * session `id` goes on when `since` is the last cursor it handed out, else (a new follower, a
 * daemon restarted, a look cut short) starts at `since` with nothing seen, as a reader does.
 */
export async function* followSession(store: EventSource, id: string, since: EventCursor, sessionsMax: number): AsyncGenerator<MailEvent> {
  let mine = sessions.get(store);
  if (!mine) sessions.set(store, mine = new Map());
  let looks = mine.get(id);
  mine.delete(id);
  if (!looks || looks.handedOut !== formatCursor(since)) looks = new FollowLooks(since);
  for await (const event of looks.look(store)) yield event;
  // kept only once a look ended whole: one cut short read records its follower may not have had
  mine.set(id, looks);
  while (mine.size > sessionsMax) mine.delete(mine.keys().next().value!);
}
