// Runs one damage case on a fresh copy of a shape's store and judges it: open works or refuses with
// a typed error; every acknowledged message reads back exact or fails CORRUPT (fetch and
// readMessages); scrub reports the damage unless nothing kept was touched; a clean scrub means
// every message reads back exact.
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { MailstoreError } from '../../src/errors.js';
import { applyDamage, damagedRange, type DamageCase } from './damage-cases.js';
import { materialize, readMetadata, type Metadata, type Shape } from './damage-shapes.js';
import { msg } from './helpers.js';

/** What one case did; `failure` is set when a property was broken. */
export interface Verdict {
  outcome: string;
  failure?: string;
  detail?: string;
}

export interface Observation {
  /** Open's error code ('PLAIN: message' for an error without one), or undefined when it opened. */
  openError?: string;
  /** Per message 'mailbox:uid' → 'exact' | 'WRONG' | an error code. */
  reads: Map<string, string>;
  /** Metadata as the damaged store reports it, or the error that stopped reading it. */
  metadata?: Metadata;
  metadataError?: string;
  scrubDamage?: number;
  scrubKinds?: string[];
  scrubError?: string;
  /** What keeping on using the store did (continueAfterDamage), when asked. */
  after?: string;
}

export const CASE_TIMEOUT_MS = 30_000;

function codeOf(error: unknown): string {
  return error instanceof MailstoreError ? error.code : `PLAIN: ${error instanceof Error ? error.stack?.split('\n').slice(0, 3).join(' ') : String(error)}`;
}

/** The code and, for a MailstoreError, its message (for the report of a case). */
function explain(error: unknown): string {
  return error instanceof MailstoreError ? `${error.code}: ${error.message}` : codeOf(error);
}

/**
 * Opens, reads everything the model knows, reads the metadata, scrubs; with `continueAfter`, then
 * keeps using the store (continueAfterDamage).
 */
export async function observe(shape: Shape, dir: string, options: { continueAfter?: boolean } = {}): Promise<Observation> {
  const obs: Observation = { reads: new Map() };
  let store: Store;
  try {
    store = await Store.open(dir, shape.options);
  } catch (error) {
    obs.openError = explain(error);
    return obs;
  }
  try {
    for (const [box, messages] of shape.model) {
      for (const [uid, bytes] of messages) {
        try {
          obs.reads.set(`${box}:${uid}`, (await store.fetch(box, uid)).equals(bytes) ? 'exact' : 'WRONG');
        } catch (error) {
          obs.reads.set(`${box}:${uid}`, codeOf(error));
        }
      }
      await readAll(store, box, messages, obs);
      await readStreams(store, box, messages, obs);
    }
    try {
      obs.metadata = await readMetadata(store);
    } catch (error) {
      obs.metadataError = explain(error);
    }
    try {
      const report = await scrub(store, { hashThreads: 0 });
      obs.scrubDamage = report.summary.damage;
      obs.scrubKinds = [...new Set(report.findings.map((f) => f.kind))].sort();
    } catch (error) {
      obs.scrubError = explain(error);
    }
  } finally {
    await store.close();
  }
  if (options.continueAfter) obs.after = await continueAfterDamage(shape, dir, obs);
  return obs;
}

/**
 * Keeps using the damaged store as a server would: one append, close, reopen. The new message and
 * every message that read back exact before must read back exact now ('ok'); a typed refusal of
 * the append or the reopen is allowed ('refused: CODE'); anything else is 'LOST: ...' or 'PLAIN: ...'.
 */
async function continueAfterDamage(shape: Shape, dir: string, obs: Observation): Promise<string> {
  const box = [...shape.model.keys()][0];
  const bytes = msg('appended after the damage', 321);
  let uid: number;
  try {
    const store = await Store.open(dir, shape.options);
    try {
      uid = (await store.append(box, bytes)).uid;
    } finally {
      await store.close();
    }
  } catch (error) {
    return error instanceof MailstoreError ? `refused: ${error.code}` : codeOf(error);
  }
  let store: Store;
  try {
    store = await Store.open(dir, shape.options);
  } catch (error) {
    return error instanceof MailstoreError ? `LOST: the reopen after an acknowledged append failed: ${explain(error)}` : codeOf(error);
  }
  try {
    const lost: string[] = [];
    const check = async (mailbox: string, u: number, want: Buffer) => {
      const got = await store.fetch(mailbox, u).catch((error) => codeOf(error));
      if (!(got instanceof Buffer) || !got.equals(want)) lost.push(`${mailbox}:${u} ${got instanceof Buffer ? 'WRONG' : got}`);
    };
    await check(box, uid, bytes);
    for (const [mailbox, messages] of shape.model) {
      for (const [u, want] of messages) if (obs.reads.get(`${mailbox}:${u}`) === 'exact') await check(mailbox, u, want);
    }
    return lost.length ? `LOST: ${lost.join(', ')}` : 'ok';
  } finally {
    await store.close();
  }
}

/** The batched read path (readMessages): a body it yields must be the acknowledged one. */
async function readAll(store: Store, box: string, messages: Map<number, Buffer>, obs: Observation): Promise<void> {
  try {
    for await (const { info, body } of store.readMessages(box, { onCorrupt: () => undefined })) {
      const want = messages.get(info.uid);
      if (!want || !body.equals(want)) obs.reads.set(`${box}:${info.uid}`, 'WRONG');
    }
  } catch (error) {
    obs.reads.set(`${box}:readMessages`, codeOf(error));
  }
}

/** The streaming read path (fetchStream, which verifies before it hands out a byte). */
async function readStreams(store: Store, box: string, messages: Map<number, Buffer>, obs: Observation): Promise<void> {
  for (const [uid, bytes] of messages) {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of await store.fetchStream(box, uid)) chunks.push(chunk as Buffer);
    } catch (error) {
      if (codeOf(error) !== 'CORRUPT') obs.reads.set(`${box}:${uid}`, `stream: ${codeOf(error)}`);
      continue;
    }
    if (!Buffer.concat(chunks).equals(bytes)) obs.reads.set(`${box}:${uid}`, 'WRONG');
  }
}

/** Runs the case with a deadline: a hang is a failure, not a stuck test. */
export async function runCase(shape: Shape, c: DamageCase, root: string, options: { continueAfter?: boolean } = {}): Promise<{ verdict: Verdict; obs?: Observation }> {
  const dir = join(root, 'case');
  const pristine = shape.files.get(c.path)!;
  materialize(shape, dir, { path: c.path, bytes: applyDamage(pristine, c) });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'hang'>((resolve) => { timer = setTimeout(() => resolve('hang'), CASE_TIMEOUT_MS); });
  try {
    const obs = await Promise.race([observe(shape, dir, options), deadline]);
    if (obs === 'hang') return { verdict: { outcome: 'FAIL', failure: 'hang', detail: `no answer in ${CASE_TIMEOUT_MS} ms` } };
    return { verdict: judge(shape, c, obs), obs };
  } finally {
    clearTimeout(timer);
  }
}

/** Does the case change bytes scrub must account for (see Shape.live)? */
export function touchesLive(shape: Shape, c: DamageCase): boolean {
  const [from, to] = damagedRange(shape.files.get(c.path)!, c);
  return (shape.live.get(c.path) ?? []).some(([a, b]) => from < b && to > a);
}

/**
 * `index`: the case damaged index/. A flipped byte inside a LevelDB key moves a message record to
 * another key (the value checksum does not cover the key: RECOVERY.md, known limits), so a message
 * may be NOT_FOUND; scrub must then report it.
 */
export function judge(shape: Shape, c: DamageCase, obs: Observation, options: { index?: boolean } = {}): Verdict {
  if (obs.openError) {
    if (obs.openError.startsWith('PLAIN')) return { outcome: 'FAIL', failure: 'open-plain-error', detail: obs.openError };
    return { outcome: `open refused (${obs.openError.split(':')[0]})` };
  }
  const reads = [...obs.reads.entries()];
  const wrong = reads.filter(([, r]) => r === 'WRONG');
  if (wrong.length) return { outcome: 'FAIL', failure: 'wrong-bytes', detail: wrong.map(([k]) => k).join(', ') };
  const odd = reads.filter(([, r]) => r !== 'exact' && r !== 'CORRUPT' && !(options.index && r === 'NOT_FOUND'));
  if (odd.length) return { outcome: 'FAIL', failure: 'read-error-not-corrupt', detail: odd.map(([k, r]) => `${k}: ${r}`).join('; ') };
  if (obs.metadataError?.startsWith('PLAIN')) return { outcome: 'FAIL', failure: 'metadata-plain-error', detail: obs.metadataError };
  if (obs.scrubError) return { outcome: 'FAIL', failure: 'scrub-error', detail: obs.scrubError };
  if (obs.after && obs.after !== 'ok' && !obs.after.startsWith('refused')) return { outcome: 'FAIL', failure: 'lost-after-continuing', detail: obs.after };
  const allExact = reads.every(([, r]) => r === 'exact');
  const intact = allExact && !obs.metadataError && JSON.stringify(obs.metadata) === JSON.stringify(shape.metadata);
  if (obs.scrubDamage! > 0) {
    const missing = reads.some(([, r]) => r === 'NOT_FOUND') ? ' or NOT_FOUND (a damaged index key)' : '';
    return { outcome: allExact ? 'scrub damaged, reads exact' : `scrub damaged, some reads CORRUPT${missing}` };
  }
  if (!intact) {
    const detail = allExact ? `metadata differs: ${JSON.stringify(obs.metadata)}` : reads.filter(([, r]) => r !== 'exact').map(([k, r]) => `${k}: ${r}`).join('; ');
    return { outcome: 'FAIL', failure: 'scrub-clean-but-not-intact', detail };
  }
  if (touchesLive(shape, c)) return { outcome: 'FAIL', failure: 'damage-called-clean', detail: `findings: ${obs.scrubKinds!.join(', ') || 'none'}` };
  const what = options.index ? 'every read exact, metadata intact' : 'only bytes nothing uses were touched';
  return { outcome: `scrub clean${obs.scrubKinds!.length ? ' (informational findings)' : ''}, ${what}` };
}
