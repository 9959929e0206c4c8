// Power cuts on a real file system (docs/FAULTS.md): the writers run on ext4 in a loop-mounted image;
// a cut freezes their whole process group (SIGSTOP), waits for the device to finish what it was
// given, copies the image (`cp --sparse=always`: every write the device completed, nothing still
// dirty in the page cache above it) and only then kills them. The copy is the disk after the
// power came back: mount it and check there. Unlike `xfs_io -x -c shutdown`, which lost the last
// fdatasync-acknowledged write of a 10-line program in 3 of 13 runs, this never lost one (15 of 15),
// so "acknowledged ⇒ present" is a fair oracle on the copy.
//
// POWER_CUT_FS=xfs, btrfs or btrfs-zstd (mounted compress=zstd) makes the images of that file
// system instead of ext4 (mounted with nouuid on XFS, which refuses a second file system with a UUID
// it saw; btrfs and XFS need bigger images than ext4: at least 128 and 300 MiB). Root only (mount, losetup). This is test code, so
// it uses node:fs and child_process directly.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long the frozen writers' last requests get to reach the device before the copy. */
export const SETTLE_MS = 200;
/** Copies of the image tried before giving up on one that no write-back changed under. */
const COPY_ATTEMPTS_MAX = 8;

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

/** The file systems a LoopDisk can hold: mkfs, mount options, the smallest image it takes, the Debian package. */
const FILE_SYSTEMS = {
  ext4: { mkfs: ['mkfs.ext4', '-q', '-F'], mountOptions: 'loop', minMiB: 16, apt: 'e2fsprogs' },
  xfs: { mkfs: ['mkfs.xfs', '-q', '-f'], mountOptions: 'loop,nouuid', minMiB: 300, apt: 'xfsprogs' },
  btrfs: { mkfs: ['mkfs.btrfs', '-q', '-f'], mountOptions: 'loop', minMiB: 128, apt: 'btrfs-progs' },
  // compressed extents: a write is compressed at write-back, in up to 128 KiB extents rewritten whole
  'btrfs-zstd': { mkfs: ['mkfs.btrfs', '-q', '-f'], mountOptions: 'loop,compress=zstd', minMiB: 128, apt: 'btrfs-progs' },
} as const;
export type DiskFileSystem = keyof typeof FILE_SYSTEMS;

/** The file system power cuts run on: POWER_CUT_FS, else ext4. */
export function powerCutFileSystem(): DiskFileSystem {
  const name = process.env.POWER_CUT_FS ?? 'ext4';
  if (!(name in FILE_SYSTEMS)) throw new Error(`POWER_CUT_FS=${name}: one of ${Object.keys(FILE_SYSTEMS).join(', ')}`);
  return name as DiskFileSystem;
}

/** Why power cuts cannot run here, or undefined when they can (checks root, tools, a real loop mount). */
export function powerCutSkipReason(work: string): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (mount -o loop)';
  const fileSystem = powerCutFileSystem();
  for (const tool of [FILE_SYSTEMS[fileSystem].mkfs[0], 'losetup', 'mount', 'umount', 'cp', 'cmp', 'truncate']) {
    if (!has(tool)) return `${tool} is missing (apt-get install -y ${FILE_SYSTEMS[fileSystem].apt} util-linux coreutils diffutils)`;
  }
  const disk = new LoopDisk(join(work, 'probe'), 16, fileSystem);
  try {
    disk.format();
    disk.mount();
    disk.unmount();
    return undefined;
  } catch (error) {
    return `a loop-mounted ${fileSystem} does not work here: ${(error as Error).message.split('\n')[0]}`;
  } finally {
    disk.dispose();
  }
}

/** An image file (ext4 unless told) with its mount point; `mnt` is where the writers and checks work. */
export class LoopDisk {
  readonly image: string;
  readonly mnt: string;
  private mounted = false;

  /** `sizeMiB`: raised to the smallest image `fileSystem` takes. */
  constructor(readonly dir: string, readonly sizeMiB = 128, readonly fileSystem: DiskFileSystem = 'ext4') {
    mkdirSync(dir, { recursive: true });
    this.image = join(dir, 'disk.img');
    this.mnt = join(dir, 'mnt');
    mkdirSync(this.mnt, { recursive: true });
  }

  format(): void {
    rmSync(this.image, { force: true });
    const { mkfs, minMiB } = FILE_SYSTEMS[this.fileSystem];
    execFileSync('truncate', ['-s', `${Math.max(this.sizeMiB, minMiB)}M`, this.image]);
    execFileSync(mkfs[0], [...mkfs.slice(1), this.image], { stdio: 'pipe' });
  }

  /** Mounting a copy replays its journal (ext4, XFS) or finds its last committed tree (btrfs): the reboot after the cut. */
  mount(): void {
    execFileSync('mount', ['-o', FILE_SYSTEMS[this.fileSystem].mountOptions, this.image, this.mnt], { stdio: 'pipe' });
    this.mounted = true;
  }

  unmount(): void {
    if (!this.mounted) return;
    execFileSync('umount', [this.mnt], { stdio: 'pipe' });
    this.mounted = false;
  }

  /**
   * The disk as the cut left it, copied beside the image (the caller kills the writers next).
   * The kernel may still write back pages the frozen writers left dirty while `cp` reads, which
   * would make the copy a mix of two moments; so the copy is compared with the image afterwards
   * and taken again until the two agree: then it is the device at one instant. Returns the tries.
   */
  copyImage(to: string): number {
    for (let attempt = 1; attempt <= COPY_ATTEMPTS_MAX; attempt++) {
      execFileSync('cp', ['--sparse=always', this.image, to]);
      if (spawnSync('cmp', ['-s', this.image, to]).status === 0) return attempt;
    }
    throw new Error(`the image kept changing under ${COPY_ATTEMPTS_MAX} copies: no consistent cut`);
  }

  /** From now on the disk is `copy` (the state that survived a cut); the old image is gone. */
  replaceImage(copy: string): void {
    if (this.mounted) throw new Error('unmount before replacing the image');
    renameSync(copy, this.image);
  }

  /** Unmounts (lazily if something still holds it) and removes the image. */
  dispose(): void {
    if (this.mounted) spawnSync('umount', ['-l', this.mnt]);
    this.mounted = false;
    if (existsSync(this.dir)) rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface CutOptions {
  /** Milliseconds after the child prints READY at which the power goes. */
  cutAfterMs: number;
  disk: LoopDisk;
  /** Where the image copy goes. */
  copy: string;
  settleMs?: number;
  /** Guard: the whole run, after which the child is killed and the run fails. */
  timeoutMs?: number;
}

export interface CutResult {
  /** Whole stdout lines the child printed before the cut (READY excluded). */
  lines: string[];
  stderr: string;
  /** 1 when the first copy of the image was already consistent (see LoopDisk.copyImage). */
  copyAttempts: number;
}

/**
 * Runs `node script ...args` as the leader of a new process group (everything it spawns is in the
 * group), and once it printed READY and `cutAfterMs` passed: SIGSTOP to the group, settle, copy
 * the image, SIGKILL to the group. Resolves once the child is gone, with what it printed.
 */
export function runUntilPowerCut(script: string, args: string[], options: CutOptions): Promise<CutResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const group = proc.pid!;
    let stdout = '';
    let stderr = '';
    let cut: Promise<void> | undefined;
    let cutError: unknown;
    let copyAttempts = 0;
    const signalGroup = (signal: NodeJS.Signals) => { try { process.kill(-group, signal); } catch { /* already gone */ } };
    const powerCut = async () => {
      signalGroup('SIGSTOP');
      await sleep(options.settleMs ?? SETTLE_MS);
      try { copyAttempts = options.disk.copyImage(options.copy); } catch (error) { cutError = error; }
      signalGroup('SIGKILL');
    };
    proc.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!cut && stdout.includes('READY\n')) cut = sleep(options.cutAfterMs).then(powerCut);
    });
    proc.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const guard = setTimeout(() => signalGroup('SIGKILL'), options.timeoutMs ?? 120_000);
    proc.on('close', async (code, signal) => {
      clearTimeout(guard);
      if (!cut) return reject(new Error(`the workload ended before it was ready (code ${code}, signal ${signal}): ${stderr.slice(0, 3000)}`));
      await cut;
      if (cutError) return reject(cutError);
      if (signal !== 'SIGKILL') return reject(new Error(`the workload ended on its own before the cut (code ${code}): ${stderr.slice(0, 3000)}`));
      const lines = stdout.split('\n');
      lines.pop(); // a line cut in half is no acknowledgement
      resolve({ lines: lines.filter((l) => l && l !== 'READY'), stderr, copyAttempts });
    });
  });
}
