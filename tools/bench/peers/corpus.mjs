#!/usr/bin/env node
// Normalise a benchmark corpus for the peer scripts.
//
//   node corpus.mjs CORPUS OUTDIR
//
// CORPUS is either an mbox file or a Maildir directory (cur/ and new/, or a flat
// directory of one-message files). Writes into OUTDIR:
//   msgs/NNNNNNN.eml  one file per message (only when CORPUS is an mbox; for a
//                     Maildir the original files are used in place)
//   list.txt          absolute path of every message file, one per line, in order
//   corpus.mbox       the messages as one mbox (a symlink when CORPUS is an mbox)
//   stats.env         MESSAGES=N BYTES=sum of message sizes MBOX_BYTES=size of corpus.mbox
// Idempotent: if OUTDIR/stats.env exists and names the same CORPUS, nothing is redone.
//
// mbox split rule: a message starts at a line beginning "From " that is the first
// line of the file, follows an empty line, or carries an asctime date (a message
// without a final newline is followed directly by the next From_ line); the empty
// separator line before the next "From " is not part of the message. ">From " lines are NOT unescaped (mboxo,
// as Dovecot reads it). Maildir -> mbox escapes /^>*From / with one ">" (mboxrd).
import fs from 'node:fs';
import path from 'node:path';

const [corpusArg, outArg] = process.argv.slice(2);
if (!corpusArg || !outArg) {
  console.error('usage: node corpus.mjs CORPUS(mbox file | Maildir dir) OUTDIR');
  process.exit(2);
}
const corpus = path.resolve(corpusArg);
const out = path.resolve(outArg);
const st = fs.statSync(corpus);
const stamp = `CORPUS=${JSON.stringify(corpus)}`;
const statsFile = path.join(out, 'stats.env');
// (and its list still names files that exist: a corpus reached through a since-removed path, a
// symlink or a moved checkout, leaves a list of dead paths)
const firstListed = () => (fs.readFileSync(path.join(out, 'list.txt'), 'utf8').split('\n')[0] ?? '');
if (fs.existsSync(statsFile) && fs.readFileSync(statsFile, 'utf8').includes(stamp) && fs.existsSync(firstListed())) process.exit(0);
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

const list = [];
let bytes = 0;

if (st.isFile()) {
  const msgDir = path.join(out, 'msgs');
  fs.mkdirSync(msgDir);
  const fd = fs.openSync(corpus, 'r');
  const buf = Buffer.alloc(1 << 20);
  let carry = Buffer.alloc(0);
  let cur = null; // { fd, pendingBlank }
  let prevBlank = true;
  // a From_ line with an asctime date ("... Thu Jan  1 00:00:00 1970"): a separator even
  // without the blank line before it (writers omit it after a message with no final newline)
  const FROM_LINE = /^From \S+ +\w{3} \w{3} [ \d]\d \d\d:\d\d(:\d\d)? (\S+ )?\d{4}\s*$/;
  const startMsg = () => {
    const p = path.join(msgDir, String(list.length + 1).padStart(7, '0') + '.eml');
    list.push(p);
    cur = { fd: fs.openSync(p, 'w'), pendingBlank: false };
  };
  const endMsg = () => { if (cur) { fs.closeSync(cur.fd); cur = null; } };
  const line = (l) => { // l includes its trailing \n (except possibly at EOF)
    const isBlank = l.length === 1 && l[0] === 10 || (l.length === 2 && l[0] === 13 && l[1] === 10);
    if (l.length >= 5 && l.toString('latin1', 0, 5) === 'From ' && (prevBlank || FROM_LINE.test(l.toString('latin1')))) {
      endMsg(); startMsg(); prevBlank = false; return;
    }
    prevBlank = isBlank;
    if (!cur) return; // junk before the first From_ line
    if (cur.pendingBlank) { fs.writeSync(cur.fd, cur.pendingBlank); bytes += cur.pendingBlank.length; cur.pendingBlank = false; }
    if (isBlank) { cur.pendingBlank = Buffer.from(l); return; } // may be the separator
    fs.writeSync(cur.fd, l); bytes += l.length;
  };
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    let data = carry.length ? Buffer.concat([carry, buf.subarray(0, n)]) : Buffer.from(buf.subarray(0, n));
    let s = 0;
    for (let i = data.indexOf(10); i !== -1; i = data.indexOf(10, s)) { line(data.subarray(s, i + 1)); s = i + 1; }
    carry = Buffer.from(data.subarray(s));
  }
  if (carry.length) line(carry);
  endMsg();
  fs.closeSync(fd);
  fs.symlinkSync(corpus, path.join(out, 'corpus.mbox'));
} else if (st.isDirectory()) {
  const subs = ['cur', 'new'].map((d) => path.join(corpus, d)).filter((d) => fs.existsSync(d));
  const dirs = subs.length ? subs : [corpus];
  for (const d of dirs) {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const s = fs.statSync(p);
      if (!s.isFile()) continue;
      list.push(p); bytes += s.size;
    }
  }
  const mfd = fs.openSync(path.join(out, 'corpus.mbox'), 'w');
  for (const p of list) {
    let text = fs.readFileSync(p, 'latin1');
    text = text.replace(/^(>*From )/gm, '>$1');
    if (!text.endsWith('\n')) text += '\n';
    fs.writeSync(mfd, 'From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n' + text + '\n', null, 'latin1');
  }
  fs.closeSync(mfd);
} else {
  console.error(`corpus ${corpus}: neither a file nor a directory`);
  process.exit(2);
}
if (list.length === 0) { console.error(`corpus ${corpus}: no messages found`); process.exit(2); }
fs.writeFileSync(path.join(out, 'list.txt'), list.join('\n') + '\n');
const mboxBytes = fs.statSync(path.join(out, 'corpus.mbox')).size;
fs.writeFileSync(statsFile, `${stamp}\nMESSAGES=${list.length}\nBYTES=${bytes}\nMBOX_BYTES=${mboxBytes}\n`);
