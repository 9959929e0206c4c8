// SIGKILL soak: a child process runs several concurrent writers (append, flags, expunge) and a
// snapshotter (snapshot + journal retirement, beside them) against a store and prints every
// acknowledgement on stdout (pipes are synchronous on Linux, so a printed
// line was acknowledged before any kill). The parent kills it at a random moment, reopens the
// store, and checks every acknowledged operation; then the next cycle starts on the same store.
//
//   node dist/tools/soak.js [--cycles N] [--dir DIR] [--seed S]     (parent; default 30 cycles)
//   node dist/tools/soak.js child DIR CYCLE SEED                    (what the parent spawns)
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../src/store/store.js';

const MAILBOXES = ['INBOX', 'Archive'];
const WRITERS = 4;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 32);

/** A tiny seeded PRNG (mulberry32). */
export function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- child ------------------------------------------------------------------------------------

async function child(dir: string, cycle: number, seed: number): Promise<void> {
  // the background compactor runs beside the writers (no grace, frequent rounds), so kills land in
  // compactions too; small journal segments, so that snapshots retire some while the writers go on
  const store = await Store.open(dir, {
    create: true, packBytesMax: 4 * 1024 * 1024, journalSegmentBytesMax: 16 * 1024,
    autoCompact: { graceMs: 0, intervalMs: 20, deadBytesMin: 256 * 1024, onCompacted: (r) => { if (r.packsRewritten.length) process.stdout.write(`C ${r.packsRewritten.join(',')}\n`); } },
    onBackgroundError: (error) => process.stderr.write(`compaction: ${String(error)}\n`),
  });
  for (const name of MAILBOXES) {
    if (!(await store.listMailboxes()).some((b) => b.name === name)) await store.createMailbox(name).catch(() => undefined);
  }
  const out = (line: string) => process.stdout.write(line + '\n');
  out('READY');
  const random = rng(seed);
  const mine: { mailbox: string; uid: number; flagged: boolean }[] = [];
  let counter = 0;
  const writer = async (w: number) => {
    for (;;) {
      const roll = random();
      if (roll < 0.6 || mine.length === 0) {
        const mailbox = MAILBOXES[Math.floor(random() * MAILBOXES.length)];
        const big = random() < 0.01;
        const size = big ? 1_000_000 + Math.floor(random() * 3_000_000) : 100 + Math.floor(random() * 60_000);
        const bytes = Buffer.concat([Buffer.from(`From: soak@example.org\r\nSubject: c${cycle} w${w} n${counter++}\r\n\r\n`), randomBytes(size)]);
        out(`T ${sha(bytes)}`);
        const r = await store.append(mailbox, bytes);
        out(`A ${mailbox} ${r.uid} ${sha(bytes)}`);
        mine.push({ mailbox, uid: r.uid, flagged: false });
      } else if (roll < 0.85) {
        const target = mine.find((m) => !m.flagged);
        if (!target) continue;
        target.flagged = true;
        const r = await store.setFlags(target.mailbox, target.uid, { add: ['\\Seen', `c${cycle}`] });
        if (r.updated.length) out(`F ${target.mailbox} ${target.uid} c${cycle} ${r.modseq}`);
      } else {
        const target = mine.splice(Math.floor(random() * mine.length), 1)[0];
        out(`E ${target.mailbox} ${target.uid}`); // attempted: a kill after it may or may not leave it done
        const r = await store.expunge(target.mailbox, target.uid);
        if (r.expunged.length) out(`X ${target.mailbox} ${target.uid} ${r.modseq}`);
      }
    }
  };
  const snapshotter = async () => {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 60)));
      // A failed snapshot (a full disk in the real-faults runs) leaves the store as it was: go on.
      const r = await store.snapshot().catch((error: { code?: string }) => { out(`s ${error.code ?? 'error'}`); return undefined; });
      if (r) out(`S ${r.seq} ${r.retired.segments.length}`);
    }
  };
  await Promise.all([...Array.from({ length: WRITERS }, (_, w) => writer(w)), snapshotter()]);
}

// ---- parent -----------------------------------------------------------------------------------

export interface SoakOptions {
  cycles: number;
  dir?: string;
  seed?: number;
  /** The compiled child: dist/tools/soak.js. */
  script?: string;
  log?: (line: string) => void;
}

export interface SoakResult {
  cycles: number;
  ms: number;
  appendsAcked: number;
  flagsAcked: number;
  expungesAcked: number;
  /** Appends the child attempted but was killed before acknowledging, found present / absent. */
  unackedPresent: number;
  unackedAbsent: number;
  messagesAtEnd: number;
  /** Compactions the children finished (each printed `C packs`). */
  compactions: number;
  /** Snapshots the children finished, journal segments they retired, verifications that rebuilt from a snapshot. */
  snapshots: number;
  segmentsRetired: number;
  rebuildsFromSnapshot: number;
}

interface Acked { sha: string; flags: Set<string>; expunged: boolean }

/** What the children acknowledged, across cycles; `verify` checks a reopened store against it. */
export class SoakLedger {
  readonly acked = new Map<string, Acked>(); // "mailbox/uid"
  private readonly attempted = new Set<string>();
  private pending = new Set<string>();
  private pendingExpunges = new Set<string>();
  private readonly checked = new Set<string>();
  private maxModseq = 0;
  readonly counts = { appendsAcked: 0, flagsAcked: 0, expungesAcked: 0, unackedPresent: 0, unackedAbsent: 0, messagesAtEnd: 0, snapshots: 0, segmentsRetired: 0, rebuildsFromSnapshot: 0 };

  absorb(lines: string[], cycle: number): void {
    this.pending = new Set();
    this.pendingExpunges = new Set();
    for (const line of lines) {
      const [kind, a, b, c, d] = line.split(' ');
      if (kind === 'T') { this.attempted.add(a); this.pending.add(a); }
      if (kind === 'E') this.pendingExpunges.add(`${a}/${b}`);
      if (kind === 'A') {
        const key = `${a}/${b}`;
        const had = this.acked.get(key);
        if (had) throw new Error(`cycle ${cycle}: uid ${b} in ${a} was acknowledged twice (${had.sha}, then ${c}): a UID was reused`);
        this.acked.set(key, { sha: c, flags: new Set(), expunged: false });
        this.pending.delete(c);
        this.counts.appendsAcked++;
      }
      if (kind === 'S') { this.counts.snapshots++; this.counts.segmentsRetired += Number(b); }
      if (kind === 'F') { this.acked.get(`${a}/${b}`)!.flags.add(c); this.maxModseq = Math.max(this.maxModseq, Number(d)); this.counts.flagsAcked++; }
      if (kind === 'X') { this.pendingExpunges.delete(`${a}/${b}`); this.acked.get(`${a}/${b}`)!.expunged = true; this.maxModseq = Math.max(this.maxModseq, Number(c)); this.counts.expungesAcked++; }
    }
  }

  /**
   * Opens the store with the real file system, as a restarted server would, and checks every
   * acknowledgement. `dropIndex`: the index is removed first, so it is rebuilt from the newest
   * snapshot and the (retired) journal after it.
   */
  async verify(dir: string, cycle: number, options: { allowDegraded?: boolean; dropIndex?: boolean } = {}): Promise<void> {
    if (options.dropIndex) rmSync(join(dir, 'index'), { recursive: true, force: true });
    const store = await Store.open(dir);
    try {
      if (store.health.degraded && !options.allowDegraded) throw new Error(`cycle ${cycle}: degraded after the crash: ${store.health.findings.join('; ')}`);
      if (store.health.rebuiltFrom?.startsWith('snapshot ')) this.counts.rebuildsFromSnapshot++;
      const present = new Map<string, { sha: string; flags: string[] }>();
      let highest = 0;
      for (const mailbox of MAILBOXES) {
        const status = await store.status(mailbox).catch(() => undefined);
        if (!status) continue;
        highest = Math.max(highest, status.highestModseq);
        for await (const m of store.messages(mailbox)) {
          const key = `${mailbox}/${m.uid}`;
          // bytes are read back (hash-verified) when first seen and for a tenth of the rest each cycle
          const known = this.acked.get(key);
          const read = !known || !this.checked.has(key) || Math.random() < 0.1;
          present.set(key, { sha: read ? sha(await store.fetch(mailbox, m.uid)) : known.sha, flags: m.flags });
          this.checked.add(key);
        }
      }
      for (const [key, want] of this.acked) {
        const got = present.get(key);
        if (want.expunged) {
          if (got) throw new Error(`cycle ${cycle}: ${key} was expunged (acknowledged) but is present`);
          continue;
        }
        if (!got && this.pendingExpunges.has(key)) { want.expunged = true; continue; } // its expunge was in flight and made it
        if (!got) throw new Error(`cycle ${cycle}: acknowledged ${key} is missing`);
        if (got.sha !== want.sha) throw new Error(`cycle ${cycle}: ${key} has other bytes than acknowledged`);
        for (const flag of want.flags) if (!got.flags.includes(flag)) throw new Error(`cycle ${cycle}: ${key} lost acknowledged flag ${flag}`);
      }
      for (const [key, got] of present) {
        if (!this.attempted.has(got.sha)) throw new Error(`cycle ${cycle}: ${key} holds bytes that were never appended`);
        if (!this.acked.has(key)) {
          // an append in flight at the kill that made it: complete, and from now on it must stay
          if (!this.pending.has(got.sha)) throw new Error(`cycle ${cycle}: ${key} is present, unacknowledged, and not from the killed run`);
          this.acked.set(key, { sha: got.sha, flags: new Set(), expunged: false });
          this.pending.delete(got.sha);
          this.counts.unackedPresent++;
        }
      }
      this.counts.unackedAbsent += this.pending.size;
      this.pending = new Set();
      if (highest < this.maxModseq) throw new Error(`cycle ${cycle}: highestModseq ${highest} below acknowledged modseq ${this.maxModseq}`);
      this.counts.messagesAtEnd = present.size;
    } finally {
      await store.close();
    }
  }
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const started = Date.now();
  const dir = options.dir ?? join(mkdtempSync(join(tmpdir(), 'soak-')), 'store');
  const script = options.script ?? fileURLToPath(import.meta.url);
  const random = rng(options.seed ?? 0x50a6);
  const ledger = new SoakLedger();
  let cycles = 0;
  let compactions = 0;
  for (let cycle = 0; cycle < options.cycles; cycle++) {
    // Every SNAPSHOT_CYCLE_EVERY-th cycle the kill is timed from the child's first snapshot that
    // retired a segment (beside the writers) instead of from READY: on a loaded machine a kill
    // 20-420 ms after READY can come before any snapshot finishes, cycle after cycle, and then the
    // soak would not have killed a child after (or during) snapshots and retirement, nor rebuilt
    // an index from a snapshot (the next dropIndex check), which it must.
    const afterSnapshot = cycle % SNAPSHOT_CYCLE_EVERY === 0 ? RETIRING_SNAPSHOT : undefined;
    const lines = await runChild(script, dir, cycle, Math.floor(random() * 2 ** 31), { killAfterMs: 20 + Math.floor(random() * 400), armAfter: afterSnapshot });
    compactions += lines.filter((l) => l.startsWith('C ')).length;
    ledger.absorb(lines, cycle);
    await ledger.verify(dir, cycle, { dropIndex: cycle % 3 === 2 });
    cycles++;
    options.log?.(`soak cycle ${cycle}: ${lines.length} lines, ${ledger.counts.appendsAcked} appends acknowledged so far, ${ledger.counts.messagesAtEnd} messages`);
  }
  if (!options.dir) rmSync(join(dir, '..'), { recursive: true, force: true });
  return { cycles, ...ledger.counts, compactions, ms: Date.now() - started };
}

/** See runSoak: cycles 0, 10, 20, ... wait for a snapshot. */
const SNAPSHOT_CYCLE_EVERY = 10;
/** A child's line for a finished snapshot that retired at least one journal segment. */
const RETIRING_SNAPSHOT = /^S \d+ [1-9]\d*$/m;
/** How long a child may take to print the line a kill waits for (armAfter) before the run fails. */
const CHILD_WAIT_MS = 60_000;

/**
 * Spawns a child and, `killAfterMs` after it is ready (and, with `armAfter`, after it printed a
 * line matching it), runs `beforeKill` (a power cut, say) and kills it with SIGKILL. Returns its
 * whole stdout lines.
 */
export function runChild(script: string, dir: string, cycle: number, seed: number, options: { killAfterMs: number; armAfter?: RegExp; beforeKill?: () => void; uid?: number; gid?: number }): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [script, 'child', dir, String(cycle), String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    let killed = false;
    const kill = () => {
      try { options.beforeKill?.(); } finally { killed = true; proc.kill('SIGKILL'); }
    };
    const armed = () => stdout.includes('READY\n') && (!options.armAfter || options.armAfter.test(stdout));
    proc.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!timer && armed()) timer = setTimeout(kill, options.killAfterMs);
    });
    proc.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const guard = setTimeout(() => proc.kill('SIGKILL'), CHILD_WAIT_MS);
    proc.on('close', (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      // after a power cut the child's writes fail and it may exit on its own before the kill
      if (!killed && signal !== 'SIGKILL') return reject(new Error(`soak child exited on its own (code ${code}, signal ${signal}): ${stderr.slice(0, 2000)}`));
      if (!stdout.includes('READY\n')) return reject(new Error(`soak child was killed before it was ready: ${stderr.slice(0, 2000)}`));
      if (!armed()) return reject(new Error(`soak child (cycle ${cycle}) printed no line matching ${String(options.armAfter)} within ${CHILD_WAIT_MS} ms: ${stderr.slice(0, 2000)}`));
      const lines = stdout.split('\n');
      lines.pop(); // a line cut by the kill is not a whole acknowledgement
      resolve(lines.filter((l) => l && l !== 'READY'));
    });
  });
}

// ---- command line -----------------------------------------------------------------------------

async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'child') return child(argv[1], Number(argv[2]), Number(argv[3]));
  const arg = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  const cycles = Number(arg('--cycles') ?? process.env.SOAK_CYCLES ?? 30);
  const result = await runSoak({ cycles, dir: arg('--dir'), seed: arg('--seed') ? Number(arg('--seed')) : undefined, log: (l) => console.error(l) });
  console.log(JSON.stringify(result));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((error) => {
    console.error(error instanceof Error ? error.stack : error);
    process.exit(1);
  });
}
