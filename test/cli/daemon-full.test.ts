// A command of the CLI while the store's daemon has all the connections it takes (it accepts and
// closes at once): the command asks the daemon again while it waits (--wait), and goes through it
// as soon as a connection is free, instead of waiting out --wait for the lock the daemon holds
// and failing LOCKED; past --wait it is LOCKED, never a wait without end.
import { createConnection, type Socket } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Running } from '../daemon/helpers.js';
import { finish, requireBuilt, run, start } from './helpers.js';

beforeAll(requireBuilt);

let running: Running | undefined;
const held: Socket[] = [];
afterEach(async () => {
  for (const socket of held.splice(0)) socket.destroy();
  await running?.server.stop('test');
  running = undefined;
});

/** The daemon with room for one connection, taken by an idle client. */
async function fullDaemon(): Promise<Running> {
  running = await startDaemon();
  (running.server as unknown as { server: { maxConnections: number } }).server.maxConnections = 1;
  const socket = createConnection(running.socket);
  socket.on('error', () => undefined);
  held.push(socket);
  await new Promise((resolve) => socket.once('connect', resolve));
  await new Promise((resolve) => setTimeout(resolve, 100)); // accepted by the daemon
  return running;
}

describe('a daemon with every connection taken', () => {
  it('a command waits for a free connection, not for the lock, and goes through the daemon', async () => {
    const { dir } = await fullDaemon();
    const began = Date.now();
    const child = start(['--wait', '20', 'mailbox', 'list', '--json'], { store: dir });
    setTimeout(() => held.shift()?.destroy(), 1500); // the idle client goes: a connection is free
    const result = await finish(child);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout.toString()).map((m: { name: string }) => m.name)).toEqual(['user/alice/INBOX']);
    expect(Date.now() - began).toBeLessThan(10_000);
  });

  it('past --wait it is LOCKED (exit 2)', async () => {
    const { dir } = await fullDaemon();
    const began = Date.now();
    const result = await run(['--wait', '2', 'mailbox', 'list'], { store: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/LOCKED/);
    expect(Date.now() - began).toBeLessThan(10_000);
  });
});
