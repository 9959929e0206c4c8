// A replica's cursor on its primary (consumers/replica-NODEID) that does not read: before session 49
// every connection of that replica was refused CORRUPT until an admin ran `consumers --remove`.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NodeFileSystem } from '../../src/fs/node-fs.js';
import { replaceDamagedCursor } from '../../src/replication/damaged-cursor.js';
import { startReplica } from '../../src/replication/replica.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { logicalState, msg, startPair, until } from './helpers.js';

describe('a damaged replica cursor on the primary', () => {
  it('is kept in quarantine/ and written again at the seq the replica names when it reconnects; it catches up, nothing acknowledged lost, logged once', async () => {
    const lines: string[] = [];
    const pair = await startPair({
      fill: async (store) => { for (let i = 0; i < 3; i++) await store.append('INBOX', msg(i)); },
      primary: { log: (line) => lines.push(line) },
    });
    try {
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica to catch up');
      const nodeId = pair.replica.store.replication().role()!.nodeId;
      const heldSeq = pair.replica.store.changes.lastSeq;
      await pair.replica.close();
      const path = join(pair.primaryStore.root, 'consumers', `replica-${nodeId}`);
      await until(async () => (await pair.primaryStore.changes.cursor(`replica-${nodeId}`))?.seq === heldSeq, 5_000, 'the cursor at the replica\'s seq');
      const damaged = readFileSync(path);
      damaged[3] ^= 0x20;
      writeFileSync(path, damaged);
      await expect(pair.primaryStore.changes.cursor(`replica-${nodeId}`)).rejects.toMatchObject({ code: 'CORRUPT' });
      // acknowledged while the replica was away, with the cursor damaged
      for (let i = 3; i < 8; i++) await pair.primaryStore.append('INBOX', msg(i));
      pair.replica = await startReplica(pair.replicaDir, pair.replicaOptions);
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica to catch up again');
      expect(await logicalState(pair.replica.store)).toEqual(await logicalState(pair.primaryStore));
      expect((await pair.replica.store.status('INBOX')).messages).toBe(8);
      await pair.expectIdentical();
      const kept = readdirSync(join(pair.primaryStore.root, 'quarantine')).filter((n) => n.startsWith(`consumer-replica-${nodeId}-`));
      expect(kept).toHaveLength(1);
      expect(readFileSync(join(pair.primaryStore.root, 'quarantine', kept[0])).equals(damaged)).toBe(true);
      expect((await pair.primaryStore.changes.cursor(`replica-${nodeId}`))!.seq).toBeGreaterThanOrEqual(heldSeq);
      const said = lines.filter((l) => l.includes('was damaged; kept as'));
      expect(said).toHaveLength(1);
      expect(said[0]).toMatch(new RegExp(`written again at seq ${heldSeq}, the seq the replica holds: it catches up from there`));
      expect(lines.some((l) => /CORRUPT|is damaged;/.test(l))).toBe(false);
    } finally {
      await pair.close();
    }
  }, 60_000);

  it('of a replica put back to an older copy, behind the retained journal: written again at its seq, and it is resynced from a snapshot', async () => {
    const lines: string[] = [];
    const small = { packBytesMax: 256 * 1024, journalSegmentBytesMax: 16 * 1024, autoSnapshot: false };
    const pair = await startPair({
      open: (dir) => Store.open(dir, { create: true, ...small }),
      fill: async (store) => { for (let i = 0; i < 3; i++) await store.append('INBOX', msg(i)); },
      primary: { log: (line) => lines.push(line) },
      replica: { storeOptions: small },
    });
    try {
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica to catch up');
      const nodeId = pair.replica.store.replication().role()!.nodeId;
      const oldSeq = pair.replica.store.changes.lastSeq;
      await pair.replica.close();
      const older = join(tmpDir('older-replica'), 'r');
      cpSync(pair.replicaDir, older, { recursive: true }); // the replica's image of now
      pair.replica = await startReplica(pair.replicaDir, pair.replicaOptions);
      for (let i = 3; i < 80; i++) await pair.primaryStore.append('INBOX', msg(i, 500));
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica to follow');
      await pair.replica.close();
      await pair.primaryStore.snapshot();
      await pair.primaryStore.append('INBOX', msg(-1));
      await pair.primaryStore.snapshot(); // retired below the replica's cursor, past oldSeq
      expect(pair.primaryStore.changes.firstSeq).toBeGreaterThan(oldSeq + 1);
      const path = join(pair.primaryStore.root, 'consumers', `replica-${nodeId}`);
      const damaged = readFileSync(path);
      damaged[3] ^= 0x20;
      writeFileSync(path, damaged);
      // the replica comes back from its older image
      pair.replica = await startReplica(older, { ...pair.replicaOptions });
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 20_000, 'the resync');
      expect((await pair.replica.store.status('INBOX')).messages).toBe(81);
      const said = lines.filter((l) => l.includes('was damaged; kept as'));
      expect(said).toHaveLength(1);
      expect(said[0]).toMatch(new RegExp(`written again at seq ${oldSeq}, .*no longer continues it .*resynced from a snapshot`));
      expect(lines.some((l) => /resynced to seq/.test(l))).toBe(true);
    } finally {
      await pair.close();
    }
  }, 60_000);

  it('whose store\'s file system leaves it (umount -l) as the damaged bytes are read: UNMOUNTED, nothing written into the empty mount point, the cursor left as it was', async () => {
    const dir = join(tmpDir('damaged-cursor-unmounted'), 'store');
    const away = `${dir}-detached`;
    const cursorPath = join(dir, 'consumers', 'replica-n1');
    let reads = -Infinity; // counted once the cursor is damaged
    // the second read of the cursor is the copy's (the first found it damaged): the partition leaves then
    const fs = new class extends NodeFileSystem {
      override async readFile(path: string): Promise<Buffer> {
        const bytes = await super.readFile(path);
        if (path === cursorPath && ++reads === 2) {
          renameSync(dir, away);
          mkdirSync(join(dir, 'quarantine'), { recursive: true }); // a mount point with the directory the copy goes to
        }
        return bytes;
      }
    }();
    const store = await Store.open(dir, { create: true, autoSnapshot: false, fs });
    try {
      await store.createMailbox('INBOX');
      await store.append('INBOX', msg(1));
      await store.changes.register('replica-n1', 1);
      const damaged = readFileSync(cursorPath);
      damaged[3] ^= 0x20;
      writeFileSync(cursorPath, damaged);
      reads = 0;
      // before: the copy was written with writeFileDurable straight into the mount point's quarantine/
      await expect(replaceDamagedCursor(store, 'n1', 1, () => {})).rejects.toMatchObject({ code: 'UNMOUNTED' });
      expect(reads).toBe(2);
      expect(readdirSync(join(dir, 'quarantine')), 'nothing in the empty mount point').toEqual([]);
      expect(existsSync(join(dir, 'consumers'))).toBe(false);
      expect(readFileSync(join(away, 'consumers', 'replica-n1')).equals(damaged), 'the cursor as it was').toBe(true);
    } finally {
      rmSync(dir, { recursive: true });
      renameSync(away, dir);
      await store.close();
    }
  });
});
