import { connect, type Socket } from 'node:net';

/** What postgres.js hands its `socket` option: the parsed hosts and ports of the URL. */
export interface SocketTarget {
  host: string[];
  port: number[];
  path?: string | undefined;
}

/** The error a silent connection is destroyed with; its code classifies it as `unavailable`. */
export class ResponseTimeoutError extends Error {
  override name = 'ResponseTimeoutError';
  readonly code = 'ETIMEDOUT';
  constructor(ms: number) {
    super(`PostgreSQL sent nothing for ${ms} ms with a request outstanding: connection dropped`);
  }
}

/**
 * Sockets for postgres.js that are destroyed when they have sent a request and heard nothing
 * back for `responseMs`. A stalled network (no FIN, no RST) otherwise holds a statement, and
 * every send queued behind it, until TCP gives up (many minutes): `statement_timeout` runs on
 * the server, which never got the statement, and postgres.js has no query deadline. The
 * deadline counts from the first byte written after the last byte read, so a statement may
 * run up to `responseMs` (set above `statement_timeout`, which ends a slow one first). A
 * destroyed socket fails what it carried (`unavailable`, 503) and postgres.js reconnects.
 *
 * postgres.js skips its own connect when given a socket, so this connects, trying the URL's
 * hosts in turn (a multi-host URL: postgres.js still checks `target_session_attrs` and closes
 * a connection to the wrong kind of server, and the next attempt takes the next host).
 * Limitation: requests pipelined behind one that got its reply are watched only from the next
 * write on that connection.
 */
export function watchedSockets(responseMs: number): (target: SocketTarget) => Socket {
  let attempt = 0;
  return (target) => {
    const index = attempt++ % Math.max(1, target.host.length);
    const socket = target.path
      ? connect(target.path)
      : connect({ host: target.host[index] ?? 'localhost', port: target.port[index] ?? target.port[0] ?? 5432 });
    // postgres.js reads host and port back from its socket (errors, TLS server name).
    Object.assign(socket, { host: target.host[index], port: target.port[index] ?? target.port[0] });
    watchSocket(socket, responseMs);
    return socket;
  };
}

/** Destroys `socket` once it has written and then heard nothing for `responseMs` (0: never). */
export function watchSocket(socket: Socket, responseMs: number): void {
  if (responseMs <= 0) return;
  let timer: NodeJS.Timeout | undefined;
  const disarm = (): void => {
    clearTimeout(timer);
    timer = undefined;
  };
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  socket.write = ((...args: unknown[]) => {
    if (timer === undefined && !socket.destroyed) {
      timer = setTimeout(() => socket.destroy(new ResponseTimeoutError(responseMs)), responseMs);
      timer.unref();
    }
    return write(...args);
  }) as Socket['write'];
  socket.on('data', disarm);
  socket.on('close', disarm);
}
