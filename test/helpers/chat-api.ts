/**
 * Users, conversations, sockets and checks for the chat suites (test/suites/chat*.ts) against
 * real service processes (test/helpers/replicas.ts): registering over a replica's REST API,
 * opening chat and notification sockets closed with their test, sending as fast as the
 * protocol allows, reading history back, and asserting seq runs and event keys.
 */
import type { Test } from 'tap';
import { randomName } from './api.js';
import type { Replica, Topology } from './replicas.js';
import { chatUrl, type ConversationEvent, type EventOf, notificationsUrl, type ServerEvent, WsClient } from './ws-client.js';

export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** A registered user: its token and who it is, as POST /api/auth/register/ answers. */
export interface Session {
  token: string;
  user: { id: number; username: string };
}

export async function registerUser(replica: Replica, prefix = 'u'): Promise<Session> {
  const response = await replica.http('POST', '/api/auth/register/', { body: { username: randomName(prefix), password: 'correct horse battery' } });
  if (response.status !== 201) throw new Error(`register on ${replica.name}: ${response.status} ${response.body}`);
  return response.json as Session;
}

export async function registerUsers(topology: Topology, count: number, prefix = 'u'): Promise<Session[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => registerUser(topology.at(i), prefix)));
}

export async function createConversation(replica: Replica, owner: Session, others: Session[]): Promise<number> {
  const response = await replica.http('POST', '/api/conversations/', { token: owner.token, body: { participants: others.map((o) => o.user.id) } });
  if (response.status !== 201) throw new Error(`create conversation on ${replica.name}: ${response.status} ${response.body}`);
  return (response.json as { id: number }).id;
}

/** A chat socket closed (terminated) when the test ends. */
export async function openChat(
  t: Test,
  replica: Replica,
  conversationId: number | string,
  session: Session | undefined,
  options: { lastSeq?: number; header?: boolean; label?: string; token?: string } = {},
): Promise<WsClient> {
  const token = options.token ?? session?.token;
  const client = await WsClient.connect(chatUrl(replica.wsUrl, conversationId), {
    ...(token !== undefined ? { token } : {}),
    ...(options.header ? { header: true } : {}),
    ...(options.lastSeq !== undefined ? { lastSeq: options.lastSeq } : {}),
    label: options.label ?? `${session?.user.username ?? 'anonymous'}@${replica.name}/chat/${conversationId}`,
  });
  t.teardown(() => client.terminate());
  return client;
}

export async function openNotifications(t: Test, replica: Replica, session: Session | undefined, token = session?.token): Promise<WsClient> {
  const client = await WsClient.connect(notificationsUrl(replica.wsUrl), {
    ...(token !== undefined ? { token } : {}),
    label: `${session?.user.username ?? 'anonymous'}@${replica.name}/notifications`,
  });
  t.teardown(() => client.terminate());
  return client;
}

export const isAnswerTo =
  (clientId: string) =>
  (event: ServerEvent): event is EventOf<'chat.message'> | EventOf<'error'> =>
    (event.type === 'chat.message' && event.message.client_id === clientId) || (event.type === 'error' && event.client_id === clientId);

/**
 * Sends chat messages as fast as the protocol allows: up to `window` frames in flight (past 64
 * queued frames the service stops reading the socket until it catches up), each answered by
 * the sender's own `chat.message` (or an error). Resolves with the answers in send order.
 */
export async function sendMessages(
  client: WsClient,
  messages: { message: string; client_id: string }[],
  window = 32,
  timeoutMs = 30_000,
): Promise<(EventOf<'chat.message'> | EventOf<'error'>)[]> {
  const answers: (EventOf<'chat.message'> | EventOf<'error'>)[] = [];
  let next = 0;
  const sendNext = (): void => {
    const frame = messages[next++];
    if (frame) client.send({ type: 'chat_message', ...frame });
  };
  for (let i = 0; i < Math.min(window, messages.length); i++) sendNext();
  for (const frame of messages) {
    answers.push(await client.waitFor(isAnswerTo(frame.client_id), timeoutMs));
    sendNext();
  }
  return answers;
}

/**
 * Every message of a conversation, ascending, through REST paging (newest page first, then
 * `before`). `unavailableForMs`: a 503
 * is read again (as a client does after Retry-After) until that long after the first one; for
 * reads right after a database fault, when a pooled connection to the failed server may still
 * be found dead by the next statement. Any other status fails at once.
 */
export async function fetchHistory(replica: Replica, conversationId: number, token: string, { unavailableForMs = 0 } = {}) {
  type Row = { id: number; seq: number; client_id: string | null; content: string; is_deleted: boolean; sender: string };
  const pages: Row[][] = [];
  let before = '';
  let unavailableSince: number | undefined;
  for (;;) {
    const response = await replica.http('GET', `/api/conversations/${conversationId}/messages/?limit=200${before}`, { token });
    if (response.status === 503 && Date.now() - (unavailableSince ??= Date.now()) < unavailableForMs) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    if (response.status !== 200) throw new Error(`history: ${response.status} ${response.body}`);
    const page = response.json as Row[];
    pages.unshift(page);
    if (page.length < 200) return pages.flat();
    before = `&before=${page[0]!.id}`;
  }
}

/** Where a list of seqs first departs from `from, from+1, …, to`, or undefined if it does not. */
export function seqProblem(seqs: number[], from: number, to: number): string | undefined {
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== from + i) return `at index ${i}: expected seq ${from + i}, got ${seqs[i]} (…${seqs.slice(Math.max(0, i - 3), i + 4).join(',')}…)`;
  }
  if (seqs.length !== to - from + 1) return `${seqs.length} events, expected ${to - from + 1} (last ${seqs.at(-1)})`;
  return undefined;
}

/** Asserts the client saw exactly seqs `from..to`, in order, once each. */
export function assertSeqRun(t: Test, events: ConversationEvent[], from: number, to: number, who: string): void {
  const problem = seqProblem(
    events.map((event) => event.seq),
    from,
    to,
  );
  t.notOk(problem, `${who}: seqs ${from}..${to} in order, no gap, no duplicate`, problem ? { problem } : {});
}

/** Only the keys the seed shows, plus the ones API.md lets the service add. */
export function assertKeys(t: Test, event: object, seed: string[], added: string[], what: string): void {
  const keys = Object.keys(event);
  t.ok(seed.every((key) => keys.includes(key)), `${what}: has the seed's keys ${seed.join(', ')}`, { keys });
  t.same(keys.filter((key) => !seed.includes(key) && !added.includes(key)), [], `${what}: no unexpected keys`);
}

/** `from, from+1, …, to`. */
export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
