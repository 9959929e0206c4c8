// Backup into a bucket (--repo s3:http://host:port/bucket/prefix) against a real Ceph radosgw: the
// repository is the same one as on disk, its files objects under the prefix (src/objstore/bucket-fs.ts);
// backup, list, check --read-data, a second backup that adds nothing, and a restore that gives back
// every message exact, with the built CLI (its command lines run in the test's process:
// in-process.ts, a sample checked against the spawned command). A missing bucket is UNMOUNTED
// (exit 3) and writes nothing; no credentials is INVALID. Skipped (with the reason) without Ceph.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as Minio from 'minio';
import { cephCredentials, cephInstalled, createBucket, sharedCeph, type Ceph, cephClient, listKeys } from '../helpers/ceph.js';
import { requireBuilt, tempDir } from '../cli/helpers.js';
import { json, ok, run } from '../cli/in-process.js';
import { REPO_FORMAT, encodeConfig } from '../../src/backup/repository.js';

const installed = cephInstalled();
if (!installed) console.log('backup-into-a-bucket tests skipped: Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common)');

describe.skipIf(!installed)('backup into a bucket, on Ceph', () => {
  let ceph: Ceph;
  let client: Minio.Client;
  beforeAll(async () => {
    requireBuilt();
    ceph = (await sharedCeph())!;
    client = cephClient(ceph);
  }, 180_000);

  it('backup, list, check, restore through s3:, encrypted; the second backup adds nothing', async () => {
    createBucket(ceph, 'mailstore-backup');
    const dir = tempDir('mailstore-s3-backup-');
    const store = join(dir, 'store');
    const credentials = cephCredentials(ceph, dir);
    const key = join(dir, 'backup.key');
    writeFileSync(key, randomBytes(32), { mode: 0o600 });
    const repo = `s3:${ceph.endpoint}/mailstore-backup/nightly`;
    const access = ['--repo', repo, '--repo-credentials', credentials, '--key-file', key];
    await ok(['--store', store, 'init']);
    await ok(['--store', store, 'mailbox', 'create', 'INBOX']);
    const messages = Array.from({ length: 12 }, (_, i) => `From: x${i}@example.org\r\nSubject: ${i}\r\n\r\n${randomBytes(900 + i * 50).toString('base64')}\r\n`);
    for (const text of messages) await ok(['--store', store, 'append', 'INBOX', '-'], { input: text });
    const first = await json(['--store', store, 'backup', ...access]);
    expect(first.messages).toBe(12);
    // the repository's files are objects under the prefix; no temp file was left
    const keys = await listKeys(client, 'mailstore-backup');
    expect(keys).toContain('nightly/config');
    expect(keys.some((k) => k.startsWith('nightly/data/'))).toBe(true);
    expect(keys.some((k) => k.startsWith('nightly/snapshots/'))).toBe(true);
    expect(keys.filter((k) => k.endsWith('.tmp'))).toEqual([]);
    const second = await json(['--store', store, 'backup', ...access]);
    expect(second.newBlobs).toBe(0);
    await ok(['backup', 'check', ...access, '--read-data']);
    const list = await json(['backups', ...access]);
    expect(list.snapshots.map((s: { id: string }) => s.id)).toContain(second.snapshot);
    const restored = join(dir, 'restored');
    expect((await json(['restore', ...access, '--snapshot', 'latest', '--to', restored])).messages).toBe(12);
    for (const uid of [1, 7, 12]) expect(await ok(['--store', restored, 'fetch', 'INBOX', String(uid)])).toBe(messages[uid - 1]);
    await ok(['--store', restored, 'scrub']);
  }, 180_000);

  it('a missing bucket is UNMOUNTED (exit 3), no credentials INVALID (exit 5); nothing is written', async () => {
    const dir = tempDir('mailstore-s3-backup-');
    const store = join(dir, 'store');
    await ok(['--store', store, 'init']);
    const credentials = join(dir, 'cred');
    writeFileSync(credentials, `${ceph.accessKey}:${ceph.secretKey}\n`);
    const missing = await run(['--store', store, 'backup', '--repo', `s3:${ceph.endpoint}/no-such-bucket/x`, '--repo-credentials', credentials]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('no-such-bucket');
    const bare = await run(['--store', store, 'backup', '--repo', `s3:${ceph.endpoint}/mailstore-backup/other`], { env: { MAILSTORE_S3_ACCESS_KEY: '', MAILSTORE_S3_SECRET_KEY: '' } });
    expect(bare.code).toBe(5);
    expect(bare.stderr).toContain('--repo-credentials');
    expect((await listKeys(client, 'mailstore-backup')).filter((k) => k.startsWith('other/'))).toEqual([]);
  }, 120_000);

  // issue 14: --new-config had no test on an s3: repository (bucket-fs.ts: its rename is a copy and
  // a delete, its directories are prefixes); and it must keep the repository's version
  it('backup repair --new-config on an s3: repository of version 2: a damaged config set aside under damaged/, a lost one written again, version 2 both times; every message restores', async () => {
    createBucket(ceph, 'mailstore-newconfig');
    const dir = tempDir('mailstore-s3-newconfig-');
    const store = join(dir, 'store');
    const credentials = cephCredentials(ceph, dir);
    const repo = `s3:${ceph.endpoint}/mailstore-newconfig/v2`;
    const access = ['--repo', repo, '--repo-credentials', credentials];
    // a version-2 repository, as older mailstore made it (its config put in place before the first backup)
    await client.putObject('mailstore-newconfig', 'v2/config', encodeConfig({ format: REPO_FORMAT, version: 2, id: 'b6a4e7a2-7d0c-4d7e-9a51-2f7c1f1c0a01', created: new Date().toISOString() }));
    await ok(['--store', store, 'init']);
    await ok(['--store', store, 'mailbox', 'create', 'INBOX']);
    const messages = Array.from({ length: 6 }, (_, i) => `From: x${i}@example.org\r\nSubject: ${i}\r\n\r\n${'compressible line\r\n'.repeat(200 + i)}`);
    for (const text of messages) await ok(['--store', store, 'append', 'INBOX', '-'], { input: text });
    await ok(['--store', store, 'backup', ...access]);
    const config = Buffer.from(await (await client.getObject('mailstore-newconfig', 'v2/config')).toArray().then((chunks: Buffer[]) => Buffer.concat(chunks)));
    config[12] ^= 0x01;
    await client.putObject('mailstore-newconfig', 'v2/config', config);
    expect((await run(['backups', ...access])).code).toBe(6);
    const made = await json(['backup', 'repair', ...access, '--new-config']);
    expect(made).toMatchObject({ version: 2, versionFrom: 'records', setAside: expect.stringMatching(/damaged\/config\.\d+$/) });
    const keys = await listKeys(client, 'mailstore-newconfig');
    expect(keys.filter((k) => k.startsWith('v2/damaged/config.'))).toHaveLength(1);
    expect(keys.filter((k) => k.endsWith('.tmp'))).toEqual([]);
    expect((await run(['backup', 'check', ...access, '--read-data'])).code).toBe(0);
    await client.removeObject('mailstore-newconfig', 'v2/config'); // lost
    expect(await json(['backup', 'repair', ...access, '--new-config'])).toMatchObject({ version: 2, versionFrom: 'records' });
    const restored = join(dir, 'restored');
    expect((await json(['restore', ...access, '--to', restored])).messages).toBe(6);
    for (const uid of [1, 6]) expect(await ok(['--store', restored, 'fetch', 'INBOX', String(uid)])).toBe(messages[uid - 1]);
  }, 180_000);
});
