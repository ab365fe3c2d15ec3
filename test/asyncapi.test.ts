/**
 * `/asyncapi.json` describes both sockets from the contract's TypeBox schemas, is valid by
 * @asyncapi/parser, and is linked from the OpenAPI document that /docs shows.
 */
import t from 'tap';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { Compile } from 'typebox/compile';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { ChatServerEventSchema, eventSchemaContext, NotificationServerEventSchema } from '../src/contract/events.js';
import { CLIENT_FRAMES } from '../src/contract/frames.js';
import { buildTestApp, testDatabase } from './helpers/app.js';

interface Diagnostic {
  severity: number;
  message: string;
  path: Array<string | number>;
}
interface AsyncApiParser {
  parse(document: string): Promise<{ document?: unknown; diagnostics: Diagnostic[] }>;
}
/** A devDependency (`@asyncapi/parser`), imported by name only here. */
const PARSER_PACKAGE = '@asyncapi/parser';
const { Parser } = (await import(PARSER_PACKAGE)) as { Parser: new () => AsyncApiParser };
const ERROR = 0;

const { database } = await testDatabase(t, 'pglite');
const app = await buildTestApp(t, { database, bus: createMemoryBus() });
const response = await app.inject({ method: 'GET', url: '/asyncapi.json' });
const text = response.body;
// Read field by field below; its shape is what the parser checks.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a parsed JSON document
const doc = JSON.parse(text) as Record<string, any>;

/** The `type` constants a union of event schemas (or one schema) allows. */
const typesOf = (schema: unknown): string[] => {
  const json = JSON.parse(JSON.stringify(schema)) as { anyOf?: unknown[]; properties?: { type?: { const?: string } } };
  return json.anyOf ? [...new Set(json.anyOf.flatMap(typesOf))] : json.properties?.type?.const ? [json.properties.type.const] : [];
};
const messageTypes = (channel: string): string[] =>
  Object.values(doc.channels[channel].messages as Record<string, { $ref: string }>).map((ref) => doc.components.messages[ref.$ref.split('/').at(-1) ?? ''].name as string);

t.test('served as JSON', async (t) => {
  t.equal(response.statusCode, 200);
  t.match(response.headers['content-type'], /^application\/json/);
  t.equal(doc.asyncapi, '3.0.0');
});

t.test('valid by @asyncapi/parser', async (t) => {
  const { document, diagnostics } = await new Parser().parse(text);
  t.same(diagnostics.filter((d) => d.severity === ERROR).map((d) => `${d.path.join('.')}: ${d.message}`), [], 'no errors');
  t.ok(document, 'a document');
  // The check can fail: the same document with an operation pointing nowhere is refused.
  const broken = JSON.parse(text) as typeof doc;
  broken.operations.sendChatEvents.channel = { $ref: '#/channels/nowhere' };
  const refused = await new Parser().parse(JSON.stringify(broken));
  t.ok(refused.diagnostics.some((d) => d.severity === ERROR), 'a broken reference is an error');
});

t.test('every frame and event of the contract, on its socket', async (t) => {
  t.equal(doc.channels.chat.address, '/ws/chat/{conversationId}/');
  t.equal(doc.channels.notifications.address, '/ws/notifications/');
  t.same(messageTypes('chat').sort(), [...Object.keys(CLIENT_FRAMES), ...typesOf(ChatServerEventSchema)].sort(), 'chat: the frames and the events');
  t.same(messageTypes('notifications').sort(), typesOf(NotificationServerEventSchema).sort(), 'notifications: its events');
  t.same(Object.keys(doc.components.schemas).sort(), Object.keys(eventSchemaContext).sort(), 'the shared views are components');
  const sendOps = Object.values(doc.operations as Record<string, { action: string; messages: unknown[] }>).filter((op) => op.action === 'send');
  t.equal(sendOps.reduce((n, op) => n + op.messages.length, 0), typesOf(ChatServerEventSchema).length + typesOf(NotificationServerEventSchema).length, 'every event is something the service sends');
});

t.test('the payload schemas are the contract schemas', async (t) => {
  // Resolve the document's refs against its own components and check a real-shaped event with both.
  const components = doc.components.schemas as Record<string, unknown>;
  const resolve = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(resolve);
    if (!value || typeof value !== 'object') return value;
    const ref = (value as { $ref?: string }).$ref;
    if (ref?.startsWith('#/components/schemas/')) return resolve(components[ref.split('/').at(-1) ?? '']);
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, resolve(inner)]));
  };
  const payload = resolve(doc.components.messages['chat.message'].payload);
  const event = {
    type: 'chat.message',
    seq: 3,
    conversation_id: 1,
    message: {
      id: 7, conversation_id: 1, sender: 'alice', sender_id: 2, content: 'hi', timestamp: '2024-01-01T00:00:00.000Z', is_edited: false,
      is_deleted: false, edited_at: null, client_id: null, seq: 3,
      attachments: [{ id: 1, file: 'http://chat.test/media/a', uploaded_at: '2024-01-01T00:00:00.000Z', filename: 'a.png', content_type: 'image/png', size: 3 }],
      reply_to: { id: 5, sender: 'bob', content: 'hello?', is_deleted: false },
      reactions: [],
      mentions: [],
    },
  };
  t.ok(Compile(eventSchemaContext, ChatServerEventSchema).Check(event), 'a contract event');
  const ajv = new Ajv({ strict: false });
  addFormats.default(ajv);
  const check = ajv.compile(payload as object);
  t.ok(check(event), `is valid by the document ${JSON.stringify(check.errors)}`);
  t.notOk(check({ ...event, seq: 0 }), 'and a seq of 0 is not');
  t.notOk(check({ ...event, message: { ...event.message, timestamp: 'yesterday' } }), 'nor a timestamp that is not one');
});

t.test('linked from /docs (the OpenAPI description)', async (t) => {
  const openapi = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as { info: { description?: string } };
  t.match(openapi.info.description, /\]\(\/asyncapi\.json\)/, 'a link to /asyncapi.json');
});
