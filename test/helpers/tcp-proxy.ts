/**
 * A load balancer stand-in for tests: a TCP proxy on loopback that sends each new connection
 * to the first upstream port that accepts it (in the order given), and tears down both sides
 * when either closes. Killing the replica a client is on therefore drops the client's
 * connections, and its reconnects land on the next replica, as behind a real balancer that
 * health-checks its pool. Closed when the test that started it ends.
 *
 * `stall()` models a network that stops delivering without closing anything (a partition, a
 * hung middlebox): bytes in both directions are held, not forwarded, new connections are
 * accepted but carry nothing, and a side that closes meanwhile is not told to the other.
 * `resume()` heals it: held bytes flow on as TCP would retransmit them, except on a connection
 * one side gave up on during the stall, which is then closed without delivering them (its
 * peer's kernel discarded them with the socket).
 */
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import type { Test } from 'tap';

const HOST = '127.0.0.1';

export interface TcpProxy {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Replaces the upstream order for connections made from now on. */
  setUpstreams(ports: number[]): void;
  /** Stops forwarding without closing anything (see the file comment). */
  stall(): void;
  /** Forwards again what was held, and from now on. */
  resume(): void;
  readonly stalled: boolean;
  /** Connections currently open through the proxy. */
  openConnections(): number;
  /** Connections accepted so far (each reconnect attempt of a client counts one). */
  accepted(): number;
  /** Upstream port of every connection accepted so far, in order (undefined: none accepted it). */
  routes(): Array<number | undefined>;
  close(): Promise<void>;
}

export async function startTcpProxy(t: Test, upstreams: number[]): Promise<TcpProxy> {
  let order = [...upstreams];
  const routes: Array<number | undefined> = [];
  const open = new Set<Socket>();
  let stalled = false;
  /** Runs on resume: each pair flushes what it held, or closes if a side left meanwhile. */
  const onResume = new Set<() => void>();

  const server = createServer((client) => {
    // Small frames (typing, a chat message) must not wait on Nagle's algorithm at each hop.
    client.setNoDelay(true);
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    const index = routes.push(undefined) - 1;
    const candidates = [...order];
    const tryNext = (): void => {
      const port = candidates.shift();
      if (port === undefined || client.destroyed) {
        client.destroy();
        return;
      }
      const upstream = connect({ host: HOST, port, noDelay: true });
      open.add(upstream);
      upstream.on('close', () => open.delete(upstream));
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        routes[index] = port;
        link(client, upstream);
        client.resume();
      });
      upstream.on('error', () => {
        upstream.destroy();
        if (!connected) tryNext();
      });
      upstream.on('close', () => {
        if (connected) leave(upstream, client);
      });
      client.on('close', () => leave(client, upstream));
    };
    // During a stall a new connection is accepted (the proxy's kernel would) but goes nowhere yet.
    if (stalled) {
      const start = (): void => {
        onResume.delete(start);
        if (!client.destroyed) tryNext();
      };
      onResume.add(start);
      client.on('close', () => onResume.delete(start));
    } else tryNext();
  });
  /** Forwards `a` ⇄ `b`, holding bytes while stalled; backpressure as `pipe` would. */
  const held = new Map<Socket, Buffer[]>();
  const link = (a: Socket, b: Socket): void => {
    for (const [from, to] of [[a, b], [b, a]] as const) {
      held.set(from, []);
      from.on('data', (chunk: Buffer) => {
        if (stalled) {
          held.get(from)?.push(chunk);
          return;
        }
        if (!to.write(chunk)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
      });
    }
  };
  /** `gone` closed: close `other` now, or, while stalled, on resume without delivering what was held. */
  const leave = (gone: Socket, other: Socket): void => {
    held.delete(gone);
    if (!stalled) {
      other.destroy();
      return;
    }
    const later = (): void => {
      onResume.delete(later);
      held.delete(other);
      other.destroy();
    };
    onResume.add(later);
  };
  const flush = (): void => {
    for (const [from, chunks] of held) {
      if (chunks.length === 0) continue;
      held.set(from, []);
      // Each socket's 'data' handler writes to its peer; replay through it in order.
      for (const chunk of chunks) from.emit('data', chunk);
    }
  };

  server.listen(0, HOST);
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no TCP address');

  const close = async (): Promise<void> => {
    if (!server.listening) return;
    for (const socket of open) socket.destroy();
    server.close();
    await once(server, 'close');
  };
  t.teardown(close);
  return {
    port: address.port,
    url: `http://${HOST}:${address.port}`,
    setUpstreams(ports) {
      order = [...ports];
    },
    stall() {
      stalled = true;
    },
    resume() {
      if (!stalled) return;
      stalled = false;
      for (const callback of [...onResume]) callback();
      flush();
    },
    get stalled() {
      return stalled;
    },
    openConnections: () => open.size,
    accepted: () => routes.length,
    routes: () => [...routes],
    close,
  };
}
