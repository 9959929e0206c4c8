// The power-cut oracle (tools/power-ledger.ts) must be able to fail: stores made by hand to look
// like a bad recovery (an acknowledged append missing, half a batch, a move in both places, a
// rename leaving both names, a lost flag, a duplicated import) are each refused, and a good one passes.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { PowerLedger } from '../../tools/power-ledger.js';
import { sha } from '../../tools/power-workload.js';
import { tmpDir } from '../helpers/tmp.js';

const body = (n: number) => Buffer.from(`From: ledger@example.org\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n`);

/** A store with INBOX and Archive, shaped by `build`, closed again. */
async function storeWith(build: (store: Store) => Promise<void>): Promise<string> {
  const dir = join(tmpDir('power-ledger'), 'lib');
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX');
  await store.createMailbox('Archive');
  await build(store);
  await store.close();
  return dir;
}

async function verdict(dir: string, lines: string[], sourceShas = new Set<string>()): Promise<string> {
  const ledger = new PowerLedger(sourceShas);
  ledger.absorb(lines);
  return ledger.check(dir, 'lib').then(() => 'ok', (e: Error) => e.message);
}

describe('power ledger: the oracle refuses bad recoveries', () => {
  it('passes a store holding exactly what was acknowledged, and an in-flight append either way', async () => {
    const dir = await storeWith(async (s) => { await s.append('INBOX', body(1)); await s.append('INBOX', body(2)); });
    expect(await verdict(dir, [`t lib INBOX ${sha(body(1))}`, `A lib INBOX 1 ${sha(body(1))}`, `t lib INBOX ${sha(body(2))}`])).toBe('ok');
    expect(await verdict(dir, [`A lib INBOX 1 ${sha(body(1))}`, `A lib INBOX 2 ${sha(body(2))}`, `t lib INBOX ${sha(body(3))}`])).toBe('ok');
  });

  it('refuses a missing acknowledged append, a message never appended, and one at another uid', async () => {
    const dir = await storeWith(async (s) => { await s.append('INBOX', body(1)); });
    expect(await verdict(dir, [`A lib INBOX 1 ${sha(body(1))}`, `A lib INBOX 2 ${sha(body(2))}`])).toMatch(/acknowledged message .* is missing/);
    expect(await verdict(dir, [])).toMatch(/never appended there/);
    expect(await verdict(dir, [`A lib INBOX 7 ${sha(body(1))}`])).toMatch(/acknowledged at INBOX\/7 is at INBOX\/1/);
  });

  it('refuses half a batch', async () => {
    const dir = await storeWith(async (s) => { await s.append('INBOX', body(1)); await s.append('INBOX', body(2)); });
    expect(await verdict(dir, [`b lib INBOX ${[1, 2, 3].map((n) => sha(body(n))).join(',')}`])).toMatch(/2 of the 3 messages of a batch/);
  });

  it('refuses a move in both places, and in neither', async () => {
    const both = await storeWith(async (s) => { await s.append('INBOX', body(1)); await s.copy('INBOX', 1, 'Archive'); });
    const lines = [`A lib INBOX 1 ${sha(body(1))}`, `m lib INBOX 1 Archive ${sha(body(1))}`];
    expect(await verdict(both, lines)).toMatch(/present 2 times/);
    const neither = await storeWith(async () => undefined);
    expect(await verdict(neither, lines)).toMatch(/missing \(a move was in flight: neither place\)/);
  });

  it('refuses a rename that left both names, a lost flag and a flag never set', async () => {
    const dir = await storeWith(async (s) => {
      await s.createMailbox('Box');
      await s.createMailbox('Box-r');
      await s.append('INBOX', body(1), { flags: ['$Other'] });
    });
    const acked = [`C lib Box`, `A lib INBOX 1 ${sha(body(1))}`];
    expect(await verdict(dir, [...acked, `F lib INBOX 1 $Other ${sha(body(1))}`, 'r lib Box Box-r'])).toMatch(/rename .* left both/);
    expect(await verdict(dir, [...acked, 'C lib Box-r', `F lib INBOX 1 $Gone ${sha(body(1))}`])).toMatch(/lost acknowledged flag \$Gone/);
    expect(await verdict(dir, [...acked, 'C lib Box-r'])).toMatch(/has flag \$Other, never set/);
  });

  it('refuses an import that holds a source message twice or fewer than acknowledged', async () => {
    const source = new Set([sha(body(10)), sha(body(11)), sha(body(12))]);
    const dir = await storeWith(async (s) => { await s.createMailbox('Imp-0'); await s.append('Imp-0', body(10)); await s.append('Imp-0', body(10)); });
    expect(await verdict(dir, ['i lib Imp-0', 'I lib Imp-0 2'], source)).toMatch(/holds source message .* twice/);
    const short = await storeWith(async (s) => { await s.createMailbox('Imp-0'); await s.append('Imp-0', body(10)); });
    expect(await verdict(short, ['i lib Imp-0', 'I lib Imp-0 2'], source)).toMatch(/2 messages acknowledged as imported, 1 present/);
    expect(await verdict(short, ['i lib Imp-0', 'I lib Imp-0 1'], source)).toBe('ok');
  });
});
