// public-inbox archives: the format large mailing-list archives are published in (lore.kernel.org
// and its mirrors). v1 is one git repository with a blob per message at `xx/yyyy…` (the SHA-1 of
// the Message-ID, split 2/38); v2 is GITDIR/git/N.git epochs, each commit holding one file `m` (a
// message) or `d` (a message removed from the archive). Read with the `git` command, streamed:
// `git log` lists the commits, `git cat-file --batch` hands over one blob at a time, so memory
// holds a few messages whatever the archive's size. The bytes are the blob's, exactly, checked against its id
// (git hands a loose object over without that check): a damaged blob is reported, never stored.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { FileSystem } from '../fs/filesystem.js';
import { MailstoreError, fromSystemError } from '../errors.js';
import { importLimits, limits } from '../limits.js';
import type { SkipHandler } from './eml.js';

export interface PublicInboxLayout {
  /** 2: GITDIR/git/N.git epochs; 1: GITDIR is one git directory (a v1 archive, or one v2 epoch alone). */
  version: 1 | 2;
  /** The git directories to read, oldest first (v2: the epochs in number order). */
  repositories: string[];
}

export interface PublicInboxMessage {
  bytes: Buffer;
  /** 0-based place among the archive's messages, counting removed ones, so it never moves. */
  position: number;
  /** The commit that added the message: what names it from one run to the next. */
  commit: string;
  /** The commit's author date: public-inbox takes it from the message's Date header. */
  internalDate?: Date;
  zoneMinutes?: number;
  /** true when the caller said it would not look at the bytes (bytes is then empty). */
  unread?: boolean;
  /** Commits read so far ÷ all commits of the archive (one message added or removed each): for a progress meter. */
  fraction?: number;
}

export interface ReadPublicInboxOptions {
  messageBytesMax?: number;
  onSkip?: SkipHandler;
  /** Positions whose bytes the caller does not need (already imported): their blobs are not read. */
  skipBytes?: (position: number) => boolean;
}

const V1_PATH = /^[0-9a-f]{2}\/[0-9a-f]{38}$/;
const EPOCH = /^(\d+)\.git$/;

/** A git directory holds HEAD and objects/ (bare, as public-inbox keeps them); a work tree has them in .git. */
async function gitDirectory(fs: FileSystem, path: string): Promise<string | undefined> {
  for (const dir of [path, join(path, '.git')]) {
    const head = await fs.statIfExists(join(dir, 'HEAD')).catch(() => undefined);
    const objects = await fs.statIfExists(join(dir, 'objects')).catch(() => undefined);
    if (head?.isFile && objects?.isDirectory) return dir;
  }
  return undefined;
}

/** v2 when GITDIR/git holds N.git epochs, v1 when GITDIR is a git directory itself; else undefined. */
export async function publicInboxLayout(fs: FileSystem, path: string): Promise<PublicInboxLayout | undefined> {
  const epochs = await fs.readdir(join(path, 'git')).catch(() => [] as string[]);
  const numbered = epochs.map((name) => ({ name, n: Number(EPOCH.exec(name)?.[1] ?? NaN) })).filter((e) => Number.isInteger(e.n)).sort((a, b) => a.n - b.n);
  if (numbered.length > 0) {
    const repositories: string[] = [];
    for (const epoch of numbered) {
      const dir = await gitDirectory(fs, join(path, 'git', epoch.name));
      if (!dir) throw new MailstoreError('INVALID', `${join(path, 'git', epoch.name)} is not a git directory (no HEAD or objects/): a damaged public-inbox v2 archive`, { path });
      repositories.push(dir);
    }
    return { version: 2, repositories };
  }
  const dir = await gitDirectory(fs, path);
  return dir ? { version: 1, repositories: [dir] } : undefined;
}

/** The layout, or a clear error: NOT_FOUND when the path is missing, INVALID when it is no archive. */
export async function requirePublicInbox(fs: FileSystem, path: string): Promise<PublicInboxLayout> {
  const stat = await fs.stat(path).catch((error) => { throw fromSystemError(error, 'reading public-inbox archive', path); });
  const layout = stat.isDirectory ? await publicInboxLayout(fs, path) : undefined;
  if (!layout) {
    throw new MailstoreError('INVALID', `${path} is not a public-inbox archive: neither a git directory (v1: HEAD, objects/) nor one with git/N.git epochs (v2)`, { path });
  }
  return layout;
}

/**
 * What `git cat-file` gave for a blob: its bytes, or why not (over the size limit, not in the
 * repository, or bytes that are not those of its id: git hands a loose object over unverified).
 */
type BlobAnswer = Buffer | { tooLarge: number } | { missing: string } | { corrupt: string; gitError?: string };

interface Commit { id: string; date?: Date; zoneMinutes?: number; added?: string; removed?: string; fraction?: number }

/**
 * Every message of the archive in commit order, oldest first. Messages a later commit removed (v1:
 * the blob's path deleted; v2: a `d` commit) are left out, though they keep their position.
 */
export async function* readPublicInbox(layout: PublicInboxLayout, options: ReadPublicInboxOptions = {}): AsyncGenerator<PublicInboxMessage> {
  const removed = await removedBlobs(layout);
  let total = 0;
  for (const repository of layout.repositories) total += await commitCount(repository);
  let position = 0, seen = 0;
  for (const repository of layout.repositories) {
    const blobs = new BlobReader(repository, options.messageBytesMax ?? limits.messageBytesMax);
    try {
      const pending: { commit: Commit; position: number; blob?: Promise<BlobAnswer> }[] = [];
      for await (const commit of commits(repository)) {
        seen++;
        if (commit.added === undefined) continue;
        if (total > 0) commit.fraction = Math.min(1, seen / total);
        const at = position++;
        if (removed.has(commit.added)) continue;
        const unread = options.skipBytes?.(at) === true;
        pending.push({ commit, position: at, blob: unread ? undefined : blobs.read(commit.added) });
        if (pending.length >= importLimits.publicInboxBlobsInFlight) yield* settled(pending.shift()!, repository, options);
      }
      while (pending.length > 0) yield* settled(pending.shift()!, repository, options);
    } finally {
      blobs.close();
    }
  }
}

async function* settled(
  entry: { commit: Commit; position: number; blob?: Promise<BlobAnswer> }, repository: string, options: ReadPublicInboxOptions,
): AsyncGenerator<PublicInboxMessage> {
  const { commit, position } = entry;
  const when = {
    ...(commit.date ? { internalDate: commit.date } : {}), ...(commit.zoneMinutes !== undefined ? { zoneMinutes: commit.zoneMinutes } : {}),
    ...(commit.fraction !== undefined ? { fraction: commit.fraction } : {}),
  };
  if (!entry.blob) {
    yield { bytes: Buffer.alloc(0), position, commit: commit.id, unread: true, ...when };
    return;
  }
  const blob = await entry.blob;
  if (Buffer.isBuffer(blob)) {
    yield { bytes: blob, position, commit: commit.id, ...when };
    return;
  }
  // left out and reported; the next import retries it (a partial clone may have fetched it by then)
  const error = 'tooLarge' in blob
    ? new MailstoreError('TOO_LARGE', `the message of commit ${commit.id} in ${repository} is ${blob.tooLarge} bytes, over the limit`, { path: repository })
    : 'corrupt' in blob
      ? new MailstoreError('CORRUPT', `the message blob ${blob.corrupt} of commit ${commit.id} in ${repository} ${blob.gitError ? `cannot be read (git: ${blob.gitError})` : 'does not hash to its id'} (a damaged copy of the archive: git fsck)`, { path: repository })
      : new MailstoreError('NOT_FOUND', `the message blob ${blob.missing} of commit ${commit.id} is missing from ${repository} (a partial or damaged copy of the archive)`, { path: repository });
  if (!options.onSkip) throw error;
  options.onSkip(`${repository}#${commit.id}`, error, 'tooLarge' in blob ? 'tooLarge' : 'unreadable', position);
}

/** Blobs some commit took out of the archive: one pass over the log, before any message is read. */
async function removedBlobs(layout: PublicInboxLayout): Promise<Set<string>> {
  const removed = new Set<string>();
  for (const repository of layout.repositories) {
    // only the commits that can remove something, which git finds far faster than it lists all:
    // those touching `d` (v2) and those deleting a path (v1)
    for await (const commit of commits(repository, { limit: ['HEAD', '--', 'd'] }, { limit: ['--diff-filter=D', 'HEAD'] })) {
      if (commit.removed === undefined) continue;
      removed.add(commit.removed);
      if (removed.size > importLimits.publicInboxRemovedMax) {
        throw new MailstoreError('INVALID', `${repository} removes more than ${importLimits.publicInboxRemovedMax} messages; not a public-inbox archive this reader can hold`, { path: repository });
      }
    }
  }
  return removed;
}

/**
 * The commits of one repository, oldest first, with the message blob each adds or removes; with
 * `limit`s (revision and path arguments), one `git log` per limit, each listing only what it selects.
 */
async function* commits(repository: string, ...limits: { limit: string[] }[]): AsyncGenerator<Commit> {
  if (!(await hasCommits(repository))) return;
  for (const { limit } of limits.length > 0 ? limits : [{ limit: ['HEAD'] }]) yield* logCommits(repository, limit);
}

async function* logCommits(repository: string, limit: string[]): AsyncGenerator<Commit> {
  const args = ['log', '--reverse', '--first-parent', '--no-renames', '--raw', '--no-abbrev', '--root', '--no-color', '--no-show-signature',
    '--format=%x01%H %ad', '--date=raw', ...limit];
  const git = spawnGit(repository, args);
  let current: Commit | undefined;
  try {
    for await (const line of lines(git)) {
      if (line.startsWith('\x01')) {
        if (current) yield current;
        current = parseCommitLine(line.slice(1));
      } else if (line.startsWith(':') && current) {
        applyRawLine(current, line);
      }
    }
    await exited(git, repository, 'git log'); // before the last commit: a failed log is not taken as complete
    if (current) yield current;
  } finally {
    git.child.kill();
  }
}

function parseCommitLine(text: string): Commit {
  const [id, seconds, zone] = text.split(' ');
  const commit: Commit = { id: id! };
  const ms = Number(seconds) * 1000;
  if (Number.isFinite(ms) && ms >= limits.internalDateMsMin && ms <= limits.internalDateMsMax) commit.date = new Date(ms);
  if (zone && /^[+-]\d{4}$/.test(zone)) {
    const minutes = (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3)));
    if (minutes >= limits.dateZoneMinutesMin && minutes <= limits.dateZoneMinutesMax) commit.zoneMinutes = minutes;
  }
  return commit;
}

/**
 * `:old-mode new-mode old-oid new-oid STATUS\tpath`: which blob the commit adds or removes. The
 * paths say the layout (`m`/`d`: v2; `xx/yyyy…`: v1), so one v2 epoch given alone reads too.
 */
function applyRawLine(commit: Commit, line: string): void {
  const tab = line.indexOf('\t');
  const [, , oldOid, newOid, status] = line.slice(0, tab).split(' ');
  const path = line.slice(tab + 1);
  const writes = status === 'A' || status === 'M';
  if (path === 'm' && writes) commit.added = newOid;
  else if (path === 'd' && writes) commit.removed = newOid;
  else if (V1_PATH.test(path)) {
    if (writes) commit.added = newOid;
    if (status === 'D') commit.removed = oldOid;
  }
}

/** Commits on HEAD's first-parent line (0 for an empty repository): the progress meter's total. */
async function commitCount(repository: string): Promise<number> {
  if (!(await hasCommits(repository))) return 0;
  const git = spawnGit(repository, ['rev-list', '--count', '--first-parent', 'HEAD']);
  let out = '';
  git.child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk; });
  await exited(git, repository, 'git rev-list');
  return Number(out.trim()) || 0;
}

/** An epoch with no commit yet (a new v2 epoch, an empty v1 repository) holds no message. */
async function hasCommits(repository: string): Promise<boolean> {
  const git = spawnGit(repository, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}']);
  git.child.stdout.resume();
  const code = await git.exit;
  if (code === 0) return true;
  if (code === 1) return false;
  throw new MailstoreError('INVALID', `git rev-parse failed (exit ${code}) in ${repository}: ${git.stderr() || 'is it a git directory?'}`, { path: repository });
}

interface Git {
  child: ChildProcessWithoutNullStreams;
  /** The exit code; rejects with NOT_FOUND when git is not installed. */
  exit: Promise<number>;
  stderr(): string;
}

function spawnGit(repository: string, args: string[]): Git {
  // No pager, no prompts, no system or user configuration that could reshape the output.
  const env = { ...process.env, GIT_DIR: repository, GIT_PAGER: 'cat', GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', LC_ALL: 'C' };
  const child = spawn('git', args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { if (stderr.length < 4096) stderr += chunk; });
  const exit = new Promise<number>((resolve, reject) => {
    child.on('error', (error) => reject(gitMissing(error, repository)));
    child.on('close', (code) => resolve(code ?? -1));
  });
  exit.catch(() => undefined); // observed by whoever awaits it
  return { child, exit, stderr: () => stderr.trim() };
}

function gitMissing(error: unknown, repository: string): MailstoreError {
  if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
    return new MailstoreError('NOT_FOUND', 'the git command is needed to read a public-inbox archive and was not found on PATH', { path: repository, cause: error });
  }
  return fromSystemError(error, 'running git in', repository);
}

async function exited(git: Git, repository: string, what: string): Promise<void> {
  const code = await git.exit;
  if (code !== 0) throw new MailstoreError('INVALID', `${what} failed (exit ${code}) in ${repository}: ${git.stderr() || 'no message'}`, { path: repository });
}

/** The lines of a child's stdout, read as they come (the stream pauses while the caller is busy). */
async function* lines(git: Git): AsyncGenerator<string> {
  let carry = '';
  git.child.stdout.setEncoding('utf8');
  for await (const chunk of git.child.stdout as AsyncIterable<string>) {
    const parts = (carry + chunk).split('\n');
    carry = parts.pop()!;
    yield* parts;
  }
  if (carry) yield carry;
}

/** The git object id of a blob: SHA-1 of `blob <size>\0<bytes>`, SHA-256 in a repository of 64-digit ids. */
function blobId(bytes: Buffer, idLength: number): string {
  return createHash(idLength === 64 ? 'sha256' : 'sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

/**
 * `git cat-file --batch`, one long-lived process per repository: oids written to its stdin,
 * answers (`<oid> blob <size>\n<bytes>\n`, or `<oid> missing`) parsed from its stdout in request
 * order. A blob over the limit is passed over as it streams by (never buffered) and answered with its size.
 */
class BlobReader {
  private git!: Git;
  private readonly waiting: { oid: string; resolve: (blob: BlobAnswer) => void; reject: (error: unknown) => void }[] = [];
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private header: { size: number; parts?: Buffer[]; got: number } | undefined;
  private failure: MailstoreError | undefined;
  private closed = false;
  /** Times git cat-file died since it last answered (importLimits.publicInboxReadRestartsMax). */
  private deathsInARow = 0;

  constructor(private readonly repository: string, private readonly bytesMax: number) {
    this.start();
  }

  /** A git cat-file process, asked again for every blob still waiting. */
  private start(): void {
    const git = spawnGit(this.repository, ['cat-file', '--batch']);
    this.git = git;
    this.buffered = [];
    this.bufferedBytes = 0;
    this.header = undefined;
    git.child.stdout.on('data', (chunk: Buffer) => { if (this.git === git) this.take(chunk); });
    git.exit.then((code) => { if (this.git === git) this.ended(code); }, (error: MailstoreError) => this.fail(error));
    git.child.stdin.on('error', () => undefined); // reported through the exit
    for (const w of this.waiting) git.child.stdin.write(`${w.oid}\n`);
  }

  /**
   * git cat-file ended. It dies on a blob it cannot inflate ("fatal: packed object ... is
   * corrupt"), the one it was answering, after every answer before it: that blob is damaged and a
   * new process reads the rest. Dying while nothing was asked, or again and again, is a
   * repository (or git) that cannot be read: every read fails.
   */
  private ended(code: number): void {
    if (this.closed) return;
    const why = this.git.stderr() || 'no message';
    const damaged = this.waiting[0];
    if (!damaged || ++this.deathsInARow > importLimits.publicInboxReadRestartsMax) {
      this.fail(new MailstoreError('INVALID', `git cat-file ended (exit ${code}) in ${this.repository}: ${why}`, { path: this.repository }));
      return;
    }
    this.waiting.shift()!.resolve({ corrupt: damaged.oid, gitError: why.split('\n').at(-1)! });
    this.start();
  }

  read(oid: string): Promise<BlobAnswer> {
    if (this.failure) return Promise.reject(this.failure);
    const answer = new Promise<BlobAnswer>((resolve, reject) => {
      this.waiting.push({ oid, resolve, reject });
      this.git.child.stdin.write(`${oid}\n`);
    });
    // a reader stopped early (close) leaves answers nobody awaits: their rejection is no crash
    answer.catch(() => undefined);
    return answer;
  }

  close(): void {
    this.closed = true;
    this.git.child.stdin.end();
    this.git.child.kill();
  }

  private fail(error: MailstoreError): void {
    this.failure ??= error;
    for (const w of this.waiting.splice(0)) w.reject(this.failure);
  }

  private take(chunk: Buffer): void {
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    try {
      while (this.step()) { /* one answer, or part of one, per step */ }
    } catch (error) {
      this.fail(error as MailstoreError);
      this.git.child.kill();
    }
  }

  /** Consumes what it can of the buffered output; false when it needs more. */
  private step(): boolean {
    if (!this.header) {
      const data = this.joined();
      const newline = data.indexOf(0x0a);
      if (newline < 0) return false;
      const line = data.subarray(0, newline).toString('latin1');
      this.consume(newline + 1);
      const expected = this.waiting[0];
      if (expected && line === `${expected.oid} missing`) {
        this.deathsInARow = 0;
        this.waiting.shift()!.resolve({ missing: expected.oid });
        return this.bufferedBytes > 0;
      }
      const match = /^([0-9a-f]+) (\S+) (\d+)$/.exec(line);
      if (!expected || !match || match[1] !== expected.oid || match[2] !== 'blob') {
        throw new MailstoreError('INVALID', `git cat-file answered "${line.slice(0, 200)}" for ${expected?.oid ?? 'nothing'} in ${this.repository}: a damaged repository?`, { path: this.repository });
      }
      const size = Number(match[3]);
      this.header = { size, parts: size > this.bytesMax ? undefined : [], got: 0 };
    }
    const header = this.header;
    const want = header.size + 1 - header.got; // the blob and its trailing newline
    if (this.bufferedBytes === 0) return false;
    const data = this.joined();
    const take = Math.min(want, data.length);
    if (header.parts) header.parts.push(Buffer.from(data.subarray(0, take)));
    header.got += take;
    this.consume(take);
    if (header.got < header.size + 1) return false;
    this.header = undefined;
    this.deathsInARow = 0;
    const done = this.waiting.shift()!;
    if (!header.parts) done.resolve({ tooLarge: header.size });
    else {
      const bytes = Buffer.concat(header.parts).subarray(0, header.size);
      done.resolve(blobId(bytes, done.oid.length) === done.oid ? bytes : { corrupt: done.oid });
    }
    return this.bufferedBytes > 0;
  }

  private joined(): Buffer {
    if (this.buffered.length > 1) this.buffered = [Buffer.concat(this.buffered)];
    return this.buffered[0] ?? Buffer.alloc(0);
  }

  private consume(bytes: number): void {
    const data = this.joined();
    const rest = data.subarray(bytes);
    this.buffered = rest.length ? [rest] : [];
    this.bufferedBytes = rest.length;
  }
}
