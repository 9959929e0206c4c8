// An export that fails (a full disk) says NO_SPACE and leaves nothing under --out, so the same
// command can run again; nothing is written through a symbolic link planted at --out or inside an
// existing Maildir there (issue 10 #14 and "every file path the tools write").
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isMailstoreError, type MailstoreError } from '../../src/errors.js';
import { readMbox } from '../../src/formats/mbox.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { exportMailbox, type ExportOptions } from '../../src/import/exporter.js';
import { Store } from '../../src/store/store.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';
import { bin, requireBuilt } from '../cli/helpers.js';

/** 30 messages of ~50 KB: more than one mbox write buffer (1 MiB), so a write fails mid-export. */
const bodies = Array.from({ length: 30 }, (_, i) => `Message-ID: <e${i}@example.org>\nSubject: ${i}\n\n${String(i % 10).repeat(50_000)}\n`);

async function filledStore(): Promise<Store> {
  const store = await Store.open(tmpDir('export-store'), { create: true });
  await store.createMailbox('INBOX');
  await store.createMailbox('INBOX/Sub');
  for (const text of bodies) await store.append('INBOX', Buffer.from(text));
  await store.append('INBOX/Sub', Buffer.from(bodies[0]!));
  return store;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<MailstoreError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(isMailstoreError(error), String(error)).toBe(true);
  expect((error as MailstoreError).code, (error as Error).message).toBe(code);
  return error as MailstoreError;
}

async function mboxBodies(path: string): Promise<string[]> {
  const out: string[] = [];
  for await (const m of readMbox(nodeFileSystem, path)) out.push(m.bytes.toString());
  return out;
}

const curFiles = (dir: string) => readdirSync(join(dir, 'cur')).sort();

describe('a failed export leaves nothing under --out', () => {
  let store: Store | undefined;
  afterEach(async () => { await store?.close(); store = undefined; });

  it('mbox: a short write on a full disk is NO_SPACE (not IO); nothing is left; the re-run succeeds', async () => {
    store = await filledStore();
    const parent = tmpDir('export-out');
    const out = join(parent, 'INBOX.mbox');
    const fs = new FaultFileSystem({ seed: 7 });
    fs.injectAt((op) => op.kind === 'write' && op.path.startsWith(parent), { kind: 'shortWrite', bytes: 4096 });
    const options: ExportOptions = { format: 'mbox', out, fs };
    await expectCode(exportMailbox(store, 'INBOX', options), 'NO_SPACE');
    expect(readdirSync(parent), 'neither the mbox nor its temporary file').toEqual([]);
    const summary = await exportMailbox(store, 'INBOX', options);
    expect(summary.exported).toBe(bodies.length);
    expect(await mboxBodies(out)).toEqual(bodies);
    expect(readdirSync(parent)).toEqual(['INBOX.mbox']);
  });

  // out of descriptors (EMFILE), the tree's removal by listing it (fs.rm) failed as well, and the
  // hidden temporary tree stayed beside --out (seen: ulimit -n 28); it is taken apart by the names
  // written, which needs no descriptor
  for (const [fault, code] of [['ENOSPC', 'NO_SPACE'], ['EMFILE', 'IO']] as const) {
    it(`new Maildir: ${fault} half way is ${code}; no directory is left; the re-run succeeds`, async () => {
      store = await filledStore();
      const parent = tmpDir('export-out');
      const out = join(parent, 'md');
      const fs = new FaultFileSystem({ seed: 7 });
      let creates = 0;
      fs.injectAt((op) => op.kind === 'create' && ++creates === 12, fault);
      const removeTree = fs.removeTree.bind(fs);
      fs.removeTree = async (path) => {
        if (fault === 'EMFILE' && creates >= 12) throw Object.assign(new Error(`EMFILE: too many open files, scandir '${path}'`), { code: 'EMFILE' });
        return removeTree(path);
      };
      await expectCode(exportMailbox(store, 'INBOX', { format: 'maildir', out, fs }), code);
      expect(readdirSync(parent)).toEqual([]);
      fs.removeTree = removeTree;
      const summary = await exportMailbox(store, 'INBOX', { format: 'maildir', out, fs });
      expect(summary.exported).toBe(bodies.length + 1);
      expect(curFiles(out)).toHaveLength(bodies.length);
      expect(curFiles(join(out, '.Sub'))).toHaveLength(1);
      expect(readdirSync(parent)).toEqual(['md']);
    });
  }

  it('existing Maildir: mail already there is kept, the messages of the failed export are removed', async () => {
    store = await filledStore();
    const out = join(tmpDir('export-out'), 'md');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(out, sub), { recursive: true });
    writeFileSync(join(out, 'cur', '1.old:2,S'), 'kept');
    const fs = new FaultFileSystem({ seed: 7 });
    let creates = 0;
    fs.injectAt((op) => op.kind === 'create' && ++creates === 12, 'ENOSPC');
    await expectCode(exportMailbox(store, 'INBOX', { format: 'maildir', out, fs, recursive: false }), 'NO_SPACE');
    expect(curFiles(out)).toEqual(['1.old:2,S']);
    expect(readdirSync(join(out, 'tmp'))).toEqual([]);
    await exportMailbox(store, 'INBOX', { format: 'maildir', out, fs, recursive: false });
    expect(curFiles(out)).toHaveLength(bodies.length + 1);
  });
});

describe('an --out whose name is long, but a name', () => {
  it('255 bytes (NAME_MAX), in UTF-8 too: the export is there under it and nothing else (its temporary name fits as well)', async () => {
    const store = await filledStore();
    try {
      const parent = tmpDir('export-out');
      const names = ['m'.repeat(250) + '.mbox', 'é'.repeat(127) + 'x', 'd'.repeat(255)];
      await exportMailbox(store, 'INBOX', { format: 'mbox', out: join(parent, names[0]!) });
      await exportMailbox(store, 'INBOX', { format: 'mbox', out: join(parent, names[1]!) });
      await exportMailbox(store, 'INBOX', { format: 'maildir', out: join(parent, names[2]!) });
      expect(readdirSync(parent).sort()).toEqual([...names].sort());
      expect(await mboxBodies(join(parent, names[1]!))).toEqual(bodies);
      expect(curFiles(join(parent, names[2]!))).toHaveLength(bodies.length);
    } finally {
      await store.close();
    }
  });
});

describe('a folder name Maildir++ cannot hold', () => {
  it('a child whose .A.B directory name would pass 255 bytes: INVALID before anything is written (not IO half way)', async () => {
    const store = await Store.open(tmpDir('export-long'), { create: true });
    try {
      const long = 'x'.repeat(200);
      for (const name of ['INBOX', 'INBOX/short', `INBOX/${long}`, `INBOX/${long}/${long}`]) await store.createMailbox(name);
      for (const name of ['INBOX', 'INBOX/short']) await store.append(name, Buffer.from(bodies[0]!));
      const parent = tmpDir('export-out');
      const error = await expectCode(exportMailbox(store, 'INBOX', { format: 'maildir', out: join(parent, 'md') }), 'INVALID');
      expect(error.message).toMatch(/255 bytes/);
      expect(readdirSync(parent)).toEqual([]);
      const existing = join(parent, 'existing');
      for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(existing, sub), { recursive: true });
      await expectCode(exportMailbox(store, 'INBOX', { format: 'maildir', out: existing }), 'INVALID');
      expect(readdirSync(existing).sort()).toEqual(['cur', 'new', 'tmp']);
      expect(curFiles(existing)).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

describe('a symbolic link planted where export writes is refused, never followed', () => {
  let store: Store | undefined;
  afterEach(async () => { await store?.close(); store = undefined; });

  it('mbox: --out is a link (to an existing file, or dangling): INVALID, the target untouched or not created', async () => {
    store = await filledStore();
    const work = tmpDir('export-link');
    writeFileSync(join(work, 'victim'), 'precious');
    symlinkSync(join(work, 'victim'), join(work, 'out.mbox'));
    symlinkSync(join(work, 'not-there'), join(work, 'dangling.mbox'));
    await expectCode(exportMailbox(store, 'INBOX', { format: 'mbox', out: join(work, 'out.mbox') }), 'INVALID');
    await expectCode(exportMailbox(store, 'INBOX', { format: 'mbox', out: join(work, 'dangling.mbox') }), 'INVALID');
    expect(readFileSync(join(work, 'victim'), 'utf8')).toBe('precious');
    expect(existsSync(join(work, 'not-there'))).toBe(false);
    expect(readdirSync(work).sort()).toEqual(['dangling.mbox', 'out.mbox', 'victim']);
  });

  it('Maildir: --out a link to a directory, or cur/ or a .Sub folder inside the target a link: INVALID, nothing written there', async () => {
    store = await filledStore();
    const work = tmpDir('export-link');
    const victim = join(work, 'victim');
    mkdirSync(victim);
    symlinkSync(victim, join(work, 'out-link'));
    await expectCode(exportMailbox(store, 'INBOX', { format: 'maildir', out: join(work, 'out-link') }), 'INVALID');

    const target = join(work, 'md');
    mkdirSync(target);
    symlinkSync(victim, join(target, 'cur'));
    await expectCode(exportMailbox(store, 'INBOX', { format: 'maildir', out: target }), 'INVALID');

    const target2 = join(work, 'md2');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(target2, sub), { recursive: true });
    symlinkSync(victim, join(target2, '.Sub'));
    await expectCode(exportMailbox(store, 'INBOX', { format: 'maildir', out: target2 }), 'INVALID');
    expect(readdirSync(victim)).toEqual([]);
  });
});

// A real full disk: a 1 MiB tmpfs (root only), through the CLI.
const isRoot = process.getuid?.() === 0;
describe.skipIf(!isRoot)('export to a real full disk (tmpfs, root only)', () => {
  const mounts: string[] = [];
  afterEach(() => { for (const dir of mounts.splice(0)) spawnSync('umount', ['-l', dir]); });

  it.each(['mbox', 'maildir'] as const)('%s: exit 2 NO_SPACE, nothing left on the tmpfs', async (format) => {
    requireBuilt();
    const storeDir = join(tmpDir('export-cli'), 'store');
    const store = await Store.open(storeDir, { create: true });
    await store.createMailbox('INBOX');
    for (const text of bodies) await store.append('INBOX', Buffer.from(text));
    await store.close();
    const mnt = tmpDir('export-tmpfs');
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { encoding: 'utf8' });
    if (mounted.status !== 0) { console.warn(`SKIPPED: mount tmpfs: ${mounted.stderr}`); return; }
    mounts.push(mnt);
    const out = join(mnt, format === 'mbox' ? 'INBOX.mbox' : 'INBOX');
    const result = spawnSync(process.execPath, [bin, '--store', storeDir, 'export', 'INBOX', '--format', format, '--out', out], { encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(2);
    expect(result.stderr).toMatch(/^mailstore: NO_SPACE: /);
    expect(readdirSync(mnt)).toEqual([]);
  });
});
