// What a store (or a backup repository) holds on disk, directory by directory: the churn tests
// (test/sim/years.test.ts, test/daemon/years.test.ts) assert it follows live data, not history.
import { readdirSync, statSync } from 'node:fs';
import { expect } from 'vitest';
import { backupLimits, limits } from '../../src/limits.js';
import { join } from 'node:path';

export interface DirectoryUse { files: number; bytes: number }

/** Files (count, bytes) of each directory under `root`, recursively, keyed by relative directory ('.' for root). */
export function filesByDirectory(root: string): Map<string, DirectoryUse> {
  const out = new Map<string, DirectoryUse>();
  const walk = (dir: string, rel: string): void => {
    const here = { files: 0, bytes: 0 };
    out.set(rel || '.', here);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path, rel ? `${rel}/${entry.name}` : entry.name);
      else {
        here.files++;
        here.bytes += statSync(path).size;
      }
    }
  };
  walk(root, '');
  return out;
}

/** The sum over every directory. */
export function totalUse(dirs: Map<string, DirectoryUse>): DirectoryUse {
  return [...dirs.values()].reduce((sum, d) => ({ files: sum.files + d.files, bytes: sum.bytes + d.bytes }), { files: 0, bytes: 0 });
}

/** The directories that hold files, as 'files/bytes' (for a log line). */
export function describeUse(dirs: Map<string, DirectoryUse>): Record<string, string> {
  return Object.fromEntries([...dirs].filter(([, v]) => v.files > 0).map(([k, v]) => [k, `${v.files}/${v.bytes}`]));
}

/** What a month of one user's mail does, through a Store or a Client (the same calls). */
export interface Mailer {
  append(mailbox: string, bytes: Uint8Array): Promise<{ uid: number }>;
  messages(mailbox: string): AsyncGenerator<{ uid: number }>;
  setFlags(mailbox: string, uids: number[], change: { add: string[] }): Promise<unknown>;
  expunge(mailbox: string, uids: number[]): Promise<{ expunged: number[] }>;
  createMailbox(name: string): Promise<unknown>;
  renameMailbox(from: string, to: string): Promise<unknown>;
  deleteMailbox(name: string): Promise<unknown>;
}

/** A message of `bytes` body bytes, unique by user and serial (inline below a store's threshold, packed above). */
export function churnMessage(user: number, serial: number, bytes: number): Buffer {
  const head = `From: u${user}@example.org\r\nMessage-ID: <${user}.${serial}.${bytes}@example.org>\r\nSubject: ${serial}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), Buffer.alloc(bytes, 97 + (serial % 26)), Buffer.from('\r\n')]);
}

/**
 * One user's month: 12 deliveries into INBOX (every third `bigBytes`, the rest 500), the oldest six
 * marked seen and the oldest ten expunged (so INBOX grows by 2), a folder made, filled, renamed and
 * deleted. Returns the uids acknowledged and expunged in INBOX; `serial` numbers the messages.
 */
export async function userMonth(mailer: Mailer, user: number, month: number, serial: { next: number }, bigBytes: number): Promise<{ appended: number[]; expunged: number[] }> {
  const inbox = `user/u${user}/INBOX`;
  const appended: number[] = [];
  for (let i = 0; i < 12; i++) appended.push((await mailer.append(inbox, churnMessage(user, serial.next++, i % 3 === 0 ? bigBytes : 500))).uid);
  const uids: number[] = [];
  for await (const info of mailer.messages(inbox)) uids.push(info.uid);
  await mailer.setFlags(inbox, uids.slice(0, 6), { add: ['\\Seen'] });
  const { expunged } = await mailer.expunge(inbox, uids.slice(0, 10));
  await mailer.createMailbox(`user/u${user}/Tmp${month}`);
  await mailer.append(`user/u${user}/Tmp${month}`, churnMessage(user, serial.next++, 30_000));
  await mailer.renameMailbox(`user/u${user}/Tmp${month}`, `user/u${user}/Old${month}`);
  await mailer.deleteMailbox(`user/u${user}/Old${month}`);
  return { appended, expunged };
}

/** Leftovers of interrupted work that must never pile up: temp files of dead writers, partial packs, rebuild directories, tmp/. */
export function leftovers(dirs: Map<string, DirectoryUse>, root: string, livePids: number[] = []): string[] {
  // a temp file names its writer's pid: one of a live writer is a write in flight, not a leftover
  const inFlight = (name: string) => livePids.some((pid) => name.includes(`.${pid}.`));
  const found: string[] = [];
  for (const dir of dirs.keys()) {
    if (/(^|\/)(index|journal)\.rebuild(\/|$)/.test(dir)) found.push(dir);
    if (dir.startsWith('quarantine')) continue;
    for (const name of readdirSync(join(root, dir))) if ((name.endsWith('.tmp') && !inFlight(name)) || name.endsWith('.partial')) found.push(`${dir}/${name}`);
  }
  if ((dirs.get('tmp')?.files ?? 0) > 0) found.push('tmp/');
  return found;
}

/** Files of a directory (0 when it has none or is missing). */
export const filesIn = (dirs: Map<string, DirectoryUse>, dir: string): number => dirs.get(dir)?.files ?? 0;

export interface StoreBounds {
  /** Writers alive now: their temp files are writes in flight. */
  livePids: number[];
  packBytesMax: number;
  journalSegmentBytesMax: number;
  /** Entries quarantine/ may hold (a torn journal tail per crash at most; 0 without crashes). */
  quarantineMax?: number;
  /** Journal segments it may hold (10): a replica's retire one of its primary's retirements later. */
  journalSegmentsMax?: number;
}

/** Every kind of file of a store within bounds that follow its live bytes, never its history. */
export function expectBoundedStore(where: string, use: Map<string, DirectoryUse>, root: string, liveBytes: number, bounds: StoreBounds): void {
  expect(leftovers(use, root, bounds.livePids), `${where}: leftovers`).toEqual([]);
  expect(readdirSafe(join(root, 'quarantine')).length, `${where}: quarantine`).toBeLessThanOrEqual(bounds.quarantineMax ?? 0);
  expect(filesIn(use, 'snapshots'), `${where}: snapshots`).toBeLessThanOrEqual(limits.snapshotsKept + 1);
  expect(filesIn(use, 'journal'), `${where}: journal segments`).toBeLessThanOrEqual(bounds.journalSegmentsMax ?? 10);
  // STORE-ID, the open pack, compaction's newest outputs
  expect(filesIn(use, 'packs'), `${where}: packs`).toBeLessThanOrEqual(5 + Math.ceil(liveBytes / bounds.packBytesMax) * 2);
  expect(filesIn(use, 'index'), `${where}: index files`).toBeLessThanOrEqual(14);
  expect(filesIn(use, 'lock'), `${where}: lock files`).toBeLessThanOrEqual(8);
  expect(filesIn(use, 'run'), `${where}: run/`).toBeLessThanOrEqual(1);
  const consumers = readdirSafe(join(root, 'consumers')).filter((name) => !name.startsWith('.')); // not a cursor being written
  expect(consumers.length, `${where}: consumers ${consumers.join(' ')}`).toBeLessThanOrEqual(3);
  // packs within compaction's dead share of live bytes; journal, snapshots and index a few segments' worth
  expect(totalUse(use).bytes, `${where}: bytes`).toBeLessThanOrEqual(3 * liveBytes + 12 * bounds.journalSegmentBytesMax);
}

/** A backup repository under `forget --keep-last 2 --prune`: two snapshots and the delta chain they stand on. */
export function expectBoundedRepository(use: Map<string, DirectoryUse>): void {
  for (const area of ['snapshots', 'tips', 'data']) expect(filesIn(use, area), `repository ${area}`).toBeLessThanOrEqual(backupLimits.deltaChainMax + 2);
  expect(filesIn(use, 'locks'), 'repository locks').toBe(0);
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
