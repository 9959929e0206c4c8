// Generates realistic mail into a Maildir++ tree or an mbox, deterministically from a seed, so
// tests, benchmarks and the bundled fixtures run on the same kind of mail real servers see: mostly
// 2-20 KB, a few big base64 attachments, exact duplicates, `From ` lines in bodies, CRLF
// messages, messages without a final newline, and flags.
//
//   node dist/tools/gen-corpus.js --out DIR --format maildir|mbox --messages N --seed S [--small]
//        [--folders Sent,Lists/kernel] [--attachment-bytes-max B] [--json]
//
// Exit codes: 0 done; 1 the output could not be written; 2 bad arguments.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FileSystem } from '../src/fs/filesystem.js';
import { nodeFileSystem } from '../src/fs/node-fs.js';
import { MailstoreError, isMailstoreError } from '../src/errors.js';
import { MaildirWriter, maildirPlusPlusFromFolder } from '../src/formats/maildir.js';
import { MboxWriter, withStatusHeaders } from '../src/formats/mbox.js';

export interface CorpusOptions {
  out: string;
  format: 'maildir' | 'mbox';
  messages: number;
  seed: string;
  /** 1-4 KB messages only, no attachments: the 1,000,000-message scale mode. */
  small?: boolean;
  /** Maildir++ subfolders besides the INBOX (maildir only). */
  folders?: string[];
  /** Upper bound of the big attachments (default 1 MiB). */
  attachmentBytesMax?: number;
  /** fsync every message (default false: a generated corpus can be generated again). */
  sync?: boolean;
  onProgress?: (done: number) => void;
}

export interface CorpusSummary {
  messages: number;
  bytes: number;
  duplicates: number;
  bigAttachments: number;
  crlf: number;
  noFinalNewline: number;
  fromLinesInBody: number;
  folders: Record<string, number>;
}

export interface GeneratedMessage {
  bytes: Buffer;
  flags: string[];
  internalDate: Date;
  folder: string;
  duplicate: boolean;
  bigAttachment: boolean;
}

// ---------------------------------------------------------------------------------------------
// A small seeded PRNG: sfc32 seeded through a string hash. Deterministic on every platform.

export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: string) {
    let h = 1779033703 ^ seed.length;
    const next = () => {
      h = Math.imul(h ^ (h >>> 16), 2246822507);
      h = Math.imul(h ^ (h >>> 13), 3266489909);
      return (h ^= h >>> 16) >>> 0;
    };
    for (let i = 0; i < seed.length; i += 1) h = Math.imul(h ^ seed.charCodeAt(i), 3432918353) ^ (h >>> 19);
    [this.a, this.b, this.c, this.d] = [next(), next(), next(), next()];
    for (let i = 0; i < 12; i += 1) this.uint32();
  }

  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Log-uniform in [min, max]: many small, few big, like real message sizes. */
  logUniform(min: number, max: number): number {
    return Math.round(Math.exp(Math.log(min) + this.next() * (Math.log(max) - Math.log(min))));
  }

  bytes(length: number): Buffer {
    const out = Buffer.allocUnsafe(length + 3);
    for (let i = 0; i < length; i += 4) out.writeUInt32LE(this.uint32(), i);
    return out.subarray(0, length);
  }
}

// ---------------------------------------------------------------------------------------------
// Text

const WORDS = (
  'the of and to in is that it for on was with as be by at this have from or an are not but we ' +
  'you all were can which there has more if will one about would their what out up so some them ' +
  'other into than then only its time could these two may first any new like our over such after ' +
  'also most made well should between back where much before must through years state because each ' +
  'server mail queue patch kernel memory driver build release test config bug fix review merge ' +
  'branch commit thread lock page cache disk journal index schedule meeting budget report quarter ' +
  'customer invoice travel project deadline update question answer proposal draft version support'
).split(' ');
const FIRST = ['Alice', 'Bob', 'Carol', 'Dave', 'Erin', 'Frank', 'Grace', 'Heidi', 'Ivan', 'Judy', 'Mallory', 'Niaj', 'Olivia', 'Peggy', 'Rupert', 'Sybil', 'Trent', 'Victor', 'Walter', 'Zoë', 'José', 'Łukasz'];
const LAST = ['Smith', 'Jones', 'Müller', 'Garcia', 'Chen', 'Kowalski', 'Nguyen', 'Okafor', 'Rossi', 'Svensson', 'Tanaka', 'Dubois'];
const DOMAINS = ['example.com', 'example.org', 'mail.example.net', 'corp.example', 'lists.example.org', 'uni.example.edu'];
const UTF8_WORDS = ['naïve', 'café', 'Grüße', 'über', 'señor', 'piñata', 'résumé', 'Ångström', '東京', 'привет'];
const FROM_BODY_LINES = [
  'From the minutes of last week, nothing changed.',
  'From what I can tell the lock is taken twice.',
  '>From the archive: see the thread above.',
  '>>From an older quote, twice quoted.',
  'From 1b2c3d4e5f60718293a4b5c6d7e8f9012345678 Mon Sep 17 00:00:00 2001',
  'From MAILER-DAEMON Thu Nov 28 10:45:25 2024',
];
const ATTACHMENT_TYPES = [['application/pdf', 'report.pdf'], ['image/jpeg', 'photo.jpg'], ['application/zip', 'logs.zip'], ['application/octet-stream', 'dump.bin']] as const;

function sentence(random: Random, utf8: boolean): string {
  const words: string[] = [];
  const count = random.int(5, 16);
  for (let i = 0; i < count; i += 1) words.push(utf8 && random.chance(0.08) ? random.pick(UTF8_WORDS) : random.pick(WORDS));
  const text = words.join(' ');
  return text[0]!.toUpperCase() + text.slice(1) + random.pick(['.', '.', '.', '?', '!']);
}

/** Paragraphs wrapped at 72 columns until about `bytes` long. */
function paragraphs(random: Random, bytes: number, utf8: boolean): string {
  const lines: string[] = [];
  let size = 0;
  while (size < bytes) {
    let line = '';
    const sentences = random.int(2, 6);
    for (let i = 0; i < sentences; i += 1) {
      for (const word of sentence(random, utf8).split(' ')) {
        if (line.length + word.length + 1 > 72) {
          lines.push(line);
          size += line.length + 1;
          line = word;
        } else {
          line = line ? `${line} ${word}` : word;
        }
      }
    }
    lines.push(line, '');
    size += line.length + 2;
  }
  return lines.join('\n');
}

function patchBody(random: Random, bytes: number): string {
  const file = `${random.pick(['mm', 'fs', 'net', 'drivers/block', 'kernel/sched'])}/${random.pick(WORDS)}.c`;
  const lines = [paragraphs(random, 300, false), `Signed-off-by: ${random.pick(FIRST)} ${random.pick(LAST)} <dev@example.org>`, '---',
    ` ${file} | ${random.int(2, 40)} ++++----`, '', `diff --git a/${file} b/${file}`, `--- a/${file}`, `+++ b/${file}`];
  let size = lines.join('\n').length;
  while (size < bytes) {
    const line = `${random.pick([' ', '+', '-'])}\t${random.pick(WORDS)}(${random.pick(WORDS)}, ${random.int(0, 4096)});`;
    lines.push(line);
    size += line.length + 1;
  }
  return lines.join('\n') + '\n-- \n2.43.0\n';
}

function base64Lines(bytes: Buffer): string {
  const encoded = bytes.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < encoded.length; i += 76) lines.push(encoded.slice(i, i + 76));
  return lines.join('\n');
}

function encodedWord(text: string): string {
  return /^[\x20-\x7e]*$/.test(text) ? text : `=?UTF-8?B?${Buffer.from(text, 'utf8').toString('base64')}?=`;
}

// ---------------------------------------------------------------------------------------------
// Messages

interface Person { name: string; address: string }

function person(random: Random): Person {
  const first = random.pick(FIRST);
  const last = random.pick(LAST);
  const local = `${first}.${last}`.toLowerCase().normalize('NFKD').replace(/[^a-z.]/g, '');
  return { name: `${first} ${last}`, address: `${local}@${random.pick(DOMAINS)}` };
}

function mailbox(p: Person): string {
  return `${encodedWord(p.name)} <${p.address}>`;
}

function rfc5322Date(date: Date, offsetMinutes: number): string {
  const local = new Date(date.getTime() + offsetMinutes * 60_000);
  const [day, dd, mon, yyyy, time] = local.toUTCString().replace(',', '').split(' ');
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  const zone = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}${String(abs % 60).padStart(2, '0')}`;
  return `${day}, ${Number(dd)} ${mon} ${yyyy} ${time} ${zone}`;
}

function randomFlags(random: Random, folder: string): string[] {
  const flags: string[] = [];
  if (folder === 'Sent' || random.chance(0.7)) flags.push('\\Seen');
  if (random.chance(0.15)) flags.push('\\Answered');
  if (random.chance(0.05)) flags.push('\\Flagged');
  if (random.chance(0.02)) flags.push('\\Deleted');
  if (random.chance(0.01)) flags.push('\\Draft');
  if (random.chance(0.03)) flags.push('$Forwarded');
  if (random.chance(0.02)) flags.push(random.pick(['work', '$Important', 'todo']));
  return flags;
}

interface BodyPlan { contentHeaders: string[]; body: string }

function plainBody(random: Random, size: number, list: boolean): BodyPlan {
  const utf8 = random.chance(0.2);
  let body = list && random.chance(0.6) ? patchBody(random, size) : paragraphs(random, size, utf8);
  if (random.chance(0.08)) {
    const lines = body.split('\n');
    lines.splice(random.int(1, Math.max(1, lines.length - 1)), 0, '', random.pick(FROM_BODY_LINES));
    body = lines.join('\n');
  }
  const charset = utf8 ? 'utf-8' : 'us-ascii';
  return { contentHeaders: [`Content-Type: text/plain; charset=${charset}`, `Content-Transfer-Encoding: ${utf8 ? '8bit' : '7bit'}`], body };
}

function multipartBody(random: Random, size: number, attachmentBytes: number): BodyPlan {
  const boundary = `=_${random.uint32().toString(16)}${random.uint32().toString(16)}`;
  // The HTML alternative repeats the text, so each gets under half; base64 grows an attachment by 4/3.
  const textBytes = attachmentBytes === 0 ? size * 0.42 : size - attachmentBytes * 1.37 - 400;
  const text = paragraphs(random, Math.max(200, textBytes), false);
  const parts = [`Content-Type: text/plain; charset=us-ascii\n\n${text}`];
  if (attachmentBytes === 0) {
    parts.push(`Content-Type: text/html; charset=us-ascii\n\n<html><body>\n<p>${text.replace(/\n\n/g, '</p>\n<p>')}</p>\n</body></html>`);
  } else {
    const [type, name] = random.pick(ATTACHMENT_TYPES);
    parts.push(`Content-Type: ${type}; name="${name}"\nContent-Disposition: attachment; filename="${name}"\n` +
      `Content-Transfer-Encoding: base64\n\n${base64Lines(random.bytes(attachmentBytes))}`);
  }
  const subtype = attachmentBytes === 0 ? 'alternative' : 'mixed';
  const body = `This is a multi-part message in MIME format.\n\n${parts.map((part) => `--${boundary}\n${part}\n`).join('\n')}\n--${boundary}--\n`;
  return { contentHeaders: [`Content-Type: multipart/${subtype}; boundary="${boundary}"`], body };
}

/** The span a corpus's internal dates take at most (5 years from 2024-01-01), and its mean step. */
const CORPUS_SPAN_MS = 5 * 365 * 24 * 3600 * 1000;
const MEAN_STEP_MS = ((30 + 4 * 3600) / 2) * 1000;

/** Generates the corpus's messages, lazily and deterministically. */
export function* generateMessages(options: Omit<CorpusOptions, 'out' | 'format'>): Generator<GeneratedMessage> {
  const random = new Random(options.seed);
  const folders = ['', ...(options.folders ?? [])];
  const owner = person(random);
  const attachmentMax = options.attachmentBytesMax ?? 1024 * 1024;
  const attachmentMin = Math.min(100 * 1024, Math.floor(attachmentMax / 2));
  const earlier: GeneratedMessage[] = [];
  let clock = Date.UTC(2024, 0, 1);
  // Steps average ~2 h, so 1M messages would reach the 23rd century: past CORPUS_SPAN_MS of steps
  // they shrink to fit it (corpora that fit, the bench's 20k among them, are unchanged).
  const stepScale = Math.min(1, CORPUS_SPAN_MS / (options.messages * MEAN_STEP_MS));
  for (let i = 0; i < options.messages; i += 1) {
    clock += Math.round(random.int(30, 4 * 3600) * 1000 * stepScale);
    const folder = folders.length > 1 && random.chance(0.4) ? random.pick(folders.slice(1)) : '';
    if (earlier.length > 0 && random.chance(0.05)) {
      const original = random.pick(earlier);
      // Same flags as the original: in an mbox the flags are headers, and a duplicate must be exact.
      yield { ...original, folder, internalDate: new Date(clock), duplicate: true };
      continue;
    }
    const message = generateOne(random, options, folder, owner, new Date(clock), [attachmentMin, attachmentMax]);
    if (earlier.length < 1000) earlier.push(message);
    else if (random.chance(0.01)) earlier[random.int(0, earlier.length - 1)] = message;
    yield message;
  }
}

function generateOne(
  random: Random, options: Omit<CorpusOptions, 'out' | 'format'>, folder: string, owner: Person, date: Date,
  attachmentRange: [number, number],
): GeneratedMessage {
  const list = folder.startsWith('Lists/');
  const sent = folder === 'Sent';
  const from = sent ? owner : person(random);
  const to = sent || list ? person(random) : owner;
  const size = options.small ? random.int(1024, 4096) : random.logUniform(2048, 20 * 1024);
  const big = !options.small && random.chance(0.03);
  const kind = random.next();
  const sentAt = new Date(date.getTime() - random.int(1, 300) * 1000);
  const subjectWords = Array.from({ length: random.int(2, 8) }, () => random.pick(WORDS)).join(' ');
  let subject = list ? `[PATCH v${random.int(1, 5)} ${random.int(1, 9)}/9] ${random.pick(['mm', 'fs', 'net', 'sched'])}: ${subjectWords}` : subjectWords;
  if (random.chance(0.3)) subject = `Re: ${subject}`;
  if (random.chance(0.05)) subject += ` ${random.pick(UTF8_WORDS)}`;
  const headers = [
    `Return-Path: <${from.address}>`,
    `Received: from mx${random.int(1, 9)}.${random.pick(DOMAINS)} (mx.${random.pick(DOMAINS)} [192.0.2.${random.int(1, 254)}])\n\tby mail.example.com with ESMTPS id ${random.uint32().toString(36)}\n\tfor <${to.address}>; ${rfc5322Date(date, 0)}`,
    `From: ${mailbox(from)}`,
    `To: ${mailbox(to)}`,
    ...(random.chance(0.2) ? [`Cc: ${mailbox(person(random))}, ${mailbox(person(random))}`] : []),
    `Subject: ${encodedWord(subject)}`,
    `Date: ${rfc5322Date(sentAt, random.pick([0, 60, 120, -300, -420, 330, 540]))}`,
    `Message-ID: <${random.uint32().toString(16)}.${random.uint32().toString(16)}@${random.pick(DOMAINS)}>`,
    ...(subject.startsWith('Re: ') ? [`In-Reply-To: <${random.uint32().toString(16)}@${random.pick(DOMAINS)}>`] : []),
    ...(list ? ['List-Id: Linux kernel mailing list <linux-kernel.vger.kernel.org>', 'Precedence: bulk'] : []),
    'MIME-Version: 1.0',
  ];
  // Aim the body at what is left of the size after the headers (and ~100 bytes of content headers).
  const bodyBytes = Math.max(200, size - Buffer.byteLength(headers.join('\n')) - 100);
  const plan = big ? multipartBody(random, bodyBytes, random.int(...attachmentRange))
    : options.small || kind < 0.72 ? plainBody(random, bodyBytes, list)
      : multipartBody(random, bodyBytes, kind < 0.92 ? 0 : random.int(1024, Math.max(1024, bodyBytes / 3)));
  headers.push(...plan.contentHeaders);
  let text = `${headers.join('\n')}\n\n${plan.body}`;
  if (!text.endsWith('\n')) text += '\n';
  if (random.chance(0.05)) text = text.replace(/\n/g, '\r\n');
  if (random.chance(0.03)) text = text.replace(/\r?\n$/, '');
  return { bytes: Buffer.from(text, 'utf8'), flags: randomFlags(random, folder), internalDate: date, folder, duplicate: false, bigAttachment: big };
}

// ---------------------------------------------------------------------------------------------
// Output

/** Writes the corpus to `options.out` (must not exist yet) and returns what it wrote. */
export async function generateCorpus(fs: FileSystem, options: CorpusOptions): Promise<CorpusSummary> {
  if (await fs.statIfExists(options.out)) throw new MailstoreError('EXISTS', `output already exists: ${options.out}`, { path: options.out });
  if (options.format === 'mbox' && options.folders?.length) throw new MailstoreError('INVALID', '--folders needs --format maildir');
  const summary: CorpusSummary = { messages: 0, bytes: 0, duplicates: 0, bigAttachments: 0, crlf: 0, noFinalNewline: 0, fromLinesInBody: 0, folders: {} };
  const sink = await openSink(fs, options);
  for (const message of generateMessages(options)) {
    // mbox keeps flags in Status/X-Status headers, which are part of the message from then on.
    const bytes = options.format === 'mbox' ? withStatusHeaders(message.bytes, message.flags) : message.bytes;
    await sink.append(message.folder, bytes, message);
    count(summary, message, bytes);
    if (summary.messages % 1000 === 0) options.onProgress?.(summary.messages);
  }
  await sink.close();
  return summary;
}

function count(summary: CorpusSummary, message: GeneratedMessage, bytes: Buffer): void {
  summary.messages += 1;
  summary.bytes += bytes.length;
  summary.folders[message.folder || 'INBOX'] = (summary.folders[message.folder || 'INBOX'] ?? 0) + 1;
  if (message.duplicate) summary.duplicates += 1;
  if (message.bigAttachment) summary.bigAttachments += 1;
  if (bytes.includes('\r\n')) summary.crlf += 1;
  if (bytes[bytes.length - 1] !== 0x0a) summary.noFinalNewline += 1;
  const text = bytes.toString('latin1');
  if (/^>*From /m.test(text.slice(Math.max(0, text.search(/\r?\n\r?\n/))))) summary.fromLinesInBody += 1;
}

interface Sink {
  append(folder: string, bytes: Buffer, message: GeneratedMessage): Promise<void>;
  close(): Promise<void>;
}

async function openSink(fs: FileSystem, options: CorpusOptions): Promise<Sink> {
  if (options.format === 'mbox') {
    const writer = await MboxWriter.create(fs, options.out, { style: 'mboxrd' });
    return {
      append: (_folder, bytes, message) => writer.append(bytes, { internalDate: message.internalDate }),
      close: () => writer.close(),
    };
  }
  const writers = new Map<string, MaildirWriter>();
  const sync = options.sync ?? false;
  writers.set('', await MaildirWriter.create(fs, options.out, { sync }));
  for (const folder of options.folders ?? []) {
    writers.set(folder, await MaildirWriter.create(fs, join(options.out, maildirPlusPlusFromFolder(folder)), { sync }));
  }
  return {
    append: async (folder, bytes, message) => {
      await writers.get(folder)!.append(bytes, { flags: message.flags, internalDate: message.internalDate });
    },
    close: async () => {
      for (const writer of writers.values()) await writer.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Command line

function usage(message: string): never {
  process.stderr.write(`gen-corpus: ${message}\nusage: gen-corpus --out PATH --format maildir|mbox --messages N --seed S ` +
    '[--small] [--folders A,B/C] [--attachment-bytes-max B] [--sync] [--json]\n');
  process.exit(2);
}

export function parseArguments(argv: string[]): CorpusOptions & { json: boolean } {
  const values: Record<string, string> = {};
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (['--small', '--json', '--sync'].includes(arg)) switches.add(arg);
    else if (['--out', '--format', '--messages', '--seed', '--folders', '--attachment-bytes-max'].includes(arg) && i + 1 < argv.length) values[arg] = argv[++i]!;
    else usage(`unknown or incomplete argument ${arg}`);
  }
  const format = values['--format'];
  if (format !== 'maildir' && format !== 'mbox') usage('--format must be maildir or mbox');
  const messages = Number(values['--messages']);
  if (!Number.isInteger(messages) || messages < 0) usage('--messages must be a whole number');
  if (!values['--out']) usage('--out is required');
  if (values['--seed'] === undefined) usage('--seed is required');
  const attachment = values['--attachment-bytes-max'] === undefined ? undefined : Number(values['--attachment-bytes-max']);
  if (attachment !== undefined && !(Number.isInteger(attachment) && attachment >= 1024)) usage('--attachment-bytes-max must be an integer >= 1024');
  return {
    out: values['--out']!, format, messages, seed: values['--seed']!, small: switches.has('--small'),
    folders: values['--folders']?.split(',').filter(Boolean), attachmentBytesMax: attachment,
    sync: switches.has('--sync'), json: switches.has('--json'),
  };
}

async function main(): Promise<void> {
  const options = parseArguments(process.argv.slice(2));
  const started = Date.now();
  const tty = process.stderr.isTTY;
  options.onProgress = (done) => { if (tty) process.stderr.write(`\r${done} of ${options.messages} messages`); };
  try {
    const summary = await generateCorpus(nodeFileSystem, options);
    if (tty) process.stderr.write('\n');
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ ...summary, seconds: (Date.now() - started) / 1000 })}\n`);
    } else {
      process.stdout.write(`${summary.messages} messages, ${summary.bytes} bytes, ${summary.duplicates} duplicates ` +
        `(${summary.bigAttachments} big attachments, ${summary.crlf} CRLF, ${summary.noFinalNewline} without final newline, ` +
        `${summary.fromLinesInBody} with From lines in the body) in ${options.out}\n` +
        `folders: ${Object.entries(summary.folders).map(([name, n]) => `${name} ${n}`).join(', ')}\n`);
    }
  } catch (error) {
    process.stderr.write(`gen-corpus: ${isMailstoreError(error) ? `${error.code}: ${error.message}` : String(error)}\n`);
    process.exit(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
