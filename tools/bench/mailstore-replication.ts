// Replication figures (issue 15): catch-up throughput of a replica starting empty beside a primary
// holding N messages (MB/s, messages/s), and single-writer append latency with one synchronous
// replica vs none (p50, p99). Loopback, both nodes in this process (the replica's apply and the
// primary's sends share one event loop: a conservative figure). Run: node dist/tools/bench/mailstore-replication.js [N]
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { checkReplica } from '../../src/replication/check.js';

const quiet = () => undefined;

function message(i: number): Buffer {
  return Buffer.from(`From: a@example.org\r\nTo: b@example.org\r\nSubject: message ${i}\r\n\r\n${randomBytes(2048 + (i % 7) * 1024).toString('base64')}\r\n`);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function latency(store: Store, count: number): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await store.append('INBOX', message(i));
    times.push(performance.now() - started);
  }
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) };
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 20000);
  const work = mkdtempSync(join(tmpdir(), 'bench-repl-'));
  const key = join(work, 'key');
  writeFileSync(key, randomBytes(32).toString('hex'));
  chmodSync(key, 0o600);
  try {
    const primaryStore = await Store.open(join(work, 'p'), { create: true });
    await primaryStore.createMailbox('INBOX');
    let bytes = 0;
    for (let i = 0; i < n; i += 500) {
      const items = Array.from({ length: Math.min(500, n - i) }, (_, k) => ({ bytes: message(i + k) }));
      bytes += items.reduce((s, it) => s + it.bytes.length, 0);
      await primaryStore.appendBatch('INBOX', items);
    }
    const unreplicated = await latency(primaryStore, 500);
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, syncReplicas: 1, log: quiet });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    const started = performance.now();
    const replica = await startReplica(join(work, 'r'), { primary: address, keyFile: key, log: quiet });
    while (replica.store.changes.lastSeq < primaryStore.changes.lastSeq) await new Promise((r) => setTimeout(r, 5));
    const seconds = (performance.now() - started) / 1000;
    const synchronous = await latency(primaryStore, 500);
    const checkStarted = performance.now();
    const check = await checkReplica(replica.store, { primary: address, keyFile: key });
    const checkSeconds = (performance.now() - checkStarted) / 1000;
    if (!check.identical) throw new Error('replica check found differences');
    console.log(JSON.stringify({
      messages: n, megabytes: +(bytes / 1e6).toFixed(1),
      catchUp: { seconds: +seconds.toFixed(2), megabytesPerSecond: +(bytes / 1e6 / seconds).toFixed(1), messagesPerSecond: Math.round(n / seconds) },
      replicaCheck: { seconds: +checkSeconds.toFixed(2), messagesPerSecond: Math.round((n + 1000) / checkSeconds) },
      appendLatencyMs: { unreplicated: { p50: +unreplicated.p50.toFixed(2), p99: +unreplicated.p99.toFixed(2) }, oneSyncReplica: { p50: +synchronous.p50.toFixed(2), p99: +synchronous.p99.toFixed(2) } },
    }));
    await replica.close();
    await primary.close();
    await primaryStore.close();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
