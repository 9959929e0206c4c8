// The client library of this version against a daemon of an older one, during a rolling upgrade:
// the frames a daemon of commit f76e064 (session 30) answered, captured and replayed
// (fixtures/daemon-f76e064/frames.json). listMailboxes and changesSince go through listing
// procedures that daemon does not have; the client falls back to the calls it answers. A procedure
// with no older form (changeQuota) is refused saying the daemon is older. A delete that must leave
// mail alone (ifEmpty, which that daemon ignores) is refused by the client when there is mail. The
// CLI shows what its answers hold and nothing they lack (stats: free inodes).
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../../src/client/client.js';
import { procedures } from '../../src/daemon/procedures.js';
import { MailstoreError } from '../../src/errors.js';
import { FrameReader, decodeFrame, encodeFrame, type Frame } from '../../src/daemon/protocol.js';
import { requireBuilt, run } from '../cli/helpers.js';
import { tempDir } from './helpers.js';

const fixture = JSON.parse(readFileSync(new URL('../../fixtures/daemon-f76e064/frames.json', import.meta.url), 'utf8')) as { frames: { call: string; answer: string }[] };
const recorded = fixture.frames.map(({ call, answer }) => ({ call: decodeFrame(Buffer.from(call, 'base64')), answer: decodeFrame(Buffer.from(answer, 'base64')) }));

let server: Server | undefined;
const clients: Client[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  await new Promise((done) => (server ? server.close(done) : done(undefined)));
  server = undefined;
});

/**
 * A call's arguments as the recorded client sent them: changesSinceList's option of session 39
 * (it takes vanished ranges) aside, which a daemon without the procedure answers the same.
 */
function withoutRangesOption(call: Extract<Frame, { t: 'call' }>): unknown[] {
  const [name, ...rest] = call.a;
  return call.m === 'procedure' && name === 'changesSinceList' && isDeepStrictEqual(rest.at(-1), { ranges: true }) ? call.a.slice(0, -1) : call.a;
}

/** Every call the replayed daemon was sent: [method, ...arguments]. */
let received: unknown[][] = [];

/** A socket answering each call as the recorded daemon answered the same method and arguments (or as `answerOf` says). */
async function oldDaemon(answerOf: (call: Extract<Frame, { t: 'call' }>) => Frame | undefined = () => undefined): Promise<string> {
  const path = join(tempDir(), 'old.sock');
  received = [];
  server = createServer((socket) => {
    const reader = new FrameReader();
    socket.on('data', (data) => {
      for (const payload of reader.push(data)) {
        const call = decodeFrame(payload) as Extract<Frame, { t: 'call' }>;
        received.push([call.m, ...call.a]);
        // hello's arguments (the codes a client knows, since session 37) are ignored by every daemon since 2d004c1
        const match = recorded.find((r) => r.call.t === 'call' && r.call.m === call.m && (call.m === 'hello' || isDeepStrictEqual(r.call.a, withoutRangesOption(call))));
        const given = answerOf(call) ?? match?.answer;
        const answer: Frame = given ? { ...given, id: call.id } : { t: 'err', id: call.id, e: { code: 'INVALID', message: `no recorded answer to ${call.m} ${JSON.stringify(call.a)}` } };
        socket.write(encodeFrame(answer));
      }
    });
  });
  await new Promise((done) => server!.listen(path, () => done(undefined)));
  return path;
}

describe('a daemon of session 30 (f76e064)', () => {
  it('listMailboxes and changesSince give its answers (it has no mailboxList or changesSinceList procedure)', async () => {
    const client = await Client.connect(await oldDaemon());
    clients.push(client);
    expect(client.daemon?.protocol).toBe(1);
    expect(await client.listMailboxes()).toEqual([{ name: 'INBOX', id: 'af8c955e-c1a4-4a15-bf8a-7befb91b01ba' }, { name: 'user/bob/INBOX', id: 'cc5021b4-5956-4d4d-bf4b-d3d9e2b653d0' }]);
    const changes = await client.changesSince('INBOX', 0);
    expect(changes).toMatchObject({ vanished: [], highestModseq: 3 });
    expect(changes.changed).toHaveLength(1);
    expect(changes.changed[0]).toMatchObject({ uid: 1, size: 21, flags: ['\\Seen'], modseq: 3, hash: '5d7663607cbcf72fc172358e81f4cc7a6989335e773886e18f23aebb6a7e4023' });
  });

  it('changesSinceParts gives its changesSince answer in parts (it has no changesSinceParts listing, as no daemon before session 51)', async () => {
    // every daemon since procedures came (2d004c1) refuses a procedure it lacks in these words
    const client = await Client.connect(await oldDaemon((call) => (call.m === 'procedure' && call.a[0] === 'changesSinceParts'
      ? { t: 'err', id: call.id, e: { code: 'INVALID', message: 'the daemon has no procedure "changesSinceParts"' } } : undefined)));
    clients.push(client);
    const parts: unknown[] = [];
    for await (const part of client.changesSinceParts('INBOX', 0)) parts.push(part);
    const whole = await client.changesSince('INBOX', 0);
    expect(parts).toEqual([{ highestModseq: 3 }, { changed: whole.changed }]);
    expect(whole.changed).toHaveLength(1);
  });

  it('a procedure it does not have is INVALID naming the daemon as older, nothing changed', async () => {
    const client = await Client.connect(await oldDaemon());
    clients.push(client);
    const refused = await procedures(client).changeQuota('user/bob', { storage: 1000 }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(MailstoreError);
    expect(refused).toMatchObject({ code: 'INVALID', message: expect.stringMatching(/no procedure "changeQuota": it runs an older mailstore than this one \(pid \d+\); nothing was changed. Restart it with this version/) });
  });

  it('a method it does not have (movedUsers, forgetMovedUser: session 36) is INVALID naming the daemon as older, nothing changed', async () => {
    // every daemon since 2d004c1 answers a method it lacks in these words
    const client = await Client.connect(await oldDaemon((call) => (call.m === 'hello' ? undefined : { t: 'err', id: call.id, e: { code: 'INVALID', message: `the daemon has no method ${JSON.stringify(call.m)}` } })));
    clients.push(client);
    for (const attempt of [() => client.movedUsers(), () => client.forgetMovedUser('bob')]) {
      const refused = await attempt().catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: 'INVALID', message: expect.stringMatching(/no method "(movedUsers|forgetMovedUser)": it runs an older mailstore than this one \(pid \d+\); nothing was changed/) });
    }
  });

  it("an appendBatch, expunge or flag change pinned to its mailbox (a restore's, an import's, retention's, the CLI's runs: session 49) is INVALID naming the daemon as older: it refuses the option and changes nothing", async () => {
    // as every Store before session 49 refuses an option it does not know
    const refusals: Record<string, string> = {
      appendBatch: 'unknown appendBatch option "mailboxId" (known: meta, chain)',
      expunge: 'unknown expunge option "mailboxId" (known: unchangedSince)',
      setFlags: 'unknown flag change field "mailboxId" (known: add, remove, replace, unchangedSince)',
    };
    const client = await Client.connect(await oldDaemon((call) => (refusals[call.m] ? { t: 'err', id: call.id, e: { code: 'INVALID', message: refusals[call.m] } } : undefined)));
    clients.push(client);
    const mailboxId = 'af8c955e-c1a4-4a15-bf8a-7befb91b01ba';
    for (const attempt of [() => client.appendBatch('INBOX', [{ bytes: Buffer.from('Subject: x\r\n\r\nx\r\n') }], { mailboxId }), () => client.expunge('INBOX', [1], { mailboxId }), () => client.setFlags('INBOX', [1], { add: ['\\Seen'], mailboxId })]) {
      const refused = await attempt().catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: 'INVALID', message: expect.stringMatching(/"mailboxId" .*: it runs an older mailstore than this one \(pid \d+\); nothing was changed/) });
    }
  });
});

/** A mailbox, a tree and a user deleted only when empty: [what the refusal names, the attempt]. */
function deletesIfEmpty(client: Client): [string, () => Promise<unknown>][] {
  return [
    ['INBOX', () => client.deleteMailbox('INBOX', { ifEmpty: true })],
    ['INBOX and below', () => procedures(client).deleteMailboxTree('INBOX', { ifEmpty: true }) as Promise<unknown>],
    ['user/bob and below', () => client.deleteUser('bob', { ifEmpty: true })],
  ];
}

describe('deletes that must leave mail alone, through a daemon of session 30 (f76e064)', () => {
  it('refuses a mailbox, a tree or a user holding messages unless forced, before sending a delete that daemon would carry out whole (it takes no ifEmpty)', async () => {
    const client = await Client.connect(await oldDaemon());
    clients.push(client);
    for (const [what, attempt] of deletesIfEmpty(client)) {
      const refused = await attempt().catch((error: unknown) => error);
      expect(refused, what).toMatchObject({ code: 'REFUSED', message: expect.stringMatching(new RegExp(`^${what} holds 1 message; it is deleted only when empty`)) });
    }
    expect(received.map(([method, name]) => (method === 'procedure' ? name : method))).not.toContain(expect.stringMatching(/^delete/));
  });

  it('a count that fails for any reason but NOT_FOUND fails the delete, which is never sent (it was taken for 0 and the mail deleted)', async () => {
    const unavailable = (call: Extract<Frame, { t: 'call' }>): Frame | undefined => (call.m === 'status' || call.a[0] === 'messagesInTree'
      ? { t: 'err', id: call.id, e: { code: 'UNAVAILABLE', message: 'the daemon is stopping' } } : undefined);
    const client = await Client.connect(await oldDaemon(unavailable));
    clients.push(client);
    for (const [what, attempt] of deletesIfEmpty(client)) {
      const refused = await attempt().catch((error: unknown) => error);
      expect(refused, what).toMatchObject({ code: 'UNAVAILABLE' });
    }
    expect(received.map(([method, name]) => (method === 'procedure' ? name : method))).not.toContain(expect.stringMatching(/^delete/));
  });
});

describe('the CLI through a daemon of session 30 (f76e064)', () => {
  it('stats prints its answer, without the free inodes it does not report (printed "undefined" before)', async () => {
    requireBuilt();
    const socket = await oldDaemon();
    const stats = await run(['stats'], { store: tempDir(), env: { MAILSTORE_SOCKET: socket } });
    expect(stats.code, stats.stderr).toBe(0);
    const text = stats.stdout.toString();
    expect(text).toMatch(/^messages +2$/m);
    expect(text).toMatch(/^free space +\d+ .*; reserve 64.0 MiB$/m);
    expect(text).not.toMatch(/undefined|free inodes/);
  });
});

describe('the CLI through a daemon of session 29 (8fc479f)', () => {
  // Found by the session 49 outside upgrade test (this CLI, a daemon of 8fc479f serving a store it
  // wrote): 'mailstore snapshot' printed the snapshot, then failed INTERNAL "result.damagedSnapshots
  // is not iterable", exit 70, after the snapshot was written: that daemon's SnapshotResult has no
  // damagedSnapshots (session 31). Its answer as that daemon gave it (the CLI's --json of it, there).
  const answer = {
    result: { name: '0000000000000283.snap', seq: 283, bytes: 86118, records: 1, format: 3, durationMs: 244, reused: false, removedSnapshots: ['0000000000000277.snap'], retired: { throughSeq: 282, segments: [], bytes: 0, archive: '/srv/archive' } },
    archive: '/srv/archive',
  };
  it('snapshot prints its answer and exits 0, without the damaged older snapshots it does not report', async () => {
    requireBuilt();
    const socket = await oldDaemon((call) => (call.m === 'procedure' && call.a[0] === 'snapshot' ? { t: 'res', id: call.id, v: answer } : undefined));
    const snapshot = await run(['snapshot'], { store: tempDir(), env: { MAILSTORE_SOCKET: socket } });
    expect(snapshot.stderr.toString()).toBe('');
    expect(snapshot.code).toBe(0);
    expect(snapshot.stdout.toString()).toBe('snapshot 0000000000000283.snap: seq 283, 1 records, 84.1 KiB, 244 ms\nremoved older snapshots: 0000000000000277.snap\njournal: nothing to retire (retirement may pass seq 282; the newest segment is never retired)\n');
  });
});

describe('config through a daemon of session 29 (8fc479f), before the free-space reserve', () => {
  // Found by session 49's testers: 'mailstore config' (only showing the settings) failed INVALID
  // through a daemon without the freeSpace procedure (a13f1c51, session 30), and 'config
  // --inline-bytes-max N' changed the threshold, then failed saying "nothing was changed".
  const session29 = (call: Extract<Frame, { t: 'call' }>): Frame | undefined => {
    if (call.m !== 'procedure') return undefined;
    if (call.a[0] === 'freeSpace') return { t: 'err', id: call.id, e: { code: 'INVALID', message: 'the daemon has no procedure "freeSpace"' } };
    if (call.a[0] === 'inlineBodies') return { t: 'res', id: call.id, v: call.a[1] === undefined ? { inlineBytesMax: 16384, setting: null } : { inlineBytesMax: call.a[1], setting: call.a[1] } };
    return undefined;
  };
  const changes = () => received.filter(([method, name, value]) => method === 'procedure' && value !== undefined && (name === 'inlineBodies' || name === 'freeSpace'));

  it('shows the inline threshold it has and no reserve (it keeps none); a new reserve is refused naming it older, before the threshold changes', async () => {
    requireBuilt();
    const socket = await oldDaemon(session29);
    const env = { MAILSTORE_SOCKET: socket };
    const shown = await run(['config'], { store: tempDir(), env });
    expect(shown.stderr.toString()).toBe('');
    expect(shown.code).toBe(0);
    expect(shown.stdout.toString()).toBe("inline-bytes-max 16384 (default)\nfree-space-reserve none (the daemon runs an older mailstore: restart it with this version ('mailstore serve') to see and set this, before the reserve)\n");
    const json = await run(['config', '--json'], { store: tempDir(), env });
    expect(JSON.parse(json.stdout.toString())).toEqual({ inlineBytesMax: 16384, setting: null, freeSpace: null });

    const inline = await run(['config', '--inline-bytes-max', '4096'], { store: tempDir(), env });
    expect(inline.stderr.toString()).toBe('');
    expect(inline.stdout.toString()).toMatch(/^inline-bytes-max 4096\nfree-space-reserve none /);
    expect(changes()).toEqual([['procedure', 'inlineBodies', 4096]]);

    received.length = 0;
    const refused = await run(['config', '--free-space-reserve', '1G', '--inline-bytes-max', '0'], { store: tempDir(), env });
    expect(refused.code).toBe(5);
    expect(refused.stderr.toString()).toMatch(/INVALID: the daemon has no procedure "freeSpace": it runs an older mailstore than this one \(pid \d+\); nothing was changed/);
    expect(changes(), 'the threshold was not changed either').toEqual([['procedure', 'freeSpace', 1 << 30]]);
  });
});

describe('a daemon before b59634e9 (e19c868d, 2026-12-02)', () => {
  // Found by the session 49 outside upgrade test: 'mailstore search' of this CLI through a daemon
  // of e19c868d (2026-12-02) failed "INVALID: unknown readMessages option "lendBodies" (known:
  // fromUid, onCorrupt)": search asks readMessages to lend its bodies (b59634e9), which that daemon
  // does not know, and which no daemon does over the socket (connection.ts withCorruptItems).
  const refusing = (call: Extract<Frame, { t: 'call' }>): Frame | undefined => {
    if (call.m !== 'readMessages') return undefined;
    const unknown = Object.keys((call.a[1] ?? {}) as object).find((k) => k !== 'fromUid' && k !== 'onCorrupt');
    return unknown ? { t: 'err', id: call.id, e: { code: 'INVALID', message: `unknown readMessages option "${unknown}" (known: fromUid, onCorrupt)` } } : { t: 'end', id: call.id };
  };
  it('readMessages is sent without lendBodies, which that daemon refuses and no daemon lends', async () => {
    const client = await Client.connect(await oldDaemon(refusing));
    clients.push(client);
    const read: unknown[] = [];
    for await (const m of client.readMessages('INBOX', { fromUid: 3, lendBodies: true })) read.push(m);
    expect(read).toEqual([]);
    expect(received.filter((c) => c[0] === 'readMessages')).toEqual([['readMessages', 'INBOX', { fromUid: 3 }]]);
  });
});
