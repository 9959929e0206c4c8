// The 64-connection floor's parts (measure/lmtp-floor.ts): smtp-server answering 250 without a
// store, and the runner that reads a server's CPU time around the client's timed deliveries.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runLmtpClient, startNullLmtp } from '../../src/bench/lmtp-client-run.js';
import { tmpDir } from '../helpers/tmp.js';
import { repoRoot } from '../cli/helpers.js';

const client = join(repoRoot, 'tools/bench/peers/lmtp-client.mjs');

function listOf(dir: string, messages: number): string {
  const files = Array.from({ length: messages }, (_, i) => {
    const file = join(dir, `m${i}.eml`);
    writeFileSync(file, `Subject: m${i}\n\nbody\n.dot\n`);
    return file;
  });
  writeFileSync(join(dir, 'list.txt'), `${files.join('\n')}\n`);
  return join(dir, 'list.txt');
}

describe('the LMTP floor', () => {
  it('the null server answers 250 to every delivery; the runner adds the server\'s CPU per delivery, timed and warm-up apart, beside the client\'s', async () => {
    const dir = tmpDir('lmtp-floor');
    const socket = join(dir, 'floor.sock');
    const server = await startNullLmtp(socket);
    try {
      const result = await runLmtpClient(client, ['--socket', socket, '--rcpt', 'b{n}@example.com', '--list', listOf(dir, 6), '--count', '4', '--warmup', '2', '--connections', '2'], process.pid);
      expect(result).toMatchObject({ messages: 4, failed: 0, connections: 2, cold_messages: 2 });
      for (const field of ['server_cpu_us_per_message', 'cold_server_cpu_us_per_message', 'cpu_us_per_message', 'cold_cpu_us_per_message']) {
        expect(result[field], field).toEqual(expect.any(Number));
        expect(result[field] as number, field).toBeGreaterThanOrEqual(0);
      }
    } finally {
      await server.close();
    }
  });

  it('without a warm-up there is no cold figure; a server that is not there gives the client\'s error line', async () => {
    const dir = tmpDir('lmtp-floor');
    const socket = join(dir, 'floor.sock');
    const server = await startNullLmtp(socket);
    try {
      const result = await runLmtpClient(client, ['--socket', socket, '--rcpt', 'bench@example.com', '--list', listOf(dir, 2)], process.pid);
      expect(result).toMatchObject({ messages: 2, failed: 0 });
      expect(result.server_cpu_us_per_message).toEqual(expect.any(Number));
      expect(result.cold_server_cpu_us_per_message).toBeUndefined();
    } finally {
      await server.close();
    }
    const missing = await runLmtpClient(client, ['--socket', join(dir, 'none.sock'), '--rcpt', 'bench@example.com', '--list', join(dir, 'list.txt')], process.pid);
    expect(missing.error).toMatch(/ENOENT/);
  });
});
