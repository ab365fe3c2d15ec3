/**
 * Tracing (README "Tracing"): with OTEL_EXPORTER_OTLP_ENDPOINT set, replicas export spans over
 * OTLP/HTTP to a real receiver (an HTTP server of this test that decodes the JSON bodies), and
 * a message sent on replica A and delivered on replica B is one trace; without it no
 * OpenTelemetry module is loaded and nothing is exported.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { ConversationEvent } from '../src/contract/events.js';
import { decodeEvent, encodeEvent, traceparentOf, withTraceparent } from '../src/messages/event-codec.js';
import { conversationChannel } from '../src/redis/names.js';
import { createConversation, openChat, registerUser } from './helpers/chat-api.js';
import { eventually, ROOT, startTopology } from './helpers/replicas.js';
import type { ServerEvent } from './helpers/ws-client.js';

const RECORDER = join(ROOT, 'test', 'helpers', 'module-recorder.mjs');
/** OTLP span kinds (the protocol's enum). */
const KIND = { server: 2, client: 3, producer: 4, consumer: 5 } as const;

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
type OtlpAttributes = { key: string; value: OtlpValue }[] | undefined;
interface OtlpRequest {
  resourceSpans?: {
    resource?: { attributes?: OtlpAttributes };
    scopeSpans?: { spans?: { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: OtlpAttributes }[] }[];
  }[];
}

const attributesOf = (list: OtlpAttributes): Record<string, unknown> =>
  Object.fromEntries(
    (list ?? []).map(({ key, value }) => [key, value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : (value.boolValue ?? value.doubleValue))]),
  );

/** An OTLP/HTTP trace receiver: every span posted to `/v1/traces`, decoded from the JSON body. */
async function startReceiver(t: Test) {
  const spans: ReceivedSpan[] = [];
  const posts: { path: string; contentType: string }[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      posts.push({ path: request.url ?? '', contentType: request.headers['content-type'] ?? '' });
      if (request.url !== '/v1/traces' || request.method !== 'POST') {
        response.writeHead(404).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpRequest;
      for (const resourceSpans of body.resourceSpans ?? []) {
        const service = String(attributesOf(resourceSpans.resource?.attributes)['service.name']);
        for (const scope of resourceSpans.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) {
            spans.push({
              service,
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? '',
              name: span.name,
              kind: span.kind,
              attributes: attributesOf(span.attributes),
            });
          }
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, posts };
}

/** The spans above `span` in its trace, nearest first. */
function ancestors(spans: ReceivedSpan[], span: ReceivedSpan): ReceivedSpan[] {
  const chain: ReceivedSpan[] = [];
  for (let current = span; current.parentSpanId; ) {
    const parent = spans.find((other) => other.traceId === span.traceId && other.spanId === current.parentSpanId);
    if (!parent) break;
    chain.push(parent);
    current = parent;
  }
  return chain;
}

const isMessage = (clientId: string) => (event: ServerEvent) => event.type === 'chat.message' && event.message.client_id === clientId;

t.test('the bus payload carries a traceparent that readers old and new skip, and the JSON is untouched', async (t) => {
  const event = { type: 'message.deleted', seq: 7, conversation_id: 3, message_id: 9 } as ConversationEvent;
  const plain = encodeEvent(event, 1_700_000_000_000);
  const traceparent = `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01`;
  const traced = withTraceparent(plain, traceparent);
  t.equal(traced, `7 1700000000000 ${traceparent}\n${JSON.stringify(event)}`);
  t.same(decodeEvent(traced), decodeEvent(plain), 'same seq, JSON and publish time');
  t.equal(traceparentOf(traced), traceparent);
  t.equal(traceparentOf(plain), undefined);
  // The decoder before this field: seq up to the first space, publish time up to the newline.
  const newline = traced.indexOf('\n');
  const space = traced.indexOf(' ');
  t.equal(Number(traced.slice(0, space)), 7, 'an old reader still reads the seq');
  t.equal(traced.slice(newline + 1), JSON.stringify(event), 'and forwards the same JSON');
  for (const other of ['typing\n5\n{"type":"user.typing"}', '{"type":"notification"}']) {
    t.equal(withTraceparent(other, traceparent), other, 'typing and notification payloads are left as they are');
    t.equal(traceparentOf(other), undefined);
  }
});

t.test('one trace across two replicas: the send on A, its statements and publish, the delivery on B', async (t) => {
  const receiver = await startReceiver(t);
  const records = mkdtempSync(join(tmpdir(), 'chat-modules-'));
  const topology = await startTopology(t, {
    backend: 'redis',
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100' },
    replicaEnv: (index) => ({
      OTEL_SERVICE_NAME: `chat-${index === 0 ? 'a' : 'b'}`,
      NODE_OPTIONS: `--import=${RECORDER}`,
      MODULE_RECORD_FILE: join(records, `r${index}.txt`),
    }),
  });
  const [a, b] = topology.replicas as [(typeof topology.replicas)[0], (typeof topology.replicas)[0]];
  t.match(readFileSync(join(records, 'r0.txt'), 'utf8'), /@opentelemetry\/sdk-trace/, 'the SDK is loaded when tracing is on');

  const alice = await registerUser(a, 'ta');
  const bob = await registerUser(b, 'tb');
  const conversationId = await createConversation(a, alice, [bob]);
  const onA = await openChat(t, a, conversationId, alice);
  const onB = await openChat(t, b, conversationId, bob);
  await topology.waitSubscribers(conversationChannel(conversationId), 2);

  t.test('a chat_message frame on A', async (t) => {
    onA.send({ type: 'chat_message', message: 'traced hello', client_id: 'trace-1' });
    await onA.waitFor(isMessage('trace-1'));
    await onB.waitFor(isMessage('trace-1'));
    const rawA = onA.raw[onA.events.findIndex(isMessage('trace-1'))]!;
    const rawB = onB.raw[onB.events.findIndex(isMessage('trace-1'))]!;
    t.equal(rawB, rawA, 'the JSON delivered on B is byte for byte the one on A');
    t.notMatch(rawB, /traceparent|00-[0-9a-f]{32}-/, 'no trace context reaches the client');

    const frameOf = () => receiver.spans.find((span) => span.service === 'chat-a' && span.name === 'chat_message');
    const deliveryOf = (service: string) => {
      const frame = frameOf();
      return frame && receiver.spans.find((span) => span.service === service && span.name === 'deliver' && span.traceId === frame.traceId);
    };
    await eventually('the frame and its delivery on B exported', () => deliveryOf('chat-b') !== undefined, 15_000);
    const frame = frameOf()!;
    t.equal(frame.kind, KIND.server);
    t.equal(frame.parentSpanId, '', 'a frame starts its own trace');
    t.equal(frame.attributes['chat.frame.type'], 'chat_message');
    const trace = () => receiver.spans.filter((span) => span.traceId === frame.traceId);

    await eventually('the batch statement, rate-limit call and publish exported', () =>
      ['send_batch', 'publish', 'rate_limit msg'].every((name) => trace().some((span) => span.service === 'chat-a' && span.name === name)),
    );
    const statement = trace().find((span) => span.name === 'send_batch')!;
    t.equal(statement.parentSpanId, frame.spanId, "the send's statement is a child of the frame");
    t.equal(statement.kind, KIND.client);
    t.equal(statement.attributes['db.system.name'], 'postgresql');
    t.match(String(statement.attributes['db.query.text']), /insert into messages/, 'with its text');
    t.notMatch(String(statement.attributes['db.query.text']), /traced hello/, 'and no values');

    const publish = trace().find((span) => span.service === 'chat-a' && span.name === 'publish')!;
    t.equal(publish.parentSpanId, frame.spanId, 'the publish is a child of the frame');
    t.equal(publish.kind, KIND.producer);
    t.equal(publish.attributes['messaging.destination.name'], conversationChannel(conversationId));

    const limit = trace().find((span) => span.name === 'rate_limit msg');
    t.equal(limit?.parentSpanId, frame.spanId, 'the Redis rate-limit call is a child of the frame');

    const delivery = deliveryOf('chat-b')!;
    t.equal(delivery.parentSpanId, publish.spanId, "B's delivery is a child of A's publish");
    t.equal(delivery.kind, KIND.consumer);
    t.ok(ancestors(receiver.spans, delivery).includes(frame), "A's frame span is an ancestor of B's delivery");
  });

  t.test('an edit_message frame: a transaction span over its statements, then the delivery on B', async (t) => {
    const sent = onA.events.find(isMessage('trace-1'));
    if (sent?.type !== 'chat.message') throw new Error('the first subtest sends the message edited here');
    onA.send({ type: 'edit_message', message_id: sent.message.id, content: 'traced edit' });
    await onB.waitFor((event) => event.type === 'message.edited' && event.message.id === sent.message.id);

    const frameOf = () => receiver.spans.find((span) => span.service === 'chat-a' && span.name === 'edit_message');
    const trace = () => receiver.spans.filter((span) => span.traceId === frameOf()?.traceId);
    await eventually('the edit frame, its transaction, statements and delivery on B exported', () => {
      const names = trace().map((span) => `${span.service} ${span.name}`);
      // WITH twice: the edit (with the version it keeps and its words, message-writes.ts), and the
      // seq update with the event record (write-path.ts appendEvents).
      const withs = names.filter((name) => name === 'chat-a WITH').length;
      return withs >= 2 && ['chat-a transaction', 'chat-a SELECT', 'chat-b deliver'].every((name) => names.includes(name));
    });
    const frame = frameOf()!;
    const transaction = trace().find((span) => span.name === 'transaction')!;
    t.equal(transaction.parentSpanId, frame.spanId, 'the transaction is a child of the frame');
    const statements = trace().filter((span) => span.attributes['db.query.text'] !== undefined);
    t.ok(statements.length >= 3, 'lock, change, event record');
    t.same(statements.filter((span) => span.parentSpanId !== transaction.spanId), [], "every statement is the transaction's child");
    const delivery = trace().find((span) => span.service === 'chat-b' && span.name === 'deliver')!;
    t.ok(ancestors(receiver.spans, delivery).includes(frame), "the edit's delivery on B is under A's frame");
  });

  t.test('an HTTP send on B continuing the caller\'s traceparent', async (t) => {
    const traceId = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const response = await b.http('POST', `/api/conversations/${conversationId}/messages/`, {
      token: bob.token,
      body: { content: 'traced over REST', client_id: 'trace-2' },
      headers: { traceparent: `00-${traceId}-${callerSpan}-01` },
    });
    t.equal(response.status, 201);
    await onA.waitFor(isMessage('trace-2'));

    const trace = () => receiver.spans.filter((span) => span.traceId === traceId);
    const request = () => trace().find((span) => span.service === 'chat-b' && span.kind === KIND.server);
    await eventually('the request, its statement, publish and delivery on A exported', () => {
      const names = trace().map((span) => `${span.service} ${span.name}`);
      return request() !== undefined && ['chat-b send_batch', 'chat-b publish', 'chat-b rate_limit msg', 'chat-a deliver'].every((name) => names.includes(name));
    });
    const span = request()!;
    t.equal(span.name, 'POST /api/conversations/:id/messages/', 'named by its route template');
    t.equal(span.parentSpanId, callerSpan, "a child of the caller's span");
    t.equal(span.attributes['http.response.status_code'], 201);
    t.equal(span.attributes['http.route'], '/api/conversations/:id/messages/');
    for (const name of ['send_batch', 'publish', 'rate_limit msg']) {
      const child = trace().find((other) => other.service === 'chat-b' && other.name === name)!;
      t.ok(ancestors(receiver.spans, child).includes(span), `${name} is under the request`);
    }
    const delivery = trace().find((other) => other.service === 'chat-a' && other.name === 'deliver')!;
    t.ok(ancestors(receiver.spans, delivery).includes(span), "A's delivery is under B's request");
  });

  t.test('spans are posted as OTLP/HTTP JSON to <endpoint>/v1/traces', async (t) => {
    t.ok(receiver.posts.length > 0);
    t.same([...new Set(receiver.posts.map((post) => `${post.path} ${post.contentType}`))], ['/v1/traces application/json']);
  });
});

t.test('tracing off (no endpoint): no OpenTelemetry module is loaded and nothing is exported', async (t) => {
  const receiver = await startReceiver(t);
  const records = mkdtempSync(join(tmpdir(), 'chat-modules-'));
  const record = join(records, 'off.txt');
  const topology = await startTopology(t, {
    backend: 'redis',
    replicas: 1,
    env: {
      // Empty is unset; an endpoint for another signal does not turn tracing on.
      OTEL_EXPORTER_OTLP_ENDPOINT: '',
      OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: 'chat-off',
      NODE_OPTIONS: `--import=${RECORDER}`,
      MODULE_RECORD_FILE: record,
    },
  });
  const replica = topology.replicas[0]!;
  const alice = await registerUser(replica, 'to');
  const bob = await registerUser(replica, 'to');
  const conversationId = await createConversation(replica, alice, [bob]);
  const socket = await openChat(t, replica, conversationId, bob);
  const sent = await replica.http('POST', `/api/conversations/${conversationId}/messages/`, {
    token: alice.token,
    body: { content: 'untraced' },
    headers: { traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` },
  });
  t.equal(sent.status, 201);
  const event = await socket.waitFor((e) => e.type === 'chat.message');
  t.notMatch(socket.raw[socket.events.indexOf(event)]!, /traceparent/);
  // A clean stop: a tracing SDK would flush what it buffered now.
  await replica.kill('SIGTERM');

  const resolved = readFileSync(record, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [url = '', parent = ''] = line.split('\t');
      return { url, parent };
    });
  const loaded = resolved.map(({ url }) => url);
  t.ok(loaded.some((url) => url.endsWith('/src/app.ts')), 'the recorder saw the service load');
  // drizzle-orm and prom-client import the OpenTelemetry API when it is installed (an optional
  // peer of theirs), as before tracing existed; with no provider registered it is a no-op.
  const otel = resolved.filter(({ url }) => url.includes('/@opentelemetry/'));
  t.same(
    otel.filter(({ url }) => !url.includes('/@opentelemetry/api/')),
    [],
    'no OpenTelemetry SDK, exporter, context manager or propagator loaded',
  );
  t.same(
    otel.filter(({ parent }) => parent.startsWith(`file://${ROOT}src/`)),
    [],
    'and the service itself imports no OpenTelemetry module',
  );
  t.same(
    [...new Set(loaded.filter((url) => url.includes('/src/tracing/')))].map((url) => url.slice(url.indexOf('/src/'))),
    ['/src/tracing/switch.ts'],
    'of src/tracing/ only the switch, which finds tracing off',
  );
  t.same(receiver.posts, [], 'nothing was sent to the receiver');
});
