/**
 * Shutdown edges, in process: a socket frame held at the rate-limit await while the app
 * closes does not start its write after `settle()` took its snapshot; closing the owned parts
 * goes on past one that throws; the notification retry timer does not outlive close.
 */
import { sql } from 'drizzle-orm';
import t from 'tap';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import type { DatabaseHandle } from '../src/db/client.js';
import { closeAll } from '../src/http/infrastructure.js';
import { NotificationBatcher } from '../src/notifications/batcher.js';
import type { RateLimiter } from '../src/ratelimit/rate-limiter.js';
import { createConversation, register } from './helpers/api.js';
import { buildTestApp, testDatabase } from './helpers/app.js';
import { chatUrl, WsClient } from './helpers/ws-client.js';

t.test('a frame past the rate-limit await once the app is closing: refused, never written', async (t) => {
  const { database } = await testDatabase(t, 'pglite');
  const bus = createMemoryBus();
  t.teardown(() => bus.close());
  let hold = false;
  let reached!: () => void;
  const atLimiter = new Promise<void>((resolve) => (reached = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const rateLimiter: RateLimiter = {
    async consume() {
      if (hold) {
        reached();
        await released;
      }
      return { allowed: true, retryAfterSeconds: 0 };
    },
    close: async () => {},
  };
  const app = await buildTestApp(t, { database, bus, rateLimiter, env: { MESSAGE_RATE_LIMIT: '100' } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const alice = await register(app);
  const bob = await register(app);
  const conversation = await createConversation(app, alice, [bob]);
  const socket = await WsClient.connect(chatUrl(`ws://127.0.0.1:${address.port}`, conversation), { token: alice.token });
  t.teardown(() => socket.terminate());

  hold = true;
  socket.send({ type: 'chat_message', message: 'too late', client_id: 'late-1' });
  await atLimiter;
  await app.close();
  t.pass('the app closed (settle took its snapshot) with the frame still at the limiter');
  release();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const rows = await database.query(sql`select id from messages where client_id = 'late-1'`);
  t.same(rows, [], 'the frame started no write after settle');
  await t.rejects(app.messages.send(alice.user, conversation, 'after close'), { name: 'DomainError', message: /unavailable/ }, 'a send after settle is unavailable');
});

t.test('closing the owned parts goes on past one that throws', async (t) => {
  const closed: string[] = [];
  const errors: unknown[] = [];
  await closeAll(
    [
      { close: async () => void closed.push('bus') },
      {
        close: async () => {
          throw new Error('redis quit failed');
        },
      },
      { close: async () => void closed.push('database') },
    ],
    { error: (obj) => void errors.push(obj) },
  );
  t.same(closed, ['bus', 'database'], 'every other part is closed');
  t.equal(errors.length, 1, 'the failure is logged');
});

t.test('notifications: the retry timer does not outlive close, and pending entries are bounded', async (t) => {
  let failing = true;
  const written: unknown[][] = [];
  const database = {
    query: async (statement: unknown) => {
      if (failing) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      written.push([statement]);
      return [];
    },
  } as Pick<DatabaseHandle, 'query'>;
  // Only `query` is used by the batcher; the rest of the handle is not needed for this logic.
  const batcher = new NotificationBatcher(database as DatabaseHandle, () => {}, { warn() {}, error() {}, info() {} } as never, {}, 3);
  for (let i = 1; i <= 5; i++) batcher.add(i, 1, 'alice', i);
  t.equal(batcher.size, 3, 'at most 3 entries pending');
  t.equal(batcher.dropped, 2, 'the rest dropped and counted');
  await batcher.flush();
  t.equal(batcher.size, 3, 'a failed write keeps them for a retry');
  t.equal(batcher.timerState, 'unref', 'a retry is scheduled, on a timer that does not hold the process');
  failing = false;
  await batcher.close();
  t.equal(written.length, 3, 'close writes them: the senders\' reads, the notifications, then the inbox order');
  t.equal(batcher.timerState, 'none', 'and leaves no timer behind');
  batcher.add(9, 1, 'alice', 9);
  t.equal(batcher.timerState, 'none', 'nor does a late add');
});
