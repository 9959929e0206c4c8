// serve through a symbolic link to its store, the link repointed while it runs (ln -sfn to another
// store, whose own daemon then starts): on SIGTERM the first daemon's socket was removed by its
// path through the link, which named the other daemon's socket by then: that daemon ran on,
// unreachable (its clients UNAVAILABLE, the CLI LOCKED beside it) until restarted.
import { existsSync, mkdirSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Client, defaultSocketPath } from '../../src/client/client.js';
import { Logger } from '../../src/daemon/log.js';
import { DaemonServer } from '../../src/daemon/server.js';
import { Store } from '../../src/store/store.js';
import { requireBuilt } from '../cli/helpers.js';
import { serve } from './processes.js';
import { tempDir } from './helpers.js';

describe('serve through a symbolic link repointed while it runs', () => {
  it('its stop removes its own socket, never the one the link names by then', async () => {
    requireBuilt();
    const base = tempDir();
    const [a, b, link] = [join(base, 'a'), join(base, 'b'), join(base, 'mail')];
    await (await Store.init(a)).close();
    const storeB = await Store.init(b);
    symlinkSync(a, link);
    const daemonA = await serve(link);
    symlinkSync(b, join(base, 'new'));
    renameSync(join(base, 'new'), link); // ln -sfn b mail
    const serverB = new DaemonServer(storeB, { socketPath: defaultSocketPath(b), logger: new Logger(join(base, 'b.log')) });
    await serverB.start();
    try {
      daemonA.child.kill('SIGTERM');
      expect(await daemonA.exited).toBe(0);
      expect(existsSync(defaultSocketPath(b))).toBe(true);
      const client = await Client.connect(defaultSocketPath(b));
      expect(client.daemon?.root).toBe(b);
      await client.close();
      expect(existsSync(defaultSocketPath(a))).toBe(false);
    } finally {
      await serverB.stop('test');
      await storeB.close();
    }
  });

  it('a short link to a store too deep for a socket path serves at the link (was: INVALID, exit 5, where it served before)', async () => {
    requireBuilt();
    const base = tempDir();
    const deep = join(base, 'd'.repeat(60), 'e'.repeat(40), 'store');
    mkdirSync(join(deep, '..'), { recursive: true });
    await (await Store.init(deep)).close();
    expect(Buffer.byteLength(defaultSocketPath(deep))).toBeGreaterThan(107);
    const link = join(base, 'mail');
    symlinkSync(deep, link);
    const daemon = await serve(link);
    try {
      const client = await Client.connect(defaultSocketPath(link));
      expect(client.daemon?.root).toBe(deep);
      await client.close();
    } finally {
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
    }
  });
});
