import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { userChannel } from '../redis/names.js';
import { CloseCode } from '../contract/socket-codes.js';
import { socketSink } from './sink.js';
import { openSocketSession, type SocketSession } from './socket-session.js';

/**
 * `/ws/notifications/`: the user's channel, subscribed on this replica only while the user has
 * such a socket here (the bus reference-counts it), forwarded to the socket untouched.
 * The socket receives; anything it sends is ignored (marking read is REST).
 */
export function notificationConnection(app: FastifyInstance, socket: WebSocket, request: FastifyRequest): void {
  let unsubscribe: (() => void) | undefined;
  let closed = false;
  let session: SocketSession | null = null;
  const sink = socketSink(socket, {
    maxBufferedBytes: app.config.WS_MAX_BUFFERED_BYTES,
    onSlowConsumer: () => {
      app.metrics.slowConsumers.inc();
      app.log.info('notification socket closed as a slow consumer (4008)');
    },
  });
  socket.on('message', () => {});
  socket.on('error', (error) => app.log.debug({ err: error }, 'notification socket error'));
  socket.on('close', () => {
    closed = true;
    session?.end();
    if (unsubscribe) {
      unsubscribe();
      app.metrics.openSockets.dec({ kind: 'notifications' });
    }
  });

  void (async () => {
    session = await openSocketSession(app, app.socketSlots, request, sink);
    if (!session) return;
    if (closed) return session.end();
    subscribe(session.claims.userId);
  })();

  function subscribe(userId: number): void {
    app.bus.subscribe(userChannel(userId), (payload) => void sink.send(payload)).then(
      (detach) => {
        if (closed) return detach();
        unsubscribe = detach;
        app.metrics.openSockets.inc({ kind: 'notifications' });
      },
      (error: unknown) => {
        app.log.warn({ err: error }, 'notification subscription failed');
        sink.close(CloseCode.internal, 'service unavailable, reconnect later');
      },
    );
  }
}
