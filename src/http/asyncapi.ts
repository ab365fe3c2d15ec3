import {
  CHAT_SERVER_EVENTS, NOTIFICATION_SERVER_EVENTS, eventSchemaContext,
} from '../contract/events.js';
import { CLIENT_FRAMES } from '../contract/frames.js';
import { CloseCode } from '../contract/socket-codes.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const SCHEMAS = '#/components/schemas/';

/**
 * A TypeBox schema as plain JSON Schema for the document: every schema with an `$id`
 * (Message, Attachment, Notification) moves to `components.schemas` and is referred to
 * there, as the OpenAPI document does, and TypeBox's bare `$ref: "Attachment"` points at it.
 */
function plain(schema: unknown, components: JsonObject): Json {
  const walk = (value: Json): Json => {
    if (Array.isArray(value)) return value.map(walk);
    if (value === null || typeof value !== 'object') return value;
    const { $id, ...rest } = value;
    const out: JsonObject = {};
    for (const [key, inner] of Object.entries(rest)) {
      out[key] = key === '$ref' && typeof inner === 'string' && !inner.startsWith('#') ? `${SCHEMAS}${inner}` : walk(inner);
    }
    if (typeof $id !== 'string') return out;
    components[$id] = out;
    return { $ref: `${SCHEMAS}${$id}` };
  };
  // TypeBox schemas are JSON Schema objects; JSON drops its non-enumerable bookkeeping.
  return walk(JSON.parse(JSON.stringify(schema)) as Json);
}

/** The `type` constant a frame or event schema carries (the first variant's, for a union). */
function typeOf(schema: unknown): string {
  const json = JSON.parse(JSON.stringify(schema)) as { properties?: { type?: { const?: string } }; anyOf?: unknown[] };
  const name = json.properties?.type?.const ?? (json.anyOf ? typeOf(json.anyOf[0]) : undefined);
  if (!name) throw new Error('a socket message schema without a type constant');
  return name;
}

/** One line per message, for the document's readers. */
const SUMMARIES: Record<string, string> = {
  chat_message: 'send a message (idempotent with client_id: a resend is answered by the original chat.message; reply_to answers a message)',
  edit_message: 'edit one of your messages',
  delete_message: 'delete one of your messages',
  typing: 'start or stop typing (live only, throttled)',
  read: 'move your read marker',
  react: 'react to a message with one emoji (idempotent)',
  unreact: 'take your reaction back (idempotent)',
  'reaction.added': 'someone reacted to a message',
  'reaction.removed': 'someone took a reaction back',
  'chat.message': 'a new message (also to its sender)',
  'message.edited': 'a message was edited',
  'message.deleted': 'a message was deleted',
  'attachment.added': 'a file was attached to a message',
  'member.added': 'members were added (each new member also gets a conversation.added notification)',
  'member.removed': 'a member was removed or left; the last event their sockets get before closing with 4403',
  'member.role': "a member's role changed (to owner when the owner left)",
  'conversation.updated': 'the group was renamed',
  'read.updated': "a member's read marker moved (live only, throttled, small conversations only)",
  'user.typing': 'someone else started or stopped typing (no seq, not stored)',
  presence:
    'a member came online or went offline (live only, on changes only: a reconnect within PRESENCE_GRACE_MS or a second socket sends nothing; ' +
    'never about the socket\'s own user; conversations of up to PRESENCE_MAX_MEMBERS members only)',
  error: 'a frame failed; the socket stays open',
  notification: 'a new or updated notification',
  'notification.read': 'notifications were marked read on another device',
};

/** AsyncAPI component keys allow letters, digits, `.`, `_` and `-`. */
const key = (type: string) => type.replace(/[^\w.-]/g, '_');

const CHAT_EVENTS = CHAT_SERVER_EVENTS;
const NOTIFICATION_EVENTS = NOTIFICATION_SERVER_EVENTS;

const authQuery = {
  token: { type: 'string', description: 'a bearer token (or send `Authorization: Bearer`)' },
} satisfies JsonObject;

/**
 * The AsyncAPI 3.0 document of both sockets, built from the same TypeBox schemas the service
 * validates frames with and the client library is typed from (src/contract/): a field added
 * to an event appears here with no second description to keep in step. `publicUrl` is the
 * service's PUBLIC_URL; the sockets are on the same host (ws:, or wss: behind https:).
 */
export function asyncApiDocument(publicUrl: string): JsonObject {
  const url = new URL(publicUrl);
  const schemas: JsonObject = {};
  for (const schema of Object.values(eventSchemaContext)) plain(schema, schemas);
  const messages: JsonObject = {};
  const message = (schema: unknown): string => {
    const type = typeOf(schema);
    messages[key(type)] = { name: type, title: type, summary: SUMMARIES[type] ?? type, contentType: 'application/json', payload: plain(schema, schemas) };
    return key(type);
  };
  const chatIn = Object.values(CLIENT_FRAMES).map(message);
  const chatOut = CHAT_EVENTS.map(message);
  const notificationsOut = NOTIFICATION_EVENTS.map(message);
  const refs = (channel: string, names: string[]) => names.map((name) => ({ $ref: `#/channels/${channel}/messages/${name}` }));
  const channelMessages = (names: string[]) => Object.fromEntries(names.map((name) => [name, { $ref: `#/components/messages/${name}` }]));
  const closeCodes = Object.entries(CloseCode).map(([name, code]) => `${code} (${name})`).join(', ');

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Chat service WebSockets',
      version: '1',
      description:
        'The two sockets of the chat service; the REST API is described at /openapi.json (/docs). Conversation events carry ' +
        '`seq`: per conversation, +1 with every event; reconnect with `?last_seq=N` to receive every event after N, in order, ' +
        `then live ones. Close codes: ${closeCodes}.`,
    },
    servers: {
      service: { host: url.host, protocol: url.protocol === 'https:' ? 'wss' : 'ws', description: 'the service itself (PUBLIC_URL)' },
    },
    channels: {
      chat: {
        address: '/ws/chat/{conversationId}/',
        title: 'A conversation',
        description:
          'Live events of one conversation, and frames that send, edit, delete, react and type. 4401: bad token; 4403: not a member, ' +
          'or removed from the conversation (right after the `member.removed` event naming the user); 4409: `last_seq` more than ' +
          'MAX_REPLAY_EVENTS behind (reload over REST, reconnect with the new `last_seq`).',
        parameters: { conversationId: { description: 'the conversation id' } },
        messages: channelMessages([...chatIn, ...chatOut]),
        bindings: {
          ws: {
            method: 'GET',
            query: {
              type: 'object',
              properties: { ...authQuery, last_seq: { type: 'integer', minimum: 0, description: 'resume after this seq' } },
            },
            bindingVersion: '0.1.0',
          },
        },
      },
      notifications: {
        address: '/ws/notifications/',
        title: "The caller's notifications",
        description: 'New notifications as they are written, and marks read from other devices.',
        messages: channelMessages(notificationsOut),
        bindings: { ws: { method: 'GET', query: { type: 'object', properties: authQuery }, bindingVersion: '0.1.0' } },
      },
    },
    // Operations from the service's side: it receives the frames and sends the events.
    operations: {
      receiveChatFrames: { action: 'receive', channel: { $ref: '#/channels/chat' }, messages: refs('chat', chatIn) },
      sendChatEvents: { action: 'send', channel: { $ref: '#/channels/chat' }, messages: refs('chat', chatOut) },
      sendNotifications: { action: 'send', channel: { $ref: '#/channels/notifications' }, messages: refs('notifications', notificationsOut) },
    },
    components: { schemas, messages },
  };
}
