/**
 * Shared set-up of the REST suites (test/suites/rest-*.ts): one database and one app per
 * database kind, built once by test/suites/rest.ts and handed to every feature suite, with a
 * recorder of every response so the last check can see all of them.
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import { createMemoryBus } from '../../src/bus/bus-memory.js';
import type { DatabaseHandle } from '../../src/db/client.js';
import { users } from '../../src/db/schema/index.js';
import { readEvents } from '../../src/messages/event-log.js';
import type { ConversationEvent } from '../../src/contract/events.js';
import { call, type Session } from './api.js';
import { buildTestApp, testDatabase, type DatabaseKind } from './app.js';

export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';
export type CallOptions = NonNullable<Parameters<typeof call>[3]>;
export type Response = Awaited<ReturnType<typeof call>>;

export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const MAX_INT4 = 2_147_483_647;
export const STACK_TRACE = /\n\s+at .+:\d+:\d+/;

/** `rel="next"` of a Link header, as a path the app can be called with. */
export function nextLink(response: Response): string | undefined {
  const header = response.headers.link;
  const match = typeof header === 'string' ? /<([^>]+)>;\s*rel="next"/.exec(header) : null;
  if (!match?.[1]) return undefined;
  const url = new URL(match[1]);
  return `${url.pathname}${url.search}`;
}

export const ids = (response: Response): number[] => (response.json as { id: number }[]).map((m) => m.id);

export const withoutRequestId = (body: unknown): Record<string, unknown> => {
  const { requestId: _ignored, ...rest } = body as Record<string, unknown>;
  return rest;
};

export function expectGapFree(t: Test, seqs: number[], label: string): void {
  t.same(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), `${label}: seqs 1..${seqs.length}, no gap, no duplicate`);
}

export function expectError(t: Test, response: Response, status: number, mentions?: string | RegExp, label = ''): void {
  t.equal(response.status, status, `${label} → ${status} (${response.body.slice(0, 300)})`);
  t.match(response.json, { statusCode: status, error: STATUS_CODES[status], message: String }, `${label} error shape`);
  if (mentions !== undefined) t.match(response.json?.message, mentions, `${label} message mentions ${String(mentions)}`);
}

/** One response as the recorder keeps it. */
export interface SeenResponse {
  label: string;
  status: number;
  body: string;
  json: unknown;
}

/**
 * What every REST feature suite works with. Guarantees: `app` and `database` live until the
 * root test ends; every request made through `req`, `api`, `send` or `sendOk` is appended to
 * `seen` in the order it was answered.
 */
export interface RestContext {
  kind: DatabaseKind;
  database: DatabaseHandle;
  /** The PostgreSQL URL (undefined on PGlite), for a second pool on the same database. */
  url: string | undefined;
  app: FastifyInstance;
  secret: string;
  seen: SeenResponse[];
  req(target: FastifyInstance, method: Method, path: string, options?: CallOptions): Promise<Response>;
  api(method: Method, path: string, options?: CallOptions): Promise<Response>;
  /** Users straight into the table (search tests need many; scrypt for each would be slow). */
  insertUsers(names: string[]): Promise<void>;
  send(session: Session, conversationId: number, content: string, clientId?: string, target?: FastifyInstance): Promise<Response>;
  sendOk(t: Test, session: Session, conversationId: number, content: string): Promise<{ id: number; seq: number }>;
  /** The conversation's whole event log, as the resume path reads it. */
  events(conversationId: number): Promise<ConversationEvent[]>;
}

/** A migrated database of `kind` and one app on it, both closed when `t` ends. */
export async function restContext(t: Test, kind: DatabaseKind): Promise<RestContext> {
  const { database, url } = await testDatabase(t, kind);
  const app = await buildTestApp(t, { database, bus: createMemoryBus() });
  const seen: SeenResponse[] = [];

  const req = async (target: FastifyInstance, method: Method, path: string, options: CallOptions = {}): Promise<Response> => {
    const response = await call(target, method, path, options);
    seen.push({ label: `${method} ${path}`, status: response.status, body: response.body, json: response.json });
    return response;
  };
  const send = async (session: Session, conversationId: number, content: string, clientId?: string, target = app) => {
    const body = clientId === undefined ? { content } : { content, client_id: clientId };
    return req(target, 'POST', `/api/conversations/${conversationId}/messages/`, { token: session.token, body });
  };

  return {
    kind,
    database,
    url,
    app,
    secret: app.config.JWT_SECRET,
    seen,
    req,
    api: (method, path, options = {}) => req(app, method, path, options),
    insertUsers: async (names) => {
      await database.db.insert(users).values(names.map((username) => ({ username, passwordHash: 'scrypt$not-a-real-hash' })));
    },
    send,
    sendOk: async (t, session, conversationId, content) => {
      const response = await send(session, conversationId, content);
      if (response.status !== 201) t.fail(`send failed: ${response.status} ${response.body}`);
      return response.json;
    },
    events: (conversationId) => readEvents(database, app.links, conversationId, 0, 100_000),
  };
}
