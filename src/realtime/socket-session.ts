import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TokenClaims } from '../auth/plugin.js';
import type { SocketSlots } from '../sessions/socket-slots.js';
import { errorEvent } from './protocol.js';
import { CloseCode } from '../contract/socket-codes.js';
import type { EventSink } from './sink.js';

export interface SocketSession {
  claims: TokenClaims;
  /** Frees the socket's slot and stops watching its token (idempotent). */
  end(): void;
}

/**
 * A socket's session: its ticket or token checked (4401 when refused), a slot among the user's
 * MAX_SOCKETS_PER_USER taken (an `error` event and 4429 when none is left), and its token
 * watched, so a revocation closes it with 4401. While it lasts the user counts as online
 * (presence: chat and notification sockets alike). Null when the socket was refused.
 */
export async function openSocketSession(
  app: FastifyInstance,
  slots: SocketSlots,
  request: FastifyRequest,
  sink: EventSink,
): Promise<SocketSession | null> {
  let claims: TokenClaims | null;
  try {
    claims = await app.authenticateSocket(request);
  } catch (error) {
    app.log.warn({ err: error }, 'socket authentication failed');
    sink.close(CloseCode.internal, 'service unavailable, reconnect later');
    return null;
  }
  if (!claims) {
    sink.close(CloseCode.unauthorized, 'invalid, expired or revoked token or ticket');
    return null;
  }
  const socketId = randomUUID();
  const limit = app.config.MAX_SOCKETS_PER_USER;
  let acquired: boolean;
  try {
    acquired = await slots.acquire(claims.userId, socketId, limit);
  } catch (error) {
    app.log.warn({ err: error }, 'socket slot not counted');
    sink.close(CloseCode.internal, 'service unavailable, reconnect later');
    return null;
  }
  if (!acquired) {
    app.metrics.rateLimited.inc({ scope: 'sockets' });
    sink.send(errorEvent('rate_limited', `at most ${limit} open sockets per user`));
    sink.close(CloseCode.tooManySockets, 'too many open sockets');
    return null;
  }
  const unwatch = app.sessions.watch({
    claims,
    revoke: () => sink.close(CloseCode.unauthorized, 'token revoked'),
  });
  let ended = false;
  app.presence.connected(claims.userId);
  return {
    claims,
    end() {
      if (ended) return;
      ended = true;
      unwatch();
      slots.release(claims.userId, socketId);
      app.presence.disconnected(claims.userId);
    },
  };
}
