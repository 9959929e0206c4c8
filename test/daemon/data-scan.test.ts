// The DATA parser's indexOf scan (src/daemon/data-scan.ts) against smtp-server's own byte loop:
// the same input, cut into chunks at random places, must give the same commands and the same
// message bytes from both, terminators and escape dots straddling chunk boundaries included.
import { describe, expect, it } from 'vitest';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { installDataScan, originalFeedDataStream } from '../../src/daemon/data-scan.js';

/** What a parser saw: each command line, and each DATA's bytes as the data stream gave them. */
type Seen = (string | Buffer)[];

/** Feeds `input` to a fresh parser in chunks of the given sizes; DATA starts data mode as smtp-connection does. */
async function parse(input: Buffer, cuts: number[], original: boolean): Promise<Seen> {
  const parser = new SMTPStream();
  if (original) parser._feedDataStream = originalFeedDataStream;
  const seen: Seen = [];
  parser.oncommand = (command, callback) => {
    const line = command.toString('latin1');
    seen.push(line);
    if (line !== 'DATA') return callback?.();
    const stream = parser.startDataMode();
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      seen.push(Buffer.concat(chunks));
      parser.continue();
    });
    callback?.();
  };
  let at = 0;
  for (const size of cuts) {
    if (at >= input.length) break;
    parser.write(input.subarray(at, at + size));
    at += size;
  }
  if (at < input.length) parser.write(input.subarray(at));
  parser.end();
  // escape dots continue on later turns of the event loop: wait for the QUIT (a few turns at most),
  // or, where smtp-server stops short of it (an empty last message at the very end), as long for both
  for (let turn = 0; turn < 200 && seen.at(-1) !== 'QUIT'; turn++) await new Promise((resolve) => setImmediate(resolve));
  return seen;
}

/** A seeded generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LINES = ['.', '..', '...', '.x', 'x.', '', 'Subject: s', 'a line of text', '.\r', 'x\n.', ' .'];

/** A pipelined session: transactions whose bodies are made of lines that tempt the parser (dot-stuffed as on the wire). */
function session(next: () => number): Buffer {
  let text = '';
  const transactions = 1 + Math.floor(next() * 3);
  for (let t = 0; t < transactions; t++) {
    text += 'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n';
    const lines = Math.floor(next() * 12);
    for (let l = 0; l < lines; l++) {
      const line = LINES[Math.floor(next() * LINES.length)]!;
      text += `${line.startsWith('.') ? '.' : ''}${line}\r\n`;
    }
    text += '.\r\n';
  }
  return Buffer.from(`${text}QUIT\r\n`, 'latin1');
}

describe('the DATA parser\'s indexOf scan', () => {
  it('is in place over the smtp-server this was written against', () => {
    expect(installDataScan()).toBe(true);
    expect(SMTPStream.prototype._feedDataStream).not.toBe(originalFeedDataStream);
    expect(installDataScan()).toBe(true);
  });

  it('leaves a parser it was not written against alone (an upgraded smtp-server keeps its own)', () => {
    const installed = SMTPStream.prototype._feedDataStream;
    const upgraded = function (this: SMTPStream, chunk: Buffer, done: () => void): void { originalFeedDataStream.call(this, chunk, done); };
    SMTPStream.prototype._feedDataStream = upgraded;
    try {
      expect(installDataScan()).toBe(false);
      expect(SMTPStream.prototype._feedDataStream).toBe(upgraded);
    } finally {
      SMTPStream.prototype._feedDataStream = installed;
    }
  });

  it('gives what smtp-server\'s own loop gives, chunk boundaries anywhere (1,000 seeded sessions)', async () => {
    installDataScan();
    const next = random(20261203);
    for (let n = 0; n < 1000; n++) {
      const input = session(next);
      const cuts = Array.from({ length: 40 }, () => 1 + Math.floor(next() * (next() < 0.5 ? 6 : 64)));
      const ours = await parse(input, cuts, false);
      const theirs = await parse(input, cuts, true);
      expect(ours, `session ${n}: ${JSON.stringify(input.toString('latin1'))} cut ${cuts.join(',')}`).toEqual(theirs);
    }
  });

  it('a message in one chunk: escape dots undone, the final dot ends it, what follows is a command', async () => {
    installDataScan();
    const input = Buffer.from('DATA\r\nfirst\r\n..dot\r\n...\r\nlast\r\n.\r\nQUIT\r\n');
    const seen = await parse(input, [6, input.length - 6], false);
    expect(seen).toEqual(['DATA', Buffer.from('first\r\n.dot\r\n..\r\nlast\r\n'), 'QUIT']);
  });
});
