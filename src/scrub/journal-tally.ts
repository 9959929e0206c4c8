// What scrub's journal pass needs of a record's payload (the live totals it counts, whether the
// record begins a checkpoint or ends a batch), read from its CBOR bytes without decoding it: cbor-x
// made an object of every op and a string of every key and value (ids, hashes, flags, envelope
// senders) that the count never looks at, ~40 % of the journal pass and young garbage on the helper
// threads (issue 16). Anything outside the shape mailstore writes (a tag, an indefinite length, a
// key that is not plain ASCII text, the meta.set of a recount, whose value the count reads, trailing bytes)
// returns undefined, and the caller decodes the record with cbor-x as before: the tally is always
// what cbor-x's object would give (test/scrub/journal-tally.test.ts).
import { RECOUNT_META } from './recount.js';

/** A record's ops as countLive (scrub.ts) counts them. */
export interface OpsTally {
  /** The first op is a state.begin (checkpointBegin). */
  begin: boolean;
  /** payload.end is true. */
  end: boolean;
  mailboxCreates: number;
  /** state.mailbox ops (counted only inside a checkpoint). */
  stateMailboxes: number;
  mailboxDeleteEnds: number;
  messageAdds: number;
  /** Entries of every state.messages op's `messages`. */
  stateMessages: number;
  /** Entries of every message.expunge op's `uids`. */
  expungedUids: number;
}

/** Thrown inside the walk for a shape left to cbor-x. */
const OTHER = Symbol('other');

/** Nesting deeper than this is left to cbor-x (mailstore's ops nest a few levels). */
const DEPTH_MAX = 32;

// The payload and position of the walk under way.
let src: Uint8Array = new Uint8Array(0);
let position = 0;

const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const KEY_OPS = ascii('ops');
const KEY_END = ascii('end');
const KEY_OP = ascii('op');
const KEY_MESSAGES = ascii('messages');
const KEY_UIDS = ascii('uids');
const KEY_KEY = ascii('key');
const RECOUNT_KEY = ascii(RECOUNT_META);

/** Op names the count tells apart; every other op (plain ASCII text) counts nothing. */
const Kind = { Other: 0, MailboxCreate: 1, StateMailbox: 2, DeleteEnd: 3, MessageAdd: 4, StateMessages: 5, Expunge: 6, MetaSet: 7, Begin: 8 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];
const KINDS: [Uint8Array, Kind][] = [
  [ascii('message.add'), Kind.MessageAdd], [ascii('mailbox.create'), Kind.MailboxCreate], [ascii('state.mailbox'), Kind.StateMailbox],
  [ascii('mailbox.deleteEnd'), Kind.DeleteEnd], [ascii('state.messages'), Kind.StateMessages], [ascii('message.expunge'), Kind.Expunge],
  [ascii('meta.set'), Kind.MetaSet], [ascii('state.begin'), Kind.Begin],
];

/** The tally of a journal payload, or undefined to decode it with cbor-x. */
export function tallyOps(payload: Uint8Array): OpsTally | undefined {
  src = payload;
  position = 0;
  try {
    const tally = readPayload();
    return position === payload.length ? tally : undefined;
  } catch (error) {
    if (error === OTHER) return undefined;
    throw error;
  } finally {
    src = new Uint8Array(0);
  }
}

function readPayload(): OpsTally {
  const tally: OpsTally = { begin: false, end: false, mailboxCreates: 0, stateMailboxes: 0, mailboxDeleteEnds: 0, messageAdds: 0, stateMessages: 0, expungedUids: 0 };
  const entries = readHead(5);
  let sawOps = false, sawEnd = false;
  for (let i = 0; i < entries; i++) {
    const key = readKey();
    if (equalsAt(key, KEY_OPS)) {
      if (sawOps) throw OTHER; // cbor-x keeps the last of a repeated key
      sawOps = true;
      readOps(tally);
    } else if (equalsAt(key, KEY_END)) {
      if (sawEnd) throw OTHER;
      sawEnd = true;
      const value = src[position++];
      if (value === 0xf5) tally.end = true;
      else if (value !== 0xf4 && value !== 0xf6 && value !== 0xf7) throw OTHER; // only booleans and nothing are read as such
    } else {
      skip(1);
    }
  }
  if (!sawOps) throw OTHER; // cbor-x's object has no ops: countLive's own failure, as before
  return tally;
}

/**
 * The ops array, one op a call of readOp: with the op's fields read inline here (the loop over
 * ~125 ops a record), TurboFan compiled this function twice, on the stack (OSR) and again whole,
 * each with every reader below inlined into it: the biggest compiles of a scrub (issue 16).
 */
function readOps(tally: OpsTally): void {
  const ops = readHead(4);
  for (let i = 0; i < ops; i++) readOp(tally, i === 0);
}

/** One op: its kind counted into the tally (`first`: the record's first op, a checkpoint's state.begin). */
function readOp(tally: OpsTally, first: boolean): void {
  const fields = readHead(5);
  let kind: Kind | undefined;
  let entries = -1;
  let restates = false, sawKey = false;
  for (let f = 0; f < fields; f++) {
    const key = readKey();
    // the key's length first: most fields are none of these four (a call less each, see skipValue)
    const length = position - key;
    if (length === KEY_OP.length && equalsAt(key, KEY_OP)) {
      if (kind !== undefined) throw OTHER;
      kind = readKind();
    } else if (length === KEY_KEY.length && equalsAt(key, KEY_KEY)) {
      if (sawKey) throw OTHER;
      sawKey = true;
      restates = readRecountKey();
    } else if ((length === KEY_MESSAGES.length && equalsAt(key, KEY_MESSAGES)) || (length === KEY_UIDS.length && equalsAt(key, KEY_UIDS))) {
      // a state.messages op has no uids and an expunge no messages (either is left to cbor-x)
      if (entries !== -1) throw OTHER;
      const start = position;
      entries = readHead(4);
      position = start;
      skip(1);
    } else {
      skipValue();
    }
  }
  if (kind === undefined) throw OTHER; // an op without a name: left to cbor-x and countLive
  if (first && kind === Kind.Begin) tally.begin = true;
  switch (kind) {
    case Kind.MailboxCreate: tally.mailboxCreates++; break;
    case Kind.StateMailbox: tally.stateMailboxes++; break;
    case Kind.DeleteEnd: tally.mailboxDeleteEnds++; break;
    case Kind.MessageAdd: tally.messageAdds++; break;
    case Kind.StateMessages:
      if (entries === -1) throw OTHER;
      tally.stateMessages += entries;
      break;
    case Kind.Expunge:
      if (entries === -1) throw OTHER;
      tally.expungedUids += entries;
      break;
    case Kind.MetaSet:
      if (restates) throw OTHER; // its value restates the totals (recount.ts): cbor-x reads it
      break;
    default: break;
  }
}

/** A text string of ASCII bytes (a map key); returns its start, the position is past it. */
function readKey(): number {
  // readHead(3) with a key's usual short length read here
  const initial = src[position++];
  if (initial === undefined || initial >> 5 !== 3) throw OTHER;
  const length = initial < 0x78 ? initial & 0x1f : readArgument(initial & 0x1f);
  const start = position;
  position += length;
  if (position > src.length) throw OTHER;
  // a byte above 0x7f could be an overlong form of an ASCII letter, which cbor-x's UTF-8 reader takes
  for (let i = start; i < position; i++) if (src[i]! > 0x7f) throw OTHER;
  return start;
}

/**
 * An op's `key`: whether it may be RECOUNT_META (text that is, or is not plain ASCII); any other
 * value is skipped (not a string: never RECOUNT_META).
 */
function readRecountKey(): boolean {
  if (src[position]! >> 5 !== 3) {
    skip(1);
    return false;
  }
  const length = readHead(3);
  const start = position;
  position += length;
  if (position > src.length) throw OTHER;
  for (let i = start; i < position; i++) if (src[i]! > 0x7f) return true; // cbor-x's UTF-8 reading decides
  return equalsAt(start, RECOUNT_KEY);
}

/** The op's name as a Kind. */
function readKind(): Kind {
  const start = readKey();
  for (const [name, kind] of KINDS) if (equalsAt(start, name)) return kind;
  return Kind.Other;
}

/** Whether the text string read from `start` (up to the position) is `name`. */
function equalsAt(start: number, name: Uint8Array): boolean {
  if (position - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (src[start + i] !== name[i]) return false;
  return true;
}

/** The head of an item of major type `major` with a definite length or value: that argument. */
function readHead(major: number): number {
  const initial = src[position++];
  if (initial === undefined || initial >> 5 !== major) throw OTHER;
  return readArgument(initial & 0x1f);
}

function readArgument(info: number): number {
  if (info < 24) return info;
  const bytes = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : 0; // 8-byte lengths and indefinite ones: cbor-x
  if (bytes === 0 || position + bytes > src.length) throw OTHER;
  let value = 0;
  for (let i = 0; i < bytes; i++) value = value * 256 + src[position++]!;
  return value;
}

/**
 * skip(1) of a field's value, with the scalars and strings an op's fields mostly hold (an id, a
 * hash, a uid, a size) stepped over here. Until TurboFan's code for this walk is ready (later in a
 * scrub, whose other passes queue their own compiles), it runs interpreted, where each call costs
 * more than the bytes it steps over (issue 16).
 */
function skipValue(): void {
  const initial = src[position];
  if (initial === undefined || initial >= 0x80 || (initial & 0x1f) >= 27) return skip(1);
  position++;
  const argument = readArgument(initial & 0x1f);
  if (initial < 0x40) return; // an integer: its head is all of it
  position += argument; // a byte or text string
  if (position > src.length) throw OTHER;
}

// skip's stack, one level a nesting: the items still to step over at it, and whether it is a map
// (its items alternate key, value; the count is twice its entries)
const itemsLeft = new Float64Array(DEPTH_MAX + 2);
const levelIsMap = new Uint8Array(DEPTH_MAX + 2);

/**
 * Steps over one well-formed item of the shapes above, at nesting `depth`. A loop over a stack of
 * its own, not a call a nested item: the recursive one was compiled by TurboFan inlined into
 * itself, the biggest compile of a scrub (~90 ms of a helper thread, issue 16), and ran
 * interpreted, call by call, until then (the first ~60 records of a 20k-message journal).
 */
function skip(depth: number): void {
  let top = 0;
  itemsLeft[0] = 1;
  levelIsMap[0] = 0;
  for (;;) {
    if (itemsLeft[top] === 0) {
      if (top === 0) return;
      top--;
      continue;
    }
    itemsLeft[top]--;
    // a map's key as cbor-x's objects take them without question: text, or a number
    if (levelIsMap[top] === 1 && itemsLeft[top] % 2 === 1 && src[position]! >> 5 !== 3 && src[position]! >> 5 !== 0) throw OTHER;
    if (depth + top > DEPTH_MAX) throw OTHER;
    const initial = src[position++];
    if (initial === undefined) throw OTHER;
    const major = initial >> 5;
    const info = initial & 0x1f;
    if (major <= 1) {
      if (info === 27) {
        if (position + 8 > src.length) throw OTHER;
        position += 8;
      } else {
        readArgument(info);
      }
    } else if (major <= 3) {
      const length = readArgument(info);
      position += length;
      if (position > src.length) throw OTHER;
    } else if (major <= 5) {
      const items = readArgument(info);
      top++;
      itemsLeft[top] = major === 5 ? items * 2 : items;
      levelIsMap[top] = major === 5 ? 1 : 0;
    } else if (major === 7) {
      if (info >= 20 && info <= 23) continue; // false, true, null, undefined
      if (info !== 25 && info !== 26 && info !== 27) throw OTHER;
      position += info === 25 ? 2 : info === 26 ? 4 : 8; // a float
      if (position > src.length) throw OTHER;
    } else {
      throw OTHER; // a tag
    }
  }
}
