// Where the daemon's give-back (src/daemon/give-back.ts) gets V8's gc(): node's --expose-gc, as
// packaging/mailstore.service and the bench give it; made at run time only without the flag; with
// neither, nothing is collected and the daemon's log says so once.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { GiveBack } from '../../src/daemon/give-back.js';
import { repoRoot, requireBuilt } from '../cli/helpers.js';

const gc = () => undefined;

describe('the give-back\'s full collection', () => {
  it('is the global gc() of --expose-gc when node has it: nothing is made at run time, nothing said', () => {
    const runtime = vi.fn(() => () => undefined);
    const say = vi.fn();
    const giveBack = new GiveBack({ flag: () => gc, runtime }, () => say);
    expect(giveBack.collection()).toBe(gc);
    expect(giveBack.collection()).toBe(gc);
    expect(runtime).not.toHaveBeenCalled();
    expect(say).not.toHaveBeenCalled();
  });

  it('without the flag, is made at run time, once', () => {
    const runtime = vi.fn(() => gc);
    const say = vi.fn();
    const giveBack = new GiveBack({ flag: () => undefined, runtime }, () => say);
    expect(giveBack.collection()).toBe(gc);
    expect(giveBack.collection()).toBe(gc);
    expect(runtime).toHaveBeenCalledTimes(1);
    expect(say).not.toHaveBeenCalled();
  });

  for (const refused of ['gives none', 'throws'] as const) {
    it(`with no flag and a run time that ${refused}, does nothing and says so once`, () => {
      const say = vi.fn();
      const runtime = refused === 'throws' ? () => { throw new Error('--expose-gc may not be set at run time'); } : () => undefined;
      const giveBack = new GiveBack({ flag: () => undefined, runtime }, () => say);
      const collect = giveBack.collection();
      expect(collect()).toBeUndefined(); // a no-op, not a failure
      for (let i = 0; i < 3; i++) giveBack.collection()();
      expect(say).toHaveBeenCalledTimes(1);
      expect(say.mock.calls[0]![0]).toMatch(/could not be had .* start the daemon with --expose-gc \(packaging\/mailstore\.service sets NODE_OPTIONS=--expose-gc\)$/);
    });
  }
});

describe('the give-back in node as the daemon runs', () => {
  requireBuilt();
  const module = join(repoRoot, 'dist/src/daemon/give-back.js');
  /** In a node of its own (`flags`, `env`): which gc() the give-back took, whether the global one is left, and what it said. */
  const probe = (flags: string[], env: Record<string, string> = {}) => {
    const script = `const g = await import(${JSON.stringify(module)}); const said = []; g.prepareGiveBack((why) => said.push(why)); const global = globalThis.gc;
      const collect = g.fullCollection(); collect();
      console.log(JSON.stringify({ isGlobal: collect === global, global: typeof globalThis.gc, said }));`;
    const ran = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '', ...env } });
    expect(ran.status, ran.stderr).toBe(0);
    return JSON.parse(ran.stdout) as { isGlobal: boolean; global: string; said: string[] };
  };

  it('with --expose-gc takes the global gc()', () => {
    expect(probe(['--expose-gc'])).toEqual({ isGlobal: true, global: 'function', said: [] });
  });

  it('with the unit\'s NODE_OPTIONS takes the global gc() (packaging/mailstore.service)', () => {
    const unit = readFileSync(join(repoRoot, 'packaging/mailstore.service'), 'utf8');
    const options = /^Environment=NODE_OPTIONS=(.*)$/m.exec(unit)?.[1];
    expect(options, 'the unit gives node --expose-gc').toBe('--expose-gc');
    expect(probe([], { NODE_OPTIONS: options! })).toEqual({ isGlobal: true, global: 'function', said: [] });
  });

  it('without the flag makes one at run time and leaves no global gc() behind', () => {
    expect(probe([])).toEqual({ isGlobal: false, global: 'undefined', said: [] });
  });
});
