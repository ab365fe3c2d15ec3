import websocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { readEvents } from '../messages/event-log.js';
import { removedUserOf } from '../messages/event-codec.js';
import { sql } from 'drizzle-orm';
import { intArray, toNumber } from '../db/sql.js';
import { ChatConnection } from './chat-connection.js';
import { createHeartbeat } from './heartbeat.js';
import { RoomHub } from './hub.js';
import { notificationConnection } from './notification-connection.js';
import { CloseCode } from '../contract/socket-codes.js';
import { timeStatement } from '../domain/observer.js';
import type { SocketSlots } from '../sessions/socket-slots.js';

declare module 'fastify' {
  interface FastifyInstance {
    rooms: RoomHub;
    /** MAX_SOCKETS_PER_USER's count, across replicas on Redis. */
    socketSlots: SocketSlots;
  }
}

/** The WebSocket half of API.md: `/ws/chat/{id}/` and `/ws/notifications/`. */
export const realtimePlugin = fp<{ socketSlots: SocketSlots }>(
  async (app: FastifyInstance, options) => {
    const { config } = app;
    app.decorate('socketSlots', options.socketSlots);
    await app.register(websocket, {
      options: { maxPayload: config.WS_MAX_PAYLOAD_BYTES },
      // On shutdown, sockets are told to go elsewhere (1001) and resume there by seq; the
      // plugin's default would close them with no code at all.
      preClose(done) {
        for (const client of this.websocketServer.clients) client.close(CloseCode.goingAway, 'server shutting down; reconnect');
        this.websocketServer.close(() => done());
      },
    });

    const rooms = new RoomHub(
      app.bus,
      {
        readEvents: async (conversationId, afterSeq, limit) => {
          const events = await timeStatement(app.metrics.timeStatement, 'event_log_read', () =>
            readEvents(app.database, app.links, conversationId, afterSeq, limit),
          );
          app.metrics.eventLogReads.inc();
          app.metrics.eventLogEventsRead.inc(events.length);
          return events.map((event) => {
            const removedUserId = removedUserOf(event);
            return removedUserId === undefined
              ? { seq: event.seq, json: JSON.stringify(event) }
              : { seq: event.seq, json: JSON.stringify(event), removedUserId };
          });
        },
        currentSeq: async (conversationId) => {
          const [row] = await app.database.query<{ last_seq: unknown }>(
            sql`select last_seq from conversations where id = ${conversationId}`,
          );
          return row ? toNumber(row.last_seq) : 0;
        },
        currentSeqs: async (conversationIds) => {
          const rows = await app.database.query<{ id: unknown; last_seq: unknown }>(
            sql`select id, last_seq from conversations where id = any(${intArray(conversationIds)}::int4[])`,
          );
          return new Map(rows.map((row) => [toNumber(row.id), toNumber(row.last_seq)]));
        },
      },
      app.log,
      {
        received: (kind) => app.metrics.eventsReceived.inc({ kind }),
        rooms: (count) => app.metrics.rooms.set(count),
        replayed: (count) => app.metrics.replayLength.observe(count),
        delivered: (count, publishedAt) => {
          app.metrics.eventsDelivered.inc({ kind: 'conversation' }, count);
          if (publishedAt !== undefined) app.metrics.deliveryLatency.observe(Math.max(0, Date.now() - publishedAt) / 1000);
        },
        positionChecked: (checked, behind) => {
          app.metrics.positionChecks.inc({ outcome: 'current' }, checked - behind);
          if (behind > 0) app.metrics.positionChecks.inc({ outcome: 'behind' }, behind);
        },
      },
      undefined,
      app.publisher,
    );
    app.decorate('rooms', rooms);
    app.bus.onReset(() => app.metrics.busResets.inc());

    const heartbeat = createHeartbeat(config.WS_HEARTBEAT_MS);
    app.get('/ws/chat/:id/', { websocket: true, schema: { hide: true } }, (socket, request) => {
      heartbeat.watch(socket);
      new ChatConnection(app, socket, request);
    });
    app.get('/ws/notifications/', { websocket: true, schema: { hide: true } }, (socket, request) => {
      heartbeat.watch(socket);
      notificationConnection(app, socket, request);
    });

    app.addHook('preClose', async () => heartbeat.stop());
    app.addHook('onClose', async () => rooms.close());
  },
  { name: 'realtime', dependencies: ['infrastructure', 'auth'] },
);
