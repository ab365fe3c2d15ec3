import { randomBytes } from 'node:crypto';
import type { FastifyInstance, InjectOptions } from 'fastify';

export interface Session {
  token: string;
  user: { id: number; username: string };
}

export const randomName = (prefix = 'u'): string => `${prefix}${randomBytes(5).toString('hex')}`;

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';

/** `inject` with a bearer token and a JSON body; returns status, headers and parsed JSON. */
export async function call(
  app: FastifyInstance,
  method: Method,
  url: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string>; payload?: InjectOptions['payload'] } = {},
) {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const response = await app.inject({
    method,
    url,
    headers,
    ...(options.body !== undefined ? { payload: options.body as InjectOptions['payload'] } : {}),
    ...(options.payload !== undefined ? { payload: options.payload } : {}),
  });
  let json: unknown = undefined;
  if (response.body && String(response.headers['content-type'] ?? '').includes('json')) json = response.json();
  // Tests read fields of whatever came back; the assertions say what shape it must have.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test-side convenience
  return { status: response.statusCode, headers: response.headers, json: json as any, body: response.body };
}

export async function register(app: FastifyInstance, username = randomName(), password = 'correct horse battery'): Promise<Session> {
  const response = await call(app, 'POST', '/api/auth/register/', { body: { username, password } });
  if (response.status !== 201) throw new Error(`register failed: ${response.status} ${response.body}`);
  return response.json as Session;
}

export async function createConversation(app: FastifyInstance, owner: Session, others: (Session | string | number)[]): Promise<number> {
  const participants = others.map((o) => (typeof o === 'object' ? o.user.id : o));
  const response = await call(app, 'POST', '/api/conversations/', { token: owner.token, body: { participants } });
  if (response.status !== 201) throw new Error(`create conversation failed: ${response.status} ${response.body}`);
  return (response.json as { id: number }).id;
}
