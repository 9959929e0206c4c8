// Is this directory the store we think it is? A missing partition looks exactly like "everything
// was deleted", so the STORE identity, the packs/ and journal/ markers and the root's device id are
// checked at open and before every new file is created. Nothing is created when they fail.
import { basename, dirname, join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileStat, FileSystem } from '../fs/filesystem.js';
import { ensureDir, fileTimeStamp, refuseIgnoredSync, writeFileDurable } from '../fs/durable.js';
import { type KernelLock, kernelLockAvailable, takeKernelLock } from '../fs/kernel-lock.js';
import { makeLevelDirectory } from '../fs/level-directory.js';
import { classifyLevelError, systemAdvice } from '../index/level-errors.js';
import { levelClass } from '../index/level-module.js';
import { limits } from '../limits.js';
import { processAlive, processCommand, processHoldsFile } from '../fs/process-files.js';
import { monotonicMs } from '../monotonic.js';

export const STORE_FORMAT = 'mailstore';
/**
 * 2 since session 32. Every mailstore before it opened exactly version 1 and misread what later
 * ones write (docs/FORMAT.md, "Compatibility"), so a read-write open marks a version 1 store as 2
 * before it writes anything else: older code refuses it (INVALID) instead of damaging it.
 */
export const STORE_VERSION = 2;
/** Versions this mailstore opens; an older one is upgraded by a read-write open (upgradeIdentity). */
const READABLE_VERSIONS: readonly number[] = [1, 2];

export interface StoreIdentity {
  format: string;
  version: number;
  storeId: string;
  created: string;
}

export const LAYOUT = {
  identity: 'STORE',
  lock: 'LOCK',
  /** LevelDB's fcntl lock is the kernel lock behind LOCK. */
  lockDb: 'lock',
  packs: 'packs',
  journal: 'journal',
  index: 'index',
  quarantine: 'quarantine',
  tmp: 'tmp',
  marker: 'STORE-ID',
  /** Present while `mailstore rebuild-from-bucket` assembles a store here: no other open until it is gone. */
  rebuilding: 'REBUILDING',
  /** Present while `mailstore restore` builds a new store here (in .restoring/), until STORE is in place. */
  restoring: 'RESTORING',
} as const;

function encodeIdentity(identity: StoreIdentity): Buffer {
  const body = JSON.stringify(identity);
  return Buffer.from(`${body}\ncrc32 ${crc32(Buffer.from(body)).toString(16).padStart(8, '0')}\n`);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function decodeIdentity(bytes: Buffer, path: string): StoreIdentity {
  const frame = identityFrame(bytes);
  const broken = (why: string) => new MailstoreError('UNMOUNTED', `${path} is not a valid mailstore identity (${why}); is this the right directory?` +
    (frame.damaged ? ` If it is, and STORE alone is damaged, 'mailstore reconstruct --identity-from-markers' writes it again from the packs/ and journal/ markers (the damaged one to quarantine/).` : ''), { path });
  if (frame.damaged) throw broken(frame.damaged);
  const identity = JSON.parse(frame.json) as StoreIdentity;
  if (identity.format !== STORE_FORMAT || typeof identity.storeId !== 'string') throw broken('foreign format');
  // the id's 16 bytes head every pack and journal segment: one of another form opened, and every
  // segment it wrote then read as damaged
  if (!UUID.test(identity.storeId)) throw broken(`a store id that is not a UUID: ${JSON.stringify(identity.storeId.slice(0, 64))}`);
  if (!READABLE_VERSIONS.includes(identity.version)) {
    throw new MailstoreError('INVALID', `${path}: store format version ${identity.version} is not supported by this mailstore (it reads versions ${READABLE_VERSIONS.join(' and ')}): it was written by a newer mailstore; run that one (downgrading a store is not supported)`, { path });
  }
  return identity;
}

/**
 * STORE's frame: its JSON line, or why the bytes are not one whose checksum holds (`damaged`:
 * damage, not another store's or another program's file, which reads whole).
 */
function identityFrame(bytes: Buffer): { json: string; damaged?: undefined } | { damaged: 'unreadable' | 'checksum mismatch' } {
  const m = /^(\{.*\})\ncrc32 ([0-9a-f]{8})\n$/s.exec(bytes.toString('utf8'));
  if (!m) return { damaged: 'unreadable' };
  if (crc32(Buffer.from(m[1])).toString(16).padStart(8, '0') !== m[2]) return { damaged: 'checksum mismatch' };
  return { json: m[1] };
}

export function storeIdBytes(identity: StoreIdentity): Buffer {
  return Buffer.from(identity.storeId.replace(/-/g, ''), 'hex');
}

/**
 * EXISTS when `root` holds a store (its STORE). What `init` says first: checked after the bucket
 * and the journal archive, an existing store with an unreachable bucket failed IO ("is the object
 * store reachable?") and sent the admin to mend a network that did not matter. Anything else
 * about `root` (a file, a dangling link) is initStore's to say.
 */
export async function refuseExistingStore(fs: FileSystem, root: string): Promise<void> {
  const identity = await fs.statIfExists(join(root, LAYOUT.identity)).catch(() => undefined);
  if (identity) throw new MailstoreError('EXISTS', `a store already exists at ${root}`, { path: root });
}

/**
 * Creates a new store in an empty (or missing) directory. `cloneOf`: a primary's STORE bytes, for
 * a new replica (same store id: its packs and journal are the primary's, byte for byte).
 */
export async function initStore(fs: FileSystem, root: string, cloneOf?: Buffer): Promise<StoreIdentity> {
  // a directory on the way the caller may not search (EACCES) was INTERNAL, "a bug", exit 70
  await refuseStoreInsideStore(fs, root).catch((e) => { throw fromSystemError(e, 'looking at the directories above', root); });
  await (await import('./unopened-root.js')).refuseUnmountedMountPoint(fs, root); // not loaded by an open
  await refuseIgnoredSync(fs, root, 'the store');
  const stat = await fs.statIfExists(root).catch((e) => { throw fromSystemError(e, 'looking at', root); });
  if (stat) {
    if (!stat.isDirectory) throw new MailstoreError('INVALID', `${root} exists and is not a directory`, { path: root });
    const parent = dirname(root);
    if (parent !== root && (await fs.statIfExists(parent))?.dev === stat.dev) await (await import('./name-case.js')).refuseNamesIgnoringCase(fs, parent, basename(root), root);
    refuseOthersMayWrite(stat, root);
    // lost+found: a file system's root; run/: a daemon's socket directory (a replica's daemon starts in an empty directory)
    const names = (await fs.readdir(root)).filter((n) => n !== 'lost+found' && n !== 'run');
    if (names.includes(LAYOUT.identity)) await refuseExistingStore(fs, root);
    // an init stopped before STORE (SIGKILL, a power cut) left only its own empty directories and
    // markers: it is done again (new markers over the old); anything else there may be mail
    if (names.length > 0 && !(await initLeftOnly(fs, root, names))) {
      throw new MailstoreError('INVALID', `${root} is not empty and holds no store (found ${names.slice(0, 3).join(', ')}); refusing to initialise over it`, { path: root });
    }
  } else {
    await refuseDanglingLink(fs, root, 'create that directory on it first, then run init again');
    await fs.mkdir(root).catch((e) => { throw fromSystemError(e, 'creating store directory', root); });
  }
  const identity: StoreIdentity = cloneOf
    ? decodeIdentity(cloneOf, 'the primary\'s STORE')
    : { format: STORE_FORMAT, version: STORE_VERSION, storeId: crypto.randomUUID(), created: new Date().toISOString() };
  try {
    const madePacks = await ensureDir(fs, join(root, LAYOUT.packs));
    await (await import('./name-case.js')).refuseNamesIgnoringCase(fs, root, LAYOUT.packs, root, async () => {
      if (madePacks) await fs.rmdir(join(root, LAYOUT.packs));
      if (!stat) await fs.rmdir(root);
    });
    for (const dir of [LAYOUT.journal, LAYOUT.quarantine, LAYOUT.tmp]) {
      await ensureDir(fs, join(root, dir));
    }
    // The markers let open tell "packs/ is an empty mount point" from "a store with no mail yet".
    await writeFileDurable(fs, join(root, LAYOUT.packs, LAYOUT.marker), Buffer.from(identity.storeId + '\n'));
    await writeFileDurable(fs, join(root, LAYOUT.journal, LAYOUT.marker), Buffer.from(identity.storeId + '\n'));
    // STORE last: a crash before this leaves a directory that init, run again, takes as its own (initLeftOnly).
    await writeFileDurable(fs, join(root, LAYOUT.identity), cloneOf ?? encodeIdentity(identity));
  } catch (error) {
    throw fromSystemError(error, 'initialising store', root);
  }
  return identity;
}

/**
 * Whether `names` (the root's entries) are only what an init that never wrote STORE leaves: its
 * directories, on the root's own device (a mount point is never one: its partition may hold a
 * store whose root did not mount), holding nothing but the markers and the temporary files of
 * their durable writes (a pack or a journal segment, mail, is never one of them).
 */
async function initLeftOnly(fs: FileSystem, root: string, names: string[]): Promise<boolean> {
  const rootDevice = (await fs.stat(root)).dev;
  const ownTemp = (name: string, file: string) => name.startsWith(`.${file}.`) && name.endsWith('.tmp');
  const marker = (name: string) => name === LAYOUT.marker || ownTemp(name, LAYOUT.marker);
  const holds = new Map<string, (name: string) => boolean>([
    [LAYOUT.packs, marker], [LAYOUT.journal, marker], [LAYOUT.quarantine, () => false], [LAYOUT.tmp, () => false],
  ]);
  for (const name of names) {
    if (ownTemp(name, LAYOUT.identity)) continue;
    const allowed = holds.get(name);
    const stat = allowed && await fs.statIfExists(join(root, name));
    if (!stat || !stat.isDirectory || stat.dev !== rootDevice) return false;
    if (!(await fs.readdir(join(root, name))).every(allowed!)) return false;
  }
  return true;
}

/**
 * An existing directory that is to hold what mailstore writes and later trusts (a store's root at
 * init or restore --to, a new backup repository and its directories): whoever may write it may
 * rename or replace what goes in, whatever the modes of mailstore's own files (0640, 0750), so one
 * that group or others may write is refused rather than taken as given. `what`: what they could
 * replace.
 */
export function refuseOthersMayWrite(stat: FileStat, dir: string, what = 'the store\'s directories'): void {
  if ((stat.mode & 0o022) === 0) return;
  throw new MailstoreError('ACCESS', `${dir} may be written by group or others (mode ${(stat.mode & 0o7777).toString(8)}): any of them could rename or replace ${what}; chmod go-w ${dir} and run it again (where the mount gives the modes and chmod changes nothing, remount it with umask=022 (exFAT, FAT) or dir_mode=0755 (a CIFS share))`, { path: dir });
}

/** Reads STORE and the markers; throws UNMOUNTED (never creates anything) when they are wrong. */
export async function verifyIdentity(fs: FileSystem, root: string, options: { stagedJournal?: () => Promise<string | undefined> } = {}): Promise<StoreIdentity> {
  const rootStat = await fs.statIfExists(root).catch((e) => { throw fromSystemError(e, 'reading', root); });
  if (!rootStat) {
    await refuseDanglingLink(fs, root, 'nothing was changed');
    // a store's partition not mounted leaves its directory missing under the mount point: sent to
    // init, an admin made an empty store there that the mail server then filled, hidden at the next mount
    throw new MailstoreError('NOT_FOUND', `no store at ${root}: if one should be there, check that its file system is mounted and the path (--store, MAILSTORE_DIR); only for a new store, 'mailstore init' makes one`, { path: root });
  }
  // read as a directory it failed IO ENOTDIR, which sends the admin to dmesg and the disk
  if (!rootStat.isDirectory) throw new MailstoreError('INVALID', `${root} is not a directory: give the directory that holds STORE (--store, MAILSTORE_DIR). Nothing was changed.`, { path: root });
  const path = join(root, LAYOUT.identity);
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      if (await fs.statIfExists(join(root, LAYOUT.restoring)).catch(() => undefined)) {
        throw new MailstoreError('UNMOUNTED',
          `${root} holds no store yet: a restore into it was interrupted, or is still running (${LAYOUT.restoring} is there). Nothing was changed. ` +
          `Run the same 'mailstore restore --to ${root}' again: it clears what the interrupted one left and starts over.`, { path: join(root, LAYOUT.restoring) });
      }
      await refuseInsideStore(fs, root);
      await refuseRepository(fs, root);
      throw new MailstoreError('UNMOUNTED',
        `${root} has no STORE identity file: it is not a mailstore, or the partition holding it is not mounted. Nothing was changed. ` +
        `If it is mounted and STORE alone was lost, 'mailstore reconstruct --identity-from-markers' writes it again from the packs/ and journal/ markers.`, { path });
    }
    throw fromSystemError(error, 'reading store identity', path);
  }
  const identity = decodeIdentity(bytes, path);
  for (const dir of [LAYOUT.packs, LAYOUT.journal]) {
    let marker = join(root, dir, LAYOUT.marker);
    let text: string;
    try {
      text = (await fs.readFile(marker)).toString('utf8').trim();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // a replica's resync whose swap a crash cut between moving the old journal aside and renaming
      // the staged one in (its marker written): the staged journal is the store's, the open finishes it
      const staged = dir === LAYOUT.journal && (code === 'ENOENT' || code === 'ENOTDIR') ? await options.stagedJournal?.() : undefined; // looked up only then
      const stagedText = staged ? await fs.readFile(join(staged, LAYOUT.marker)).then((b) => b.toString('utf8').trim(), () => undefined) : undefined;
      if (stagedText !== undefined) {
        marker = join(staged!, LAYOUT.marker);
        text = stagedText;
      } else if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new MailstoreError('UNMOUNTED',
          `${join(root, dir)} is missing or empty (no ${LAYOUT.marker} marker): was it moved, or is its partition not mounted? Nothing was changed. ` +
          `If it is mounted and only its ${LAYOUT.marker} was lost, 'mailstore reconstruct' writes it again when every file there names this store.`, { path: marker });
      } else {
        throw fromSystemError(error, 'reading marker', marker);
      }
    }
    if (text !== identity.storeId) {
      throw new MailstoreError('UNMOUNTED', `${join(root, dir)} belongs to store ${JSON.stringify(text.slice(0, 64))}, not ${identity.storeId}: a foreign directory is mounted here, ` +
        `or its ${LAYOUT.marker} is damaged ('mailstore reconstruct' writes it again when every file there names this store)`, { path: marker });
    }
  }
  return identity;
}

/**
 * The store's directory with every symbolic link in it resolved, once, at open: every file made
 * later (packs, journal segments, snapshots, LevelDB's tables) goes by this path. By the path as
 * given, a link repointed while the store was open (ln -sfn to another store's directory, a
 * config-management run) sent them into the other store: acknowledged mail in its journal, both
 * stores damaged. A root that is not there yet (init) is resolved through its parent.
 */
export async function realRoot(fs: FileSystem, root: string): Promise<string> {
  if (!fs.realpath) return root;
  try {
    return await fs.realpath(root);
  } catch {
    return fs.realpath(dirname(root)).then((parent) => join(parent, basename(root)), () => root); // the open says what is wrong with it
  }
}

/**
 * The store a path lies inside, by climbing its parents to `/`: the nearest whose STORE reads as a
 * mailstore identity, and the entry of that store the path is in (`packs`); undefined when none.
 */
export async function enclosingStore(fs: FileSystem, path: string): Promise<{ root: string; entry: string } | undefined> {
  for (let below = resolve(path), at = dirname(below); at !== below; below = at, at = dirname(at)) {
    if (await storeIdAt(fs, at)) return { root: at, entry: basename(below) };
  }
  return undefined;
}

/** The store id of the store at `root`, or undefined when its STORE is missing, unreadable or no mailstore identity. */
export async function storeIdAt(fs: FileSystem, root: string): Promise<string | undefined> {
  const bytes = await fs.readFile(join(root, LAYOUT.identity)).catch(() => undefined);
  if (!bytes) return undefined;
  try {
    return decodeIdentity(bytes, join(root, LAYOUT.identity)).storeId;
  } catch {
    return undefined; // a file of that name that is no mailstore identity: not a store
  }
}

/**
 * A link to a missing directory (/var/lib/mailstore -> /srv/disk2/mail, disk2 not mounted): "no
 * store, create one with init" sent the admin to init, which then failed EXISTS (mkdir of the
 * link's own path), about a directory that is not there.
 */
async function refuseDanglingLink(fs: FileSystem, root: string, then: string): Promise<void> {
  if (!(await fs.lstatIfExists(root).catch(() => undefined))?.isSymbolicLink) return;
  throw new MailstoreError('NOT_FOUND', `${root} is a symbolic link to a directory that does not exist: is its file system mounted? ('ls -l ${root}' shows where it points); ${then}`, { path: root });
}

/**
 * A new store (init, a replica's first start, restore --to) inside another store's directory
 * (STORE/sub, or STORE/snapshots before that store's first snapshot) was made: it went with the
 * other's copies and every backup of its directory, and sat among its files. Refused before
 * anything is made.
 */
export async function refuseStoreInsideStore(fs: FileSystem, dir: string): Promise<void> {
  const real = await realRoot(fs, dir); // a link into a store's directory is inside it too
  const enclosing = await enclosingStore(fs, real);
  if (enclosing) {
    throw new MailstoreError('INVALID', `${dir} is inside the store at ${enclosing.root} (under its ${enclosing.entry}/): a store goes in a directory of its own, outside every other store. Nothing was made.`, { path: dir });
  }
  await (await import('./inside-repository.js')).refuseStoreInsideRepository(fs, dir, real); // not loaded by an open
}

/**
 * A directory inside a store given as the store (`--store /var/lib/mailstore/packs`): UNMOUNTED
 * and its advice ('reconstruct --identity-from-markers') sent the admin round in a circle. One
 * that holds a marker of its own is a store whose STORE was lost, inside another's directory: the
 * UNMOUNTED advice stays right for it.
 */
async function refuseInsideStore(fs: FileSystem, root: string): Promise<void> {
  const enclosing = await enclosingStore(fs, root);
  if (!enclosing) return;
  const markers = await Promise.all([LAYOUT.packs, LAYOUT.journal].map((dir) => fs.statIfExists(join(root, dir, LAYOUT.marker)).catch(() => undefined)));
  if (markers.some(Boolean)) return;
  const what = join(enclosing.root, enclosing.entry) === resolve(root) ? `the ${enclosing.entry}/ directory of` : `inside the ${enclosing.entry}/ directory of`;
  throw new MailstoreError('INVALID', `${root} is ${what} the store at ${enclosing.root}, not a store: give --store ${enclosing.root} (MAILSTORE_DIR). Nothing was changed.`, { path: root });
}

/**
 * A backup repository given as the store (--store for --repo): UNMOUNTED and its advice to write
 * STORE again from markers did not say what it is. Told by its `config` (docs/BACKUP.md), whose
 * first line names the format; a `config` that says otherwise, or none, is left to UNMOUNTED.
 */
async function refuseRepository(fs: FileSystem, root: string): Promise<void> {
  const config = await fs.readFile(join(root, 'config')).catch(() => undefined);
  if (!config || !config.subarray(0, 200).toString('latin1').startsWith('{"format":"mailstore-backup"')) return;
  throw new MailstoreError('INVALID', `${root} is a backup repository, not a store: give it as --repo ('mailstore backups --repo ${root}', ` +
    `'mailstore restore --repo ${root} --snapshot latest --to NEWDIR'), and --store the store's own directory. Nothing was changed.`, { path: root });
}

/**
 * STORE alone lost (deleted by mistake): written again, for `mailstore reconstruct
 * --identity-from-markers` only (the admin has checked the mounts), when packs/ and journal/ both
 * hold a marker naming the same store. `created` is
 * when the journal's marker was written (by init). Returns the store id, or undefined when STORE
 * is there or the markers do not agree (open then refuses as before).
 */
export async function recreateLostIdentity(fs: FileSystem, root: string): Promise<string | undefined> {
  const path = join(root, LAYOUT.identity);
  // a STORE that fails its checksum (a flipped byte) is as lost; one that reads (another store's) is not
  const existing = (await fs.statIfExists(path)) ? await fs.readFile(path).catch((e) => { throw fromSystemError(e, 'reading store identity', path); }) : undefined;
  if (existing && !identityFrame(existing).damaged) return undefined;
  const markers = await Promise.all([LAYOUT.packs, LAYOUT.journal].map(async (dir) => {
    const marker = join(root, dir, LAYOUT.marker);
    const text = await fs.readFile(marker).then((b) => b.toString('utf8').trim(), () => undefined);
    return { text, stat: await fs.statIfExists(marker).catch(() => undefined) };
  }));
  const [packs, journal] = markers;
  if (!packs.text || packs.text !== journal.text || !UUID.test(packs.text)) return undefined;
  const created = new Date(journal.stat?.mtimeMs ?? Date.now()).toISOString();
  if (existing) {
    await ensureDir(fs, join(root, LAYOUT.quarantine));
    await fs.rename(path, join(root, LAYOUT.quarantine, `STORE-damaged-${fileTimeStamp()}-${process.pid}`)).catch((e) => { throw fromSystemError(e, 'moving the damaged store identity aside', path); });
  }
  await writeFileDurable(fs, path, encodeIdentity({ format: STORE_FORMAT, version: STORE_VERSION, storeId: packs.text, created }))
    .catch((e) => { throw fromSystemError(e, 'writing the store identity again', path); });
  return packs.text;
}

/**
 * With the lock held, before anything else is written: a store of an older version gets STORE of
 * this version (durable; a crash leaves the old file or the new one, either opens). Returns the
 * upgraded version's notice, undefined when there was nothing to do.
 */
export async function upgradeIdentity(fs: FileSystem, root: string, identity: StoreIdentity): Promise<string | undefined> {
  if (identity.version === STORE_VERSION) return undefined;
  const path = join(root, LAYOUT.identity);
  const from = identity.version;
  try {
    await writeFileDurable(fs, path, encodeIdentity({ ...identity, version: STORE_VERSION }));
  } catch (error) {
    throw fromSystemError(error, `upgrading the store identity to version ${STORE_VERSION}`, path);
  }
  identity.version = STORE_VERSION;
  return `the store was upgraded from format version ${from} to ${STORE_VERSION}: a mailstore before session 32 no longer opens it (docs/FORMAT.md, "Compatibility")`;
}

/** How long takeLock waits for another holder, and whom it tells meanwhile. */
export interface LockWait {
  /** Keep retrying this long while another process holds the store (0: fail at once with LOCKED). */
  waitMs?: number;
  /** Called on every retry with who holds the store and how long this caller has waited. */
  onWaiting?: (holder: string, waitedMs: number) => void;
}

/** Lock paths (absolute) this process holds: a second open here must fail at once, not wait for itself. */
const heldHere = new Set<string>();
const ownedHere = (root: string) => heldHere.has(resolve(root, LAYOUT.lock));

/**
 * The single-writer lock. The exclusion itself is a kernel lock: the fcntl lock LevelDB takes on
 * `lock/LOCK` (src/fs/kernel-lock.ts; older versions take it by opening a LevelDB in `lock/`,
 * as this one does without fs-ext), released by the kernel when the owner dies, so two
 * processes can never both take over a crashed owner's lock. `LOCK` holds the owner's pid for the
 * message a second opener gets; finding it left by a dead process means the previous owner
 * crashed (`stale`). There is no blocking fcntl from node, so a waiting opener polls.
 */
export async function takeLock(fs: FileSystem, root: string, wait: LockWait = {}): Promise<{ release: () => Promise<void>; stale: boolean }> {
  const path = join(root, LAYOUT.lock);
  const started = monotonicMs(); // monotonic: a wall clock stepped back must not stretch the wait
  for (;;) {
    const kernelLock = ownedHere(root) ? undefined : await openKernelLock(root);
    if (kernelLock) return writeOwner(fs, root, kernelLock);
    const holder = ownedHere(root) ? 'this process' : await describeHolder(fs, path);
    if (holder === 'this process') {
      throw new MailstoreError('LOCKED', `the store at ${root} is already open in this process (pid ${process.pid})`, { path });
    }
    const waitedMs = Math.round(monotonicMs() - started);
    if (waitedMs >= (wait.waitMs ?? 0)) {
      const waited = waitedMs >= 1000 ? `; waited ${Math.round(waitedMs / 1000)} s (--wait SECONDS to wait longer)` : '';
      throw new MailstoreError('LOCKED', `the store at ${root} is in use by ${holder} (LOCK); stop it or wait${waited}`, { path });
    }
    wait.onWaiting?.(holder, waitedMs);
    await sleep(Math.min(limits.lockRetryMs, (wait.waitMs ?? 0) - waitedMs));
  }
}

/**
 * For a read-only open, which cannot take the kernel lock (taking it writes): refuses, after
 * waiting like takeLock, while LOCK names a live process, because a writer changes the index and
 * journal under a reader. Returns `stale` when LOCK names a dead process (its owner crashed).
 * A writer that starts after this check is not seen: the reader goes on with what it opened.
 */
export async function checkNoWriter(fs: FileSystem, root: string, wait: LockWait = {}): Promise<{ stale: boolean }> {
  const path = join(root, LAYOUT.lock);
  const started = monotonicMs(); // monotonic: a wall clock stepped back must not stretch the wait
  for (;;) {
    if (ownedHere(root)) {
      throw new MailstoreError('LOCKED', `the store at ${root} is already open for writing in this process (pid ${process.pid})`, { path });
    }
    const text = await fs.readFile(path).then((bytes) => bytes.toString().trim(), async (error) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
      if ((error as NodeJS.ErrnoException).code === 'EISDIR') await (await import('./name-case.js')).refuseFoldedLock(fs, root);
      throw fromSystemError(error, 'reading the lock owner', path);
    });
    const pid = Number(text);
    const owner = Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
    if (owner === undefined || owner === process.pid || !processAlive(owner)) return { stale: owner !== undefined && owner !== process.pid };
    // LOCK copied with the store (a btrfs or LVM snapshot, an image of a live spool): its writer
    // holds the original's kernel lock file, not this one, and writes nothing here
    if ((await processHoldsFile(owner, join(root, LAYOUT.lockDb, 'LOCK'))) === false) return { stale: true };
    const waitedMs = Math.round(monotonicMs() - started);
    if (waitedMs >= (wait.waitMs ?? 0)) {
      throw new MailstoreError('LOCKED', `the store at ${root} is in use by ${await namedProcess(owner)} (LOCK); a read-only open does not read beside a writer: stop it or wait`, { path });
    }
    wait.onWaiting?.(await namedProcess(owner), waitedMs);
    await sleep(Math.min(limits.lockRetryMs, (wait.waitMs ?? 0) - waitedMs));
  }
}

/** The kernel lock, or undefined while another process holds it; any other failure is thrown as its code. */
async function openKernelLock(root: string): Promise<KernelLock | undefined> {
  const location = join(root, LAYOUT.lockDb);
  await makeLevelDirectory(location);
  if (kernelLockAvailable()) {
    // The fcntl lock LevelDB takes on lock/LOCK, without the new MANIFEST and CURRENT (3 syncs)
    // every LevelDB open writes: older versions open the LevelDB and meet the same lock.
    try {
      return await takeKernelLock(join(location, 'LOCK'));
    } catch (error) {
      throw fromSystemError(error, 'taking the lock', location);
    }
  }
  return openLevelLock(location);
}

/** The same lock taken by opening LevelDB in lock/, where fs-ext is not installed or does not load. */
async function openLevelLock(location: string): Promise<KernelLock | undefined> {
  const kernelLock = new (await levelClass())(location, { createIfMissing: true });
  try {
    await kernelLock.open();
    return { release: () => kernelLock.close() };
  } catch (error) {
    const failure = classifyLevelError(error);
    if (failure.kind === 'locked') return undefined;
    // A store the caller may read but not write lands here (ACCESS), as does a full disk (NO_SPACE).
    if (failure.kind === 'system') throw new MailstoreError(failure.code, `taking the lock ${location}: ${failure.text}${systemAdvice(failure.code)}`, { path: location, cause: error });
    throw new MailstoreError('IO', `taking the lock ${location}: ${failure.text} (lock/ holds no data: with no mailstore process running, remove it and retry)`, { path: location, cause: error });
  }
}

/**
 * "process N" for the LOCKED message ("this process" when it is ours). The holder writes its pid
 * only after it has the kernel lock, so for a moment LOCK is missing or still names the crashed
 * previous owner: read again briefly before calling it a process that is starting.
 */
async function describeHolder(fs: FileSystem, path: string): Promise<string> {
  const until = monotonicMs() + limits.lockHolderReadMs;
  for (;;) {
    const pid = Number((await fs.readFile(path).catch(() => Buffer.from(''))).toString().trim());
    if (pid === process.pid) return 'this process';
    if (Number.isSafeInteger(pid) && pid > 0 && processAlive(pid)) return namedProcess(pid);
    if (monotonicMs() >= until) return 'another process (starting: its pid is not written yet)';
    await sleep(limits.lockRetryMs / 4);
  }
}

/**
 * "process 4711 (mailstore compact)": the holder's pid and, where /proc shows it, its command, so
 * the admin knows which job to wait for or stop without looking it up.
 */
async function namedProcess(pid: number): Promise<string> {
  const command = await processCommand(pid);
  return command === undefined ? `process ${pid}` : `process ${pid} (${command})`;
}

/** The pid in the name of LOCK's temp file (`LOCK.PID.tmp`, writeOwner), else undefined. */
export function lockTempPid(name: string): number | undefined {
  const match = new RegExp(`^${LAYOUT.lock}\\.(\\d+)\\.tmp$`).exec(name);
  return match ? Number(match[1]) : undefined;
}

/** With the kernel lock held: record our pid in LOCK (whole, by rename: a reader never sees it empty). */
async function writeOwner(fs: FileSystem, root: string, kernelLock: KernelLock): Promise<{ release: () => Promise<void>; stale: boolean }> {
  const path = join(root, LAYOUT.lock);
  const mine = Buffer.from(`${process.pid}\n`);
  const temporary = join(root, `${LAYOUT.lock}.${process.pid}.tmp`); // beside LOCK: a rename within one directory
  let stale = false;
  try {
    const before = await fs.readFile(path).catch(() => undefined);
    stale = before !== undefined && !before.equals(mine);
    const handle = await fs.open(temporary, 'createOrOpen');
    try {
      await handle.truncate(0);
      await handle.write(mine, 0);
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, path);
  } catch (error) {
    await fs.unlink(temporary).catch(() => undefined);
    await kernelLock.release().catch(() => undefined);
    if ((error as NodeJS.ErrnoException).code === 'EISDIR') await (await import('./name-case.js')).refuseFoldedLock(fs, root);
    throw fromSystemError(error, 'taking lock', path);
  }
  heldHere.add(resolve(path));
  const release = async () => {
    const now = await fs.readFile(path).catch(() => undefined);
    if (now && now.equals(mine)) await fs.unlink(path).catch(() => undefined);
    heldHere.delete(resolve(path));
    await kernelLock.release().catch(() => undefined);
  };
  return { release, stale };
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, Math.max(0, ms)));
}
