// `mailstore tier set|status` and `init --local-bytes-max` as a script sees them: the policy is
// kept in the store, 'default' clears a field, nonsense is INVALID (exit 5) and changes nothing.
// No object store answers here: set and status only read and write the store's settings.
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { readTierSettings, writeTierSettings } from '../../src/store/tier.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';
import { requireBuilt, tempDir } from './helpers.js';
// command lines in this process (in-process.ts, which checks a sample against the spawned command);
// what only a process shows is commands.test.ts's and environment.test.ts's
import { json, ok, run } from './in-process.js';

beforeAll(requireBuilt);

async function tieredStore(): Promise<string> {
  const store = join(tempDir(), 'store');
  await ok(['init'], { store });
  await writeTierSettings(unopenedRoot(nodeFileSystem, store), { url: 'http://127.0.0.1:9/mail-bucket' });
  return store;
}

describe('mailstore tier set / status', () => {
  it('sets, shows and clears the move policy', async () => {
    const store = await tieredStore();
    const env = { MAILSTORE_S3_ACCESS_KEY: 'a', MAILSTORE_S3_SECRET_KEY: 'b' };
    expect(await json(['tier', 'set', '--local-bytes-max', '2G', '--move-after', '30d'], { store, env })).toEqual({ localBytesMax: 2 * 1024 ** 3, moveAfterMs: 30 * 86_400_000 });
    const status = await json(['tier', 'status'], { store, env });
    expect(status.policy).toEqual({ localBytesMax: 2 * 1024 ** 3, localShareDefault: 0.1, moveAfterMs: 30 * 86_400_000 });
    expect(await ok(['tier', 'status'], { store, env })).toContain('local budget 2.0 GiB');
    expect(await json(['tier', 'set', '--local-bytes-max', 'default'], { store, env })).toEqual({ moveAfterMs: 30 * 86_400_000 });
    const bad = await run(['tier', 'set', '--move-after', 'soon'], { store, env });
    expect(bad.code).toBe(5);
    expect(bad.stderr).toContain('--move-after');
    expect((await readTierSettings(nodeFileSystem, store))!.policy).toEqual({ moveAfterMs: 30 * 86_400_000 });
  }, 60_000);

  it('refuses a policy for a store without an object store, and --local-bytes-max at init without --object-store', async () => {
    const store = join(tempDir(), 'store');
    await ok(['init'], { store });
    expect((await run(['tier', 'set', '--local-bytes-max', '1G'], { store })).code).toBe(5);
    const other = join(tempDir(), 'other');
    const refused = await run(['init', '--local-bytes-max', '1G'], { store: other });
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain('--object-store');
  }, 60_000);

  it('an object store for an existing store: init says EXISTS before it asks the bucket, and a tier command does not send the admin to init', async () => {
    // docs/OBJECT-STORAGE.md: a bucket is given at init only, "init on an existing store is EXISTS".
    // It checked the bucket first (IO, exit 2: "is the object store reachable?" with none answering
    // here), and tier status/set named 'mailstore init --object-store URL' as the way to give one
    const store = join(tempDir(), 'store');
    await ok(['init'], { store });
    const env = { MAILSTORE_S3_ACCESS_KEY: 'a', MAILSTORE_S3_SECRET_KEY: 'b' };
    const again = await run(['init', '--object-store', 'http://127.0.0.1:9/mail-bucket'], { store, env });
    expect(again.code, again.stderr).toBe(5);
    expect(again.stderr).toMatch(/^mailstore: EXISTS: a store already exists at /);
    expect(existsSync(join(store, 'OBJECT-STORE'))).toBe(false);
    const status = await run(['tier', 'status'], { store });
    expect(status.code).toBe(5);
    expect(status.stderr).toMatch(/has no object store: a bucket is given only to a new store \(mailstore init --object-store URL into an empty directory; docs\/OBJECT-STORAGE\.md\), never to an existing one/);
  }, 60_000);

  it('refuses object-store credentials other users may read (ACCESS, exit 2) before any connection, and creates nothing', async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755); // where others may look, as /etc is
    const credentials = join(dir, 'credentials');
    writeFileSync(credentials, 'access:secret\n', { mode: 0o644 });
    const store = join(dir, 'store');
    const refused = await run(['init', '--object-store', 'http://127.0.0.1:9/mail-bucket', '--object-store-credentials', credentials], { store });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/ACCESS: the object-store credentials .* may be read by others \(mode 644\)/);
    expect(existsSync(store)).toBe(false);
  }, 60_000);

  it('refuses a bucket URL with a user name or password in it (INVALID, exit 5) without printing it, and creates nothing; a backup --repo likewise', async () => {
    const dir = tempDir();
    const store = join(dir, 'store');
    const env = { MAILSTORE_S3_ACCESS_KEY: 'a', MAILSTORE_S3_SECRET_KEY: 'b' };
    const refused = await run(['init', '--object-store', 'http://AKIA:s3cr3t@127.0.0.1:9/mail-bucket'], { store, env });
    expect(refused.code, refused.stderr).toBe(5);
    expect(refused.stderr).toMatch(/INVALID: --object-store: the URL for 127\.0\.0\.1:9 has a user name or password in it/);
    expect(refused.stderr).not.toContain('s3cr3t');
    expect(existsSync(store)).toBe(false);
    const repo = await run(['backups', '--repo', 's3:http://AKIA:s3cr3t@127.0.0.1:9/mail-bucket/backup'], { env });
    expect(repo.code, repo.stderr).toBe(5);
    expect(repo.stderr).toMatch(/INVALID: --repo: the URL .* has a user name or password in it/);
    expect(repo.stderr).not.toContain('s3cr3t');
  }, 60_000);
});
