// STORE's frame (its JSON line, then the CRC32 of it) read by the open and by reconstruct
// --identity-from-markers (src/store/identity.ts): a frame that does not read or fails its checksum
// is damage, and the refusal names the command that writes it again; a frame that reads but is not
// a mailstore identity (another program's file, a store id that is no UUID) is foreign and is
// never advised over, nor replaced.
import { describe, expect, it } from 'vitest';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import { FSTAB_PATH, MOUNTINFO_PATH } from '../../src/fs/mounts.js';
import { initStore, recreateLostIdentity, verifyIdentity } from '../../src/store/identity.js';
import { tmpDir } from '../helpers/tmp.js';

const ADVICE = /'mailstore reconstruct --identity-from-markers' writes it again/;

/** A framed identity whose checksum holds. */
function framed(json: string): Buffer {
  return Buffer.from(`${json}\ncrc32 ${crc32(Buffer.from(json)).toString(16).padStart(8, '0')}\n`);
}

async function newStore(): Promise<{ root: string; storeId: string; bytes: Buffer }> {
  const root = join(tmpDir('identity'), 'store');
  const { storeId } = await initStore(fs, root);
  return { root, storeId, bytes: readFileSync(join(root, 'STORE')) };
}

describe('STORE\'s frame', () => {
  it('damaged (a flipped byte, a cut): UNMOUNTED naming the reason and the command that writes it again, which does', async () => {
    for (const [damage, why] of [['flip', /checksum mismatch/], ['cut', /unreadable/]] as const) {
      const { root, storeId, bytes } = await newStore();
      const damaged = damage === 'flip' ? Buffer.from(bytes.map((b, i) => (i === 20 ? b ^ 0x01 : b))) : bytes.subarray(0, bytes.length - 4);
      writeFileSync(join(root, 'STORE'), damaged);
      const refused = await verifyIdentity(fs, root).then(() => undefined, (e: unknown) => e);
      expect(refused, damage).toMatchObject({ code: 'UNMOUNTED', message: expect.stringMatching(why) });
      expect((refused as Error).message, damage).toMatch(ADVICE);
      expect(await recreateLostIdentity(fs, root), damage).toBe(storeId);
      expect((await verifyIdentity(fs, root)).storeId, damage).toBe(storeId);
      expect(readdirSync(join(root, 'quarantine')).filter((n) => n.startsWith('STORE-damaged-')), damage).toHaveLength(1);
    }
  });

  it('whole but foreign (another format, a store id that is no UUID): UNMOUNTED without that advice, and never written over', async () => {
    for (const [json, why] of [['{"format":"other","storeId":"x"}', /foreign format/], ['{"format":"mailstore","version":2,"storeId":"not-a-uuid","created":"2026-01-01T00:00:00.000Z"}', /not a UUID/]] as const) {
      const { root } = await newStore();
      writeFileSync(join(root, 'STORE'), framed(json));
      const refused = await verifyIdentity(fs, root).then(() => undefined, (e: unknown) => e);
      expect(refused, json).toMatchObject({ code: 'UNMOUNTED', message: expect.stringMatching(why) });
      expect((refused as Error).message, json).not.toMatch(ADVICE);
      expect(await recreateLostIdentity(fs, root), json).toBeUndefined();
      expect(readFileSync(join(root, 'STORE')).equals(framed(json)), json).toBe(true);
    }
  });

  it('another store\'s, whole: not replaced by the markers\' store', async () => {
    const { root } = await newStore();
    const other = await newStore();
    writeFileSync(join(root, 'STORE'), other.bytes);
    await expect(verifyIdentity(fs, root)).rejects.toMatchObject({ code: 'UNMOUNTED', message: expect.stringMatching(/belongs to store/) });
    expect(await recreateLostIdentity(fs, root)).toBeUndefined();
    expect(readFileSync(join(root, 'STORE')).equals(other.bytes)).toBe(true);
  });
});

describe('init at a mount point with nothing mounted', () => {
  it('UNMOUNTED naming the /etc/fstab entry, nothing created; mounted (in mountinfo), init goes on', async () => {
    // The partition of /var/lib/mailstore did not mount: init made a store on the root disk, which
    // the mount hid later with the mail it took. A FileSystem whose /etc/fstab names the directory.
    const point = join(tmpDir('init-fstab'), 'mnt');
    mkdirSync(point);
    let mounted = false;
    const withFstab = new Proxy(fs, {
      get(real, name: keyof typeof fs) {
        if (name !== 'readFile') return typeof real[name] === 'function' ? (real[name] as (...a: unknown[]) => unknown).bind(real) : real[name];
        return async (path: string) => {
          if (path === FSTAB_PATH) return Buffer.from(`# the mail partition\nLABEL=mail ${point} ext4 defaults 0 2\n`);
          const bytes = await real.readFile(path);
          return path === MOUNTINFO_PATH && mounted ? Buffer.concat([bytes, Buffer.from(`999 1 8:1 / ${point} rw - ext4 /dev/sdb1 rw\n`)]) : bytes;
        };
      },
    });
    for (const root of [point, join(point, 'store')]) {
      const refused = await initStore(withFstab, root).then(() => undefined, (e: unknown) => e);
      expect(refused, root).toMatchObject({ code: 'UNMOUNTED', message: expect.stringContaining(`a mount point in /etc/fstab (LABEL=mail) with nothing mounted on it`) });
      expect(readdirSync(point), root).toEqual([]);
    }
    mounted = true;
    await initStore(withFstab, point);
    expect(readdirSync(point)).toContain('STORE');
  });
});
