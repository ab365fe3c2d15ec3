/**
 * The REST calls set-up makes (register, create a conversation, read a page). Retries only
 * what a well-behaved client would: 429 after Retry-After and 503, a bounded number of times.
 */
import { setTimeout as delay } from 'node:timers/promises';

const RETRIES = 5;
const REQUEST_TIMEOUT_MS = 30_000;
export const PASSWORD = 'bench-password-1';

export async function request(baseUrl: string, method: string, path: string, options: { token?: string; body?: unknown } = {}): Promise<unknown> {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(baseUrl + path, {
      method,
      headers: {
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
      body: options.body === undefined ? null : JSON.stringify(options.body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await res.text();
    if ((res.status === 429 || res.status === 503) && attempt < RETRIES) {
      const wait = Number(res.headers.get('retry-after') ?? 1);
      await delay(Math.min(Number.isFinite(wait) ? wait : 1, 10) * 1000);
      continue;
    }
    if (!res.ok) throw new Error(`${method} ${baseUrl}${path} -> ${res.status} ${text.slice(0, 200)}`);
    return text ? (JSON.parse(text) as unknown) : null;
  }
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;

export interface Account {
  id: number;
  username: string;
  token: string;
}

export async function register(baseUrl: string, username: string): Promise<Account> {
  const body = await request(baseUrl, 'POST', '/api/auth/register/', { body: { username, password: PASSWORD } });
  if (isRecord(body) && typeof body.token === 'string' && isRecord(body.user) && typeof body.user.id === 'number') {
    return { id: body.user.id, username, token: body.token };
  }
  throw new Error(`register: unexpected answer ${JSON.stringify(body).slice(0, 200)}`);
}

export async function createConversation(baseUrl: string, token: string, participantIds: number[]): Promise<number> {
  const body = await request(baseUrl, 'POST', '/api/conversations/', { token, body: { participants: participantIds } });
  if (isRecord(body) && typeof body.id === 'number') return body.id;
  throw new Error(`create conversation: unexpected answer ${JSON.stringify(body).slice(0, 200)}`);
}

/** Runs fn over items with at most `limit` calls in flight; results keep the items' order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
