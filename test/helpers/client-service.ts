/**
 * The service in-process for the client-library tests (test/client-*.test.ts and
 * test/suites/client-*.ts), on a real loopback listener, and the ways those tests drive it:
 * users whose client retries quickly, sockets closed with their test, rejections and history
 * read through `ChatClient` only.
 */
import type { Test } from 'tap';
import type { ChatClient, ChatClientOptions, MessageView } from '@chat-service/client';
import { buildTestApp, testDatabase } from './app.js';
import { ChatRecorder, newClientUser, NotificationRecorder, WAIT_MS, type ClientUser } from './client-harness.js';
import { freePort } from './ports.js';

export const PASSWORD = 'correct horse battery';
/** A complete 1x1 PNG. */
export const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
    '1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5d6a1a30000000049454e44ae426082',
  'hex',
);
/** Fast retries, so a test that must see "no retry" needs to wait only a little. */
export const QUICK = { initialMs: 20, maxMs: 200, factor: 2, random: () => 1 };

/** The in-process service: `base` answers until the test that started it ends. */
export interface Server {
  base: string;
  /** Open notification sockets, from `/metrics` (counted once the user channel is subscribed). */
  openNotificationSockets(): Promise<number>;
}

/** The service in-process, on a real loopback listener whose PUBLIC_URL is itself (signed links work). */
export async function startServer(t: Test, env: Record<string, string> = {}): Promise<Server> {
  const { database } = await testDatabase(t, 'pglite');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const app = await buildTestApp(t, { database, env: { PUBLIC_URL: base, ...env } });
  await app.listen({ port, host: '127.0.0.1' });
  return {
    base,
    async openNotificationSockets() {
      const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      const line = text.split('\n').find((l) => l.startsWith('chat_open_sockets{') && l.includes('kind="notifications"'));
      return line ? Number(line.split(/\s+/).at(-1)) : 0;
    },
  };
}

export type User = ClientUser;

/** A registered user whose client talks to `base` with quick retries. */
export const newUser = (base: string, options: Partial<ChatClientOptions> = {}): Promise<User> => newClientUser(base, { backoff: QUICK, ...options });

/** Opens a chat socket, closed at the end of `t`. */
export function openChat(t: Test, user: User, conversationId: number, lastSeq: number | undefined, label = user.username): ChatRecorder {
  const socket = user.client.chat(conversationId, { lastSeq });
  t.teardown(() => socket.close());
  return new ChatRecorder(socket, `${label}/chat/${conversationId}`);
}

export function openNotifications(t: Test, user: User, label = user.username): NotificationRecorder {
  const socket = user.client.notifications();
  t.teardown(() => socket.close());
  return new NotificationRecorder(socket, `${label}/notifications`);
}

/** The rejection of `promise`; throws if it resolves, or is still pending after `timeoutMs`. */
export async function rejection(promise: Promise<unknown>, timeoutMs = WAIT_MS): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pending = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), timeoutMs)));
  let outcome: 'resolved' | 'pending';
  try {
    outcome = await Promise.race([promise.then(() => 'resolved' as const), pending]);
  } catch (error) {
    return error;
  } finally {
    clearTimeout(timer);
  }
  throw new Error(outcome === 'pending' ? `still pending after ${timeoutMs} ms` : 'expected a rejection, got a value');
}

/** Every message of a conversation through `listMessages` paging (newest page first, then `before`). */
export async function history(client: ChatClient, conversationId: number, limit = 200): Promise<MessageView[]> {
  const pages: MessageView[][] = [];
  let before: number | undefined;
  for (;;) {
    const page = await client.listMessages(conversationId, { limit, ...(before !== undefined ? { before } : {}) });
    pages.unshift(page);
    if (page.length < limit) return pages.flat();
    before = page[0]!.id;
  }
}
