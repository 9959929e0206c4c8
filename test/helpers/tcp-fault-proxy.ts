// A TCP proxy on loopback between two real parts (primary and replica, XFER source and target,
// anything speaking TCP) that misbehaves the way a network does: a link black-holed (cable pulled,
// VM paused, a firewall dropping packets: nothing forwarded, nothing read, nothing closed, so
// neither end hears a FIN or an RST), a stall that resumes, a trickle, a reset at byte N of a
// direction, every connection cut, one byte flipped. The S3 proxy (s3-fault-proxy.ts) does the
// same at the HTTP level.
import net from 'node:net';

/** upstream: bytes towards the target; downstream: its answers. */
export type Direction = 'upstream' | 'downstream';

interface Pair {
  client: net.Socket;
  upstream?: net.Socket;
  /** Bytes forwarded so far, each way. */
  forwarded: Record<Direction, number>;
  /** One side closed while black-holed: the other hears of it only once the link is back. */
  broken?: boolean;
  /** Its number among the connections accepted (1 for the first). */
  serial: number;
}

export class TcpFaultProxy {
  private readonly pairs = new Set<Pair>();
  private holed = false;
  private stalledUntil = 0;
  private flip = false;
  private trickleBytes = 0;
  private trickleMs = 0;
  /** The next reset; `later`: those after it, each on a connection accepted after the one before fired; `from`: connections up to it are spared. */
  private resetAt?: { direction: Direction; bytes: number; later: number[]; from: number };
  private connectionCount = 0;
  /** Connections accepted while black-holed, waiting for the link to come back. */
  private held: Pair[] = [];

  private constructor(private readonly server: net.Server, private readonly target: { host: string; port: number }) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpFaultProxy> {
    const server = net.createServer();
    const proxy = new TcpFaultProxy(server, { host: targetHost, port: targetPort });
    server.on('connection', (client) => proxy.accept(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** host:port of the proxy: give it where the target's address would go. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Connections accepted so far. */
  connections(): number {
    return this.connectionCount;
  }

  /**
   * The link goes dark: nothing more is forwarded or read on any connection, new ones are
   * accepted (the kernel does that) and never reach the target, and nothing is closed.
   */
  blackhole(): void {
    this.holed = true;
    for (const pair of this.pairs) {
      pair.client.pause();
      pair.upstream?.pause();
    }
  }

  /** The link is back: every connection forwards again, the held ones reach the target. */
  restore(): void {
    this.holed = false;
    for (const pair of this.pairs) {
      // the far end forgot the connection meanwhile: its host answers the next segment with an RST
      if (pair.broken) {
        pair.client.resetAndDestroy();
        pair.upstream?.resetAndDestroy();
        this.end(pair);
        continue;
      }
      pair.client.resume();
      pair.upstream?.resume();
    }
    for (const pair of this.held.splice(0)) this.connectUpstream(pair);
  }

  /** Forwarding stops for `ms` (each connection's next chunk waits), then goes on. */
  stall(ms: number): void {
    this.stalledUntil = Date.now() + ms;
  }

  /** The next chunk longer than 10 bytes has one byte changed (TLS's MAC must catch it). */
  flipNextByte(): void {
    this.flip = true;
  }

  /** A slow link: `bytes` forwarded every `ms` (0: full speed again). */
  trickle(bytes: number, ms: number): void {
    this.trickleBytes = bytes;
    this.trickleMs = ms;
  }

  /**
   * The connection that forwards its `bytes`th byte in `direction` is reset there (RST both ways),
   * once; then, with `later`, the first connection accepted after that one to forward its
   * `later[0]`th byte, and so on: each armed before its connection starts, whatever the load
   * (arming the next one from the test after a new connection was seen let that connection's
   * whole stream go by first on a loaded machine).
   */
  resetAfter(direction: Direction, bytes: number, ...later: number[]): void {
    this.resetAt = { direction, bytes, later, from: 0 };
  }

  /** Every connection closed at once (both sides see it). */
  cut(): void {
    for (const pair of this.pairs) this.end(pair);
  }

  /** Resets every connection (RST to both sides). */
  reset(): void {
    for (const pair of this.pairs) {
      pair.client.resetAndDestroy();
      pair.upstream?.resetAndDestroy();
      this.end(pair);
    }
  }

  async close(): Promise<void> {
    this.cut();
    for (const pair of this.held.splice(0)) this.end(pair);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.connectionCount++;
    const pair: Pair = { client, forwarded: { upstream: 0, downstream: 0 }, serial: this.connectionCount };
    this.pairs.add(pair);
    client.on('error', () => this.sideClosed(pair));
    client.on('close', () => this.sideClosed(pair));
    client.pause();
    if (this.holed) this.held.push(pair);
    else this.connectUpstream(pair);
  }

  private connectUpstream(pair: Pair): void {
    if (!this.pairs.has(pair)) return;
    const upstream = net.connect(this.target.port, this.target.host);
    pair.upstream = upstream;
    upstream.on('error', () => this.sideClosed(pair));
    upstream.on('close', () => this.sideClosed(pair));
    this.forward(pair, pair.client, upstream, 'upstream');
    this.forward(pair, upstream, pair.client, 'downstream');
    pair.client.resume();
  }

  private forward(pair: Pair, from: net.Socket, to: net.Socket, direction: Direction): void {
    from.on('data', (chunk: Buffer) => {
      let data = chunk;
      if (this.flip && data.length > 10) {
        this.flip = false;
        data = Buffer.from(data);
        data[5] ^= 0x40;
      }
      const reset = this.resetAt;
      if (reset?.direction === direction && pair.serial > reset.from && pair.forwarded[direction] + data.length >= reset.bytes) {
        const [next, ...rest] = reset.later;
        this.resetAt = next === undefined ? undefined : { direction, bytes: next, later: rest, from: pair.serial };
        to.write(data.subarray(0, reset.bytes - pair.forwarded[direction]), () => {
          pair.client.resetAndDestroy();
          pair.upstream?.resetAndDestroy();
        });
        from.pause();
        return;
      }
      pair.forwarded[direction] += data.length;
      const wait = this.stalledUntil - Date.now();
      if (wait > 0 || this.trickleBytes > 0) {
        from.pause();
        void this.slowly(from, to, data, Math.max(0, wait));
        return;
      }
      if (!to.write(data)) {
        from.pause();
        to.once('drain', () => { if (!this.holed) from.resume(); });
      }
    });
  }

  /** Writes `data` after `waitMs`, trickled when asked, then reads on (unless black-holed meanwhile). */
  private async slowly(from: net.Socket, to: net.Socket, data: Buffer, waitMs: number): Promise<void> {
    if (waitMs > 0) await sleep(waitMs);
    for (let at = 0; at < data.length && !to.destroyed;) {
      const step = this.trickleBytes > 0 ? this.trickleBytes : data.length;
      to.write(data.subarray(at, at + step));
      at += step;
      if (this.trickleBytes > 0) await sleep(this.trickleMs);
    }
    if (!this.holed) from.resume();
  }

  /** A side's FIN or RST crosses the link, unless the link is dark. */
  private sideClosed(pair: Pair): void {
    if (this.holed) pair.broken = true;
    else this.end(pair);
  }

  private end(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
