/**
 * A load balancer stand-in for tests: a TCP proxy on loopback that sends each new connection
 * to the first upstream port that accepts it (in the order given), and tears down both sides
 * when either closes. Killing the replica a client is on therefore drops the client's
 * connections, and its reconnects land on the next replica, as behind a real balancer that
 * health-checks its pool. Closed when the test that started it ends.
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
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.on('error', () => {
        upstream.destroy();
        if (!connected) tryNext();
      });
      upstream.on('close', () => {
        if (connected) client.destroy();
      });
      client.on('close', () => upstream.destroy());
    };
    tryNext();
  });
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
    accepted: () => routes.length,
    routes: () => [...routes],
    close,
  };
}
