// Small public-inbox archives for tests, built by `git fast-import` itself: v1 (one repository, a
// blob per message at the SHA-1 of its Message-ID split 2/38) and v2 (git/N.git epochs, one `m`
// per commit, `d` for a removed message), the way public-inbox writes them.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export interface ArchiveMessage {
  bytes: Buffer;
  /** Author date, epoch seconds, and its zone (`+0100`). */
  seconds: number;
  zone?: string;
}

/** A step of the archive's history: add a message, or remove an earlier one. */
export type ArchiveStep = { add: ArchiveMessage } | { remove: ArchiveMessage };

function gitInit(dir: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('git', ['init', '--quiet', '--bare', dir]);
}

function fastImport(dir: string, stream: Buffer): void {
  execFileSync('git', ['fast-import', '--quiet'], { input: stream, env: { ...process.env, GIT_DIR: dir } });
}

function data(bytes: Buffer): Buffer[] {
  return [Buffer.from(`data ${bytes.length}\n`), bytes, Buffer.from('\n')];
}

/** A commit on master (fast-import makes the branch's previous commit its parent). */
function header(step: number, date: string): Buffer[] {
  return [Buffer.from(`commit refs/heads/master\nmark :${step + 1}\nauthor A U Thor <a@example.org> ${date}\ncommitter public-inbox <pi@example.org> ${1_800_000_000 + step} +0000\n`),
    ...data(Buffer.from(`step ${step}`))];
}

const dateOf = (m: ArchiveMessage) => `${m.seconds} ${m.zone ?? '+0000'}`;

/** The message's path in a v1 archive: SHA-1 of its Message-ID (or its bytes when it has none), 2/38. */
export function v1Path(message: ArchiveMessage): string {
  const id = /^message-id:\s*(\S+)/im.exec(message.bytes.toString('latin1'))?.[1] ?? message.bytes.toString('latin1');
  const hex = createHash('sha1').update(id).digest('hex');
  return `${hex.slice(0, 2)}/${hex.slice(2)}`;
}

/** A v1 archive (a bare repository) at `dir`. */
export function writeV1(dir: string, steps: ArchiveStep[]): string {
  gitInit(dir);
  const parts: Buffer[] = [];
  steps.forEach((step, i) => {
    if ('add' in step) {
      parts.push(...header(i, dateOf(step.add)), Buffer.from(`M 100644 inline ${v1Path(step.add)}\n`), ...data(step.add.bytes));
    } else {
      parts.push(...header(i, dateOf(step.remove)), Buffer.from(`D ${v1Path(step.remove)}\n`));
    }
    parts.push(Buffer.from('\n'));
  });
  fastImport(dir, Buffer.concat(parts));
  return dir;
}

/** A v2 archive at `dir` (dir/git/N.git), one epoch per list of steps. */
export function writeV2(dir: string, epochs: ArchiveStep[][]): string {
  epochs.forEach((steps, n) => {
    const repo = join(dir, 'git', `${n}.git`);
    gitInit(repo);
    const parts: Buffer[] = [];
    steps.forEach((step, i) => {
      const message = 'add' in step ? step.add : step.remove;
      parts.push(...header(i, dateOf(message)), Buffer.from(`deleteall\nM 100644 inline ${'add' in step ? 'm' : 'd'}\n`), ...data(message.bytes), Buffer.from('\n'));
    });
    if (parts.length) fastImport(repo, Buffer.concat(parts));
  });
  return dir;
}

/** Messages that test the bytes: CRLF, no final newline, a From_ line in the body, 8-bit bytes. */
export function archiveMessages(count: number, start = 0): ArchiveMessage[] {
  return Array.from({ length: count }, (_, k) => {
    const i = start + k;
    const eol = i % 3 === 1 ? '\r\n' : '\n';
    const body = `From: list-member${i}@example.org${eol}To: list@example.org${eol}Message-ID: <pi-${i}@example.org>${eol}Subject: message ${i}${eol}${eol}` +
      `From the start of line ${i}${eol}${'text '.repeat(i % 50)}`;
    const tail = i % 4 === 2 ? '' : eol;
    const bytes = Buffer.concat([Buffer.from(body + tail, 'latin1'), i % 5 === 0 ? Buffer.from([0xe9, 0xff, 0x0a]) : Buffer.alloc(0)]);
    return { bytes, seconds: 1_600_000_000 + i * 3600, zone: i % 2 ? '+0100' : '-0430' };
  });
}
