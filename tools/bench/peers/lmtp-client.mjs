#!/usr/bin/env node
// Minimal LMTP client for the peer benchmarks: delivers messages ONE AT A TIME,
// waiting for the server's final per-recipient reply to each DATA before sending
// the next message (so every counted message was acknowledged by the server).
//
//   node lmtp-client.mjs --socket PATH|--host H --port P --rcpt ADDR --list LIST.TXT
//                        [--from ADDR] [--limit N] [--peer NAME] [--reconnect-every N]
//                        [--note TEXT] [--progress FILE]
//                        [--connections C] [--count N] [--received]
//
// LIST.TXT holds one message file path per line. Bare LF is converted to CRLF
// and lines starting with "." are dot-stuffed (that conversion is done before the
// clock starts for each message, so only the protocol exchange is timed).
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
// Prints one JSON line: {"peer","measurement":"deliver","messages","bytes","seconds",
//   "p50_ms","p99_ms","max_ms","failed","note"} — or {"peer",...,"error"}.
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
let files = fs.readFileSync(args.list, 'utf8').split('\n').filter(Boolean);
if (args.limit) files = files.slice(0, Number(args.limit));
const from = args.from ?? 'bench-sender@example.org';
const reconnectEvery = Number(args['reconnect-every'] ?? 0);
const connections = Number(args.connections ?? 1);
const count = Number(args.count ?? files.length);
if (!(connections >= 1) || !(count >= 0) || files.length === 0) fail('--connections must be >= 1, --count >= 0 and the list not empty');

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

const lat = [];
let bytes = 0, failed = 0, firstError = null, next = 0;
const t0 = process.hrtime.bigint();
// One connection's deliveries: the next message of the list, its reply, then the next.
async function deliverOn(n) {
  const rcpt = args.rcpt.replaceAll('{n}', String(n));
  let conn = await open();
  for (let sent = 0, i = next++; i < count; i = next++, sent++) {
    if (reconnectEvery && sent > 0 && sent % reconnectEvery === 0) { await close(conn); conn = await open(); }
    const raw = fs.readFileSync(files[i % files.length]);
    const message = args.received === undefined ? raw : Buffer.concat([Buffer.from(`Received: from bench by bench.localhost with LMTP id d${i}; ${new Date().toUTCString()}\r\n`), raw]);
    const body = encode(message);
    const s = process.hrtime.bigint();
    conn.sock.write(`MAIL FROM:<${from}>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n`);
    const r1 = await reply(conn), r2 = await reply(conn), r3 = await reply(conn);
    if (!r1.startsWith('2') || !r2.startsWith('2') || !r3.startsWith('354')) {
      failed++; firstError ??= `message ${i + 1}: ${[r1, r2, r3].join(' | ')}`;
      if (r3.startsWith('354')) { conn.sock.write('.\r\n'); await reply(conn); }
      conn.sock.write('RSET\r\n'); await reply(conn);
      continue;
    }
    conn.sock.write(body);
    const r4 = await reply(conn); // one reply per recipient; we have exactly one
    const e = process.hrtime.bigint();
    if (!r4.startsWith('2')) { failed++; firstError ??= `message ${i + 1}: ${r4}`; continue; }
    lat.push(Number(e - s) / 1e6);
    bytes += message.length;
    if (args.progress) fs.writeFileSync(args.progress, String(lat.length)); // after the ack: crash tests compare this with what survived
  }
  await close(conn);
}
try {
  await Promise.all(Array.from({ length: connections }, (_, n) => deliverOn(n)));
} catch (e) {
  fail(`after ${lat.length} delivered: ${e.message}`);
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
lat.sort((a, b) => a - b);
const q = (p) => lat.length ? +lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(3) : null;
const out = {
  peer, measurement: 'deliver', messages: lat.length, bytes, seconds: +seconds.toFixed(3),
  p50_ms: q(0.5), p99_ms: q(0.99), max_ms: q(1), failed, ...(connections > 1 ? { connections } : {}),
  note: (args.note ? args.note + '; ' : '') + (connections > 1 ? `${connections} LMTP connections at once, each one message at a time` : 'one message at a time over one LMTP connection') +
    ', each waited for its 2xx final reply' + (args.received !== undefined ? '; a Received: header of its own on each delivery' : '') + (firstError ? `; first failure: ${firstError}` : ''),
};
if (failed && !lat.length) fail(firstError);
console.log(JSON.stringify(out));
