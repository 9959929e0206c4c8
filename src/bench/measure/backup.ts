// Backup and restore (issue 14), beside restic on the very same messages laid out as a Maildir
// (tools/bench/peers/restic.sh). Two modes:
//
//   node dist/src/bench/measure/backup.js --prepare --dir D --list LIST [--mailboxes 20] [--deliveries 1000] [--expunges 2000]
//     once per corpus (reused): D/maildir/boxNN/cur/* (every corpus message, message i in box i mod N),
//     D/store-base (the same messages, same boxes, through the library), and the change set both
//     sides apply before their incremental run: D/new/boxNN/cur/* (new messages: a corpus message
//     with an added header, so a new blob) and D/expunge.txt (Maildir paths and store uids).
//   node dist/src/bench/measure/backup.js --run --dir D --cli CLI [--mailbox box07] [--peer NAME] [--key-file F]
//     a copy of store-base, then `mailstore backup` (full), the changes, `mailstore backup`
//     (incremental), `mailstore restore` of the whole store and of one mailbox; each a CLI process
//     (node start included, as restic's are), one JSON line each, and the repository's bytes.
//   node dist/src/bench/measure/backup.js --floor --dir D
//     the compression floor: every message through the backup's compressor (a new repository's codec), nothing else.
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { CompressPool } from '../../backup/compress-pool.js';
import { zstdAvailable, zstdOneShotModule } from '../../backup/zstd.js';
import { phaseNote } from '../../phases.js';
import { nodeFileSystem as fs } from '../../fs/node-fs.js';
import { backupLimits } from '../../limits.js';
import { Store } from '../../store/store.js';
import { emit, firstListed, parseFlags, progress, required, round, runMeasurement, type BenchResult } from '../common.js';
import { exists, makeDirectories, readText, removeTree, warmPageCache, writeText } from '../files.js';

const { values, switches } = parseFlags(process.argv.slice(2));
const dir = required(values, 'dir');

/** What --prepare leaves in D/prepared.json for --run and restic.sh. */
export interface Prepared {
  messages: number;
  bytes: number;
  mailboxes: string[];
  /** Message bytes per mailbox before the changes, and after them (the snapshot restored). */
  boxBytes: Record<string, number>;
  boxBytesAfter: Record<string, number>;
  deliveries: number;
  deliveryBytes: number;
  /** [mailbox, uid] of each expunged message (the same messages as expunge.txt's Maildir files). */
  expunge: [string, number][];
}

const boxName = (n: number) => `box${String(n).padStart(2, '0')}`;
const fileName = (i: number) => `${String(i).padStart(6, '0')}.bench:2,S`;

async function prepare(): Promise<void> {
  const marker = join(dir, 'prepared.json');
  if (await exists(marker)) {
    const p = JSON.parse((await readText(marker))!) as Prepared;
    emit({ peer: 'mailstore', measurement: 'backup-prepare', messages: p.messages, bytes: p.bytes, note: `reused ${dir}` });
    return;
  }
  await removeTree(dir);
  const list = await firstListed(required(values, 'list'), Infinity);
  const boxes = Number(values.get('mailboxes') ?? 20);
  const deliveries = Math.min(Number(values.get('deliveries') ?? 1000), list.length);
  const expunges = Math.min(Number(values.get('expunges') ?? 2000), Math.floor(list.length / 2));
  const mailboxes = Array.from({ length: boxes }, (_, n) => boxName(n));
  for (const box of mailboxes) { await makeDirectories(join(dir, 'maildir', box, 'cur')); await makeDirectories(join(dir, 'new', box, 'cur')); }
  const prepared: Prepared = { messages: list.length, bytes: 0, mailboxes, boxBytes: {}, boxBytesAfter: {}, deliveries, deliveryBytes: 0, expunge: [] };
  for (const box of mailboxes) { prepared.boxBytes[box] = 0; }
  const store = await Store.open(join(dir, 'store-base'), { create: true });
  const uids = new Map<number, number>();
  const sizes: number[] = [];
  try {
    for (const box of mailboxes) await store.createMailbox(box);
    // a batch per mailbox of every `boxes`-th message, in corpus order
    for (let start = 0; start < list.length; start += 500 * boxes) {
      for (let b = 0; b < boxes; b++) {
        const indexes: number[] = [];
        for (let i = start + b; i < Math.min(list.length, start + 500 * boxes); i += boxes) indexes.push(i);
        if (indexes.length === 0) continue;
        const items = [];
        for (const i of indexes) {
          const bytes = await fs.readFile(list[i]!);
          sizes[i] = bytes.length;
          prepared.bytes += bytes.length;
          prepared.boxBytes[mailboxes[b]!]! += bytes.length;
          await writeText(join(dir, 'maildir', mailboxes[b]!, 'cur', fileName(i)), bytes);
          items.push({ bytes, flags: ['\\Seen'] });
        }
        const results = await store.appendBatch(mailboxes[b]!, items);
        results.forEach((r, k) => uids.set(indexes[k]!, r.uid));
      }
    }
  } finally {
    await store.close();
  }
  prepared.boxBytesAfter = { ...prepared.boxBytes };
  // every k-th message expunged, spread over the whole corpus and every mailbox
  const step = Math.max(1, Math.floor(list.length / expunges));
  const expungeFiles: string[] = [];
  for (let i = 3 % step; i < list.length && prepared.expunge.length < expunges; i += step) {
    const box = mailboxes[i % boxes]!;
    prepared.expunge.push([box, uids.get(i)!]);
    prepared.boxBytesAfter[box]! -= sizes[i]!;
    expungeFiles.push(join(box, 'cur', fileName(i)));
  }
  for (let n = 0; n < deliveries; n++) {
    const source = await fs.readFile(list[(n * 7) % list.length]!);
    const bytes = Buffer.concat([Buffer.from(`X-Bench-Delivery: ${n}\r\n`), source]);
    const box = mailboxes[n % boxes]!;
    prepared.deliveryBytes += bytes.length;
    prepared.boxBytesAfter[box]! += bytes.length;
    await writeText(join(dir, 'new', box, 'cur', fileName(list.length + n)), bytes);
  }
  await writeText(join(dir, 'expunge.txt'), `${expungeFiles.join('\n')}\n`);
  await writeText(marker, JSON.stringify(prepared));
  emit({ peer: 'mailstore', measurement: 'backup-prepare', messages: prepared.messages, bytes: prepared.bytes, note: `made ${dir}` });
  progress(`backup: prepared ${list.length} messages in ${boxes} mailboxes, ${deliveries} deliveries, ${prepared.expunge.length} expunges in ${dir}`);
}

function exec(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string; seconds: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env: { ...process.env, ...env } } : {}) });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr, seconds: (performance.now() - started) / 1000 }));
  });
}

/**
 * Runs the CLI with --json and returns its summary and wall seconds; throws with its last error
 * line. `phases`: with MAILSTORE_BACKUP_PHASES set, and the phases the backup printed (src/phases.ts).
 */
async function cli<T>(args: string[], options: { phases?: boolean } = {}): Promise<{ summary: T; seconds: number; phases?: string }> {
  const ran = await exec(process.execPath, [required(values, 'cli'), ...args, '--json'], options.phases ? { MAILSTORE_BACKUP_PHASES: '1' } : undefined);
  if (ran.code !== 0) throw new Error(`mailstore ${args.join(' ')} exited ${ran.code}: ${ran.stderr.trim().split('\n').pop()}`);
  return { summary: JSON.parse(ran.stdout) as T, seconds: round(ran.seconds, 4), ...(options.phases ? { phases: phaseNote(ran.stderr) } : {}) };
}

const du = async (path: string) => Number((await exec('du', ['-sb', path])).stdout.split('\t')[0]);

/** The changes restic.sh applies to its Maildir: the new messages delivered, the listed ones expunged. */
async function applyChanges(store: string, prepared: Prepared): Promise<void> {
  const s = await Store.open(store);
  try {
    for (const box of prepared.mailboxes) {
      const names = await fs.readdir(join(dir, 'new', box, 'cur'));
      const items = [];
      for (const name of names) items.push({ bytes: await fs.readFile(join(dir, 'new', box, 'cur', name)), flags: ['\\Seen'] });
      if (items.length) await s.appendBatch(box, items);
      const uids = prepared.expunge.filter(([b]) => b === box).map(([, uid]) => uid);
      if (uids.length) await s.expunge(box, uids);
    }
  } finally {
    await s.close();
  }
}

interface BackupJson { messages: number; newBlobs: number; bytesRead: number; bytesAdded: number }
interface RestoreJson { messages: number; bytes: number; bytesRead: number }

async function runAll(): Promise<void> {
  const prepared = JSON.parse((await readText(join(dir, 'prepared.json')))!) as Prepared;
  const peer = values.get('peer') ?? 'mailstore';
  const key = values.get('key-file');
  const one = values.get('mailbox') ?? 'box07';
  const store = join(dir, `store-${peer}`), repo = join(dir, `repo-${peer}`), restored = join(dir, `restored-${peer}`);
  for (const path of [store, repo, restored, `${restored}-one`]) await removeTree(path);
  const cp = await exec('cp', ['-a', join(dir, 'store-base'), store]);
  if (cp.code !== 0) throw new Error(`cp -a store-base failed: ${cp.stderr}`);
  // the copy written back, then every file of it read once: a warm page cache and no write-back
  // under the clock, the state restic.sh leaves its Maildir in (a fresh copy was hot and dirty, the
  // Maildir cold after a full run's other steps: session 25 measured restic 3.9-4.0 s warm, 5.9-7.1 s cold)
  await exec('sync', []);
  await warmPageCache(store);
  const keyArgs = key ? ['--key-file', key] : [];
  const note = `\`mailstore backup\`/\`restore\` process (node start included)${key ? ', encrypted (--key-file)' : ''}; ${prepared.mailboxes.length} mailboxes; the store's files read once before the full backup (warm page cache, as restic's Maildir)`;
  const line = (measurement: string, fields: Partial<BenchResult>) => emit({ peer, measurement, ...fields });

  const full = await cli<BackupJson>(['--store', store, 'backup', '--repo', repo, ...keyArgs]);
  const fullRepo = await du(repo);
  line('backup-full', { messages: prepared.messages, bytes: prepared.bytes, seconds: full.seconds, repo_bytes: fullRepo, blobs_new: full.summary.newBlobs, note: `${note}; full backup of the store into a new repository` });

  await applyChanges(store, prepared);
  const incremental = await cli<BackupJson>(['--store', store, 'backup', '--repo', repo, ...keyArgs], { phases: true });
  const messagesAfter = incremental.summary.messages;
  line('backup-incremental', {
    messages: messagesAfter, bytes: incremental.summary.bytesRead, seconds: incremental.seconds, blobs_new: incremental.summary.newBlobs,
    note: `${note}; after ${prepared.deliveries} deliveries and ${prepared.expunge.length} expunges; bytes = message bytes read from the store (${incremental.summary.newBlobs} new blobs)${incremental.phases ? `; wall ms by phase (MAILSTORE_BACKUP_PHASES): ${incremental.phases}` : ''}`,
  });

  // the fixed part of every incremental run (start, store open, the whole state read, the snapshot file): nothing new to copy
  const unchanged = await cli<BackupJson>(['--store', store, 'backup', '--repo', repo, ...keyArgs]);
  line('backup-unchanged', { messages: unchanged.summary.messages, seconds: unchanged.seconds, blobs_new: unchanged.summary.newBlobs, note: `${note}; a third backup with nothing changed: the fixed cost of an incremental run (process start, store open, the state read, the snapshot file)` });

  const whole = await cli<RestoreJson>(['restore', '--repo', repo, ...keyArgs, '--to', restored]);
  line('restore', { messages: whole.summary.messages, bytes: whole.summary.bytes, seconds: whole.seconds, bytes_read: whole.summary.bytesRead, note: `${note}; the latest snapshot into a new store` });

  const part = await cli<RestoreJson>(['restore', '--repo', repo, ...keyArgs, '--mailbox', one, '--to', `${restored}-one`]);
  line('restore-mailbox', {
    messages: part.summary.messages, bytes: part.summary.bytes, seconds: part.seconds, bytes_read: part.summary.bytesRead, mailbox_bytes: prepared.boxBytesAfter[one],
    note: `${note}; ${one} of the latest snapshot into a new store; read ${part.summary.bytesRead} bytes of the repository for a mailbox of ${prepared.boxBytesAfter[one]} message bytes`,
  });
  line('repository', { messages: messagesAfter, bytes: prepared.bytes, repo_bytes: await du(repo), repo_full_bytes: fullRepo, note: `${note}; du -sb of the repository after both backups (after the full one: ${fullRepo})` });
  for (const path of [store, repo, restored, `${restored}-one`]) await removeTree(path);
}

/**
 * The floor under a compressing backup: the corpus's bytes (read into memory first, not timed)
 * through the backup's own compressor, nothing else. A full backup cannot beat it without
 * compressing less (a bigger repository).
 *
 * It feeds the compressor as BlobCopier does: at most `batchesInFlight` batches of
 * `compressBatchBlobs` blobs asked for at once, and each compressed blob let go once its length is
 * counted (a backup writes it and drops it). Until session 18 every batch was asked for at once and
 * every output kept to the end: the binding returns each output in a buffer of its own (the Vec its
 * streaming encoder grew), so 411 MB of outputs stayed resident (RSS 1.1 GB), none of their pages was
 * ever reused, and each was a fresh page fault: 111k faults against 31k, user+sys 5.2-6.1 s against
 * 3.3-4.1 s for the same compression on a loaded machine (floor 4.1-6.2 s wall against 2.7-4.5 s).
 * That measured the page faults and the collector of a run nobody makes, not compression.
 */
async function compressFloor(): Promise<void> {
  const prepared = JSON.parse((await readText(join(dir, 'prepared.json')))!) as Prepared;
  const read: Buffer[] = [];
  for (const box of prepared.mailboxes) for (const name of await fs.readdir(join(dir, 'maildir', box, 'cur'))) read.push(await fs.readFile(join(dir, 'maildir', box, 'cur', name)));
  // each batch's blobs side by side in a shared buffer, as the backup's copier reads them (the workers read them there)
  const blobs: Buffer[] = [];
  for (let i = 0; i < read.length; i += backupLimits.compressBatchBlobs) {
    const batch = read.slice(i, i + backupLimits.compressBatchBlobs);
    const shared = Buffer.from(new SharedArrayBuffer(batch.reduce((a, b) => a + b.length, 0)));
    let at = 0;
    for (const b of batch) { blobs.push(shared.subarray(at, at + b.length)); b.copy(shared, at); at += b.length; }
  }
  const codec = zstdAvailable ? 'zstd' : 'brotli'; // a new repository's (zstd.ts)
  const pool = new CompressPool(codec);
  try {
    await pool.compress(blobs.slice(0, 4)); // the workers started
    const started = performance.now();
    const cpu = process.cpuUsage();
    const window: Promise<Buffer[]>[] = [];
    let out = 0;
    const take = async () => { for (const b of await window.shift()!) out += b.length; };
    for (let i = 0; i < blobs.length; i += backupLimits.compressBatchBlobs) {
      window.push(pool.compress(blobs.slice(i, i + backupLimits.compressBatchBlobs)));
      if (window.length >= backupLimits.batchesInFlight) await take();
    }
    while (window.length > 0) await take();
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    const bytes = blobs.reduce((a, b) => a + b.length, 0);
    emit({
      peer: 'floor-compress', measurement: 'backup-full', messages: blobs.length, bytes, seconds: round(seconds, 4), compressed_bytes: out,
      cpu_user_seconds: round(used.user / 1e6, 3), cpu_sys_seconds: round(used.system / 1e6, 3),
      note: `${codec === 'zstd' ? `zstd level ${backupLimits.zstdLevel} ${zstdOneShotModule ? 'one shot (zstd-napi) through the backup\'s compression workers' : 'on libuv\'s thread pool'}` : `Brotli quality ${backupLimits.brotliQuality} through the backup's compression workers`} over every message on ${availableParallelism()} core(s), fed as a backup feeds it (${backupLimits.batchesInFlight} batches of ${backupLimits.compressBatchBlobs} in flight, each output dropped once counted), nothing else (no reads, hashes or writes): ${round((100 * out) / bytes, 1)} % of the bytes; CPU ${round(used.user / 1e6, 2)} s user + ${round(used.system / 1e6, 2)} s sys`,
    });
  } finally {
    await pool.close();
  }
}

const mode = switches.has('prepare') ? 'prepare' : switches.has('floor') ? 'floor' : 'run';
await runMeasurement(mode === 'floor' ? 'floor-compress' : values.get('peer') ?? 'mailstore', mode === 'prepare' ? 'backup-prepare' : 'backup-full', async () => {
  if (mode === 'prepare') await prepare();
  else if (mode === 'floor') await compressFloor();
  else await runAll();
});
