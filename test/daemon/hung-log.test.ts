// The daemon whose --log is on a file system that hangs, for real (helpers/bindfs.ts), the store
// elsewhere: the stall watch says so on stderr and in the metrics, and deliveries go on. Before,
// the watch appended its own line to the hung log and waited there with it: the metrics showed no
// stall, and nothing was reported again, the store's own stalls neither.
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { json, ok, requireBuilt, tempDir } from '../cli/helpers.js';
import { bindfsUnavailable, hangableDir, releaseAll, until } from '../helpers/bindfs.js';
import { converse } from './lmtp-client.js';
import { INBOX, freePort, message, serve } from './processes.js';

const unavailable = bindfsUnavailable();
if (unavailable) console.log(`hung-log.test.ts skips: ${unavailable}`);

beforeAll(requireBuilt);
afterEach(releaseAll);

const stalledSeconds = async (port: number): Promise<number> =>
  Number(/^mailstore_io_stalled_seconds (\d+)/m.exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())?.[1]);

describe.skipIf(unavailable)('the daemon with its log on a hung mount', () => {
  it('reports the stall on stderr and in its metrics, and delivers', async () => {
    const { dir, mount } = await hangableDir();
    const store = join(tempDir(), 'store');
    await ok(['init'], { store });
    await ok(['mailbox', 'create', INBOX], { store });
    const [lmtp, metrics] = [await freePort(), await freePort()];
    const log = join(dir, 'serve.log');
    const daemon = await serve(store, ['--lmtp', `127.0.0.1:${lmtp}`, '--metrics', `127.0.0.1:${metrics}`, '--log', log], { env: { MAILSTORE_STALL_REPORT_SECONDS: '1' } });
    let stalled = 0;
    try {
      expect(await stalledSeconds(metrics)).toBe(0);
      mount.hang();
      const c = await converse({ port: lmtp });
      c.send(Buffer.concat([Buffer.from('LHLO client.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n'), message(1), Buffer.from('.\r\n')]));
      expect((await c.replies(5)).at(-1)).toMatch(/^250 2\.0\.0 delivered to user\/alice\/INBOX uid 1/);
      c.socket.destroy();
      await until(() => daemon.stderr().includes('"io-stalled"'), 'an io-stalled line on stderr');
      expect(daemon.stderr()).toContain(`"path":${JSON.stringify(log)}`);
      // the main thread hears of it by a message (the scrape may come first): a few scrapes at most
      for (let tries = 0; tries < 50 && stalled < 1; tries++) {
        stalled = await stalledSeconds(metrics);
        if (stalled < 1) await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      mount.resume();
      daemon.child.kill('SIGTERM');
    }
    expect(stalled).toBeGreaterThanOrEqual(1);
    expect(await daemon.exited).toBe(0);
    expect((await json<{ uid: number }[]>(['messages', INBOX], { store })).map((m) => m.uid)).toEqual([1]);
  });
});
