// mailstore reconstruct: rebuild the index from what is on disk. From the journal by default (into a
// fresh LevelDB, swapped in atomically); with --from-packs, when the journal is lost too, blob
// locations come from a pack scan and messages nothing refers to go into lost+found by date.
import { join } from 'node:path';
import { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { ensureDir, writeFileDurable } from '../fs/durable.js';
import { keys } from '../keys/index-keys.js';
import { limits } from '../limits.js';
import { LAYOUT, verifyIdentity } from '../store/identity.js';
import { moveAside } from '../store/recovery.js';
import { Store } from '../store/store.js';
import type { BlobRecord } from '../store/records.js';

export interface ReconstructOptions {
  fs?: FileSystem;
  /** Compare a fresh rebuild with the current index; change nothing. */
  check?: boolean;
  fromPacks?: boolean;
  force?: boolean;
  onDifference?: (key: Buffer, detail: string) => void;
}

export interface ReconstructResult {
  records: number;
  differences: number;
  messagesBefore: number;
  messagesAfter: number;
  lostAndFound?: { mailbox: string; messages: number };
  journalRecreated: boolean;
  findings: string[];
}

export async function reconstruct(root: string, options: ReconstructOptions = {}): Promise<ReconstructResult> {
  const fs = options.fs ?? nodeFileSystem;
  const journalRecreated = options.fromPacks && !options.check ? await recreateLostJournal(fs, root) : false;
  const store = await Store.open(root, { fs, probeIndex: 'always' });
  try {
    const journalEmpty = store.journal.lastSeq === 0;
    const packs = await store.packs.listPacks();
    if (!options.fromPacks && journalEmpty && packs.length > 0 && !options.force) {
      throw new MailstoreError('REFUSED',
        `the journal holds no records but ${packs.length} pack(s) hold messages: rebuilding from the journal would produce an empty store. ` +
        `Nothing was changed. Use 'mailstore reconstruct --from-packs' to recover the messages from the packs.`, { path: root });
    }
    const check = await store.reconstructIndex({
      check: options.check,
      onDifference: options.onDifference,
      guard: ({ messagesAfter, messagesBefore }) => {
        if (messagesAfter < messagesBefore * 0.75 && !options.force && !options.fromPacks) {
          throw new MailstoreError('REFUSED',
            `a rebuild from the journal would keep ${messagesAfter} of the ${messagesBefore} messages the index has now. ` +
            `Nothing was changed. If the journal is damaged, try --from-packs; --force rebuilds anyway.`, { path: root });
        }
      },
    });
    const result: ReconstructResult = { ...check, journalRecreated, findings: store.health.findings };
    if (options.check) return result;
    if (options.fromPacks) result.lostAndFound = await adoptUnreferenced(store);
    return result;
  } finally {
    await store.close();
  }
}

/** The journal directory is gone or foreign: set it aside (never delete) and start an empty one. */
async function recreateLostJournal(fs: FileSystem, root: string): Promise<boolean> {
  try {
    await verifyIdentity(fs, root);
    return false;
  } catch (error) {
    if (!(error instanceof MailstoreError) || error.code !== 'UNMOUNTED' || !error.path?.startsWith(join(root, LAYOUT.journal))) throw error;
  }
  const identity = JSON.parse((await fs.readFile(join(root, LAYOUT.identity))).toString('utf8').split('\n')[0]) as { storeId: string };
  await moveAside(fs, root, join(root, LAYOUT.journal), 'journal-lost');
  await ensureDir(fs, join(root, LAYOUT.journal));
  await writeFileDurable(fs, join(root, LAYOUT.journal, LAYOUT.marker), Buffer.from(identity.storeId + '\n'));
  await verifyIdentity(fs, root); // packs and STORE must still be right
  return true;
}

/** Messages in the packs that the index does not know go to lost+found, oldest first, fresh UIDVALIDITY. */
async function adoptUnreferenced(store: Store): Promise<{ mailbox: string; messages: number }> {
  const found: { hash: Buffer; size: number; date: number; pack: number; offset: number; order: number }[] = [];
  const seen = new Set<string>();
  let order = 0;
  for (const pack of await store.packs.listPacks()) {
    for await (const item of store.packs.scan(pack)) {
      if (item.kind !== 'blob' || !item.valid) continue;
      const hex = item.hash.toString('hex');
      if (seen.has(hex) || (await store.db.get<BlobRecord>(keys.blob(item.hash)))) continue;
      seen.add(hex);
      const head = await store.packs.read({ pack, offset: item.offset, length: item.length }, item.hash);
      found.push({ hash: item.hash, size: item.length, date: headerDate(head), pack, offset: item.offset, order: order++ });
    }
  }
  if (found.length === 0) return { mailbox: '', messages: 0 };
  found.sort((a, b) => a.date - b.date || a.order - b.order);
  let mailbox = 'lost+found';
  const existing = await store.listMailboxes({ pattern: 'lost+found' });
  if (existing.length > 0) mailbox = `lost+found/${new Date().toISOString().replace(/[:.]/g, '-')}`;
  await store.createMailbox(mailbox);
  for (let i = 0; i < found.length; i += limits.lostFoundAdoptBlobs) await store.adoptBlobs(mailbox, found.slice(i, i + limits.lostFoundAdoptBlobs));
  return { mailbox, messages: found.length };
}

function headerDate(message: Buffer): number {
  const head = message.subarray(0, limits.dateHeaderScanBytes).toString('latin1');
  const end = head.search(/\r?\n\r?\n/);
  const m = /^Date:[ \t]*(.+(?:\r?\n[ \t].+)*)/im.exec(end === -1 ? head : head.slice(0, end));
  const ms = m ? Date.parse(m[1].replace(/\r?\n[ \t]+/g, ' ').replace(/\s*\([^)]*\)\s*$/, '')) : NaN;
  return Number.isFinite(ms) ? ms : 0;
}
