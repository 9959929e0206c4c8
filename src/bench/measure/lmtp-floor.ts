// The floor under the 64-connection LMTP goal (issue 13: 64 connections ≥ 5× one), no store: the
// same client (tools/bench/peers/lmtp-client.mjs, same messages, same warm-up) at 1 and at C
// connections against smtp-server in LMTP mode in a process of its own (set up as the daemon sets
// it up), whose onData drains the DATA stream and answers 250 for every recipient, keeping nothing. Its C÷1 ratio says
// how far this client and smtp-server alone can scale on this machine's cores; mailstore's rows
// are read as a fraction of it. Each line carries the server's and the client's CPU per delivery.
//
//   node dist/src/bench/measure/lmtp-floor.js --client lmtp-client.mjs --dir DIR --list LIST.TXT
//        --messages N --concurrent M [--warmup W] [--connections C]
//   (the server half: --serve SOCKET, started by the above)
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { makeDirectories } from '../files.js';
import { waitForSocket } from '../daemon-process.js';
import { runLmtpClient, startNullLmtp } from '../lmtp-client-run.js';
import { emit, parseFlags, required, runMeasurement } from '../common.js';

const { values } = parseFlags(process.argv.slice(2));
const NOTE = 'no store: smtp-server in LMTP mode whose onData drains the DATA and answers 250 per recipient (its own process)';

if (values.has('serve')) await serve(required(values, 'serve'));
else {
  await runMeasurement('floor-lmtp', 'lmtp', async () => {
    const dir = required(values, 'dir');
    const connections = Number(values.get('connections') ?? 64);
    await makeDirectories(dir);
    for (const [n, count] of [[1, required(values, 'messages')], [connections, required(values, 'concurrent')]] as const) {
      const peer = n === 1 ? 'floor-lmtp' : `floor-lmtp-${n}c`;
      const socket = join(dir, `floor-${n}.sock`);
      const server = spawn(process.execPath, [process.argv[1]!, '--serve', socket], { stdio: ['ignore', 'ignore', 'inherit'] });
      try {
        if (!(await waitForSocket(socket, 30_000))) throw new Error(`the floor's server did not answer on ${socket}`);
        const result = await runLmtpClient(required(values, 'client'), [
          '--socket', socket, '--rcpt', n === 1 ? 'bench@example.com' : 'bench{n}@example.com', '--list', required(values, 'list'),
          '--count', count, '--warmup', values.get('warmup') ?? '0', '--connections', String(n), '--peer', peer, '--note', NOTE,
        ], server.pid!);
        if (result.error) throw new Error(result.error);
        emit({ ...result, peer, measurement: 'lmtp', connections: n });
      } finally {
        server.kill('SIGTERM');
      }
    }
  });
}

/** The server half, in this process until SIGTERM. */
async function serve(socket: string): Promise<void> {
  const server = await startNullLmtp(socket);
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
}
