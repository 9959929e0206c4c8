// Runs tools/bench/peers/lmtp-client.mjs against an LMTP server process (mailstore serve, or the
// floor's bare smtp-server) and reads that process's CPU time where the client's phases meet, so
// every LMTP row carries the server's CPU per delivery beside the client's own: on two cores the
// two share, CPU per delivery is what bounds the 64-connection rate. Also the floor's server
// (measure/lmtp-floor.ts): smtp-server answering 250 without a store.
import { spawn } from 'node:child_process';
import { SMTPServer } from 'smtp-server';
import { installDataScan } from '../daemon/data-scan.js';
import { limits } from '../limits.js';
import type { BenchResult } from './common.js';
import { readCpuMs } from './daemon-process.js';

/** What lmtp-client.mjs --mark-warm prints to stderr between its warm-up and its timed deliveries. */
const WARM_MARK = 'lmtp-client: warm-up done';

/**
 * The client's JSON line, plus `server_cpu_us_per_message` over its timed deliveries (and
 * `cold_server_cpu_us_per_message` over the warm-up): the server's user + system CPU (10 ms
 * ticks) from the mark to the client's exit, divided by the deliveries.
 */
export async function runLmtpClient(client: string, args: string[], serverPid: number): Promise<BenchResult> {
  const atStart = await readCpuMs(serverPid);
  let atMark: Promise<number> | undefined;
  const result = await new Promise<BenchResult>((resolve, reject) => {
    const child = spawn(process.execPath, [client, ...args, '--mark-warm'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (!atMark && stderr.includes(WARM_MARK)) atMark = readCpuMs(serverPid);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (!line) reject(new Error(`lmtp-client exited ${code} without a result: ${stderr.trim()}`));
      else resolve(JSON.parse(line) as BenchResult);
    });
  });
  const atEnd = await readCpuMs(serverPid);
  const timedFrom = atMark ? await atMark : atStart;
  const perMessage = (ms: number, messages: unknown) => (typeof messages === 'number' && messages > 0 ? Math.round((ms * 1000) / messages) : undefined);
  return {
    ...result,
    server_cpu_us_per_message: perMessage(atEnd - timedFrom, result.messages),
    ...(atMark ? { cold_server_cpu_us_per_message: perMessage(timedFrom - atStart, result.cold_messages) } : {}),
  };
}

/**
 * smtp-server in LMTP mode with the daemon's per-delivery settings (no reverse lookup, MAIL and
 * RCPT answered at once, its DATA parser's indexOf scan) and nothing behind it: onData drains the
 * DATA and answers 250 for every recipient, keeping nothing.
 */
export async function startNullLmtp(socket: string): Promise<{ close(): Promise<void> }> {
  installDataScan();
  const server = new SMTPServer({
    lmtp: true,
    logger: false,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    disableReverseLookup: true,
    size: limits.messageBytesMax,
    onMailFrom: (_address, _session, callback) => callback(),
    onRcptTo: (_address, _session, callback) => callback(),
    onData: (stream, session, callback) => {
      stream.on('data', () => {});
      // smtp-server takes one reply per recipient in LMTP mode (its types say string)
      stream.on('end', () => callback(null, session.envelope.rcptTo.map(() => '2.0.0 accepted, not kept') as unknown as string));
    },
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
