// Power cuts under every kind of work (tools/power-workload.ts) on a loop-mounted ext4, by the
// image-copy model of test/sim/power-cut.ts: freeze the writers' process group, copy the image,
// kill them. The copy is mounted (ext4 replays its journal: the reboot) and checked with
// tools/power-ledger.ts: every acknowledged operation there and exact, nothing in flight half
// there, scrub clean, a plain open; the import cut in the middle is run again and must finish
// without duplicates. The live file system, which saw only a process kill, is checked the same
// way. The next run continues on the copy. POWER_CUTS sets the number of cuts (default 4;
// `npm run test:power` 100); POWER_CUT_FS=xfs, btrfs or btrfs-zstd runs them there (power-cut.ts). Root only;
// says why when it skips.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoopDisk, powerCutFileSystem, powerCutSkipReason, runUntilPowerCut } from './power-cut.js';
import { PowerLedger, rerunImport } from '../../tools/power-ledger.js';
import { rng, sha } from '../../tools/power-workload.js';
import { skipReason } from './helpers.js';
import { tmpDir } from '../helpers/tmp.js';

const SCRIPT = new URL('../../dist/tools/power-workload.js', import.meta.url).pathname;
const CLI = new URL('../../dist/src/cli/main.js', import.meta.url).pathname;
const CUTS = Number(process.env.POWER_CUTS) > 0 ? Number(process.env.POWER_CUTS) : 4;
/**
 * A fresh file system every this many cuts, so the image never fills up: at 10 the 160 MiB image
 * filled within the first ten (the workload ended on ENOSPC before its cut, before and after session
 * 20's changes alike), so `npm run test:power` could not get past its first disk.
 */
const CUTS_PER_DISK = 5;
/**
 * The image (sparse: copied and compared by its written blocks). A cut's run writes up to ~30 MB,
 * and the store keeps 5 % of the file system free for itself (the free-space reserve): at 160 MiB
 * the fifth cut's workload ended on NO_SPACE below the reserve (session 35, POWER_CUTS=40), so the
 * long form never got past its first disk.
 */
const DISK_MIB = 320;
const SOURCE_MESSAGES = 60;

/** The import source: .eml files, stored byte for byte, so their hashes are what the store must hold. */
function writeSource(dir: string): Set<string> {
  mkdirSync(dir, { recursive: true });
  const shas = new Set<string>();
  for (let i = 0; i < SOURCE_MESSAGES; i++) {
    const bytes = Buffer.from(`From: import@example.org\r\nSubject: import ${i}\r\nMessage-ID: <imp-${i}@example.org>\r\n\r\n${'imported line\r\n'.repeat(20 + i * 37)}`);
    writeFileSync(join(dir, `${String(i).padStart(4, '0')}.eml`), bytes);
    shas.add(sha(bytes));
  }
  return shas;
}

const work = tmpDir('power-cut');
const skip = !existsSync(SCRIPT) ? `${SCRIPT} missing: run npm run build` : powerCutSkipReason(work);

describe(`power cuts (image copy of a loop-mounted ${powerCutFileSystem()}; root only)`, () => {
  it.skipIf(skipReason(!!skip, `power cuts: ${skip}`))(`${CUTS} power cuts under library writers, CLI processes and an import: every acknowledged operation survives`, async () => {
    const source = join(work, 'source');
    const sourceShas = writeSource(source);
    const random = rng(0x9017);
    const copy = join(work, 'cut.img');
    let disk: LoopDisk | undefined;
    let ledger = new PowerLedger(sourceShas);
    const started = Date.now();
    const byDisk: PowerLedger[] = [];
    const copies: Record<number, number> = {}; // tries until a copy no write-back changed
    try {
      for (let cut = 0; cut < CUTS; cut++) {
        if (cut % CUTS_PER_DISK === 0) {
          disk?.dispose();
          disk = new LoopDisk(join(work, `disk-${cut}`), DISK_MIB, powerCutFileSystem());
          disk.format();
          disk.mount();
          mkdirSync(join(disk.mnt, 'root'));
          execFileSync('sync');
          ledger = new PowerLedger(sourceShas);
          byDisk.push(ledger);
        } else {
          disk!.mount();
        }
        const root = join(disk!.mnt, 'root');
        // even runs start with the import: a third of their cuts early, while it runs; odd runs
        // are longer, for the CLI processes (each takes 0.3-2 s to start on a loaded machine)
        const cutAfterMs = 50 + Math.floor(random() * (cut % 2 === 1 ? 6000 : random() < 0.35 ? 1500 : 4000));
        const { lines, copyAttempts } = await runUntilPowerCut(SCRIPT, ['child', root, String(cut), String(Math.floor(random() * 2 ** 31)), source], { cutAfterMs, disk: disk!, copy });
        ledger.absorb(lines);
        copies[copyAttempts] = (copies[copyAttempts] ?? 0) + 1;
        const where = `cut ${cut} (${cutAfterMs} ms, ${lines.length} lines)`;
        // the live file system saw only a process kill: all of it must hold too
        const live = ledger.clone();
        await live.check(join(root, 'lib'), 'lib').catch((e) => { throw new Error(`${where}, live file system: ${(e as Error).message}`); });
        await live.check(join(root, 'cli'), 'cli').catch((e) => { throw new Error(`${where}, live file system: ${(e as Error).message}`); });
        disk!.unmount();
        disk!.replaceImage(copy);
        disk!.mount();
        await ledger.check(join(root, 'lib'), 'lib').catch((e) => { throw new Error(`${where}, image copy: ${(e as Error).message}`); });
        await ledger.check(join(root, 'cli'), 'cli', (mailbox) => rerunImport(CLI, join(root, 'cli'), source, mailbox))
          .catch((e) => { throw new Error(`${where}, image copy: ${(e as Error).message}`); });
        disk!.unmount();
        ledger.counts.cuts++;
      }
    } finally {
      disk?.dispose();
    }
    const total = summarize(byDisk);
    console.info(`power cuts: ${JSON.stringify({ ...total, copyAttempts: copies })} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    expect(total.cuts).toBe(CUTS);
    expect(total.acknowledged['lib append'], 'appends were acknowledged').toBeGreaterThan(0);
    expect(total.acknowledged['cli import batch'], 'import batches were acknowledged').toBeGreaterThan(0);
  }, 7_200_000);
});

function summarize(ledgers: PowerLedger[]) {
  const sum = (pick: (l: PowerLedger) => Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const l of ledgers) for (const [k, v] of Object.entries(pick(l))) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  return {
    cuts: ledgers.reduce((n, l) => n + l.counts.cuts, 0),
    acknowledged: sum((l) => l.counts.acknowledged),
    inFlightDone: sum((l) => l.counts.inFlightDone),
    inFlightUndone: sum((l) => l.counts.inFlightUndone),
    importsCut: ledgers.reduce((n, l) => n + l.counts.importsCut, 0),
    importReruns: ledgers.reduce((n, l) => n + l.counts.importReruns, 0),
  };
}
