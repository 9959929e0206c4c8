// Everything at once, the way a busy server runs it (issues 12 and 14, hardening): one store served
// by `mailstore serve` with one synchronous replica, and at the same time LMTP deliveries (several
// connections, some bodies over 1 MiB, the same bodies to several mailboxes so dedup happens),
// client appends, expunges, flag changes, copies, moves, mailbox creates, renames and deletes, a user
// delete now and then, and the CLI's compact, snapshot, backup (incremental, repeatedly), backup
// forget --prune and scrub; at random moments the daemon, a CLI command or the replica is SIGKILLed
// (and started again). Every acknowledged operation goes into a model; after each kill and at the
// end the writers are paused and the store is checked against it: every acknowledged message there
// with its bytes (re-hashed) and flags, the replica equal to the primary, scrub clean, a fresh backup
// restored into a new store equal to the store, and (with the daemon stopped) reconstruct --check
// clean. The object-storage tier needs Ceph's radosgw: it is left out here.
//
//   node dist/tools/chaos-all.js [--minutes N] [--seed S] [--dir DIR] [--keep] [--clients N] [--lmtp N]
// (3 client workers and 3 LMTP connections by default; prints its result as JSON, exit 1 on a failure)
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Client } from '../src/client/client.js';
import { hashBytes, hashHex, hashReady } from '../src/hash/blake3.js';
import { Store } from '../src/store/store.js';
import { rng } from './soak.js';

const here = fileURLToPath(new URL('.', import.meta.url));
/** The CLI as a user runs it (package.json's bin): beside this file in dist/, or built there when this runs from source (vitest). */
const BIN = existsSync(resolve(here, '../src/cli/main.cjs')) ? resolve(here, '../src/cli/main.cjs') : resolve(here, '../dist/src/cli/main.cjs');

// ---- what the store must hold -----------------------------------------------------------------

interface Message { hash: string; flags: Set<string> }
/** `unplaced`: the hashes of deliveries acknowledged over LMTP, whose replies carry no uid (placed by the next check). */
interface Box { uidValidity?: number; messages: Map<number, Message>; uidHigh: number; unplaced: string[] }
/** One owner's mailboxes (a client worker's or an LMTP worker's users): name -> mailbox. */
type Model = Map<string, Box>;

type Op =
  | { kind: 'append'; mailbox: string; hash: string; flags: string[] }
  | { kind: 'deliver'; mailboxes: string[]; hash: string }
  | { kind: 'flags'; mailbox: string; uids: number[]; add?: string[]; remove?: string[] }
  | { kind: 'expunge'; mailbox: string; uids: number[] }
  | { kind: 'copy' | 'move'; from: string; uids: number[]; to: string }
  | { kind: 'create'; mailbox: string }
  | { kind: 'rename'; from: string; to: string }
  | { kind: 'delete'; mailbox: string }
  | { kind: 'deleteUser'; user: string };

const cloneModel = (m: Model): Model => new Map([...m].map(([name, box]) => [name, {
  uidValidity: box.uidValidity, uidHigh: box.uidHigh, unplaced: [...box.unplaced],
  messages: new Map([...box.messages].map(([uid, msg]) => [uid, { hash: msg.hash, flags: new Set(msg.flags) }])),
}]));

/** New uids the store gave in `mailbox` (actual's uids the model lacks), ascending. */
type NewUids = (mailbox: string) => number[];

/**
 * `op` applied to `model`, the uids it assigned taken from `newUids` (the result of the call, or
 * what the store shows when the call's outcome is unknown). Throws when they do not fit.
 */
function apply(model: Model, op: Op, newUids: NewUids): void {
  const box = (name: string) => {
    const b = model.get(name);
    if (!b) throw new Error(`${op.kind}: no mailbox ${name} in the model`);
    return b;
  };
  const add = (b: Box, name: string, uid: number, msg: Message) => {
    if (uid <= b.uidHigh) throw new Error(`${name}: uid ${uid} given again (highest seen ${b.uidHigh})`);
    b.uidHigh = uid;
    b.messages.set(uid, msg);
  };
  switch (op.kind) {
    case 'append': {
      const uids = newUids(op.mailbox);
      if (uids.length !== 1) throw new Error(`append to ${op.mailbox}: ${uids.length} new uids`);
      add(box(op.mailbox), op.mailbox, uids[0], { hash: op.hash, flags: new Set(op.flags) });
      return;
    }
    case 'deliver':
      for (const name of op.mailboxes) {
        const uids = newUids(name);
        if (uids.length !== 1) throw new Error(`delivery to ${name}: ${uids.length} new uids`);
        add(box(name), name, uids[0], { hash: op.hash, flags: new Set() });
      }
      return;
    case 'flags':
      for (const uid of op.uids) {
        const msg = box(op.mailbox).messages.get(uid);
        if (!msg) continue;
        for (const f of op.add ?? []) msg.flags.add(f);
        for (const f of op.remove ?? []) msg.flags.delete(f);
      }
      return;
    case 'expunge':
      for (const uid of op.uids) box(op.mailbox).messages.delete(uid);
      return;
    case 'copy':
    case 'move': {
      const source = box(op.from);
      const present = op.uids.filter((u) => source.messages.has(u)).sort((a, b) => a - b);
      const uids = newUids(op.to);
      if (uids.length !== present.length) throw new Error(`${op.kind} ${op.from} -> ${op.to}: ${uids.length} new uids for ${present.length} messages`);
      const target = box(op.to);
      present.forEach((u, i) => {
        const msg = source.messages.get(u)!;
        add(target, op.to, uids[i], { hash: msg.hash, flags: new Set(msg.flags) });
        if (op.kind === 'move') source.messages.delete(u);
      });
      return;
    }
    case 'create':
      model.set(op.mailbox, { messages: new Map(), uidHigh: 0, unplaced: [] });
      return;
    case 'rename': {
      const b = box(op.from);
      model.delete(op.from);
      model.set(op.to, b);
      return;
    }
    case 'delete':
      model.delete(op.mailbox);
      return;
    case 'deleteUser':
      for (const name of [...model.keys()]) if (name.startsWith(`user/${op.user}/`)) model.delete(name);
  }
}

/** What a store shows of some mailboxes: name -> uidValidity and uid -> {hash, flags}. */
type Seen = Map<string, { uidValidity: number; messages: Map<number, { hash: string; flags: string[] }> }>;

/** A difference between a model and what the store shows, or undefined when they agree. */
function differs(model: Model, seen: Seen): string | undefined {
  const names = [...new Set([...model.keys(), ...seen.keys()])].sort();
  for (const name of names) {
    const want = model.get(name);
    const got = seen.get(name);
    if (!want) return `${name} exists and should not`;
    if (!got) return `${name} is missing`;
    if (want.uidValidity !== undefined && want.uidValidity !== got.uidValidity) return `${name}: uidValidity ${got.uidValidity}, was ${want.uidValidity}`;
    for (const [uid, msg] of want.messages) {
      const g = got.messages.get(uid);
      if (!g) return `${name} uid ${uid}: acknowledged, missing`;
      if (g.hash !== msg.hash) return `${name} uid ${uid}: hash ${g.hash}, acknowledged ${msg.hash}`;
      const flags = [...msg.flags].sort().join(' ');
      const gotFlags = g.flags.filter((f) => f !== '\\Recent').sort().join(' ');
      if (flags !== gotFlags) return `${name} uid ${uid}: flags "${gotFlags}", acknowledged "${flags}"`;
    }
    for (const uid of got.messages.keys()) if (!want.messages.has(uid)) return `${name} uid ${uid}: present, never acknowledged`;
  }
  return undefined;
}

/** Takes on what the store shows for uidValidity (the first time a mailbox is seen). */
function adoptValidity(model: Model, seen: Seen): void {
  for (const [name, box] of model) box.uidValidity ??= seen.get(name)?.uidValidity;
}

// ---- processes ----------------------------------------------------------------------------------

function untilAccepts(to: string | number, child: ChildProcess, what: string): Promise<void> {
  return (async () => {
    for (let waited = 0; ; waited += 100) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} ended before it listened`);
      if (waited > 120_000) throw new Error(`${what} did not listen in 120 s`);
      if ((typeof to === 'number' || existsSync(to)) && await accepts(to)) return;
      await sleep(100);
    }
  })();
}

function accepts(to: string | number): Promise<boolean> {
  return new Promise((done) => {
    const probe = typeof to === 'number' ? createConnection(to, '127.0.0.1') : createConnection(to);
    probe.once('connect', () => { probe.destroy(); done(true); });
    probe.once('error', () => done(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((done) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

interface Ran { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** `mailstore ARGS` on `store`; `killAfterMs`: SIGKILLed that long after it started (when still running). */
function cli(store: string, args: string[], options: { killAfterMs?: number; onStart?: (child: ChildProcess) => void } = {}): Promise<Ran> {
  const child = spawn(process.execPath, [BIN, '--store', store, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  options.onStart?.(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const timer = options.killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.killAfterMs);
  return new Promise((done) => child.on('close', (code, signal) => { clearTimeout(timer); done({ code, signal, stdout, stderr }); }));
}

class Daemon {
  child?: ChildProcess;
  starts = 0;
  constructor(readonly dir: string, readonly args: string[], readonly waitFor: (string | number)[]) {}

  get socket(): string { return join(this.dir, 'run', 'mailstore.sock'); }

  async start(): Promise<void> {
    const child = spawn(process.execPath, [BIN, '--store', this.dir, 'serve', '--log', `${this.dir}.log`, ...this.args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    this.child = child;
    this.starts++;
    for (const to of [this.socket, ...this.waitFor]) {
      await untilAccepts(to, child, `serve ${this.dir}`).catch((error: Error) => { throw new Error(`${error.message}: ${stderr.slice(-2000)}`); });
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((done) => child.once('close', done));
    child.kill(signal);
    await gone;
  }
}

// ---- what the store shows -----------------------------------------------------------------------

const hashOf = (bytes: Uint8Array) => hashHex(hashBytes(bytes));

/**
 * The mailboxes under these users' trees as `store` shows them. `fetchAll`: every body is read
 * back and re-hashed (else the listing's hash is taken, and only bodies not yet read are fetched).
 */
async function look(store: Client | Store, users: string[], read: Set<string>, fetchAll = false): Promise<Seen> {
  const seen: Seen = new Map();
  for (const user of users) {
    for (const { name } of await store.listMailboxes({ pattern: `user/${user}/*` })) {
      const status = await store.status(name);
      const messages = new Map<number, { hash: string; flags: string[] }>();
      for await (const m of store.messages(name)) {
        const key = `${name}/${status.uidValidity}/${m.uid}`;
        let hash = m.hash;
        if (fetchAll || !read.has(key)) {
          hash = hashOf(await store.fetch(name, m.uid));
          if (hash !== m.hash) throw new Error(`${name} uid ${m.uid}: its bytes hash to ${hash}, its listing says ${m.hash}`);
          read.add(key);
        }
        messages.set(m.uid, { hash, flags: m.flags });
      }
      seen.set(name, { uidValidity: status.uidValidity, messages });
    }
  }
  return seen;
}

// ---- bodies ---------------------------------------------------------------------------------------

/** A body of CRLF lines (no line starts with a dot, so LMTP sends it unstuffed). */
function body(random: () => number, tag: string, bytes: number): Buffer {
  const line = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn\r\n';
  const head = `From: chaos@example.org\r\nTo: someone@example.org\r\nMessage-ID: <${tag}@chaos.example.org>\r\nSubject: ${tag}\r\n\r\n`;
  const lines = Math.max(1, Math.floor(bytes / line.length));
  const salt = randomBytes(8).toString('hex');
  return Buffer.from(`${head}${salt} ${Math.floor(random() * 1e9)}\r\n${line.repeat(lines)}`);
}

// ---- the run --------------------------------------------------------------------------------------

export interface ChaosOptions {
  minutes: number;
  seed?: number;
  dir?: string;
  keep?: boolean;
  clientWorkers?: number;
  lmtpWorkers?: number;
  log?: (line: string) => void;
}

export interface ChaosResult {
  seconds: number;
  checks: number;
  /** Checks that also backed up, restored into a new store and compared. */
  restores: number;
  ops: Record<string, number>;
  uncertain: number;
  kills: { daemon: number; replica: number; cli: number };
  cli: Record<string, number>;
  /** Problems found: an acknowledged operation lost, a check that failed, an unexpected error. */
  failures: string[];
  /** Errors the operations met that the run expects under kills (by code), for the report. */
  expectedErrors: Record<string, number>;
  messagesAtEnd: number;
  dir: string;
}

interface Worker {
  name: string;
  users: string[];
  model: Model;
  /** The operation whose outcome is unknown (the daemon went away after it was sent). */
  pending?: Op;
  busy: boolean;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  await hashReady;
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const random = rng(options.seed ?? 1);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  const base = options.dir ?? mkdtempSync(join(tmpdir(), 'mailstore-chaos-'));
  mkdirSync(base, { recursive: true });
  const P = join(base, 'primary');
  const R = join(base, 'replica');
  const repo = join(base, 'repo');
  const key = join(base, 'key');
  writeFileSync(key, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const started = Date.now();
  const endAt = started + options.minutes * 60_000;
  const result: ChaosResult = { seconds: 0, checks: 0, restores: 0, ops: {}, uncertain: 0, kills: { daemon: 0, replica: 0, cli: 0 }, cli: {}, failures: [], expectedErrors: {}, messagesAtEnd: 0, dir: base };
  const fail = (what: string) => { result.failures.push(what); log(`FAIL ${what}`); };
  const count = (table: Record<string, number>, key: string) => { table[key] = (table[key] ?? 0) + 1; };

  const init = await cli(P, ['init', '--json']);
  if (init.code !== 0) throw new Error(`init: ${init.stderr}`);
  const [lmtpPort, replicationPort] = [await freePort(), await freePort()];
  const primary = new Daemon(P, ['--lmtp', `127.0.0.1:${lmtpPort}`, '--replication-listen', `127.0.0.1:${replicationPort}`, '--replication-key', key, '--sync-replicas', '1', '--sync-fallback', 'refuse'], [lmtpPort, replicationPort]);
  mkdirSync(R);
  const replica = new Daemon(R, ['--replica-of', `127.0.0.1:${replicationPort}`, '--replication-key', key], []);
  await primary.start();
  await replica.start();
  const client = await Client.connect(primary.socket, { reconnectWaitMs: 30_000, callTimeoutMs: 120_000 });

  // ---- workers: each owns users, so the model of each is exact ----
  const clientCount = options.clientWorkers ?? 3;
  const lmtpCount = options.lmtpWorkers ?? 3;
  const workers: Worker[] = [];
  for (let w = 0; w < clientCount; w++) workers.push({ name: `client${w}`, users: [`c${w}`], model: new Map(), busy: false });
  for (let w = 0; w < lmtpCount; w++) workers.push({ name: `lmtp${w}`, users: [`l${w}a`, `l${w}b`], model: new Map(), busy: false });
  for (const worker of workers) {
    for (const user of worker.users) {
      const name = `user/${user}/INBOX`;
      await client.createMailbox(name, { owner: user });
      worker.model.set(name, { messages: new Map(), uidHigh: 0, unplaced: [] });
    }
  }
  // bodies shared by every worker: the same bytes land in many mailboxes (dedup)
  const shared: Buffer[] = Array.from({ length: 24 }, (_, i) => body(random, `shared-${i}`, i === 0 ? 1_300_000 : 200 + Math.floor(random() * 40_000)));
  const newBody = (tag: string): Buffer => {
    if (random() < 0.25) return pick(shared);
    const big = random() < 0.03;
    return body(random, tag, big ? 1_048_576 + Math.floor(random() * 1_500_000) : 100 + Math.floor(random() * (random() < 0.2 ? 200_000 : 30_000)));
  };

  // ---- pausing for checks: hold() lets no new operation start, idle() waits for those under way ----
  let paused = false;
  let resume: () => void = () => undefined;
  let resumed = Promise.resolve();
  let stopping = false;
  let maintenanceBusy = 0;
  const gate = async () => { while (paused) await resumed; };
  const hold = () => {
    if (paused) return;
    paused = true;
    resumed = new Promise((done) => { resume = done; });
  };
  const idle = async () => { while (workers.some((w) => w.busy) || maintenanceBusy > 0) await sleep(20); };
  const pause = async () => { hold(); await idle(); };
  const unpause = () => { paused = false; resume(); };
  let checkWanted = false;
  /** Checks and kills one at a time. */
  let turn = Promise.resolve();
  const exclusive = (work: () => Promise<void>): Promise<void> => (turn = turn.then(work, work));

  /** Runs one operation for a worker: the model follows what was acknowledged. */
  const perform = async (worker: Worker, op: Op, call: () => Promise<NewUids>) => {
    count(result.ops, op.kind);
    try {
      const uids = await call();
      apply(worker.model, op, uids);
    } catch (error) {
      const e = error as { code?: string; mayHaveCommitted?: boolean; message?: string };
      if (e.code === 'UNAVAILABLE' && e.mayHaveCommitted === false) { count(result.expectedErrors, 'UNAVAILABLE (not committed)'); return; }
      if (e.code === 'UNAVAILABLE' || e.code === 'CLOSED') {
        count(result.expectedErrors, `${e.code} (may have committed)`);
      } else {
        // nothing else is expected of an owner's own mailboxes: taken as unknown, the check says more
        fail(`${worker.name}: ${op.kind} ${JSON.stringify(op)} failed ${e.code ?? ''}: ${e.message}`);
      }
      worker.pending = op;
      result.uncertain++;
      checkWanted = true;
    }
  };

  const fromMapping = (to: string, mapping: [number, number][]): NewUids => (name) => (name === to ? mapping.map(([, d]) => d).sort((a, b) => a - b) : []);

  const clientWorker = async (worker: Worker, index: number) => {
    const user = worker.users[0];
    const inbox = `user/${user}/INBOX`;
    let n = 0;
    while (!stopping) {
      await gate();
      if (stopping) break;
      if (worker.pending) { await sleep(50); continue; } // waits for a check to settle what happened
      worker.busy = true;
      try {
        if (!worker.model.has(inbox)) {
          await perform(worker, { kind: 'create', mailbox: inbox }, async () => {
            await client.createMailbox(inbox, { owner: user });
            return () => [];
          });
          continue;
        }
        const names = [...worker.model.keys()];
        const box = pick(names);
        const uids = [...worker.model.get(box)!.messages.keys()];
        const total = names.reduce((s, name) => s + worker.model.get(name)!.messages.size, 0);
        const roll = random();
        const some = () => uids.filter(() => random() < 0.3).slice(0, 20);
        if (roll < 0.4 && total < 80) {
          const bytes = newBody(`${user}-${n++}`);
          const flags = random() < 0.2 ? ['\\Seen'] : [];
          await perform(worker, { kind: 'append', mailbox: box, hash: hashOf(bytes), flags }, async () => {
            const r = await client.append(box, bytes, { flags });
            return (name) => (name === box ? [r.uid] : []);
          });
        } else if (roll < 0.55 && uids.length) {
          const chosen = some();
          const change = random() < 0.7 ? { add: [`k${index}`, '\\Flagged'] } : { remove: ['\\Flagged'] };
          await perform(worker, { kind: 'flags', mailbox: box, uids: chosen, ...change }, async () => {
            await client.setFlags(box, chosen, change);
            return () => [];
          });
        } else if (roll < 0.7 && uids.length) {
          const chosen = total >= 80 ? uids.slice(0, 10) : some();
          await perform(worker, { kind: 'expunge', mailbox: box, uids: chosen }, async () => {
            await client.expunge(box, chosen);
            return () => [];
          });
        } else if (roll < 0.8 && uids.length && names.length > 1) {
          const to = pick(names.filter((x) => x !== box));
          const chosen = some();
          const kind = random() < 0.5 ? 'copy' as const : 'move' as const;
          if (chosen.length) {
            await perform(worker, { kind, from: box, uids: chosen, to }, async () => {
              const r = await client[kind](box, chosen, to);
              return fromMapping(to, r.mapping);
            });
          }
        } else if (roll < 0.86 && names.length < 5) {
          const name = `user/${user}/f${n++}`;
          await perform(worker, { kind: 'create', mailbox: name }, async () => {
            await client.createMailbox(name, { owner: user });
            return () => [];
          });
        } else if (roll < 0.92 && names.length > 1) {
          const from = pick(names.filter((x) => x !== inbox));
          const to = `user/${user}/r${n++}`;
          await perform(worker, { kind: 'rename', from, to }, async () => {
            await client.renameMailbox(from, to);
            return () => [];
          });
        } else if (roll < 0.97 && names.length > 1) {
          const name = pick(names.filter((x) => x !== inbox));
          await perform(worker, { kind: 'delete', mailbox: name }, async () => {
            await client.deleteMailbox(name);
            return () => [];
          });
        } else if (roll < 0.985) {
          await perform(worker, { kind: 'deleteUser', user }, async () => {
            await client.deleteUser(user);
            return () => [];
          });
        }
      } finally {
        worker.busy = false;
      }
      await sleep(random() * 30);
    }
  };

  const lmtpWorker = async (worker: Worker) => {
    let conversation: Lmtp | undefined;
    let n = 0;
    while (!stopping) {
      await gate();
      if (stopping) break;
      if (worker.pending) { await sleep(50); continue; }
      worker.busy = true;
      try {
        const uids = worker.users.flatMap((u) => [...worker.model.get(`user/${u}/INBOX`)!.messages.keys()].map((uid) => [u, uid] as const));
        if (uids.length > 60 || (uids.length && random() < 0.15)) {
          const [user, first] = pick(uids);
          const box = `user/${user}/INBOX`;
          const chosen = [...worker.model.get(box)!.messages.keys()].filter((uid) => uid === first || random() < 0.3).slice(0, 15);
          await perform(worker, { kind: 'expunge', mailbox: box, uids: chosen }, async () => {
            await client.expunge(box, chosen);
            return () => [];
          });
          continue;
        }
        const recipients = worker.users.filter((_, i) => i === 0 || random() < 0.5);
        const bytes = newBody(`${worker.name}-${n++}`);
        const op: Op = { kind: 'deliver', mailboxes: recipients.map((u) => `user/${u}/INBOX`), hash: hashOf(bytes) };
        count(result.ops, 'deliver');
        let sentDot = false;
        const acked: string[] = [];
        try {
          conversation ??= await Lmtp.open(lmtpPort);
          await conversation.command('MAIL FROM:<chaos@example.org>', 250);
          for (const user of recipients) await conversation.command(`RCPT TO:<${user}@example.org>`, 250);
          await conversation.command('DATA', 354);
          sentDot = true;
          const replies = await conversation.data(bytes, recipients.length);
          const deferred: string[] = [];
          replies.forEach((reply, i) => {
            if (reply.startsWith('250')) acked.push(`user/${recipients[i]}/INBOX`);
            else if (reply.startsWith('4')) deferred.push(`user/${recipients[i]}/INBOX`);
            else fail(`${worker.name}: delivery to ${recipients[i]} answered ${reply}`);
          });
          for (const name of acked) worker.model.get(name)!.unplaced.push(op.hash);
          if (deferred.length) {
            // 451 "may have committed": durable here, its synchronous replica did not confirm in
            // time (the MTA retries: a duplicate, never a loss); or refused before anything was written
            count(result.expectedErrors, 'LMTP 4xx');
            worker.pending = { ...op, mailboxes: deferred };
            result.uncertain++;
            checkWanted = true;
          }
        } catch (error) {
          conversation?.close();
          conversation = undefined;
          count(result.expectedErrors, 'LMTP connection lost');
          if (sentDot) {
            // each recipient not acknowledged may or may not have been delivered
            const unknown = op.mailboxes.filter((m) => !acked.includes(m));
            for (const name of acked) worker.model.get(name)!.unplaced.push(op.hash);
            worker.pending = { ...op, mailboxes: unknown };
            result.uncertain++;
            checkWanted = true;
          }
          void error;
          await sleep(200);
        }
      } finally {
        worker.busy = false;
      }
      await sleep(random() * 20);
    }
    conversation?.close();
  };

  // LMTP replies carry no uid: an acknowledged delivery is placed on the uid the store shows for it
  const settlePlaceholders = (model: Model, seen: Seen): string | undefined => {
    for (const [name, box] of model) {
      for (const hash of box.unplaced.splice(0)) {
        const known = new Set(box.messages.keys());
        const fresh = [...(seen.get(name)?.messages ?? [])].filter(([uid, m]) => !known.has(uid) && uid > box.uidHigh && m.hash === hash);
        if (fresh.length === 0) return `${name}: an acknowledged delivery (${hash}) is missing`;
        const [uid] = fresh[0];
        box.messages.set(uid, { hash, flags: new Set() });
      }
      box.uidHigh = Math.max(box.uidHigh, ...box.messages.keys());
    }
    return undefined;
  };

  // ---- checking ----
  const read = new Set<string>();
  const check = (why: string, options: { fetchAll?: boolean } = {}) => exclusive(() => checkNow(why, options));
  const checkNow = async (why: string, options: { fetchAll?: boolean } = {}) => {
    result.checks++;
    await pause();
    log(`check ${result.checks} (${why}) at ${Math.round((Date.now() - started) / 1000)} s`);
    for (const worker of workers) {
      let seen: Seen;
      try {
        seen = await look(client, worker.users, read, options.fetchAll);
      } catch (error) {
        fail(`check ${why}: reading ${worker.name}'s mailboxes: ${(error as Error).message}`);
        continue;
      }
      const placeholders = settleAll(worker, seen);
      if (placeholders) fail(`check ${why}: ${worker.name}: ${placeholders}`);
      const op = worker.pending;
      worker.pending = undefined;
      if (!op) {
        const d = differs(worker.model, seen);
        if (d) { fail(`check ${why}: ${worker.name}: ${d}`); worker.model = fromSeen(seen); }
        adoptValidity(worker.model, seen);
        continue;
      }
      // the outcome of `op` is unknown: the store must show the state before it, or after it
      if (!differs(worker.model, seen)) { adoptValidity(worker.model, seen); continue; }
      const candidates = op.kind === 'deliver' ? subsets(op.mailboxes).map((mailboxes) => ({ ...op, mailboxes })) : [op];
      let settled = false;
      const reasons: string[] = [];
      for (const candidate of candidates) {
        const after = cloneModel(worker.model);
        try {
          apply(after, candidate, (name) => {
            const known = new Set(after.get(name)?.messages.keys() ?? []);
            return [...(seen.get(name)?.messages.keys() ?? [])].filter((u) => !known.has(u)).sort((a, b) => a - b);
          });
        } catch (error) {
          reasons.push((error as Error).message);
          continue;
        }
        const d = differs(after, seen);
        if (!d) { worker.model = after; settled = true; break; }
        reasons.push(d);
      }
      if (!settled) { fail(`check ${why}: ${worker.name}: after ${JSON.stringify(op)} of unknown outcome: neither before nor after: ${reasons.join('; ')}`); worker.model = fromSeen(seen); }
      adoptValidity(worker.model, seen);
    }
    // the replica: caught up and equal (replica check), and every owner's mailboxes the same there
    const replicaCheck = await cli(R, ['replica', 'check', '--json']);
    if (replicaCheck.code !== 0) fail(`check ${why}: replica check exit ${replicaCheck.code}: ${replicaCheck.stdout.slice(0, 1500)} ${replicaCheck.stderr.slice(0, 1500)}`);
    try {
      const replicaClient = await Client.connect(replica.socket, { reconnectWaitMs: 30_000, callTimeoutMs: 120_000 });
      try {
        for (const worker of workers) {
          const there = await look(replicaClient, worker.users, new Set(), false);
          const d = differs(worker.model, there);
          if (d) fail(`check ${why}: the replica differs for ${worker.name}: ${d}`);
        }
      } finally {
        await replicaClient.close();
      }
    } catch (error) {
      fail(`check ${why}: reading the replica: ${(error as Error).message}`);
    }
    const scrub = await cli(P, ['scrub', '--json']);
    if (scrub.code !== 0) fail(`check ${why}: scrub exit ${scrub.code}: ${scrub.stdout.slice(0, 2000)} ${scrub.stderr.slice(0, 1000)}`);
    // a whole restore is the slowest part of a check: every third one, and the last
    if (result.checks % 3 === 1 || options.fetchAll) await backupRestoreCheck(why);
    unpause();
  };

  const settleAll = (worker: Worker, seen: Seen) => settlePlaceholders(worker.model, seen);

  const fromSeen = (seen: Seen): Model => new Map([...seen].map(([name, s]) => [name, {
    uidValidity: s.uidValidity, uidHigh: Math.max(0, ...s.messages.keys()), unplaced: [],
    messages: new Map([...s.messages].map(([uid, m]) => [uid, { hash: m.hash, flags: new Set(m.flags.filter((f) => f !== '\\Recent')) }])),
  }]));

  /** With the writers paused: a backup now, restored into a new store, equals every owner's model. */
  const backupRestoreCheck = async (why: string) => {
    const backup = await cli(P, ['backup', '--repo', repo, '--json']);
    count(result.cli, 'backup (check)');
    if (backup.code !== 0) { fail(`check ${why}: backup exit ${backup.code}: ${backup.stderr.slice(0, 1500)}`); return; }
    const target = join(base, `restored-${++result.restores}`);
    const restore = await cli(P, ['restore', '--repo', repo, '--snapshot', JSON.parse(backup.stdout).snapshot, '--to', target, '--json']);
    if (restore.code !== 0) { fail(`check ${why}: restore exit ${restore.code}: ${restore.stderr.slice(0, 1500)}`); return; }
    const restored = await Store.open(target, { readOnly: true });
    try {
      for (const worker of workers) {
        const d = differs(worker.model, await look(restored, worker.users, new Set(), true));
        if (d) fail(`check ${why}: the restored backup differs for ${worker.name}: ${d}`);
      }
    } finally {
      await restored.close();
      rmSync(target, { recursive: true, force: true });
    }
  };

  // ---- the CLI's maintenance, now and then killed mid-way ----
  const children = new Set<ChildProcess>();
  const maintenance = async () => {
    const commands: string[][] = [
      ['compact', '--json'], ['snapshot', '--json'], ['backup', '--repo', repo, '--json'], ['backup', '--repo', repo, '--json'],
      ['backup', 'forget', '--repo', repo, '--keep-last', '3', '--prune', '--json'], ['scrub', '--json'],
    ];
    while (!stopping) {
      await gate();
      if (stopping) break;
      const args = pick(commands);
      const name = args[0] === 'backup' && args[1] === 'forget' ? 'forget' : args[0];
      const kill = random() < 0.2 ? 50 + Math.floor(random() * 1500) : undefined;
      maintenanceBusy++;
      const ran = await cli(P, args, { killAfterMs: kill, onStart: (c) => children.add(c) }).finally(() => { maintenanceBusy--; });
      count(result.cli, name);
      if (ran.signal === 'SIGKILL') { result.kills.cli++; continue; }
      if (ran.code === 0) continue;
      // the daemon killed under it, or a replica away (writes refused): could not run
      if (ran.code === 2 && /UNAVAILABLE|LOCKED/.test(ran.stderr)) { count(result.expectedErrors, `${name}: exit 2`); continue; }
      if (name === 'forget' && /NOT_FOUND|no repository/.test(ran.stderr)) continue; // before the first backup
      fail(`${args.join(' ')}: exit ${ran.code} ${ran.signal ?? ''}: ${ran.stderr.slice(0, 1500)}`);
    }
  };

  // ---- kills ----
  let events = 0;
  const chaos = async () => {
    while (!stopping) {
      await sleep(events < 2 ? 3000 + random() * 5000 : 4000 + random() * 12_000);
      if (stopping) break;
      await gate();
      // the first two are a kill of the daemon, then of the replica, so a short run has both
      const roll = [0, 0.6][events++] ?? random();
      if (roll < 0.5) {
        await exclusive(async () => {
          log('kill the daemon');
          result.kills.daemon++;
          hold(); // what is under way is killed mid-way; nothing new starts until the daemon is back
          await primary.kill();
          await idle();
          // reconstruct --check needs the store to itself: now, with the daemon down
          const reconstruct = await cli(P, ['reconstruct', '--check', '--json']);
          if (reconstruct.code !== 0) fail(`reconstruct --check after a kill: exit ${reconstruct.code}: ${reconstruct.stdout.slice(0, 2000)} ${reconstruct.stderr.slice(0, 1000)}`);
          await primary.start();
        });
        await check('daemon killed');
      } else if (roll < 0.8) {
        log('kill the replica');
        result.kills.replica++;
        await replica.kill();
        await sleep(random() * 3000); // writes are refused meanwhile (--sync-fallback refuse)
        await replica.start();
        await check('replica killed');
      } else {
        await check('periodic');
      }
    }
  };

  const wanted = async () => {
    while (!stopping) {
      await sleep(500);
      if (checkWanted) { checkWanted = false; await check('an outcome to settle'); }
    }
  };

  const loops = [
    ...workers.map((w, i) => (w.name.startsWith('lmtp') ? lmtpWorker(w) : clientWorker(w, i))),
    maintenance(), maintenance(),
  ];
  const side = [chaos(), wanted()];
  // a short run goes on until the first two (a daemon kill, a replica kill) are done
  while ((Date.now() < endAt || events < 2) && result.failures.length < 20) await sleep(500);
  stopping = true;
  unpause();
  await Promise.all(loops);
  await Promise.all(side);
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  // the end: everything read back whole, then both daemons stopped and the store checked offline
  stopping = false;
  await check('the end', { fetchAll: true });
  stopping = true;
  for (const worker of workers) for (const box of worker.model.values()) result.messagesAtEnd += box.messages.size;
  await client.close();
  await replica.kill('SIGTERM');
  await primary.kill('SIGTERM');
  for (const dir of [P, R]) {
    const reconstruct = await cli(dir, ['reconstruct', '--check', '--json']);
    if (reconstruct.code !== 0) fail(`reconstruct --check of ${dir} at the end: exit ${reconstruct.code}: ${reconstruct.stdout.slice(0, 2000)}`);
    const scrub = await cli(dir, ['scrub', '--json']);
    if (scrub.code !== 0) fail(`scrub of ${dir} at the end: exit ${scrub.code}: ${scrub.stdout.slice(0, 2000)}`);
  }
  result.seconds = Math.round((Date.now() - started) / 1000);
  if (!options.keep && result.failures.length === 0) rmSync(base, { recursive: true, force: true });
  return result;
}

/** Every subset of `xs` (a delivery to several recipients of unknown outcome: each may have landed). */
function subsets<T>(xs: T[]): T[][] {
  return xs.reduce<T[][]>((all, x) => [...all, ...all.map((s) => [...s, x])], [[]]).filter((s) => s.length > 0);
}

// ---- LMTP ---------------------------------------------------------------------------------------

class Lmtp {
  private buffer = '';
  private finals: string[] = [];
  private wake?: () => void;
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('latin1');
      let end: number;
      while ((end = this.buffer.indexOf('\r\n')) >= 0) {
        const line = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        if (/^\d{3}( |$)/.test(line)) this.finals.push(line);
      }
      this.wake?.();
    });
    socket.on('close', () => { this.closed = true; this.wake?.(); });
    socket.on('error', () => undefined);
  }

  static async open(port: number): Promise<Lmtp> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((done, reject) => { socket.once('connect', done); socket.once('error', reject); });
    const lmtp = new Lmtp(socket);
    await lmtp.replies(1);
    await lmtp.command('LHLO chaos.example.org', 250);
    return lmtp;
  }

  private async replies(n: number, timeoutMs = 120_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.finals.length < n) {
      if (this.closed) throw new Error('LMTP connection closed');
      if (Date.now() > deadline) throw new Error('LMTP reply timed out');
      await new Promise<void>((done) => { this.wake = done; setTimeout(done, 1000); });
    }
    return this.finals.splice(0, n);
  }

  async command(line: string, expect: number): Promise<void> {
    this.socket.write(`${line}\r\n`);
    const [reply] = await this.replies(1);
    if (!reply.startsWith(String(expect))) throw new Error(`LMTP ${line}: ${reply}`);
  }

  async data(bytes: Buffer, recipients: number): Promise<string[]> {
    this.socket.write(bytes);
    this.socket.write(bytes.subarray(-2).toString() === '\r\n' ? '.\r\n' : '\r\n.\r\n');
    return this.replies(recipients);
  }

  close(): void { this.socket.destroy(); }
}

// ---- command line -------------------------------------------------------------------------------

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name: string) => { const i = process.argv.indexOf(name); return i >= 0 ? process.argv[i + 1] : undefined; };
  const r = await runChaos({
    minutes: Number(arg('--minutes') ?? 2), seed: Number(arg('--seed') ?? Date.now() % 1e6), dir: arg('--dir'), keep: process.argv.includes('--keep'),
    clientWorkers: arg('--clients') === undefined ? undefined : Number(arg('--clients')), lmtpWorkers: arg('--lmtp') === undefined ? undefined : Number(arg('--lmtp')),
  });
  process.stdout.write(`${JSON.stringify(r, null, 1)}\n`);
  process.exitCode = r.failures.length ? 1 : 0;
}
