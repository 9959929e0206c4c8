// The bundled fixtures in and out through the import and export API, on both file systems (node,
// and FaultFS with no faults): the source reads, the store and the export all go through the one
// FileSystem. The same round trips through the built binary are in roundtrip.test.ts (node only:
// a child process cannot be handed a FaultFS).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { expect, it } from 'vitest';
import { exportMailbox } from '../../src/import/exporter.js';
import { importMail } from '../../src/import/importer.js';
import { listMaildirFolders, readMaildir } from '../../src/formats/maildir.js';
import { readMbox } from '../../src/formats/mbox.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { describeEachFs } from '../helpers/filesystems.js';
import { tmpDir } from '../helpers/tmp.js';

const fixtures = new URL('../../fixtures/', import.meta.url).pathname;
const sampleMaildir = join(fixtures, 'sample');
const sampleMbox = join(fixtures, 'sample.mbox');
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** `sha256 flags` of every message of every folder of a Maildir++ tree, sorted, by folder. */
async function maildirContents(root: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const folder of await listMaildirFolders(nodeFileSystem, root)) {
    const entries: string[] = [];
    for await (const m of readMaildir(nodeFileSystem, folder.path)) entries.push(`${sha256(m.bytes)} ${m.flags.join(' ')}`);
    out[folder.folder] = entries.sort();
  }
  return out;
}

describeEachFs('import and export through the API', ({ Store, fs }) => {
  it('a Maildir++ tree: folders become mailboxes; exported, the same bytes and flags per folder', async () => {
    const store = await Store.open(join(tmpDir('api-rt'), 'store'), { create: true });
    const summary = await importMail(store, sampleMaildir, { mailbox: 'alice', fs });
    expect(summary).toMatchObject({ format: 'maildir', imported: 200, skipped: 0 });
    expect((await store.listMailboxes()).map((m) => m.name)).toEqual(['alice', 'alice/Lists/kernel', 'alice/Sent']);
    const out = join(tmpDir('api-rt'), 'export');
    const exported = await exportMailbox(store, 'alice', { format: 'maildir', out, recursive: true, fs });
    expect(exported.exported).toBe(200);
    expect(await maildirContents(out)).toEqual(await maildirContents(sampleMaildir));
    await store.close();
  });

  it('an mbox: exported again it is the identical file; a second import of it adds nothing', async () => {
    const dir = join(tmpDir('api-rt'), 'store');
    let store = await Store.open(dir, { create: true });
    expect(await importMail(store, sampleMbox, { mailbox: 'mb', fs, batchMessagesMax: 30 })).toMatchObject({ format: 'mbox', imported: 100 });
    await store.close();
    store = await Store.open(dir);
    expect(await importMail(store, sampleMbox, { mailbox: 'mb', fs })).toMatchObject({ imported: 0, alreadyImported: 100 });
    const out = join(tmpDir('api-rt'), 'out.mbox');
    await exportMailbox(store, 'mb', { format: 'mbox', out, fs });
    expect(readFileSync(out).equals(readFileSync(sampleMbox))).toBe(true);
    const hashes: string[] = [];
    for await (const m of readMbox(nodeFileSystem, sampleMbox)) hashes.push(sha256(m.bytes));
    const stored: string[] = [];
    for await (const m of store.messages('mb')) stored.push(sha256(await store.fetch('mb', m.uid)));
    expect(stored).toEqual(hashes);
    await store.close();
  });

  it('mboxo: a message it cannot give back byte for byte (a body line ">From ") is named in the summary, the others not', async () => {
    const store = await Store.open(join(tmpDir('api-rt'), 'store'), { create: true });
    await store.createMailbox('o');
    const bodies = ['Subject: 1\n\nFrom the start\n', 'Subject: 2\n\n>From quoted\n', 'Subject: 3\n\n>>From deeper\n', 'Subject: 4\r\n\r\nx\r\n>From in CRLF\r\n'];
    for (const body of bodies) await store.append('o', Buffer.from(body));
    const warned: number[] = [];
    const out = join(tmpDir('api-rt'), 'o.mbox');
    const summary = await exportMailbox(store, 'o', { format: 'mbox', mboxStyle: 'mboxo', out, fs, onInexact: (_mailbox, uid) => warned.push(uid) });
    expect(summary.exported).toBe(4);
    expect(summary.inexact).toEqual([{ mailbox: 'o', uid: 2 }, { mailbox: 'o', uid: 4 }]);
    expect(warned).toEqual([2, 4]);
    const back: string[] = [];
    for await (const m of readMbox(nodeFileSystem, out, { style: 'mboxo' })) back.push(m.bytes.toString());
    expect(back.filter((body, i) => body !== bodies[i])).toHaveLength(2); // just those two came back changed
    const rd = await exportMailbox(store, 'o', { format: 'mbox', out: join(tmpDir('api-rt'), 'rd.mbox'), fs });
    expect(rd.inexact).toEqual([]);
    await store.close();
  });
});
