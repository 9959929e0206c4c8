// Media faults: zeros, garbage and bit flips at seeded random offsets of packs, journal segments
// and the index. Damage is detected (CORRUPT, never wrong bytes), confined to what it touched, and
// a damaged journal record in the middle does not lose the records after it. Damage to the last
// acknowledged journal record looks exactly like a torn tail (docs/FAULTS.md): with the index present
// its appliedSeq tells them apart; with the index lost it cannot, and the record is cut (after a
// copy to quarantine/) — the documented limit.
import { describe, expect, it } from 'vitest';
import { cpSync, readdirSync, readFileSync, rmSync, existsSync, renameSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
// every body in a pack: these tests damage packs, and journal records whose bodies are in packs (helpers/packed.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import type { MailstoreError } from '../../src/errors.js';
import { keys } from '../../src/keys/index-keys.js';
import { parseSegment } from '../../src/journal/segment-reader.js';
import { fillerFrom } from '../../src/journal/journal-format.js';
import { limits } from '../../src/limits.js';
import { damageFile, Rng, deriveSeed, type DamageSpec } from './faultfs.js';
import { expectExactly, msg, skipReason } from './helpers.js';
import { tmpDir } from '../helpers/tmp.js';

const SEEDS = Number(process.env.MEDIA_SEEDS ?? 40);
/** Each index seed runs a child process (LevelDB may abort): fewer by default. */
const INDEX_SEEDS = Number(process.env.MEDIA_SEEDS ?? 16);
const PROBE_STORE = new URL('../../dist/src/store/store.js', import.meta.url).pathname;
/** A probe child's hang guard: past it, the probe counts as aborted (and the seed's expectations say so). */
const PROBE_TIMEOUT_MS = 60_000;

/** Opens a store in a child process (LevelDB may abort the process) and hashes every message. */
function runProbe(dir: string): { aborted: boolean; error?: string; message?: string; rebuilt?: string; messages?: [number, string][] } {
  const script = `
    import { Store } from ${JSON.stringify(PROBE_STORE)};
    import { createHash } from 'node:crypto';
    let store;
    try {
      store = await Store.open(${JSON.stringify(dir)}, { probeIndex: 'always' });
      const messages = [];
      for await (const m of store.messages('INBOX')) messages.push([m.uid, createHash('sha256').update(await store.fetch('INBOX', m.uid)).digest('hex')]);
      console.log(JSON.stringify({ aborted: false, rebuilt: store.health.rebuilt, messages }));
    } catch (e) {
      console.log(JSON.stringify({ aborted: false, error: e.code ?? 'NOT_A_MAILSTORE_ERROR', message: e.message }));
    } finally {
      await store?.close().catch(() => undefined);
    }`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS });
  if (child.status !== 0 || !child.stdout.trim()) return { aborted: true, message: `${child.signal ?? child.status}: ${child.stderr.slice(0, 300)}` };
  return JSON.parse(child.stdout.trim().split('\n').at(-1)!);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function buildStore(count: number, options: { sizes?: (i: number) => number } = {}): Promise<{ dir: string; acked: Map<number, Buffer> }> {
  const dir = tmpDir('media');
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX');
  const acked = new Map<number, Buffer>();
  for (let i = 0; i < count; i++) {
    const bytes = msg(`m${i}`, options.sizes?.(i) ?? (i * 397) % 5000);
    acked.set((await store.append('INBOX', bytes)).uid, bytes);
  }
  await store.close();
  return { dir, acked };
}

function randomSpec(seed: number, size: number, from = 0, to = size): DamageSpec {
  const rng = new Rng(seed);
  const kind = rng.pick(['zeros', 'garbage', 'bitflip'] as const);
  const span = Math.max(1, to - from);
  const length = 1 + rng.int(Math.min(span, kind === 'bitflip' ? 1 : 512));
  return { kind, offset: from + rng.int(span - length + 1), length, seed: deriveSeed(seed, 1) };
}

function segments(dir: string): string[] {
  return readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl')).sort();
}

describe('media faults', () => {
  it(`packs: ${SEEDS} seeded damages → every fetch returns the exact bytes or CORRUPT; only touched blobs fail`, async () => {
    const { dir, acked } = await buildStore(60);
    const pack = readdirSync(join(dir, 'packs')).find((n) => n.endsWith('.pack'))!;
    const size = readFileSync(join(dir, 'packs', pack)).length;
    let corrupt = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const copy = join(tmpDir('media-copy'), 'store');
      cpSync(dir, copy, { recursive: true });
      const spec = randomSpec(deriveSeed(0xbad, seed), size, 32);
      await damageFile(join(copy, 'packs', pack), spec);
      const store = await Store.open(copy);
      try {
        for (const [uid, bytes] of acked) {
          const info = await store.messageInfo('INBOX', uid);
          const blob = (await store.maintenance().index.get<{ o: number; l: number }>(keys.blob(Buffer.from(info.hash, 'hex'))))!;
          const touched = spec.offset < blob.o + 48 + blob.l && spec.offset + spec.length > blob.o;
          try {
            const got = await store.fetch('INBOX', uid);
            expect(got.equals(bytes), `seed ${seed} ${JSON.stringify(spec)}: uid ${uid} returned wrong bytes`).toBe(true);
          } catch (error) {
            expect((error as MailstoreError).code, String(error)).toBe('CORRUPT');
            expect(touched, `seed ${seed}: uid ${uid} failed but the damage ${JSON.stringify(spec)} did not touch [${blob.o}, ${blob.o + 48 + blob.l})`).toBe(true);
            corrupt++;
          }
        }
      } finally {
        await store.close();
      }
      rmSync(copy, { recursive: true, force: true });
    }
    expect(corrupt).toBeGreaterThanOrEqual(SEEDS / 2);
  });

  it('journal: a damaged record in the middle loses only that record; the records after it are kept', async () => {
    const { dir, acked } = await buildStore(30);
    const segment = join(dir, 'journal', segments(dir)[0]);
    const items = [...parseSegment(readFileSync(segment), limits.journalRecordBytesMax)].filter((x) => x.kind === 'record');
    expect(items.length).toBe(31); // create + 30 appends
    for (let seed = 1; seed <= Math.min(SEEDS, 20); seed++) {
      const k = 5 + (seed % 20); // an append record in the middle
      const item = items[k] as { offset: number; end: number; seq: number };
      for (const indexLost of [true, false]) {
        const copy = join(tmpDir('media-copy'), 'store');
        cpSync(dir, copy, { recursive: true });
        const spec = randomSpec(deriveSeed(0x10c, seed), 0, item.offset, item.end);
        if (spec.kind === 'zeros') spec.kind = 'garbage'; // zeros over a CRC-checked frame: same, keep the kinds that always change bytes
        await damageFile(join(copy, 'journal', segments(dir)[0]), spec);
        if (indexLost) rmSync(join(copy, 'index'), { recursive: true });
        const store = await Store.open(copy);
        try {
          const want = new Map(acked);
          if (indexLost) want.delete(k); // record k (seq k+1) appended uid k; the index present still holds it
          // the segment is read from its start either way, so the damage is found and reported
          expect(store.health.degraded).toBe(true);
          expect(store.health.journalDamage.some((d) => d.where === 'middle')).toBe(true);
          await expectExactly(store, 'INBOX', want, `seed ${seed}, record ${k} damaged, index ${indexLost ? 'lost' : 'present'}`);
          const next = await store.append('INBOX', msg('next'));
          expect(next.uid).toBe(31);
        } finally {
          await store.close();
        }
        rmSync(copy, { recursive: true, force: true });
      }
    }
  });

  it('journal: the last acknowledged record damaged, index present → kept, reported in health, still served from the index', async () => {
    const { dir, acked } = await buildStore(10);
    const name = segments(dir)[0];
    const bytes = readFileSync(join(dir, 'journal', name));
    const last = [...parseSegment(bytes, limits.journalRecordBytesMax)].filter((x) => x.kind === 'record').at(-1) as { offset: number; end: number };
    await damageFile(join(dir, 'journal', name), { kind: 'garbage', offset: last.offset + 30, length: 8, seed: 9 });
    let store = await Store.open(dir);
    expect(store.health.degraded).toBe(true);
    expect(store.health.findings.join(' ')).toMatch(/acknowledged records 11\.\.11 are damaged/);
    expect(readdirSync(join(dir, 'quarantine')).some((n) => n.startsWith('journal-tail-'))).toBe(true);
    await expectExactly(store, 'INBOX', acked, 'served from the index');
    const next = await store.append('INBOX', msg('next'));
    expect(next.uid).toBe(11);
    acked.set(next.uid, msg('next'));
    expect(segments(dir).length, 'new records go to a new segment').toBe(2);
    await store.close();
    store = await Store.open(dir);
    await expectExactly(store, 'INBOX', acked, 'after reopen');
    await store.close();
  });

  it('journal: the last acknowledged record damaged, index lost → indistinguishable from a torn tail: quarantined, then cut (the documented limit)', async () => {
    const { dir, acked } = await buildStore(10);
    const name = segments(dir)[0];
    const bytes = readFileSync(join(dir, 'journal', name));
    const last = [...parseSegment(bytes, limits.journalRecordBytesMax)].filter((x) => x.kind === 'record').at(-1) as { offset: number; end: number };
    await damageFile(join(dir, 'journal', name), { kind: 'garbage', offset: last.offset + 30, length: 8, seed: 9 });
    // the record's bytes (the filler the journal preallocated after it is not part of the tail)
    const damagedTail = readFileSync(join(dir, 'journal', name)).subarray(last.offset, last.end);
    rmSync(join(dir, 'index'), { recursive: true });
    const store = await Store.open(dir);
    try {
      expect(store.health.tornTailBytes).toBe(last.end - last.offset);
      const copy = readdirSync(join(dir, 'quarantine')).find((n) => n.startsWith('journal-tail-'))!;
      expect(readFileSync(join(dir, 'quarantine', copy)).equals(damagedTail), 'the cut bytes are kept in quarantine/').toBe(true);
      const want = new Map(acked);
      want.delete(10);
      await expectExactly(store, 'INBOX', want, 'the damaged last record is lost from the store (its bytes are in quarantine/)');
    } finally {
      await store.close();
    }
  });

  for (const where of ['index present', 'index lost, a snapshot beyond them'] as const) {
    it(`journal: the last acknowledged records zeroed inside a preallocated segment, ${where} → reported, kept, nothing dropped`, async () => {
      const { dir, acked } = await buildStore(10);
      if (where !== 'index present') {
        const store = await Store.open(dir);
        await store.snapshot();
        await store.close();
      }
      const name = segments(dir)[0];
      const path = join(dir, 'journal', name);
      const bytes = readFileSync(path);
      const records = [...parseSegment(bytes, limits.journalRecordBytesMax)].filter((x) => x.kind === 'record') as { offset: number; end: number; seq: number }[];
      expect(fillerFrom(bytes, records.at(-1)!.end) && bytes.length > records.at(-1)!.end, 'the segment runs on in filler').toBe(true);
      const from = records.at(-2)!.offset; // the last two records, up to the filler
      await damageFile(path, { kind: 'zeros', offset: from, length: records.at(-1)!.end - from, seed: 1 });
      if (where !== 'index present') rmSync(join(dir, 'index'), { recursive: true });
      let store = await Store.open(dir);
      try {
        expect(store.health.degraded).toBe(true);
        expect(store.health.findings.join(' ')).toMatch(new RegExp(`acknowledged records ${records.at(-2)!.seq}\\.\\.${records.at(-1)!.seq} are damaged`));
        expect(store.health.tornTailBytes ?? 0).toBe(0);
        await expectExactly(store, 'INBOX', acked, `zeroed tail, ${where}`);
        const next = await store.append('INBOX', msg('next'));
        expect(next.uid).toBe(11);
        acked.set(next.uid, msg('next'));
      } finally {
        await store.close();
      }
      store = await Store.open(dir);
      await expectExactly(store, 'INBOX', acked, 'after reopen');
      await store.close();
    });
  }

  it('journal and index both older than the newest snapshot (their tails lost together) → reported from the snapshot, never a clean end', async () => {
    const { dir } = await buildStore(5);
    const old = tmpDir('media-old');
    for (const part of ['journal', 'index']) cpSync(join(dir, part), join(old, part), { recursive: true });
    let store = await Store.open(dir);
    for (let i = 0; i < 5; i++) await store.append('INBOX', msg(`later${i}`));
    const { seq } = await store.snapshot();
    await store.close();
    for (const part of ['journal', 'index']) {
      rmSync(join(dir, part), { recursive: true });
      cpSync(join(old, part), join(dir, part), { recursive: true });
    }
    store = await Store.open(dir);
    try {
      expect(store.health.degraded).toBe(true);
      expect(store.health.findings.join(' ')).toMatch(new RegExp(`the snapshot at seq ${seq} proves records up to ${seq} were acknowledged`));
    } finally {
      await store.close();
    }
  });

  it.skipIf(skipReason(!existsSync(PROBE_STORE), `index damage runs the store in a child process from dist/ (${PROBE_STORE} missing: run \`npm run build\`)`))(
    `index: ${INDEX_SEEDS} seeded damages to LevelDB files (in a child process) → bodies never wrong; CORRUPT or a rebuild; an abort is cured by moving index/ aside`, async () => {
    const { dir, acked } = await buildStore(40);
    // a second session so the index has both compacted tables (.ldb) and a log (.log)
    const store = await Store.open(dir);
    await store.setFlags('INBOX', [1, 2, 3, 4, 5], { add: ['\\Seen'] });
    await store.close();
    const files = readdirSync(join(dir, 'index')).filter((n) => /\.(ldb|log)$|^MANIFEST|^CURRENT$/.test(n));
    const outcomes = { exact: 0, rebuilt: 0, corrupt: 0, aborted: 0, incomplete: [] as string[] };
    for (let seed = 1; seed <= INDEX_SEEDS; seed++) {
      const copy = join(tmpDir('media-copy'), 'store');
      cpSync(dir, copy, { recursive: true });
      const file = files[seed % files.length];
      const size = readFileSync(join(copy, 'index', file)).length;
      if (size === 0) continue;
      const spec = randomSpec(deriveSeed(0x1d8, seed), size);
      await damageFile(join(copy, 'index', file), spec);
      const where = `seed ${seed} ${file} ${JSON.stringify(spec)}`;
      let probe = runProbe(copy);
      if (probe.aborted) {
        // LevelDB 1.20 asserts on some damaged tables and kills the process (RECOVERY.md). Open probes
        // the index in a child first (probeIndex 'always' here), so this is only reached when the
        // abort comes after open; the cure: move index/ aside, and open rebuilds it from the journal
        outcomes.aborted++;
        renameSync(join(copy, 'index'), join(copy, 'quarantine', 'index-aborted'));
        probe = runProbe(copy);
        expect(probe.aborted, `${where}: still aborts without index/`).toBe(false);
      }
      if (probe.error) {
        expect(probe.error, `${where}: ${probe.message}`).toBe('CORRUPT');
        outcomes.corrupt++;
      } else {
        if (probe.rebuilt) outcomes.rebuilt++;
        for (const [uid, sha] of probe.messages!) {
          expect(sha, `${where}: uid ${uid} has wrong bytes`).toBe(acked.has(uid) ? sha256(acked.get(uid)!) : 'absent');
        }
        if (probe.messages!.length === acked.size) outcomes.exact++;
        else outcomes.incomplete.push(`${where}: ${probe.messages!.length} of ${acked.size} messages`);
      }
      rmSync(copy, { recursive: true, force: true });
    }
    console.info(`index damage (${INDEX_SEEDS} seeds): ${JSON.stringify({ ...outcomes, incomplete: outcomes.incomplete.length })}`
      + (outcomes.incomplete.length ? `; silently incomplete (known limit, RECOVERY.md): ${outcomes.incomplete.join(' | ')}` : ''));
  // Its hang guards are the probes' own (at most two a seed, each PROBE_TIMEOUT_MS); the suite's 120 s
  // was a speed, 7.5 s a seed for two node starts, an open and often a rebuild: at load 17-22 the
  // test took 123-125 s (timed out in the loaded suite and alone under a dd+fdatasync loop)
  }, INDEX_SEEDS * 2 * PROBE_TIMEOUT_MS);
});
