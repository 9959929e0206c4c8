// The deliver step's latency tail (issue 12: where the inline row's mean goes beyond its p50) and
// the counting file system it measures through: counted calls go on with all their arguments.
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { countingFileSystem } from '../../src/bench/common.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { tmpDir } from '../helpers/tmp.js';
import { repoRoot } from '../cli/helpers.js';

type Group = { messages: number; seconds: number; mean_ms: number; over_1ms: number };
type Row = { peer: string; messages: number; bytes?: number; note?: string; mean_ms: number; over_1ms: number; fsyncs: number; tail: { inline_bytes_max: number; over_inline: Group; journal_extension: Group; rest: Group } };

function rows(script: string, args: string[]): Row[] {
  const ran = spawnSync(process.execPath, [join(repoRoot, 'dist/src/bench/measure', script), ...args], { encoding: 'utf8' });
  expect(ran.status, ran.stderr).toBe(0);
  return ran.stdout.trim().split('\n').map((line) => JSON.parse(line) as Row);
}

/** 30 messages of ~3 KiB, every tenth ~20 KiB (over a 4 KiB inline threshold), listed one a line. */
function corpus(dir: string): string {
  const files = Array.from({ length: 30 }, (_, i) => {
    const file = join(dir, `m${i}.eml`);
    writeFileSync(file, `Subject: m${i}\r\n\r\n${'x'.repeat(i % 10 === 9 ? 20_000 : 3_000)}\r\n`);
    return file;
  });
  const list = join(dir, 'list.txt');
  writeFileSync(list, `${files.join('\n')}\n`);
  return list;
}

/** The bytes of the first `n` messages of a list. */
function timedBytes(list: string, n: number): number {
  return readFileSync(list, 'utf8').split('\n').filter(Boolean).slice(0, n).reduce((sum, file) => sum + statSync(file).size, 0);
}

describe('the deliver step and its counting file system', () => {
  it('passes writevDurable\'s `written` on (a synchronous replica\'s round waits for it) and counts the flush', async () => {
    const { fs, counts } = countingFileSystem();
    const handle = await fs.open(join(tmpDir('counting'), '0000000000000001.jnl'), 'createOrOpen');
    let told = 0;
    await handle.writevDurable([Buffer.from('record '), Buffer.from('body')], 0, () => told++);
    await handle.close();
    expect(told).toBe(1);
    expect(counts.fileSyncs).toBe(1);
    expect(counts.journalBytes).toBe(11);
    expect((await nodeFileSystem.readFile(join(handle.path))).toString()).toBe('record body');
  });

  it('splits the inline row\'s latencies into bodies over the threshold, journal extensions and the rest; the floor\'s the same way', () => {
    const dir = tmpDir('deliver-tail');
    const list = corpus(dir);
    const [row] = rows('deliver.js', ['--store', join(dir, 'store'), '--list', list, '--messages', '30', '--inline', '4096', '--peer', 'mailstore-inline']);
    const { over_inline: over, journal_extension: extension, rest } = row!.tail;
    expect(row!.tail.inline_bytes_max).toBe(4096);
    expect(over.messages).toBe(3);
    // 27 records of ~3 KiB pass the first segment's 64 KiB of filler: that commit writes the next
    expect(extension.messages).toBeGreaterThanOrEqual(1);
    expect(extension.messages + rest.messages).toBe(27);
    expect(row!.fsyncs).toBeGreaterThanOrEqual(30 + 3); // a pack's body and its record: two flushes
    const total = over.seconds + extension.seconds + rest.seconds;
    expect(Math.abs(row!.mean_ms * 30 / 1000 - total)).toBeLessThan(0.001);
    const floors = rows('sync-shapes.js', ['--dir', join(dir, 'floor'), '--list', list, '--messages', '30', '--inline', '4096']);
    expect(floors.map((r) => r.peer)).toContain('floor-sync-one-zeroed');
    for (const floor of floors) {
      expect(floor.tail.over_inline.messages).toBe(3);
      expect(floor.tail.journal_extension.messages).toBe(0);
      expect(floor.tail.rest.messages).toBe(27);
    }
  });

  it('--warmup M: the one-sync rows and the floors first deliver (write) the list\'s next M untimed, in the same process and files; the tail and fsyncs are of the timed ones', () => {
    const dir = tmpDir('deliver-warm');
    const list = corpus(dir);
    // the first 20 timed (two over the threshold: m9, m19), the next 10 untimed first (one over it: m29)
    const [row] = rows('deliver.js', ['--store', join(dir, 'store'), '--list', list, '--messages', '20', '--warmup', '10', '--inline', '4096', '--peer', 'mailstore-inline']) as (Row & Record<string, unknown>)[];
    expect(row).toMatchObject({ peer: 'mailstore-inline', messages: 20, warmup: 10, cold_messages: 10 });
    expect(row!.tail.over_inline.messages).toBe(2);
    expect(row!.fsyncs).toBeLessThan(30); // the warm-up's flushes are not the timed ones'
    const floors = rows('sync-shapes.js', ['--dir', join(dir, 'floor'), '--list', list, '--messages', '20', '--warmup', '10', '--inline', '4096']) as (Row & Record<string, unknown>)[];
    expect(floors.map((r) => r.peer)).toEqual(['floor-sync-two', 'floor-sync-one', 'floor-sync-one-zeroed', 'floor-sync-two-zeroed']);
    for (const floor of floors) {
      expect(floor).toMatchObject({ messages: 20, warmup: 10, cold_messages: 10 });
      expect(floor.tail.over_inline.messages).toBe(2);
      expect(floor.tail.rest.messages).toBe(18);
      expect(floor.note).toContain('10 untimed writes');
    }
    // 17 messages of 3,000 bytes and 3 of 20,000, each after a 200-byte record: the timed bytes only
    expect(floors[0]!.bytes).toBe(timedBytes(list, 20) + 20 * 200);
  });
});
