// The daemon creates its socket 0660 from the first instant by narrowing the process's umask
// around listen(). The umask is the whole process's: until session 30 it stayed narrowed across
// the await for the listen callback, and a directory the store made in that moment (a new pack's,
// the quarantine's) came out 0640, without search permission even for its owner.
import { mkdirSync, statSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultSocketPath } from '../../src/client/client.js';
import { Logger } from '../../src/daemon/log.js';
import { DaemonServer } from '../../src/daemon/server.js';
import { Store } from '../../src/store/store.js';
import { tempDir } from '../cli/helpers.js';

describe('the daemon\'s socket umask', () => {
  it('is narrowed only around the bind: a directory made while the daemon starts gets its own mode, the socket 0660', async () => {
    const base = tempDir();
    const store = await Store.init(join(base, 'store'));
    const server = new DaemonServer(store, { socketPath: defaultSocketPath(join(base, 'store')), logger: new Logger(join(base, 'daemon.log')) });
    const before = process.umask();
    let madeMode = -1;
    // 'listening' comes after the bind and before start()'s listen callback resolves: other work of the process runs here
    (server as unknown as { server: Server }).server.once('listening', () => {
      const dir = join(base, 'made-meanwhile');
      mkdirSync(dir, { mode: 0o750 });
      madeMode = statSync(dir).mode & 0o777;
    });
    try {
      await server.start();
      expect(madeMode).toBe(0o750 & ~before); // was 0o640: the daemon's 0o117 still in force
      expect(process.umask()).toBe(before);
      expect(statSync(defaultSocketPath(join(base, 'store'))).mode & 0o777).toBe(0o660);
    } finally {
      await server.stop();
      await store.close();
    }
  });
});
