#!/usr/bin/env node
// Minimal LMTP client for the peer benchmarks: delivers messages ONE AT A TIME,
// waiting for the server's final per-recipient reply to each DATA before sending
// the next message (so every counted message was acknowledged by the server).
//
//   node lmtp-client.mjs --socket PATH|--host H --port P --rcpt ADDR --list LIST.TXT
//                        [--from ADDR] [--limit N] [--peer NAME] [--reconnect-every N]
//                        [--note TEXT] [--progress FILE]
//                        [--connections C] [--count N] [--received] [--warmup W] [--mark-warm]
//
// LIST.TXT holds one message file path per line. Bare LF is converted to CRLF
// and lines starting with "." are dot-stuffed. Every message a phase sends is read
// and converted before that phase's clock starts (once per distinct file), so its
// seconds and its per-message latencies hold the protocol exchange and the server's
// work only: reading and dot-stuffing a ~28 KB file here took ~70 us of a delivery
// (~10 % of a fast server's), counted as every peer's until 2026-12-04.
// MAIL/RCPT/DATA are pipelined (both Dovecot and Cyrus announce PIPELINING);
// the body is sent only after "354", and the message counts as delivered only
// after a 2xx final reply. --progress FILE rewrites FILE with the number of
// acknowledged messages after each ack (used by the kill -9 recovery runs). One connection is reused (LHLO once) unless
// --reconnect-every is given.
// --connections C: C connections at once, each delivering one message at a time as above and
// taking the next message of the list when its reply came; "{n}" in --rcpt is the connection's
// number (0..C-1), so each may deliver to a user of its own. --count N: N deliveries, going round
// the list again when it is shorter. --received: each delivery starts with a Received: header of
// its own (as an MTA adds one), so no two deliveries carry the same bytes.
// --warmup W (or env LMTP_WARMUP=W, which the peer scripts pass through): W deliveries first, over
// the same connections, of the list's messages AFTER the timed ones (distinct messages, so nothing
// deduplicates); they are timed apart and reported as the cold_* fields, then the timed deliveries
// run as without it. A daemon runs for weeks: the timed figures are its steady state, the cold ones
// a freshly started server's (JIT warm-up, caches). --limit N limits only the timed messages.
// --mark-warm: with --warmup, "lmtp-client: warm-up done" goes to stderr between the two phases (a measuring
// parent reads the server's CPU time there). cpu_us_per_message (and cold_*): this client's own
// CPU time (user + system) over the phase ÷ its deliveries, for floors on a machine it shares.
// Prints one JSON line: {"peer","measurement":"deliver","messages","bytes","seconds",
//   "p50_ms","p99_ms","max_ms","failed","cpu_us_per_message","note"[,"warmup","cold_messages","cold_bytes","cold_seconds",
//   "cold_msg_per_s","cold_p50_ms","cold_p99_ms","cold_cpu_us_per_message"]} — or {"peer",...,"error"}.
import fs from 'node:fs';
import net from 'node:net';
import { encodeData as encode } from './lmtp-encode.mjs';

const args = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (!argv[i].startsWith('--')) continue;
  const value = argv[i + 1];
  if (value === undefined || value.startsWith('--')) { args[argv[i].slice(2)] = true; continue; } // a bare switch (--received)
  args[argv[i].slice(2)] = value;
  i++;
}
const peer = args.peer ?? 'lmtp';
const fail = (error) => {
  console.log(JSON.stringify({ peer, measurement: 'deliver', error: String(error) }));
  process.exit(1);
};
if ((!args.socket && !args.port) || !args.rcpt || !args.list) {
  console.error('usage: node lmtp-client.mjs --socket PATH|--host H --port P --rcpt ADDR --list LIST.TXT [--from A] [--limit N] [--peer NAME] [--reconnect-every N]');
  process.exit(2);
}
const all = fs.readFileSync(args.list, 'utf8').split('\n').filter(Boolean);
const files = args.limit ? all.slice(0, Number(args.limit)) : all;
const from = args.from ?? 'bench-sender@example.org';
const reconnectEvery = Number(args['reconnect-every'] ?? 0);
const connections = Number(args.connections ?? 1);
const count = Number(args.count ?? files.length);
const warmup = Number(args.warmup ?? (process.env.LMTP_WARMUP || 0));
if (!(connections >= 1) || !(count >= 0) || !(warmup >= 0) || files.length === 0) fail('--connections must be >= 1, --count >= 0, --warmup >= 0 and the list not empty');

function connect() {
  return new Promise((resolve, reject) => {
    const sock = args.socket ? net.createConnection(args.socket) : net.createConnection(Number(args.port), args.host ?? '127.0.0.1');
    sock.setNoDelay(true);
    const conn = { sock, buf: '', waiters: [], lines: [], pending: [], closed: null };
    sock.on('data', (d) => {
      conn.buf += d.toString('latin1');
      let i;
      while ((i = conn.buf.indexOf('\n')) !== -1) {
        const line = conn.buf.slice(0, i).replace(/\r$/, '');
        conn.buf = conn.buf.slice(i + 1);
        conn.lines.push(line);
        if (/^\d{3}( |$)/.test(line)) { // last line of a reply
          const reply = conn.lines.join('\n'); conn.lines = [];
          const w = conn.waiters.shift();
          if (w) w.resolve(reply); else conn.pending.push(reply);
        }
      }
    });
    sock.on('error', (e) => { conn.closed = e; for (const w of conn.waiters.splice(0)) w.reject(e); reject(e); });
    sock.on('close', () => { const e = new Error('connection closed by server'); conn.closed ??= e; for (const w of conn.waiters.splice(0)) w.reject(e); });
    sock.on('connect', () => resolve(conn));
  });
}
const reply = (conn) => new Promise((resolve, reject) => {
  if (conn.pending.length) return resolve(conn.pending.shift());
  if (conn.closed) return reject(conn.closed);
  conn.waiters.push({ resolve, reject });
});
const expect = async (conn, code, what) => {
  const r = await reply(conn);
  if (!r.startsWith(String(code)[0]) || (String(code).length === 3 && !r.startsWith(String(code)))) throw new Error(`${what}: unexpected reply: ${r}`);
  return r;
};
async function open() {
  const conn = await connect();
  await expect(conn, 220, 'greeting');
  conn.sock.write('LHLO bench.localhost\r\n');
  await expect(conn, 250, 'LHLO');
  return conn;
}
async function close(conn) {
  try { conn.sock.write('QUIT\r\n'); await reply(conn); } catch { /* ignore */ }
  conn.sock.destroy();
}

// The connections, opened by the first phase that uses them and kept open for the next.
const slots = Array.from({ length: connections }, (_, n) => ({ n, conn: null, sent: 0 }));
let acked = 0;
// One phase: `total` deliveries over all the connections, the i-th of them `fileOf(i)`, timed as a whole and each.
async function phase(total, fileOf, idPrefix, last) {
  const p = { lat: [], bytes: 0, failed: 0, firstError: null, next: 0, seconds: 0 };
  let prepared;
  try {
    prepared = prepare(total, fileOf);
  } catch (e) {
    fail(`before any delivery of this phase: ${e.message}`);
  }
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  // One connection's deliveries: the next message of the list, its reply, then the next.
  async function deliverOn(slot) {
    const rcpt = args.rcpt.replaceAll('{n}', String(slot.n));
    slot.conn ??= await open();
    for (let i = p.next++; i < total; i = p.next++) {
      if (reconnectEvery && slot.sent > 0 && slot.sent % reconnectEvery === 0) { await close(slot.conn); slot.conn = await open(); }
      slot.sent++;
      const { encoded, length } = prepared.get(fileOf(i));
      // a Received: line (CRLF, no dot at a line start) before a message leaves the rest of its
      // encoding as it was, but for an empty message (test/bench/lmtp-encode.test.ts)
      const received = args.received === undefined ? null : Buffer.from(`Received: from bench by bench.localhost with LMTP id ${idPrefix}${i}; ${new Date().toUTCString()}\r\n`);
      const body = !received ? encoded : length === 0 ? encode(received) : Buffer.concat([received, encoded]);
      const messageBytes = length + (received ? received.length : 0);
      const s = process.hrtime.bigint();
      const conn = slot.conn;
      conn.sock.write(`MAIL FROM:<${from}>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n`);
      const r1 = await reply(conn), r2 = await reply(conn), r3 = await reply(conn);
      if (!r1.startsWith('2') || !r2.startsWith('2') || !r3.startsWith('354')) {
        p.failed++; p.firstError ??= `message ${i + 1}: ${[r1, r2, r3].join(' | ')}`;
        if (r3.startsWith('354')) { conn.sock.write('.\r\n'); await reply(conn); }
        conn.sock.write('RSET\r\n'); await reply(conn);
        continue;
      }
      conn.sock.write(body);
      const r4 = await reply(conn); // one reply per recipient; we have exactly one
      const e = process.hrtime.bigint();
      if (!r4.startsWith('2')) { p.failed++; p.firstError ??= `message ${i + 1}: ${r4}`; continue; }
      p.lat.push(Number(e - s) / 1e6);
      p.bytes += messageBytes;
      acked++;
      if (args.progress) fs.writeFileSync(args.progress, String(acked)); // after the ack: crash tests compare this with what survived
    }
    if (last) await close(slot.conn);
  }
  try {
    await Promise.all(slots.map(deliverOn));
  } catch (e) {
    fail(`after ${acked} delivered: ${e.message}`);
  }
  p.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  p.cpuUsPerMessage = p.lat.length ? Math.round((cpu.user + cpu.system) / p.lat.length) : null;
  p.lat.sort((a, b) => a - b);
  return p;
}
/** The phase's distinct messages (the first `total` of fileOf, at most every file once), each read and encoded: path -> {encoded, length}. */
function prepare(total, fileOf) {
  const out = new Map();
  // fileOf goes round the list (or the part of it a phase uses): one round reads every file it names
  for (let i = 0; i < Math.min(total, all.length); i++) {
    const path = fileOf(i);
    if (out.has(path)) continue;
    const raw = fs.readFileSync(path);
    out.set(path, { encoded: encode(raw), length: raw.length });
  }
  return out;
}
const quantile = (lat, q) => (lat.length ? +lat[Math.min(lat.length - 1, Math.floor(q * lat.length))].toFixed(3) : null);

// The warm-up: the list's messages after the timed ones (none of them timed, so nothing is a repeat of
// a timed delivery unless the list is too short), over the connections the timed deliveries then reuse.
const warmFrom = Math.min(count, files.length);
const warm = warmup > 0 ? await phase(warmup, (j) => all[(warmFrom + j) % all.length], 'w', false) : null;
if (warm && warm.failed) fail(`warm-up: ${warm.failed} of ${warmup} failed; first failure: ${warm.firstError}`);
if (warm && args['mark-warm'] !== undefined) process.stderr.write('lmtp-client: warm-up done\n');
const timed = await phase(count, (i) => files[i % files.length], 'd', true);
const { lat, failed, firstError } = timed;
const warmNote = warm
  ? `; ${warmup.toLocaleString('en-US')} untimed warm-up deliveries went first over the same connections (${warmFrom + warmup <= all.length ? `the list's messages ${warmFrom + 1}–${warmFrom + warmup}, after the timed ones` : 'the list is too short: some repeat timed messages'}; their figures are the cold_* fields)`
  : '';
const out = {
  peer, measurement: 'deliver', messages: lat.length, bytes: timed.bytes, seconds: +timed.seconds.toFixed(3),
  p50_ms: quantile(lat, 0.5), p99_ms: quantile(lat, 0.99), max_ms: quantile(lat, 1), failed, cpu_us_per_message: timed.cpuUsPerMessage, ...(connections > 1 ? { connections } : {}),
  ...(warm ? {
    warmup, cold_messages: warm.lat.length, cold_bytes: warm.bytes, cold_seconds: +warm.seconds.toFixed(3),
    cold_msg_per_s: +(warm.lat.length / warm.seconds).toFixed(1), cold_p50_ms: quantile(warm.lat, 0.5), cold_p99_ms: quantile(warm.lat, 0.99), cold_cpu_us_per_message: warm.cpuUsPerMessage,
  } : {}),
  note: (args.note ? args.note + '; ' : '') + (connections > 1 ? `${connections} LMTP connections at once, each one message at a time` : 'one message at a time over one LMTP connection') +
    ', each waited for its 2xx final reply' + (args.received !== undefined ? '; a Received: header of its own on each delivery' : '') + warmNote + (firstError ? `; first failure: ${firstError}` : ''),
};
if (failed && !lat.length) fail(firstError);
console.log(JSON.stringify(out));
