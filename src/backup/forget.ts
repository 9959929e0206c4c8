// `mailstore backup forget`: a retention policy (restic's --keep-last/daily/weekly/monthly, per
// store), and with --prune the reclaiming of data no remaining snapshot uses. Prune keeps every
// needed blob reachable through an index file at every instant (docs/BACKUP.md, invariant 4):
// new data files, then one new index file, then the old index files go, then the old data files.
import { MailstoreError, assert, fromSystemError, isMailstoreError } from '../errors.js';
import { backupLimits } from '../limits.js';
import { checkOptions } from '../store/validate.js';
import { blobIdOf } from './crypto.js';
import { snapshotBlobs } from './check.js';
import { readHealLists, writeHealList } from './heal-list.js';
import { DATA_HEADER_BYTES, decodeRecord, encodeDataHeader, recordBytes, sealedUnderOtherKeys } from './format.js';
import { listIn, lockRepository, type IndexFile, type RepoLock, type Repository, type SnapshotFile } from './repository.js';
import { listTips, orphanTips } from './tip.js';

export interface RetentionPolicy {
  last?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
}

const RETENTION_RULES = ['last', 'daily', 'weekly', 'monthly'] as const satisfies readonly (keyof RetentionPolicy)[];

export interface ForgetSummary {
  kept: { id: string; time: string; reasons: string[] }[];
  removed: { id: string; time: string }[];
  prune?: PruneSummary;
  /** Entries of the heal list that only forgotten snapshots needed, dropped from it (absent when none). */
  healDropped?: number;
}

export interface PruneSummary {
  dataFilesRemoved: number;
  dataFilesRewritten: number;
  indexFilesReplaced: number;
  /** Blob records dropped (copies included: a blob also kept elsewhere counts here too). */
  blobsRemoved: number;
  bytesFreed: number;
}

type Listed = { id: string; snapshot: SnapshotFile };

/**
 * restic's rules, each over one store's snapshots from one host, newest first: --keep-last N keeps the N newest;
 * --keep-daily N the newest of each of the last N days that have one (UTC days), weekly by ISO
 * week, monthly by calendar month. A snapshot any rule keeps is kept. "Newest" is by the time the
 * backup's clock gave it, as restic's, and the rules run a second time with "newest" by the
 * store's journal seq (reason 'daily by seq', ...): a run's date is only as good as its clock,
 * its seq is where the store was. After a clock that was days ahead was put right, the runs dated
 * in the future filled every daily slot by time and the real newest runs were forgotten; after one
 * stepped back (a dead CMOS battery booting in 2001), the runs it dated looked oldest. Where the
 * two orders agree (a clock that never jumped), the second pass keeps nothing more.
 */
export function applyPolicy(snapshots: Listed[], policy: RetentionPolicy): { keep: Map<string, string[]>; remove: Listed[] } {
  const keep = new Map<string, string[]>();
  const byStore = new Map<string, Listed[]>();
  // by host too (restic's default grouping): a store cloned to another machine (a staging VM
  // with the same nightly job) has its id; counted as one store, the clone's runs, a few seconds
  // later each night, were the newest of each day, and the original's history was forgotten
  for (const s of snapshots) listIn(byStore, `${s.snapshot.storeId}\0${s.snapshot.hostname}`).push(s);
  for (const list of byStore.values()) {
    const byTime = [...list].sort((a, b) => b.snapshot.time - a.snapshot.time || b.id.localeCompare(a.id));
    // equal seqs (no change between runs) by time, so a store whose clock never jumped orders alike
    const bySeq = [...list].sort((a, b) => (b.snapshot.seq ?? -1) - (a.snapshot.seq ?? -1) || b.snapshot.time - a.snapshot.time || b.id.localeCompare(a.id));
    keepByRules(byTime, policy, keep, '');
    keepByRules(bySeq, policy, keep, ' by seq');
  }
  return { keep, remove: snapshots.filter((s) => !keep.has(s.id)) };
}

/** Each rule over `newestFirst`: the first snapshot of each of its `count` buckets, its reason the rule's name (and `suffix` where that rule did not keep it already). */
function keepByRules(newestFirst: Listed[], policy: RetentionPolicy, keep: Map<string, string[]>, suffix: string): void {
  const rules: [string, number | undefined, (t: Date) => string][] = [
    ['last', policy.last, () => ''], ['daily', policy.daily, dayKey], ['weekly', policy.weekly, weekKey], ['monthly', policy.monthly, monthKey],
  ];
  for (const [name, count, bucket] of rules) {
    let left = count ?? 0;
    // a set, not the last key: in seq order a bucket can come back (a clock stepped back over midnight)
    const seen = new Set<string>();
    for (const s of newestFirst) {
      if (left <= 0) break;
      const key = name === 'last' ? s.id : bucket(new Date(s.snapshot.time));
      if (seen.has(key)) continue;
      seen.add(key);
      left--;
      const reasons = keep.get(s.id) ?? [];
      if (!reasons.includes(name)) listIn(keep, s.id).push(name + suffix);
    }
  }
}

/**
 * The snapshots to remove, each delta before the snapshot it builds on: a forget killed half-way
 * then leaves deltas whose parents are all there (removed oldest first, it left a delta whose
 * parent was gone: damage that `backup check` reported and restore refused).
 */
export function childrenFirst(remove: Listed[]): Listed[] {
  const pending = new Set(remove.map((s) => s.id));
  const parents = new Map<string, number>(); // id -> how many pending snapshots build on it
  for (const s of remove) {
    const parent = s.snapshot.parent;
    if (parent !== undefined && pending.has(parent)) parents.set(parent, (parents.get(parent) ?? 0) + 1);
  }
  const byId = new Map(remove.map((s) => [s.id, s]));
  const out: Listed[] = [];
  const ready = remove.filter((s) => !parents.has(s.id));
  while (ready.length > 0) {
    const s = ready.pop()!;
    out.push(s);
    const parent = s.snapshot.parent;
    if (parent === undefined || !byId.has(parent)) continue;
    const left = parents.get(parent)! - 1;
    parents.set(parent, left);
    if (left === 0) ready.push(byId.get(parent)!);
  }
  assert(out.length === remove.length, 'snapshot parents form a cycle');
  return out;
}

/**
 * Every snapshot a kept delta snapshot builds on, down to its whole one, is kept too (reason
 * 'parent'): a kept snapshot must restore (invariant 3).
 */
export function keepParents(snapshots: Listed[], keep: Map<string, string[]>): { keep: Map<string, string[]>; remove: Listed[] } {
  const byId = new Map(snapshots.map((s) => [s.id, s]));
  for (const id of [...keep.keys()]) {
    let parent = byId.get(id)?.snapshot.parent;
    while (parent !== undefined && !keep.has(parent)) {
      listIn(keep, parent).push('parent');
      parent = byId.get(parent)?.snapshot.parent;
    }
  }
  return { keep, remove: snapshots.filter((s) => !keep.has(s.id)) };
}

const dayKey = (t: Date) => t.toISOString().slice(0, 10);
const monthKey = (t: Date) => t.toISOString().slice(0, 7);
function weekKey(t: Date): string {
  const d = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate()));
  const weekday = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - weekday); // the Thursday of this ISO week decides its year
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  return `${d.getUTCFullYear()}-W${Math.ceil(((d.getTime() - yearStart) / 86_400_000 + 1) / 7)}`;
}

export async function forgetSnapshots(repo: Repository, policy: RetentionPolicy, options: { prune?: boolean } = {}): Promise<ForgetSummary> {
  // a misspelt rule ({keepLast: 1}) must not read as no rule beside one that is given: every
  // snapshot the misspelt rule meant to keep would go
  const rules = checkOptions(policy, RETENTION_RULES, 'retention rule');
  for (const [rule, n] of Object.entries(rules)) {
    if (n !== undefined && !(Number.isSafeInteger(n) && (n as number) >= 0)) throw new MailstoreError('INVALID', `retention rule ${rule} must be a whole number of snapshots (0 or more), got ${JSON.stringify(n)}`);
  }
  checkOptions(options, ['prune'], 'forget option');
  if (!Object.values(policy).some((n) => n !== undefined && n > 0)) {
    throw new MailstoreError('INVALID', 'give at least one --keep-last, --keep-daily, --keep-weekly or --keep-monthly above 0 (without one, forget would remove every snapshot)');
  }
  const lock = await lockRepository(repo, true);
  try {
    const snapshots = await readableSnapshots(repo);
    const { keep, remove } = keepParents(snapshots, applyPolicy(snapshots, policy).keep);
    if (remove.length > 0) await lock.held();
    for (const s of childrenFirst(remove)) await repo.remove('snapshots', s.id);
    if (remove.length > 0) await repo.syncArea('snapshots');
    await removeOrphanTips(repo, new Set(snapshots.filter((s) => keep.has(s.id)).map((s) => s.id)));
    const healDropped = await trimHealList(repo, snapshots.filter((s) => keep.has(s.id)));
    const summary: ForgetSummary = {
      kept: snapshots.filter((s) => keep.has(s.id)).map((s) => ({ id: s.id, time: new Date(s.snapshot.time).toISOString(), reasons: keep.get(s.id)! })),
      removed: remove.map((s) => ({ id: s.id, time: new Date(s.snapshot.time).toISOString() })),
      ...(healDropped > 0 ? { healDropped } : {}),
    };
    if (options.prune) summary.prune = await prune(repo, snapshots.filter((s) => keep.has(s.id)), lock);
    return summary;
  } finally {
    await lock.release();
  }
}

/**
 * The tips (tip.ts) of snapshots that are gone: forgotten now, or never written (a run stopped
 * between its tip and its snapshot). After the snapshots' removal is durable; not synced: a tip
 * that comes back after a crash belongs to no snapshot, so no run reads it, and the next forget
 * removes it.
 */
async function removeOrphanTips(repo: Repository, kept: Set<string>): Promise<void> {
  for (const name of orphanTips(await listTips(repo), kept)) {
    await repo.fs.unlink(repo.path('tips', name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw fromSystemError(error, 'removing', repo.path('tips', name));
    });
  }
}

/**
 * The heal list (heal-list.ts) without the blobs no kept snapshot needs: those only forgotten
 * snapshots needed would otherwise be looked for in the store by every backup, and reported
 * pending by every check, for ever. After the snapshots' removal is durable; the shorter list is
 * durable before the old one goes. A list that does not read is left alone. Returns how many
 * entries went (0 without a list: one readdir).
 */
async function trimHealList(repo: Repository, kept: Listed[]): Promise<number> {
  const heal = await readHealLists(repo);
  if (heal.entries.length === 0) return 0;
  const needed = new Set<string>();
  for (const s of kept) for (const { hash } of snapshotBlobs(s.snapshot)) needed.add(blobIdOf(hash, repo.keys).toString('hex'));
  const left = heal.entries.filter((entry) => needed.has(entry.id.toString('hex')));
  if (left.length === heal.entries.length) return 0;
  await writeHealList(repo, left, heal.names);
  return heal.entries.length - left.length;
}

/** Every snapshot, or REFUSED: a snapshot that cannot be read cannot say which blobs it needs. */
async function readableSnapshots(repo: Repository): Promise<Listed[]> {
  try {
    return await repo.snapshots();
  } catch (error) {
    if (isMailstoreError(error, 'CORRUPT') || isMailstoreError(error, 'IO')) {
      throw new MailstoreError('REFUSED', `a snapshot file does not read (${error.message}); forget and prune change nothing until 'mailstore backup check' is clean${otherKeysAdvice(error)}`, { path: error.path, cause: error });
    }
    throw error;
  }
}

interface Plan {
  /** Blob id (hex) -> its store hash, for every blob a kept snapshot needs. */
  needed: Map<string, Buffer>;
  /** Data file -> the needed blobs chosen in it (one place per blob). */
  chosen: Map<string, [string, number, number][]>;
  /** Data file -> the blob ids listed in it (an interrupted prune may list a file twice). */
  listed: Map<string, Set<string>>;
  indexFiles: string[];
}

async function planPrune(repo: Repository, kept: Listed[], present: Set<string>): Promise<Plan> {
  const needed = new Map<string, Buffer>();
  for (const s of kept) for (const { hash } of snapshotBlobs(s.snapshot)) needed.set(blobIdOf(hash, repo.keys).toString('hex'), hash);
  const plan: Plan = { needed, chosen: new Map(), listed: new Map(), indexFiles: await repo.list('index') };
  const places = new Map<string, { file: string; offset: number; length: number }[]>();
  for (const name of plan.indexFiles) {
    for (const { file, blobs } of (await readIndexForPrune(repo, name)).files) {
      const ids = plan.listed.get(file) ?? new Set<string>();
      plan.listed.set(file, ids);
      for (const [idBytes, offset, length] of blobs) {
        const id = Buffer.from(idBytes).toString('hex');
        ids.add(id);
        if (needed.has(id) && present.has(file)) listIn(places, id).push({ file, offset, length }); // a copy in a file that is gone is no copy
      }
    }
  }
  const lost = [...needed.keys()].filter((id) => !places.has(id));
  if (lost.length > 0) throw new MailstoreError('REFUSED', `${lost.length} blobs kept snapshots need are in no index file; prune changes nothing until 'mailstore backup check' is clean`);
  // A blob listed twice (an interrupted prune, two backups at once) is kept in the file most of
  // whose blobs are needed, so the fewest files are rewritten.
  const neededShare = new Map<string, number>();
  for (const [file, ids] of plan.listed) neededShare.set(file, [...ids].filter((id) => places.get(id)?.some((p) => p.file === file)).length / ids.size);
  for (const [id, list] of places) {
    const best = list.length === 1 ? list[0]! : await verifiedCopy(repo, id, plan.needed.get(id)!, list, neededShare);
    listIn(plan.chosen, best.file).push([id, best.offset, best.length]);
  }
  return plan;
}

/**
 * Of a blob's copies, the one to keep: the first that verifies, in the order of their files' shares
 * of needed blobs. One copy may be a damaged record a backup healed (heal-list.ts): keeping it as
 * the copy of a file kept whole would drop the good one from the file that is rewritten. None
 * verifies: the best by share, as before (a rewrite then refuses it; check reports it).
 */
async function verifiedCopy(repo: Repository, id: string, hash: Buffer, list: { file: string; offset: number; length: number }[], share: Map<string, number>) {
  const ordered = [...list].sort((a, b) => share.get(b.file)! - share.get(a.file)!);
  for (const place of ordered) {
    try {
      const record = await repo.readRecord(place, recordBytes(place.length));
      await decodeRecord(record, Buffer.from(id, 'hex'), hash, repo.keys, repo.path('data', place.file));
      return place;
    } catch (error) {
      if (!isMailstoreError(error, 'CORRUPT')) throw error;
    }
  }
  return ordered[0]!;
}

async function readIndexForPrune(repo: Repository, name: string): Promise<IndexFile> {
  try {
    return await repo.readMetadata<IndexFile>('index', name);
  } catch (error) {
    if (!isMailstoreError(error, 'CORRUPT')) throw error;
    throw new MailstoreError('REFUSED', `index file ${name} does not read (${error.message}); prune would lose track of its data: run 'mailstore backup check'${otherKeysAdvice(error)}`, { path: error.path, cause: error });
  }
}

/** For a file sealed under other keys: the config may be another repository's (check says so: config-mismatch). */
function otherKeysAdvice(error: unknown): string {
  return sealedUnderOtherKeys(error) ? " (if it reports config-mismatch, put back the repository's own config: its data is not unreferenced)" : '';
}

async function prune(repo: Repository, kept: Listed[], lock: RepoLock): Promise<PruneSummary> {
  const present = new Set(await repo.list('data'));
  const plan = await planPrune(repo, kept, present);
  const summary: PruneSummary = { dataFilesRemoved: 0, dataFilesRewritten: 0, indexFilesReplaced: plan.indexFiles.length, blobsRemoved: 0, bytesFreed: 0 };
  const newIndex: IndexFile = { files: [] };
  const rewrite = new RepackWriter(repo, newIndex);
  for (const [file, ids] of plan.listed) {
    const count = ids.size;
    const chosen = plan.chosen.get(file) ?? [];
    if (chosen.length === count && present.has(file)) { newIndex.files.push({ file, blobs: chosen.map(([id, o, l]) => [Buffer.from(id, 'hex'), o, l]) }); continue; }
    summary.blobsRemoved += count - chosen.length;
    if (chosen.length > 0) summary.dataFilesRewritten++;
    for (const [id, offset, length] of chosen) {
      const record = await repo.readRecord({ file, offset, length }, recordBytes(length));
      await decodeRecord(record, Buffer.from(id, 'hex'), plan.needed.get(id), repo.keys, repo.path('data', file)); // never copy damage forward
      await rewrite.add(Buffer.from(id, 'hex'), record);
    }
  }
  await rewrite.flush();
  await lock.held(); // before the first removal: a backup that took this lock for stale may be writing
  // The new index lists every kept blob before any old index file goes (invariant 4).
  const written = await repo.writeIndex(newIndex);
  for (const name of plan.indexFiles) if (name !== written) await repo.remove('index', name);
  await repo.syncArea('index');
  const listedNow = new Set(newIndex.files.map((f) => f.file));
  for (const file of present) {
    if (listedNow.has(file)) continue;
    summary.bytesFreed += (await repo.fs.stat(repo.path('data', file)).catch(() => ({ size: 0 }))).size;
    await repo.remove('data', file);
    summary.dataFilesRemoved++;
  }
  for (const area of ['data', 'index', 'snapshots', 'tips'] as const) for (const name of await repo.leftovers(area)) await repo.fs.unlink(repo.path(area, name)).catch(() => undefined);
  await repo.syncArea('data');
  return summary;
}

/** Copies verified records unchanged into new data files (durable before the new index names them). */
class RepackWriter {
  private parts: Buffer[] = [];
  private blobs: [Buffer, number, number][] = [];
  private bytes = 0;

  constructor(private readonly repo: Repository, private readonly index: IndexFile) {}

  async add(id: Buffer, record: Buffer): Promise<void> {
    if (this.parts.length === 0) {
      this.parts.push(encodeDataHeader(Boolean(this.repo.keys)));
      this.bytes = DATA_HEADER_BYTES;
    }
    this.blobs.push([id, this.bytes, record.length - recordBytes(0)]);
    this.parts.push(record);
    this.bytes += record.length;
    if (this.bytes >= backupLimits.packBytesTarget) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.blobs.length === 0) return;
    const file = await this.repo.writeContent('data', Buffer.concat(this.parts, this.bytes));
    this.index.files.push({ file, blobs: this.blobs });
    this.parts = [];
    this.blobs = [];
    this.bytes = 0;
  }
}
