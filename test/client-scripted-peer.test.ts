/**
 * What the real service never produces, from a small scripted `ws` peer on loopback: a seq gap
 * (the client reconnects with last_seq and the replay fills it, duplicates dropped) and a send
 * lost with its connection (resent with the same client_id after the reconnect).
 */
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { WebSocketServer, type WebSocket as PeerSocket } from 'ws';
import { ChatClient } from '@chat-service/client';
import { bounded, ChatRecorder, chatEventValidator, poll } from './helpers/client-harness.js';
import { QUICK } from './helpers/client-service.js';

/**
 * A scripted peer on loopback: each connection gets the handler for its index. It also answers
 * `POST /api/auth/ws-ticket/` (tickets `ticket-1`, `ticket-2`, … for the bearer `scripted`).
 */
async function scriptedPeer(
  t: Test,
  handlers: Array<(socket: PeerSocket, url: URL) => void>,
): Promise<{ base: string; urls: URL[]; closeCodes: Array<number | undefined>; frames: string[][] }> {
  let tickets = 0;
  const http = createHttpServer((request, response) => {
    const ok = request.method === 'POST' && request.url === '/api/auth/ws-ticket/' && request.headers.authorization === 'Bearer scripted';
    response.writeHead(ok ? 201 : 401, { 'content-type': 'application/json' });
    response.end(JSON.stringify(ok ? { ticket: `ticket-${++tickets}`, expires_in: 30 } : { statusCode: 401, error: 'Unauthorized', message: 'no' }));
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const server = new WebSocketServer({ server: http });
  const urls: URL[] = [];
  const closeCodes: Array<number | undefined> = [];
  const frames: string[][] = [];
  server.on('connection', (socket, request) => {
    const index = urls.push(new URL(request.url ?? '/', 'http://peer')) - 1;
    closeCodes.push(undefined);
    frames.push([]);
    socket.on('message', (data) => frames[index]!.push(data.toString()));
    socket.on('close', (code) => (closeCodes[index] = code));
    const handler = handlers[index];
    if (handler) handler(socket, urls[index]!);
    else socket.close(1011, 'no script for this connection');
  });
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const client of server.clients) client.terminate();
        server.close(() => {
          http.closeAllConnections();
          http.close(() => resolve());
        });
      }),
  );
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, urls, closeCodes, frames };
}

const CONVERSATION = 7;
const deleted = (seq: number) => JSON.stringify({ type: 'message.deleted', seq, conversation_id: CONVERSATION, message_id: 100 + seq });
const chatMessage = (seq: number, clientId: string, content: string) =>
  JSON.stringify({
    type: 'chat.message',
    seq,
    conversation_id: CONVERSATION,
    message: {
      id: 100 + seq,
      conversation_id: CONVERSATION,
      sender: 'peer',
      sender_id: 1,
      content,
      timestamp: '2024-01-01T12:00:00.000Z',
      is_edited: false,
      is_deleted: false,
      edited_at: null,
      client_id: clientId,
      seq,
      attachments: [],
      reply_to: null,
      reactions: [],
      mentions: [],
    },
  });

t.test('scripted peer: a seq gap reconnects with last_seq and is filled; duplicates are dropped', async (t) => {
  const peer = await scriptedPeer(t, [
    (socket) => [1, 2, 4].forEach((seq) => socket.send(deleted(seq))),
    // The replay after last_seq=2, with duplicates of what the client already has.
    (socket) => [3, 4, 5, 5, 2, 6].forEach((seq) => socket.send(deleted(seq))),
  ]);
  t.same([1, 2, 3, 5, 6].map((seq) => chatEventValidator.Check(JSON.parse(deleted(seq)))), [true, true, true, true, true], 'the scripted events are valid events');
  const client = new ChatClient({ baseUrl: peer.base, token: 'scripted', backoff: QUICK });
  const socket = client.chat(CONVERSATION, { lastSeq: 0 });
  t.teardown(() => socket.close());
  const R = new ChatRecorder(socket, 'gap');
  await R.reachSeq(6);
  t.same(R.seqs(), [1, 2, 3, 4, 5, 6], 'delivered 1..6, each once, in order');
  t.equal(peer.urls.length, 2, 'one reconnect, for the gap');
  t.equal(peer.urls[0]!.searchParams.get('last_seq'), '0', 'first connection: last_seq=0');
  t.equal(peer.urls[1]!.searchParams.get('last_seq'), '2', 'the reconnect resumes after the last delivered seq: last_seq=2');
  t.equal(peer.urls[1]!.searchParams.get('ticket'), 'ticket-2', 'with a fresh ticket');
  t.equal(peer.urls[1]!.searchParams.get('token'), null, 'and no token in the URL');
  t.equal(peer.urls[1]!.pathname, `/ws/chat/${CONVERSATION}/`);
  await poll('the first connection to be closed', async () => peer.closeCodes[0] !== undefined);
  t.equal(peer.closeCodes[0], 4000, 'the client dropped the gapped connection itself (4000)');
  t.same(R.states.map((s) => s.state), ['open', 'connecting', 'open'], 'straight to a new connection, no backoff');
});

t.test('scripted peer: a send lost with its connection is resent (same client_id) after the reconnect', async (t) => {
  const peer = await scriptedPeer(t, [
    // Takes the frame and dies without answering, as a replica SIGKILLed mid-send.
    (socket) => socket.once('message', () => socket.terminate()),
    (socket) =>
      socket.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as { type: string; client_id?: string; message?: string };
        if (frame.type === 'chat_message') socket.send(chatMessage(1, frame.client_id!, frame.message!));
      }),
  ]);
  const client = new ChatClient({ baseUrl: peer.base, token: 'scripted', backoff: QUICK });
  const socket = client.chat(CONVERSATION, { lastSeq: 0 });
  t.teardown(() => socket.close());
  const R = new ChatRecorder(socket, 'resend');
  await R.reach('open');
  const sending = socket.send('lost then resent', 'resend-1');
  await R.reach('waiting');
  // While disconnected: typing is dropped, an edit waits for the connection.
  socket.typing(true);
  socket.edit(101, 'edited while away');
  const message = await bounded(sending, 'the resent send');
  t.match(message, { id: 101, client_id: 'resend-1', content: 'lost then resent' }, 'send() resolves with the answer to the resend');
  await poll('the edit to reach the peer', async () => (peer.frames[1] ?? []).length === 2);
  const first = JSON.parse(peer.frames[0]![0]!) as unknown;
  t.same(first, { type: 'chat_message', message: 'lost then resent', client_id: 'resend-1' });
  t.same(
    peer.frames[1]!.map((text) => JSON.parse(text) as unknown),
    [first, { type: 'edit_message', message_id: 101, content: 'edited while away' }],
    'after the reconnect: the same frame again, then the queued edit; no typing',
  );
  t.same(R.seqs(), [1]);
  t.equal(peer.urls[1]!.searchParams.get('last_seq'), '0', 'resumed from last_seq 0 (nothing delivered yet)');
});
