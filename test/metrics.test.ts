/** `/metrics` moves with traffic: REST and WebSocket sends, open sockets, HTTP latency, 429s. */
import { once } from 'node:events';
import type { FastifyInstance } from 'fastify';
import { setTimeout as delay } from 'node:timers/promises';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { buildTestApp, testDatabase } from './helpers/app.js';
import { call, createConversation, register } from './helpers/api.js';

const WAIT_MS = 5000;
const POLL_INTERVAL_MS = 10;
const SEND_ROUTE = '/api/conversations/:id/messages/';

/** The sum of a metric's samples whose labels include all of `labels` (Prometheus text format). */
async function metric(app: FastifyInstance, name: string, labels: Record<string, string> = {}): Promise<number> {
  const response = await app.inject({ method: 'GET', url: '/metrics' });
  let total = 0;
  for (const line of response.body.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) total += Number(match[3]);
  }
  return total;
}

/** Polls until `read()` satisfies `done`, or fails after WAIT_MS; returns the last value. */
async function until<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await delay(POLL_INTERVAL_MS);
  }
}

interface Client {
  ws: WebSocket;
  events: { type: string; code?: string; message?: { content?: string } }[];
}

async function connect(port: number, conversationId: number, token: string, query = ''): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/chat/${conversationId}/?token=${token}${query}`);
  const client: Client = { ws, events: [] };
  ws.on('message', (data) => client.events.push(JSON.parse(data.toString()) as Client['events'][number]));
  await once(ws, 'open');
  return client;
}

/** A listening app on PGlite and the in-process bus, with two users in one conversation. */
async function listeningWithConversation(t: Test, env: Record<string, string> = {}) {
  const { database } = await testDatabase(t, 'pglite');
  const app = await buildTestApp(t, { database, bus: createMemoryBus(), env });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  const alice = await register(app);
  const bob = await register(app);
  const conversation = await createConversation(app, alice, [bob]);
  return { app, port, alice, bob, conversation };
}

t.test('REST and WebSocket traffic moves the counters', async (t) => {
  const { app, port, alice, bob, conversation } = await listeningWithConversation(t);

  const before = {
    published: await metric(app, 'chat_events_published_total'),
    delivered: await metric(app, 'chat_events_delivered_total'),
    sends: await metric(app, 'chat_http_request_duration_seconds_count', { method: 'POST', route: SEND_ROUTE, status: '201' }),
  };
  t.equal(await metric(app, 'chat_open_sockets', { kind: 'chat' }), 0, 'no sockets yet');

  const a = await connect(port, conversation, alice.token);
  const b = await connect(port, conversation, bob.token);
  t.equal(await until(() => metric(app, 'chat_open_sockets', { kind: 'chat' }), (n) => n === 2), 2, 'two open chat sockets');

  const sent = await call(app, 'POST', `/api/conversations/${conversation}/messages/`, { token: alice.token, body: { content: 'over REST' } });
  t.equal(sent.status, 201, 'sent over REST');
  a.ws.send(JSON.stringify({ type: 'chat_message', message: 'over a socket' }));
  const received = (client: Client) => client.events.filter((event) => event.type === 'chat.message').length;
  await until(async () => [received(a), received(b)], ([x, y]) => x === 2 && y === 2);
  t.equal(received(a), 2, 'the sender got both messages');
  t.equal(received(b), 2, 'the other participant got both messages');

  t.equal(await metric(app, 'chat_events_published_total') - before.published, 2, 'two events published');
  t.equal(await metric(app, 'chat_events_published_total', { kind: 'chat.message' }), 2, 'labelled by kind');
  t.equal(await metric(app, 'chat_events_delivered_total') - before.delivered, 4, 'two events to two sockets');
  t.equal(
    (await metric(app, 'chat_http_request_duration_seconds_count', { method: 'POST', route: SEND_ROUTE, status: '201' })) - before.sends,
    1,
    'one REST send timed, labelled by route template',
  );

  a.ws.close();
  b.ws.close();
  t.equal(await until(() => metric(app, 'chat_open_sockets', { kind: 'chat' }), (n) => n === 0), 0, 'sockets counted down');
});

t.test('a replay from the event log is counted', async (t) => {
  const { app, port, alice, bob, conversation } = await listeningWithConversation(t);
  for (const content of ['one', 'two', 'three']) {
    t.equal((await call(app, 'POST', `/api/conversations/${conversation}/messages/`, { token: alice.token, body: { content } })).status, 201);
  }
  t.equal(await metric(app, 'chat_event_log_reads_total'), 0, 'no reads before anyone resumes');

  const resumed = await connect(port, conversation, bob.token, '&last_seq=1');
  const replayed = () => resumed.events.filter((event) => event.type === 'chat.message').length;
  t.equal(await until(async () => replayed(), (n) => n === 2), 2, 'the two events after seq 1 replayed');
  t.ok((await metric(app, 'chat_event_log_reads_total')) >= 1, 'the read counted');
  t.equal(await metric(app, 'chat_event_log_events_read_total'), 2, 'and the events it read');
  resumed.ws.close();
});

t.test('a refused send increments chat_rate_limited_total', async (t) => {
  const { app, port, alice, conversation } = await listeningWithConversation(t, { MESSAGE_RATE_LIMIT: '1' });
  t.equal(await metric(app, 'chat_rate_limited_total'), 0, 'nothing refused yet');

  const send = () => call(app, 'POST', `/api/conversations/${conversation}/messages/`, { token: alice.token, body: { content: 'hi' } });
  t.equal((await send()).status, 201, 'the first message of the minute passes');
  const refused = await send();
  t.equal(refused.status, 429, 'the second is refused');
  t.ok(refused.headers['retry-after'], 'with Retry-After');
  t.equal(await metric(app, 'chat_rate_limited_total', { scope: 'msg' }), 1, 'one refusal counted');
  t.equal(await metric(app, 'chat_http_request_duration_seconds_count', { route: SEND_ROUTE, status: '429' }), 1, 'and timed as a 429');

  // The same limit over a socket: an error frame, and the counter moves again.
  const a = await connect(port, conversation, alice.token);
  a.ws.send(JSON.stringify({ type: 'chat_message', message: 'too soon' }));
  const errors = await until(
    async () => a.events.filter((event) => event.type === 'error'),
    (found) => found.length > 0,
  );
  t.equal(errors[0]?.code, 'rate_limited', 'the socket is told');
  t.equal(await metric(app, 'chat_rate_limited_total', { scope: 'msg' }), 2, 'counted too');
  a.ws.close();
});
