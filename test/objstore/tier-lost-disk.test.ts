// RECOVERY.md row "the local disk lost, the bucket intact", against a real Ceph radosgw: the store's
// directory is gone; what survives is the bucket and a file copy of the store's small files (STORE,
// journal/, snapshots/: everything but packs/ and index/). `mailstore rebuild-from-bucket` assembles
// a new directory from that copy, the object-store settings and an empty packs/ with its marker
// (docs/OBJECT-STORAGE.md, "The local disk lost"); opening it rebuilds the index from the journal,
// every message in a moved pack reads back exact from the bucket, and every message whose pack had
// not moved is reported by scrub (blob-missing, with its mailbox and UID), never dropped; new packs
// are numbered above the lost ones, and bodies that turn up later go back with repair.
// Skipped without Ceph.
import { beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
// every body in a pack: these tests move, lose or repair pack records (helpers/packed.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { writeTierSettings } from '../../src/store/tier.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';
import { rebuildFromBucket } from '../../src/store/rebuild-from-bucket.js';
import { cephCredentials, cephInstalled, createBucket, sharedCeph, type Ceph } from '../helpers/ceph.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf } from '../helpers/errors.js';
import { requireBuilt, run } from '../cli/helpers.js';
import { existsSync } from 'node:fs';

const message = (i: number) => Buffer.from(`From: a${i}@example.org\r\nSubject: m ${i}\r\nMessage-ID: <${i}@ld>\r\n\r\n${'body line\r\n'.repeat(50 + (i * 37) % 900)}`);
const installed = cephInstalled();
if (!installed) console.log('object-storage lost-disk drill skipped: Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common)');

describe.skipIf(!installed)('the local disk lost, the bucket intact, on Ceph', () => {
  let ceph: Ceph;
  beforeAll(async () => { ceph = (await sharedCeph())!; }, 180_000);

  it('a new directory from a journal copy + the bucket: moved mail reads back exact, mail in packs that never moved is reported missing', async () => {
    createBucket(ceph, 'mailstore-lostdisk');
    const root = tmpDir();
    const credentials = cephCredentials(ceph, tmpDir());
    const settings = { url: `${ceph.endpoint}/mailstore-lostdisk`, credentials };
    await (await Store.open(root, { create: true })).close();
    await writeTierSettings(unopenedRoot(nodeFileSystem, root), settings);
    let store = await Store.open(root, { packBytesMax: 64 * 1024 });
    await store.createMailbox('INBOX');
    const bodies = Array.from({ length: 100 }, (_, i) => message(i + 1));
    for (let i = 0; i < 60; i += 20) await store.appendBatch('INBOX', bodies.slice(i, i + 20).map((bytes) => ({ bytes })));
    const moved = await store.tierFlush();
    expect(moved.packsMoved).toBeGreaterThan(1);
    expect((await store.snapshot()).seq).toBeGreaterThan(0); // the rebuild starts from it (it holds the tier/pack records) and replays the rest
    for (let i = 60; i < 100; i += 20) await store.appendBatch('INBOX', bodies.slice(i, i + 20).map((bytes) => ({ bytes })));
    const localOnly = readdirSync(join(root, 'packs')).filter((n) => n.endsWith('.pack'));
    expect(localOnly.length).toBeGreaterThan(0);
    await store.close();
    // the copy: the small files only (no packs/, no index/)
    const copy = tmpDir('journal-copy');
    cpSync(join(root, 'STORE'), join(copy, 'STORE'));
    cpSync(join(root, 'journal'), join(copy, 'journal'), { recursive: true });
    cpSync(join(root, 'snapshots'), join(copy, 'snapshots'), { recursive: true });
    rmSync(root, { recursive: true, force: true }); // the local disk is lost

    // refused before anything is written: a target that is not empty, a copy without the journal
    const busy = tmpDir('busy');
    writeFileSync(join(busy, 'x'), 'x');
    expect(await codeOf(rebuildFromBucket(busy, { journalCopy: copy, settings }))).toBe('EXISTS');
    expect(readdirSync(busy)).toEqual(['x']);
    expect(await codeOf(rebuildFromBucket(join(tmpDir(), 'n'), { journalCopy: tmpDir('empty'), settings }))).toBe('NOT_FOUND');

    const rebuilt = join(tmpDir(), 'rebuilt');
    const result = await rebuildFromBucket(rebuilt, { journalCopy: copy, settings });
    expect(result.messages).toBe(100); // the newest batch too: its bodies were lost, not torn, so it is kept
    expect(result.messagesLost).toBe(40);
    expect(result.messagesRecovered).toBe(60);
    expect(result.packsInBucket).toBe(moved.packsMoved);
    expect(result.packsLost.length).toBe(localOnly.length);
    expect(result.lost.map((r) => r.uid).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => 61 + i));
    expect(result.scrub.objectBytesRead).toBeGreaterThan(0); // every moved pack was read back and re-hashed
    expect(result.scrub.snapshotsVerified).toBeGreaterThan(0);
    expect(result.openFindings.join('\n')).not.toMatch(/cut/); // the newest batch, whose pack was lost, is kept

    store = await Store.open(rebuilt);
    for (let uid = 1; uid <= 60; uid++) expect((await store.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true);
    for (let uid = 61; uid <= 100; uid++) expect(await codeOf(store.fetch('INBOX', uid))).toBe('CORRUPT');
    // new mail after the rebuild goes into a pack above every lost one (recorded, so also after a reopen)
    await store.appendBatch('INBOX', [{ bytes: message(101) }]);
    const newPacks = readdirSync(join(rebuilt, 'packs')).filter((n) => n.endsWith('.pack')).map((n) => Number(n.slice(0, 8)));
    expect(Math.min(...newPacks)).toBeGreaterThan(Math.max(...result.packsLost));
    expect((await store.fetch('INBOX', 101)).equals(message(101))).toBe(true);
    const again = await scrub(store);
    const missing = again.findings.filter((f) => f.kind === 'blob-missing');
    expect(missing.flatMap((f) => (f.kind === 'blob-missing' ? f.refs : [])).length).toBe(40); // still reported, never dropped
    expect(again.findings.filter((f) => f.kind === 'blob-corrupt')).toEqual([]);
    expect((await store.status('INBOX')).messages).toBe(101);
    // the bodies turn up later (here: the raw messages, e.g. the MTA's copies): repair puts them back
    const raw = tmpDir('raw');
    for (let i = 60; i < 100; i++) writeFileSync(join(raw, `${i + 1}.eml`), bodies[i]);
    const healed = await repair(store, again, { sources: [raw], force: true }); // 40 % missing: over the gate's share
    expect(healed.blobsRestored).toBe(40);
    expect(healed.unrepaired).toEqual([]);
    for (let uid = 1; uid <= 100; uid++) expect((await store.fetch('INBOX', uid)).equals(bodies[uid - 1])).toBe(true);
    await store.close();
  }, 180_000);

  it('mailstore rebuild-from-bucket --json: exit 1 with the lost messages listed; a missing bucket is exit 3 before anything is created; --help explains', async () => {
    requireBuilt();
    createBucket(ceph, 'mailstore-lostcli');
    const root = tmpDir();
    const credentials = cephCredentials(ceph, tmpDir());
    const settings = { url: `${ceph.endpoint}/mailstore-lostcli`, credentials };
    await (await Store.open(root, { create: true })).close();
    await writeTierSettings(unopenedRoot(nodeFileSystem, root), settings);
    const store = await Store.open(root, { packBytesMax: 64 * 1024 });
    await store.createMailbox('Archive');
    await store.appendBatch('Archive', Array.from({ length: 20 }, (_, i) => ({ bytes: message(200 + i) })));
    await store.tierFlush();
    await store.appendBatch('Archive', [{ bytes: message(300) }]);
    await store.close();
    const copy = tmpDir('journal-copy');
    cpSync(join(root, 'STORE'), join(copy, 'STORE'));
    cpSync(join(root, 'journal'), join(copy, 'journal'), { recursive: true });
    rmSync(root, { recursive: true, force: true });

    const nowhere = join(tmpDir(), 'nowhere');
    const missing = await run(['rebuild-from-bucket', '--journal-copy', copy, '--object-store', `${ceph.endpoint}/no-such-bucket`, '--object-store-credentials', credentials, '--json'], { store: nowhere });
    expect(missing.code).toBe(3);
    expect(existsSync(nowhere)).toBe(false);

    const rebuilt = join(tmpDir(), 'rebuilt');
    const done = await run(['rebuild-from-bucket', '--journal-copy', copy, '--object-store', settings.url, '--object-store-credentials', credentials, '--json'], { store: rebuilt });
    expect(done.stderr).toBe('');
    expect(done.code).toBe(1);
    const result = JSON.parse(done.stdout.toString('utf8'));
    expect(result).toMatchObject({ messages: 21, messagesRecovered: 20, messagesLost: 1, lost: [{ mailbox: 'Archive', uid: 21 }] });
    const scrubbed = await run(['scrub', '--json'], { store: rebuilt });
    expect(scrubbed.code).toBe(1); // still reported on every scrub

    // a run that stopped part-way (its marker left): every other open is refused; a second run starts over
    const again = join(tmpDir(), 'again');
    mkdirSync(again);
    writeFileSync(join(again, 'REBUILDING'), 'x');
    for (const name of readdirSync(rebuilt)) cpSync(join(rebuilt, name), join(again, name), { recursive: true });
    const refused = await run(['scrub', '--json'], { store: again });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/rebuild-from-bucket/);
    const redone = await run(['rebuild-from-bucket', '--journal-copy', copy, '--object-store', settings.url, '--object-store-credentials', credentials, '--json'], { store: again });
    expect(redone.code).toBe(1);
    expect(JSON.parse(redone.stdout.toString('utf8'))).toMatchObject({ messages: 21, messagesRecovered: 20, messagesLost: 1 });
    expect(existsSync(join(again, 'REBUILDING'))).toBe(false);
    // anything the run did not create is never removed: EXISTS
    const foreign = join(tmpDir(), 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'REBUILDING'), 'x');
    writeFileSync(join(foreign, 'notes.txt'), 'mine');
    const kept = await run(['rebuild-from-bucket', '--journal-copy', copy, '--object-store', settings.url, '--object-store-credentials', credentials], { store: foreign });
    expect(kept.code).toBe(5);
    expect(readdirSync(foreign).sort()).toEqual(['REBUILDING', 'notes.txt']);

    const help = await run(['rebuild-from-bucket', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout.toString('utf8')).toMatch(/--journal-copy[\s\S]*Exit codes/);
  }, 180_000);
});
