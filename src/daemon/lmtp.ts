// LMTP delivery (RFC 2033) into an open store, so an MTA (Postfix `lmtp:`, Exim, ...) hands mail
// to the spool the way it hands it to Cyrus or Dovecot. The protocol is smtp-server's (its LMTP
// mode); this module decides per recipient: which mailbox (a template), whether it exists (at RCPT
// time), and the one reply each accepted recipient gets after DATA, 250 only once the append has
// resolved (the journal is fsynced: durable). The same bytes appended to several mailboxes are
// stored once (the blob store deduplicates), so a message to 50 local users is one blob.
//
// ENHANCEDSTATUSCODES is offered (RFC 2033 section 5 requires it); the replies made here carry
// their RFC 3463 code in the text (oneEnhancedCode), where smtp-server's, derived from the reply
// number alone, would say 4.2.2 "mailbox full" for a full disk (RFC 3463: 4.3.1 "mail system full").
import { connect, type Socket } from 'node:net';
import { domainToASCII } from 'node:url';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { bodyBudget } from './body-budget.js';
import { GrowingBody } from './growing-body.js';
import { MailstoreError, isMailstoreError } from '../errors.js';
import { installDataScan } from './data-scan.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { refuseNonSocket, refuseSharedDirectory, SOCKET_RISK, withSocketUmask } from '../fs/socket-file.js';
import { openFilesLimit } from '../fs/open-files-limit.js';
import { formatHostPort, listenError, parseListen } from './address.js';
import { lmtpConnectionsAllowed } from './server.js';
import { limits, lmtpLimits } from '../limits.js';
import type { Store } from '../store/store.js';
import { handOver, parseMailboxName } from '../store/validate.js';
import { monotonicMs } from '../monotonic.js';
import { parentStillThere } from '../store/missing-mailbox.js';

/**
 * What delivery needs of a store: a `Store`, or anything with its API (the daemon's client).
 * listMailboxes tells a user gone for good from an INBOX being made again (missingReply).
 */
export type LmtpStore = Pick<Store, 'status' | 'append' | 'listMailboxes'>;

export interface LmtpOptions {
  /** 'HOST:PORT' (port 0: any free one; IPv6 as '[::1]:2424') or 'unix:PATH'. */
  listen: string;
  /** Recipient to mailbox: {local}, {domain} and {address} are filled in, lower-cased. */
  template?: string;
  /** Largest message accepted (552 5.3.4 above it): give the store's own limit (StoreOptions.messageBytesMax). */
  messageBytesMax?: number;
  /** The name in the greeting and LHLO reply (default: the machine's host name). */
  hostname?: string;
  /** Structured log: one object per event worth logging (deliveries, refusals, failures). */
  log?: (entry: LmtpLogEntry) => void;
}

export interface LmtpLogEntry {
  event: 'lmtp.listening' | 'lmtp.delivered' | 'lmtp.refused' | 'lmtp.failed' | 'lmtp.aborted' | 'lmtp.closed';
  /**
   * 'warn' when the server is the trouble (a full disk, I/O, permissions, an unmounted or stopped
   * store, a bug: mail is being deferred), for monitoring that watches warnings; absent for
   * ordinary traffic (a delivery, an unknown recipient, a message too big, a full mailbox).
   */
  level?: 'warn';
  [field: string]: unknown;
}

/** The log level of a refusal or failure caused by `error` (LmtpLogEntry.level). */
export function troubleLevel(error: unknown): 'warn' | undefined {
  if (isMailstoreError(error) && error.belowReserve) return undefined; // the store's free-space-low warning said it once
  return isMailstoreError(error) && ['NOT_FOUND', 'MOVED', 'INVALID', 'TOO_LARGE', 'OVER_QUOTA'].includes(error.code) ? undefined : 'warn';
}

export interface LmtpServer {
  /** Where it listens: 'HOST:PORT' with the real port, or 'unix:PATH'. */
  readonly address: string;
  /** Stops accepting, lets transactions in flight finish (up to lmtpLimits.closeGraceMs), then closes. */
  close(): Promise<void>;
}

export const DEFAULT_LMTP_TEMPLATE = 'user/{local}/INBOX';

/** What close() uses of smtp-server's connections (public methods, not in its type definitions). */
interface OpenConnection {
  send(code: number, text: string): void;
  close(): void;
}

/**
 * An LMTP reply refusing one recipient (smtp-server sends `responseCode` and the message);
 * `trouble`, the server's own failure behind it, when there is one (logged at its level).
 */
class Reply extends Error {
  constructor(readonly responseCode: number, message: string, readonly trouble?: unknown) {
    super(message);
  }
}

/** The log level of a refusal: a Reply's is its trouble's, when it has one (troubleLevel). */
function refusalLevel(error: unknown): 'warn' | undefined {
  if (!(error instanceof Reply)) return troubleLevel(error);
  return error.trouble === undefined ? undefined : troubleLevel(error.trouble);
}

/**
 * INVALID for a template that names no mailbox per recipient. serve checks it (and the listen
 * addresses) before the store's lock and open: a typo waited --wait on a running daemon's lock,
 * or a whole recovery, and then said LOCKED or stopped.
 */
export function checkLmtpTemplate(template: string): void {
  // taken as text, a misspelt placeholder named a mailbox nobody has: every recipient 550, all mail bounced for good
  const unknown = /\{[^{}]*\}?|\}/.exec(template.replaceAll(/\{(local|domain|address)\}/g, ''));
  if (unknown) {
    throw new MailstoreError('INVALID', `LMTP template ${JSON.stringify(template)} has ${JSON.stringify(unknown[0])}, which is no placeholder: they are {local}, {domain} and {address}`);
  }
  if (!template.includes('{local}') && !template.includes('{address}')) {
    throw new MailstoreError('INVALID', `LMTP template ${JSON.stringify(template)} names no recipient part ({local} or {address}): every message would go to one mailbox`);
  }
  try {
    parseMailboxName(mailboxFor(template, 'postmaster@example.org'));
  } catch (error) {
    throw new MailstoreError('INVALID', `LMTP template ${JSON.stringify(template)} names no mailbox for any recipient: ${(error as Error).message}`, { cause: error });
  }
}

export async function startLmtp(store: LmtpStore, options: LmtpOptions): Promise<LmtpServer> {
  const template = options.template ?? DEFAULT_LMTP_TEMPLATE;
  checkLmtpTemplate(template);
  const bytesMax = options.messageBytesMax ?? limits.messageBytesMax;
  const log = options.log ?? (() => {});
  installDataScan();
  const known = new RecentMailboxes(lmtpLimits.recipientCacheMs, lmtpLimits.recipientCacheEntries);
  /**
   * Each transaction's recipients answered 250 at RCPT, in order, a repeated address as often as
   * it came (RFC 2033 4.2: one final reply per successful RCPT). smtp-server's envelope keeps one
   * entry per address, case-insensitive, so it cannot count the replies: a client that gave one
   * address twice would wait for a reply that never comes, or take the next one for it.
   */
  const transactions = new WeakMap<SMTPServerSession['envelope'], Recipient[]>();
  const recipientsOf = (session: SMTPServerSession): Recipient[] => {
    let recipients = transactions.get(session.envelope);
    if (!recipients) transactions.set(session.envelope, (recipients = []));
    return recipients;
  };
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(work: Promise<T>): Promise<T> => {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work)).catch(() => {});
    return work;
  };
  const sessionsMax = lmtpConnectionsAllowed(openFilesLimit());
  const server = new SMTPServer({
    lmtp: true,
    name: options.hostname,
    banner: 'mailstore LMTP',
    logger: false,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideENHANCEDSTATUSCODES: false, // offered (smtp-server's default hides it); oneEnhancedCode
    hideDSN: true,
    size: bytesMax,
    maxClients: sessionsMax,
    maxRecipients: 0, // onRcptTo counts them, repeats too, and refuses past lmtpLimits.recipientsMax with 4.5.3
    socketTimeout: lmtpLimits.idleMs,
    closeTimeout: lmtpLimits.closeGraceMs,
    // no DNS query per connection (smtp-server's default, for its clientHostname, which nothing here
    // reads): over TCP every MTA connection waited for it before the greeting, up to 1.5 s without DNS
    disableReverseLookup: true,
    allowHalfOpen: true, // answerHalfClosed
    // any sender is accepted: answered at once, where smtp-server's default waits a turn of the event loop
    onMailFrom: (_address, _session, callback) => callback(),
    onRcptTo: (address, session, callback) => {
      const recipients = recipientsOf(session);
      // here, not smtp-server's own limit: that one lets a repeated address through (whose reply is
      // owed all the same) and answers without the enhanced code every other refusal here carries
      if (recipients.length >= lmtpLimits.recipientsMax) return callback(new Reply(452, '4.5.3 too many recipients'));
      track(checkRecipient(store, template, address.address, known)).then((mailbox) => {
        recipients.push({ address: address.address, mailbox });
        callback();
      }, (error: unknown) => {
        const reply = rcptReply(error);
        const level = refusalLevel(error);
        log({ event: 'lmtp.refused', to: address.address, reply: `${reply.responseCode} ${reply.message}`, ...(level ? { level } : {}) });
        callback(reply);
      });
    },
    onData: (stream, session, callback) => {
      const recipients = recipientsOf(session);
      track(receive(stream, bytesMax)).then(
        (received) => track(deliver(store, recipients, session, received, log).finally(() => { if ('held' in received) bodyBudget.give(received.held); })).then(
          // smtp-server takes an array here in LMTP mode: one reply per recipient (its types say string);
          // the deliveries are logged once the replies are on their way, not before them
          ({ replies, delivered }) => {
            callback(null, replies as unknown as string);
            flushReplies();
            for (const entry of delivered) log(entry);
          },
          (error: unknown) => { // a bug of ours: every recipient gets 451
            log({ event: 'lmtp.failed', from: session.envelope.mailFrom || null, code: isMailstoreError(error) ? error.code : 'INTERNAL', error: String(error), level: 'warn' });
            callback(null, recipients.map(() => failureReply(error)) as unknown as string);
            flushReplies();
          },
        ),
        // The client went away before the final dot: nothing is stored and nobody is answered.
        (error: unknown) => log({ event: 'lmtp.aborted', from: session.envelope.mailFrom || null, error: String(error) }),
      );
    },
  });
  oneEnhancedCode(server);
  // a reply written to a client that has gone (it closed after its last command) is no trouble of the server's
  server.on('error', (error: NodeJS.ErrnoException) => log(['EPIPE', 'ECONNRESET'].includes(error.code ?? '')
    ? { event: 'lmtp.aborted', error: String(error) }
    : { event: 'lmtp.failed', error: String(error), level: 'warn' }));
  server.server.on('connection', groupReplies);
  server.server.on('connection', (socket: Socket) => answerHalfClosed(server, socket));
  // smtp-server answers a session past maxClients 421 and half-closes it, and so does its idle
  // timeout, but the descriptor stayed until the client closed too: a client that never did held
  // one per try, until the store had none left. Such a connection is let go refusedCloseMs after
  // its 421, and past refusedHeldMax of them new connections are closed at accept.
  server.server.on('connection', (socket: Socket) => socket.once('finish', () => setTimeout(() => socket.destroy(), lmtpLimits.refusedCloseMs).unref()));
  server.server.maxConnections = sessionsMax + lmtpLimits.refusedHeldMax;
  const address = await listen(server, options.listen);
  log({ event: 'lmtp.listening', address });
  return {
    address,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await settleWithin(inFlight, lmtpLimits.closeGraceMs);
      // An MTA keeps idle connections open for reuse; they are told 421 now rather than after
      // smtp-server's grace period, which would hold up a SIGTERM for nothing.
      for (const connection of (server as unknown as { connections: Set<OpenConnection> }).connections) {
        connection.send(421, '4.3.2 mailstore LMTP shutting down');
        connection.close();
      }
      await closed;
      log({ event: 'lmtp.closed', address });
    },
  };
}

/** An RFC 3463 code at the start of a reply's text: "4.2.1 user bob moved ...". */
const ENHANCED_CODE = /^[245]\.\d{1,3}\.\d{1,3}( |$)/;

/**
 * One RFC 3463 code per reply. smtp-server's send(code, text, context) puts a code before the
 * text: from the context its own replies give ('RCPT_TO_OK': 2.1.5), else from the reply number
 * alone (452: 4.2.2 "mailbox full", 451: 4.3.0), and the refusals handed to its callbacks get no
 * context, so it cannot say 4.2.1, 5.1.6, 4.3.1 or 4.5.3. Those replies carry their code in the
 * text: a text that starts with one goes out with it alone (context false: smtp-server adds none).
 * Wrapped per connection as it is made (connect, smtp-server 3.21); lmtp.test.ts checks every
 * reply of a transcript for exactly one code, so an upgrade that changed this shows there.
 */
function oneEnhancedCode(server: SMTPServer): void {
  const makeConnection = server.connect.bind(server);
  server.connect = (socket, socketOptions) => {
    makeConnection(socket, socketOptions);
    // gone already when it was one past maxClients (told 421 without a code, before any LHLO)
    const made = [...server.connections].find((connection) => connection._socket === socket);
    if (!made) return;
    const send = made.send.bind(made);
    made.send = (code, text, context) => send(code, text, typeof text === 'string' && ENHANCED_CODE.test(text) ? false : context);
  };
}

/**
 * A client that half-closes once it has sent everything (a script's shutdown(SHUT_WR), `nc -N`) is
 * still owed the replies to it, as Postfix's smtpd gives them: at node's default (no allowHalfOpen)
 * its FIN ended our side too, and the replies after DATA were dropped while the mail was stored, so
 * the client, told nothing, sent it again. smtp-server writes a reply only while the socket's
 * readyState is 'open', which a half-closed one ('writeOnly') is not: it reads 'open' while it can
 * be written. The connection is closed once every command that came has been answered (its parser
 * has finished, as after QUIT), so a client that closed altogether is let go as before.
 */
function answerHalfClosed(server: SMTPServer, socket: Socket): void {
  socket.once('end', () => {
    Object.defineProperty(socket, 'readyState', { configurable: true, get: () => (socket.writable ? 'open' : 'closed') });
    const connection = [...server.connections].find((c) => c._socket === socket);
    const parser = connection?._parser;
    if (!connection || !parser || parser.writableFinished) return void (connection ? connection.close() : socket.end());
    parser.once('finish', () => connection.close());
  });
}

/** The uncork of every socket groupReplies corked in this turn of the event loop and has not uncorked yet. */
const corkedNow = new Set<() => void>();

/**
 * RFC 2920 section 3: the replies to a group of pipelined commands (an MTA sends MAIL, RCPT and
 * DATA together) go out as one write instead of one each, so the client wakes once for them. The
 * socket is corked while the commands that arrived together are handled (smtp-server answers
 * them within the same turn of the event loop: the RCPT check resolves at once) and uncorked on
 * the next turn, or sooner by flushReplies.
 */
function groupReplies(socket: Socket): void {
  let corked = false;
  const uncork = (): void => {
    if (!corked) return;
    corked = false;
    corkedNow.delete(uncork);
    socket.uncork();
  };
  socket.prependListener('data', () => {
    if (corked) return;
    corked = true;
    socket.cork();
    corkedNow.add(uncork);
    setImmediate(uncork);
  });
}

/**
 * The final replies after DATA go out now, not at the end of the turn: a delivery flushed in this
 * thread completes within the turn its final dot arrived in, whose cork would otherwise hold its
 * 250 behind everything else the turn does (its log line, smtp-server's session reset, the
 * commit's bookkeeping): ~20 us of every one-connection delivery (BENCHMARKS.md, session 24).
 * Every socket corked in this turn is uncorked: one whose pipelined commands still wait for an
 * answer sends the rest of them in a second write, which only costs grouping.
 */
function flushReplies(): void {
  for (const uncork of corkedNow) uncork();
}

/**
 * Waits until no work is in flight, at most `ms`. The set is looked at again after each wait: a
 * DATA whose final dot came meanwhile starts its delivery then, and its 250 must go out before the
 * 421 (a 421 in its place had the MTA send the mail again, stored already).
 */
async function settleWithin(inFlight: ReadonlySet<Promise<unknown>>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  while (inFlight.size > 0 && (await Promise.race([Promise.allSettled([...inFlight]), expired])) !== false);
  clearTimeout(timer);
}

/**
 * The mailbox a recipient's mail goes to, in NFC as the store names it (so two spellings of one
 * address are one mailbox to deliver to once); a local part that would add a level of hierarchy is refused.
 */
export function mailboxFor(template: string, recipient: string): string {
  const { local, domain } = recipientParts(recipient.toLowerCase());
  const address = domain === undefined ? local : `${local}@${domain}`;
  if (local === '' || local.includes('/') || /[\x00-\x1f\x7f]/.test(address)) {
    throw new Reply(550, `5.1.3 ${JSON.stringify(recipient)} cannot name a mailbox`);
  }
  // U+FFFD is what the decoder writes for 8-bit bytes that are not UTF-8: every such local part
  // would be one mailbox (another user's mail delivered to whoever has that name)
  if (address.includes('\ufffd')) throw new Reply(550, `5.1.3 ${JSON.stringify(recipient)}: the address is not UTF-8`);
  return template.replaceAll('{local}', local).replaceAll('{domain}', domain ?? '').replaceAll('{address}', address).normalize('NFC');
}

/**
 * An address's local part and domain; a quoted local part without its quotes, the same mailbox as
 * the unquoted one (RFC 5321 4.1.2: "alice"@ is alice@; the quotes made a name nobody has).
 */
function recipientParts(address: string): { local: string; domain?: string } {
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  const quoted = /^"(.*)"$/s.exec(local);
  return { local: quoted ? quoted[1].replace(/\\(.)/gs, '$1') : local, ...(at < 0 ? {} : { domain: address.slice(at + 1) }) };
}

/** A recipient answered 250 at RCPT, and the mailbox its mail goes to. */
interface Recipient {
  address: string;
  mailbox: string;
}

/**
 * RCPT: the recipient's mailbox, which must exist now (status throws NOT_FOUND otherwise), or
 * have existed within lmtpLimits.recipientCacheMs (`known`): a delivery's append checks again,
 * and a mailbox deleted in between is refused after DATA with the same 550 5.1.1. An address with
 * a +detail whose whole local part names no mailbox goes to the one without the detail.
 */
async function checkRecipient(store: LmtpStore, template: string, address: string, known: RecentMailboxes): Promise<string> {
  const existing = async (mailbox: string) => {
    if (known.has(mailbox)) return mailbox;
    await store.status(mailbox);
    known.add(mailbox);
    return mailbox;
  };
  const mailbox = mailboxFor(template, address);
  const missing = (name: string) => async (error: unknown): Promise<never> => {
    throw isMailstoreError(error, 'NOT_FOUND') ? await missingReply(store, name) : error;
  };
  try {
    return await existing(mailbox);
  } catch (error) {
    const plain = withoutDetail(address);
    if (plain === undefined || !isMailstoreError(error, 'NOT_FOUND')) return missing(mailbox)(error);
    const without = mailboxFor(template, plain);
    return existing(without).catch(missing(without));
  }
}

/**
 * The reply to a mailbox that does not exist: 550 5.1.1, or 450 4.2.1 while its parent still holds
 * mailboxes (an INBOX renamed away by an archive rotation: src/store/missing-mailbox.ts), so the MTA
 * keeps the mail and tries again instead of bouncing it. When that look fails (EIO, the index
 * reopening: UNAVAILABLE) nobody knows whether the user is gone: 451 4.3.0 as for any local
 * error, never a bounce for good (it was 550 5.1.1 until session 51).
 */
async function missingReply(store: LmtpStore, mailbox: string): Promise<Reply> {
  let parent: string | undefined;
  try {
    parent = await parentStillThere(store, mailbox);
  } catch (error) {
    const code = isMailstoreError(error) ? error.code : 'INTERNAL';
    return new Reply(451, `4.3.0 local error in processing (${code}): ${mailbox} does not exist, and whether its user has other mailboxes could not be read: try again later`, error);
  }
  return parent === undefined
    ? new Reply(550, '5.1.1 no such mailbox')
    : new Reply(450, `4.2.1 ${mailbox} does not exist now, but ${parent} holds mailboxes (renamed away and being made again?): try again later`);
}

/**
 * `user+detail@domain` as `user@domain`, or undefined without a detail. Postfix hands such an
 * address over whole (`recipient_delimiter = +`, Debian's default), and its local(8), Dovecot and
 * Cyrus deliver it to the user: refused, it bounced for good.
 */
function withoutDetail(address: string): string | undefined {
  const { local, domain } = recipientParts(address);
  const plus = local.indexOf('+');
  return plus > 0 ? local.slice(0, plus) + (domain === undefined ? '' : `@${domain}`) : undefined;
}

/** Mailboxes seen to exist lately: a name stays for `ms`; past `entries` names it starts over. */
export class RecentMailboxes {
  private readonly seen = new Map<string, number>();

  constructor(private readonly ms: number, private readonly entries: number) {}

  has(mailbox: string, now = monotonicMs()): boolean {
    const until = this.seen.get(mailbox);
    if (until === undefined) return false;
    if (now < until) return true;
    this.seen.delete(mailbox);
    return false;
  }

  add(mailbox: string, now = monotonicMs()): void {
    if (this.seen.size >= this.entries) this.seen.clear();
    this.seen.set(mailbox, now + this.ms);
  }
}

function rcptReply(error: unknown): Reply {
  if (error instanceof Reply) return error;
  if (isMailstoreError(error, 'NOT_FOUND')) return new Reply(550, '5.1.1 no such mailbox');
  if (isMailstoreError(error, 'INVALID')) return new Reply(550, `5.1.3 ${error.message}`);
  if (isMailstoreError(error, 'MOVED')) return movedReply(error);
  return failureReply(error);
}

/** A failed delivery's reply: permanent for what a retry cannot fix, temporary for the rest. */
function failureReply(error: unknown): Reply {
  if (!isMailstoreError(error)) return new Reply(451, '4.3.0 local error in processing');
  switch (error.code) {
    case 'NOT_FOUND': return new Reply(550, '5.1.1 no such mailbox');
    case 'MOVED': return movedReply(error);
    case 'TOO_LARGE': return new Reply(552, '5.3.4 message too big for system');
    case 'INVALID': return new Reply(554, `5.6.0 ${error.message}`);
    case 'NO_SPACE': return new Reply(452, '4.3.1 insufficient system storage');
    case 'OVER_QUOTA': return new Reply(452, '4.2.2 mailbox full');
    default: return new Reply(451, `4.3.0 local error in processing (${error.code})`);
  }
}

/**
 * A user XFER moved away: temporary while the MTA's routing may still send it here (RFC 3463 X.2.1,
 * mailbox not accepting messages, which may be transient: X.1.6 is "only useful for permanent
 * failures"), so the mail stays queued and goes to the new host once routing names it; past
 * limits.xferMovedTempfailMs, X.1.6 "destination mailbox has moved".
 */
function movedReply(error: MailstoreError): Reply {
  const { user, to, permanent } = error.moved ?? { user: '', to: '', permanent: false };
  return permanent ? new Reply(550, `5.1.6 user ${user} moved to ${to}`) : new Reply(451, `4.2.1 user ${user} moved to ${to} by xfer; route its mail there`);
}

/** What DATA brought: the message and the bytes of it held in the daemon's body budget, or why it was dropped. */
type Received = { bytes: Buffer; held: number } | { refused: Reply; why: string };

/**
 * Reads DATA into memory, at most `bytesMax` of it, and no more than the daemon's body budget
 * (body-budget.ts) has room for: past either the rest is read and dropped (the client sends it all
 * before it listens for a reply) and the message is refused. Rejects when the connection ends
 * before the final dot. The caller gives `held` back once the delivery is done.
 */
function receive(stream: SMTPServerDataStream, bytesMax: number): Promise<Received> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let grown: GrowingBody | undefined; // past lmtpLimits.dataPiecesBytesMax: the chunks copied into it as they come
    let bytes = 0;
    let held = 0;
    let refused: { refused: Reply; why: string } | undefined;
    const drop = (reply: Reply, why: string) => {
      refused ??= { refused: reply, why };
      chunks.length = 0;
      grown = undefined;
      bodyBudget.give(held);
      held = 0;
    };
    stream.on('data', (chunk: Buffer) => {
      if (refused) return;
      bytes += chunk.length;
      if (bytes > bytesMax) return drop(failureReply(new MailstoreError('TOO_LARGE', 'message too large')), 'too-large');
      // refused, not waited for: sessions holding parts of bodies while they wait for each other's room would all wait
      if (!bodyBudget.tryTake(chunk.length)) return drop(new Reply(452, '4.3.1 insufficient system resources: the server holds its most message bytes at once, try again later'), 'memory');
      held += chunk.length;
      if (grown) return grown.append(chunk);
      chunks.push(chunk);
      if (held <= lmtpLimits.dataPiecesBytesMax) return;
      grown = new GrowingBody(bytesMax, lmtpLimits.dataPiecesBytesMax);
      for (const piece of chunks) grown.append(piece);
      chunks.length = 0;
    });
    // a message that came in one read is one chunk: kept as it is (a subarray of that read, which nothing reuses)
    stream.on('end', () => {
      if (stream.sizeExceeded) drop(failureReply(new MailstoreError('TOO_LARGE', 'message too large')), 'too-large');
      resolve(refused ?? { bytes: grown ? grown.bytes() : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, bytes), held });
    });
    stream.on('error', (error) => { drop(new Reply(451, '4.3.0'), 'aborted'); reject(error); });
    stream.on('close', () => {
      if (stream.readableEnded) return;
      drop(new Reply(451, '4.3.0'), 'aborted');
      reject(new Error('connection closed before the final dot'));
    });
  });
}

/** Delivery's outcome: one reply per recipient, and the log entries of those delivered (logged after the replies). */
interface Delivery {
  replies: (string | Reply)[];
  delivered: LmtpLogEntry[];
}

/**
 * One append per distinct mailbox (two addresses of one user get one copy), all at once so they
 * share a group commit; then one reply per recipient in RCPT order.
 */
async function deliver(
  store: LmtpStore, accepted: readonly Recipient[], session: SMTPServerSession, received: Received, log: (entry: LmtpLogEntry) => void,
): Promise<Delivery> {
  const recipients = accepted.map((r) => r.address);
  const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
  if ('refused' in received) {
    const { refused } = received;
    log({ event: 'lmtp.refused', from, to: recipients, reply: `${refused.responseCode} ${refused.message.split(' ')[0]}`, ...(received.why === 'memory' ? { level: 'warn' as const, reason: 'body budget' } : {}) });
    return { replies: recipients.map(() => refused), delivered: [] };
  }
  const { bytes } = received;
  const started = monotonicMs();
  const envelopeFrom = envelopeSender(from);
  const outcomes = new Map<string, Promise<{ uid: number } | Reply>>();
  const mailboxes = accepted.map((r) => r.mailbox);
  handOver(bytes); // the DATA chunks (or one read of the socket), never changed: the first append need not copy it
  for (const mailbox of mailboxes) {
    if (outcomes.has(mailbox)) continue;
    outcomes.set(mailbox, store.append(mailbox, bytes, envelopeFrom ? { envelopeFrom } : {}).catch(async (error: unknown) => {
      const reply = isMailstoreError(error, 'NOT_FOUND') ? await missingReply(store, mailbox) : failureReply(error);
      const trouble = reply.trouble === undefined ? {} : { trouble: String(reply.trouble) };
      log({ event: 'lmtp.failed', from, mailbox, code: isMailstoreError(error) ? error.code : 'INTERNAL', error: String(error), ...trouble, reply: `${reply.responseCode} ${reply.message}`, level: troubleLevel(reply.trouble ?? error) });
      return reply;
    }));
  }
  const results = await Promise.all(mailboxes.map((mailbox) => outcomes.get(mailbox)!));
  const ms = Math.round((monotonicMs() - started) * 10) / 10;
  const delivered: LmtpLogEntry[] = [];
  const replies = results.map((result, i) => {
    if (result instanceof Reply) return result;
    delivered.push({ event: 'lmtp.delivered', from, to: recipients[i], mailbox: mailboxes[i], uid: result.uid, bytes: bytes.length, ms });
    return `2.0.0 delivered to ${mailboxes[i]} uid ${result.uid}`;
  });
  return { replies, delivered };
}

/**
 * The envelope sender as the store keeps it (one printable ASCII token): the null sender <> is
 * MAILER-DAEMON as in mbox From_ lines; an address that cannot be kept (UTF-8) is left unknown.
 * smtp-server gives a domain in Unicode, an xn-- one too: it is kept in its ASCII form. An ASCII
 * domain is kept as it came (domainToASCII lowercases it, and reads bob@1.2.3 as an IPv4 address).
 */
function envelopeSender(from: string): string | undefined {
  if (from === '') return 'MAILER-DAEMON';
  const at = from.lastIndexOf('@');
  const domain = from.slice(at + 1);
  const ascii = at < 0 || /^[\x00-\x7f]*$/.test(domain) ? from : from.slice(0, at + 1) + (domainToASCII(domain) || domain);
  return /^[\x21-\x7e]+$/.test(ascii) && ascii.length <= limits.envelopeFromBytesMax ? ascii : undefined;
}

/** Listens on 'HOST:PORT' or 'unix:PATH'; a unix socket nobody answers on (a crash left it) is replaced. */
async function listen(server: SMTPServer, where: string): Promise<string> {
  const address = parseListen(where, 'LMTP', { unix: true });
  if ('path' in address) {
    await refuseSharedDirectory(address.path, 'the LMTP socket', SOCKET_RISK);
    try {
      await listenOnce(server, [address.path]);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || (await answers(address.path))) throw listenError(error, 'LMTP', where);
      // nobody answers: a crash's socket is replaced, but a file that is no socket (a typo naming a config file) was unlinked too
      await refuseNonSocket(address.path, 'unix:PATH for --lmtp');
      await nodeFileSystem.unlink(address.path);
      await listenOnce(server, [address.path]).catch((again: unknown) => { throw listenError(again, 'LMTP', where); });
    }
    return `unix:${address.path}`;
  }
  await listenOnce(server, [address.port, address.host]).catch((error: unknown) => { throw listenError(error, 'LMTP', where); });
  const bound = server.server.address();
  return formatHostPort(address.host, typeof bound === 'object' && bound ? bound.port : address.port);
}

/** A unix socket is 0660 from the first instant, as the daemon's (the MTA connects as a member of the group). */
function listenOnce(server: SMTPServer, args: [string] | [number, string]): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.server.once('error', onError);
    withSocketUmask(() => server.server.listen(...(args as [number, string]), () => {
      server.server.off('error', onError);
      resolve();
    }));
  });
}

/** Whether a process accepts connections on the unix socket (then it is not ours to replace). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}
