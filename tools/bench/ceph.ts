// A throw-away single-node Ceph (one mon, one OSD on memstore, radosgw) on loopback for the
// object-storage tests (test/helpers/ceph.ts) and the bench step tier: no systemd, no cephx, no mounts. The facts behind each setting are in
// docs/OBJECT-STORAGE.md ("A real S3 endpoint in the tests"). `startCeph` resolves once radosgw
// answers S3 with a user whose keys it returns; `stop` takes every daemon down (SIGKILL, all at
// once). Returns undefined when Ceph is not installed.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Ceph {
  dir: string;
  endpoint: string;
  accessKey: string;
  secretKey: string;
  /** Stops radosgw only (an outage); `startGateway` brings it back. */
  stopGateway(signal?: NodeJS.Signals): Promise<void>;
  startGateway(): Promise<void>;
  stop(): Promise<void>;
}

export function cephInstalled(): boolean {
  return ['ceph-mon', 'ceph-osd', 'radosgw', 'ceph'].every((bin) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function config(dir: string, fsid: string, monPort: number, rgwPort: number): string {
  return `[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:${monPort}]
public addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
log file = ${dir}/log/$name.log
chdir = ""
keyring = ${dir}/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
paxos propose interval = 0.1
paxos min wait = 0.01
[mon]
mon data = ${dir}/mon.$id
[osd]
osd data = ${dir}/osd.$id
osd objectstore = memstore
memstore device bytes = 1073741824
osd memory target = 1073741824
[client.rgw.a]
rgw data = ${dir}/rgw.a
rgw frontends = beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1
log file = ${dir}/log/rgw.a.log
`;
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`ceph: ${what} not within ${timeoutMs} ms`);
}

async function answers(endpoint: string): Promise<boolean> {
  try {
    await fetch(endpoint, { signal: AbortSignal.timeout(1000) });
    return true;
  } catch {
    return false;
  }
}

export async function startCeph(): Promise<Ceph | undefined> {
  if (!cephInstalled()) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'mailstore-ceph-')); // lives as long as the suite, not one test
  for (const sub of ['run', 'log', 'mon.a', 'osd.0', 'rgw.a']) mkdirSync(join(dir, sub), { recursive: true });
  const [monPort, rgwPort] = [await freePort(), await freePort()];
  const fsid = randomUUID();
  writeFileSync(join(dir, 'ceph.conf'), config(dir, fsid, monPort, rgwPort));
  const env = { ...process.env, CEPH_CONF: join(dir, 'ceph.conf') };
  const ceph = (bin: string, args: string[], timeout = 60_000) => run(bin, args, { env, timeout, cwd: dir });
  await ceph('ceph-authtool', ['--create-keyring', join(dir, 'keyring'), '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
  await ceph('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, join(dir, 'monmap')]);
  await ceph('ceph-mon', ['--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap'), '--keyring', join(dir, 'keyring')]);
  await ceph('ceph-mon', ['-i', 'a']);
  const osdUuid = randomUUID();
  const id = (await ceph('ceph', ['osd', 'new', osdUuid, '--connect-timeout', '30'])).stdout.trim();
  await ceph('ceph-osd', ['-i', id, '--mkfs', '--osd-uuid', osdUuid]);
  await ceph('ceph-osd', ['-i', id]);
  await until('the OSD up', async () => (await ceph('ceph', ['osd', 'dump'])).stdout.includes(`osd.${id} up`), 60_000);
  const endpoint = `http://127.0.0.1:${rgwPort}`;
  const startGateway = async () => {
    await ceph('timeout', ['120', 'radosgw', '-n', 'client.rgw.a'], 130_000); // returns once initialised
    await until('radosgw answering', () => answers(endpoint), 60_000);
  };
  await startGateway();
  const accessKey = 'testaccesskey', secretKey = 'testsecretkey';
  await ceph('radosgw-admin', ['user', 'create', '--uid=test', '--display-name=test', `--access-key=${accessKey}`, `--secret-key=${secretKey}`]);
  const pidOf = (name: string) => {
    const path = join(dir, 'run', `${name}.pid`);
    return existsSync(path) ? Number(readFileSync(path, 'utf8').trim()) : undefined;
  };
  const kill = async (names: string[], signal: NodeJS.Signals) => {
    const pids = names.map(pidOf).filter((p): p is number => !!p);
    for (const pid of pids) try { process.kill(pid, signal); } catch { /* gone */ }
    await until('daemons stopped', () => pids.every((pid) => { try { process.kill(pid, 0); return false; } catch { return true; } }), 15_000)
      .catch(() => { for (const pid of pids) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
  };
  const rgwNames = () => readdirSync(join(dir, 'run')).filter((n) => n.startsWith('client.rgw.') && n.endsWith('.pid')).map((n) => n.slice(0, -4));
  return {
    dir, endpoint, accessKey, secretKey,
    stopGateway: (signal = 'SIGTERM') => kill(rgwNames(), signal),
    startGateway,
    // all at once: a SIGKILLed daemon takes 1-2 s to be gone (its memory torn down), 5-6 s one
    // after the other at the end of each of the ten files that start one; a killed radosgw cannot
    // hang on its OSD
    stop: async () => {
      await kill([...rgwNames(), 'osd.0', 'mgr.x', 'mon.a'], 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Creates a bucket with curl's SigV4 (independent of the client under test). */
export function createBucket(ceph: Ceph, bucket: string): void {
  execFileSync('curl', ['-fsS', '--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', `${ceph.accessKey}:${ceph.secretKey}`,
    '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD', '-X', 'PUT', `${ceph.endpoint}/${bucket}`, '-o', '/dev/null']);
}
