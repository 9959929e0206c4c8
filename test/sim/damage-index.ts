// Index (LevelDB) damage for the damage explorer. LevelDB 1.20 can abort the process on a damaged
// table (RECOVERY.md), so these cases run in child processes from dist/, several per child: a child
// prints one line per finished case, and a case that kills its child is recorded as such.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyDamage, type DamageCase } from './damage-cases.js';
import { materialize, type Shape } from './damage-shapes.js';
import type { Observation } from './damage-run.js';

export const DIST_STORE = new URL('../../dist/src/store/store.js', import.meta.url).pathname;
const DIST_SCRUB = new URL('../../dist/src/scrub/scrub.js', import.meta.url).pathname;
export const haveDist = existsSync(DIST_STORE) && existsSync(DIST_SCRUB);

/** The LevelDB files that hold data (LOG, LOG.old and LOCK are LevelDB's own notes and lock). */
export function isIndexDataFile(path: string): boolean {
  return /^index\/(\d+\.(ldb|log)|CURRENT|MANIFEST-\d+)$/.test(path);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

// The child: observe() of damage-run.ts, in plain JavaScript against dist/. Opens as the CLI's
// scrub does (probeIndex 'always': a damaged index is set aside and rebuilt).
const CHILD = `
import { Store } from ${JSON.stringify(DIST_STORE)};
import { scrub } from ${JSON.stringify(DIST_SCRUB)};
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
const job = JSON.parse(readFileSync(process.argv[1], 'utf8'));
const code = (e) => e && e.name === 'MailstoreError' && e.code ? e.code : 'PLAIN: ' + String(e && e.stack || e).split('\\n').slice(0, 3).join(' ');
const explain = (e) => code(e) + (e && e.name === 'MailstoreError' ? ': ' + e.message : '');
for (const c of job.cases) {
  const obs = { reads: [], rebuilt: undefined };
  let store;
  try {
    store = await Store.open(c.dir, { ...job.options, probeIndex: 'always' });
  } catch (e) {
    obs.openError = explain(e);
  }
  if (store) {
    try {
      obs.rebuilt = store.health.rebuilt;
      for (const [box, uid, want] of job.refs) {
        try {
          obs.reads.push([box + ':' + uid, createHash('sha256').update(await store.fetch(box, uid)).digest('hex') === want ? 'exact' : 'WRONG']);
        } catch (e) { obs.reads.push([box + ':' + uid, code(e)]); }
      }
      try {
        const meta = {};
        for (const { name } of await store.listMailboxes()) {
          const list = [];
          for await (const m of store.messages(name)) list.push([m.uid, m.flags.join(' ')]);
          meta[name] = list;
        }
        obs.metadata = meta;
      } catch (e) { obs.metadataError = explain(e); }
      try {
        const report = await scrub(store, { hashThreads: 0 });
        obs.scrubDamage = report.summary.damage;
        obs.scrubKinds = [...new Set(report.findings.map((f) => f.kind))].sort();
      } catch (e) { obs.scrubError = explain(e); }
    } finally {
      await store.close().catch(() => undefined);
    }
  }
  console.log(JSON.stringify({ i: c.i, obs }));
}`;

export interface IndexObservation extends Observation {
  /** Why open rebuilt the index, if it did. */
  rebuilt?: string;
  /** The child died (LevelDB abort) or ran out of time during this case. */
  died?: string;
}

/** Runs the cases in children, `perChild` at a time; returns one observation per case, in order. */
export function observeIndexCases(shape: Shape, cases: DamageCase[], root: string, perChild = 8): IndexObservation[] {
  const refs: [string, number, string][] = [];
  for (const [box, messages] of shape.model) for (const [uid, bytes] of messages) refs.push([box, uid, sha256(bytes)]);
  const out: IndexObservation[] = [];
  let next = 0;
  while (next < cases.length) {
    const chunk = cases.slice(next, next + perChild).map((c, k) => {
      const dir = join(root, `index-case-${k}`);
      materialize(shape, dir, { path: c.path, bytes: applyDamage(shape.files.get(c.path)!, c) });
      return { i: next + k, dir };
    });
    const jobPath = join(root, 'index-job.json');
    writeFileSync(jobPath, JSON.stringify({ options: shape.options, refs, cases: chunk }));
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, jobPath], { encoding: 'utf8', timeout: 60_000 * chunk.length });
    const lines = child.stdout.split('\n').filter((l) => l.startsWith('{'));
    for (const line of lines) {
      const { obs } = JSON.parse(line) as { obs: IndexObservation & { reads: [string, string][] } };
      out.push({ ...obs, reads: new Map(obs.reads) });
    }
    next += lines.length;
    if (lines.length < chunk.length) {
      // the case in progress killed its child: record it, go on with the next one
      out.push({ reads: new Map(), died: `${child.signal ?? `exit ${child.status}`}: ${child.stderr.trim().slice(0, 300)}` });
      next++;
    }
  }
  return out;
}
