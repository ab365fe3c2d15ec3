/**
 * `ChatSocket` and `NotificationSocket` against the in-process service: replay then live in
 * seq order, sends and their refusals, sends the service can never answer, typing, fatal
 * closes without retries, and notifications pushed and read on another device.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Test } from 'tap';
import { ChatClient, SendError } from '@chat-service/client';
import {
  bounded,
  ChatRecorder,
  chatEventValidator,
  invalidFrames,
  NotificationRecorder,
  notificationEventValidator,
  poll,
  seqProblem,
  Wire,
} from '../helpers/client-harness.js';
import { history, newUser, openChat, openNotifications, PASSWORD, PNG, QUICK, rejection, type Server, type User } from '../helpers/client-service.js';

export async function clientSocketsSuite(t: Test, server: Server): Promise<void> {
  const { base } = server;

  await t.test('ChatSocket: replay then live, in seq order; send, refusals, edits, deletes, attachments', async (t) => {
    const alice = await newUser(base);
    const bob = await newUser(base);
    const conversation = await alice.client.createConversation([bob.id]);
    // Sent before any socket is open: replayed from last_seq 0.
    const early = [];
    for (let i = 1; i <= 3; i++) early.push(await bob.client.sendMessage(conversation.id, `before the sockets ${i}`));
    const A = openChat(t, alice, conversation.id, conversation.last_seq, 'alice');
    const B = openChat(t, bob, conversation.id, 0, 'bob');
    await Promise.all([A.reach('open'), B.reach('open'), A.reachSeq(3), B.reachSeq(3)]);
    t.same(A.events.map((e) => e.type === 'chat.message' && e.message.id), early.map((m) => m.id), 'the replay brings what was sent before the socket');

    const hello = await bounded(A.socket.send('hello over the socket'), 'send');
    t.match(hello, { id: Number, sender: alice.username, content: 'hello over the socket', seq: 4, client_id: String }, 'send() resolves with the stored message');
    t.match(hello.client_id, /^[0-9a-f-]{36}$/, 'a generated client_id (UUID) is echoed');
    const named = await bounded(A.socket.send('with my own id', 'alice-id-1'), 'send');
    t.equal(named.client_id, 'alice-id-1', 'a given client_id is echoed');
    const fromRest = await bob.client.listMessages(conversation.id, { after: early.at(-1)!.id });
    t.same(fromRest, [hello, named], 'what send() resolved with is what REST serves');

    // Refusals: the promise rejects with the service's error event; the socket stays usable.
    const tooLong = await rejection(A.socket.send('x'.repeat(4001), 'too-long-1'));
    t.ok(tooLong instanceof SendError, 'content over MAX_MESSAGE_LENGTH: SendError');
    t.match(tooLong, { name: 'SendError', event: { type: 'error', code: 'invalid_frame', client_id: 'too-long-1', message: /at most 4000/ } });
    const blank = await rejection(A.socket.send('   '));
    t.match(blank, { name: 'SendError', event: { code: 'invalid_frame', message: /empty/ } }, 'blank content: SendError invalid_frame');
    t.equal(A.socket.state, 'open', 'the socket stays open after a refusal');
    const afterRefusal = await bounded(A.socket.send('still works'), 'send');
    t.equal(afterRefusal.content, 'still works');

    // Someone else's message: an error event (not a send, so no promise) to bob only.
    B.socket.edit(hello.id, 'hijacked');
    await B.until('told forbidden', () => B.errors.length === 1);
    t.match(B.errors[0], { type: 'error', code: 'forbidden' }, "editing alice's message: error event 'forbidden' for bob");
    B.socket.delete(9_999_999);
    await B.until('told not_found', () => B.errors.length === 2);
    t.match(B.errors[1], { type: 'error', code: 'not_found' });

    A.socket.edit(hello.id, 'hello, edited');
    A.socket.delete(named.id);
    const attachment = await alice.client.uploadAttachment(conversation.id, afterRefusal.id, new Blob([PNG], { type: 'image/png' }), 'dot.png');
    const last = (await bob.client.getConversation(conversation.id)).last_seq;
    t.equal(last, 9, '3 + 3 messages, an edit, a delete and an attachment: seq 9');
    await Promise.all([A.reachSeq(last), B.reachSeq(last)]);
    for (const [who, R] of [['alice', A], ['bob', B]] as const) {
      t.notOk(seqProblem(R.seqs(), 1, last), `${who}: seqs 1..${last}, each once, in order`);
      t.match(
        R.events.slice(6),
        [
          { type: 'message.edited', seq: 7, conversation_id: conversation.id, message: { id: hello.id, content: 'hello, edited', is_edited: true } },
          { type: 'message.deleted', seq: 8, message_id: named.id },
          { type: 'attachment.added', seq: 9, message_id: afterRefusal.id, attachment: { id: attachment.id, filename: 'dot.png' } },
        ],
        `${who}: the edit, the delete and the attachment as events`,
      );
      t.same(R.errors.length, who === 'bob' ? 2 : 0, `${who}: only its own errors`);
      t.same(invalidFrames(R.socket === A.socket ? alice.wire.frames : bob.wire.frames, chatEventValidator), [], `${who}: every frame received validates against ChatServerEventSchema`);
    }
    const stored = await history(bob.client, conversation.id);
    t.same(
      B.events.filter((e) => e.type === 'chat.message').map((e) => e.type === 'chat.message' && e.message.id),
      stored.map((m) => m.id),
      'the chat.message events are the stored history',
    );
    t.equal(A.socket.lastSeq, last, 'lastSeq is the last delivered seq');
    t.same(alice.wire.lastSeqs(), [0], 'one connection, resumed from last_seq 0');
  });

  await t.test('ChatSocket: sends the service can never answer still settle, and the socket recovers', async (t) => {
    const alice = await newUser(base);
    const bob = await newUser(base);
    const conversation = await alice.client.createConversation([bob.id]);
    const A = openChat(t, alice, conversation.id, 0, 'alice');
    await A.reach('open');

    // The service refuses a client_id over 64 characters without echoing it: refused up front.
    const longId = await rejection(A.socket.send('hello', 'x'.repeat(65)));
    t.match(longId, { name: 'RangeError', message: /clientId/ }, 'a client_id over 64 characters: RangeError');
    t.match(await rejection(A.socket.send('hello', '')), { name: 'RangeError' }, 'an empty client_id: RangeError');
    t.same(alice.wire.attempts[0]!.sent, [], 'neither was sent');

    // A frame over WS_MAX_PAYLOAD_BYTES (64 KiB) closes the connection with 1009; resent after
    // the reconnect it would close every connection: the send is refused instead.
    const huge = await rejection(A.socket.send('y'.repeat(70_000), 'huge-1'));
    t.ok(huge instanceof SendError, 'a message over the frame limit: SendError');
    t.match(huge, { event: { code: 'invalid_frame', client_id: 'huge-1', message: /1009/ } });
    const waiting = A.stateIndex('waiting');
    t.ok(waiting >= 0, 'the connection was dropped (1009) and is being replaced');
    await A.reach('open', waiting);
    const after = await bounded(A.socket.send('small again'), 'send after the 1009');
    t.equal(after.content, 'small again', 'the socket reconnected and sends again');
    t.equal(alice.wire.attempts.length, 2, 'one reconnect, not a reconnect loop');
    t.same(alice.wire.sentOn('huge-1'), [0], 'the oversized frame was sent once, never resent');
    t.notOk(seqProblem(A.seqs(), 1, 1), 'and it was not stored');
  });

  await t.test('ChatSocket: typing reaches the other participant only', async (t) => {
    const alice = await newUser(base);
    const bob = await newUser(base);
    const conversation = await alice.client.createConversation([bob.id]);
    const A = openChat(t, alice, conversation.id, 0, 'alice');
    const B = openChat(t, bob, conversation.id, 0, 'bob');
    // A delivered event proves each socket has joined the room (typing is live only).
    await alice.client.sendMessage(conversation.id, 'ready?');
    await Promise.all([A.reachSeq(1), B.reachSeq(1)]);

    A.socket.typing(true);
    await B.until('told alice types', () => B.typing.length === 1);
    t.same(B.typing[0], { type: 'user.typing', user: alice.username, is_typing: true, conversation_id: conversation.id });
    A.socket.typing(false);
    await B.until('told alice stopped', () => B.typing.length === 2);
    t.match(B.typing[1], { user: alice.username, is_typing: false });
    // Frames are handled in order: by the time alice's own message comes back, any typing
    // event meant for her would have arrived before it.
    await bounded(A.socket.send('after typing'), 'send');
    await B.reachSeq(2);
    t.same(A.typing, [], 'the typist hears nothing of their own typing');
    t.equal(A.events.length, 2, 'and typing is no conversation event');
    t.same(invalidFrames(bob.wire.frames, chatEventValidator), [], 'typing events validate');
  });

  await t.test('fatal closes: 4401 bad token, 4403 not a participant, and no retry after them', async (t) => {
    const alice = await newUser(base);
    const bob = await newUser(base);
    const carol = await newUser(base);
    const conversation = await alice.client.createConversation([bob.id]);

    const expectFatal = async (user: User, open: () => ChatRecorder | NotificationRecorder, code: number, what: string) => {
      const before = user.wire.attempts.length;
      const recorder = open();
      const pending = recorder instanceof ChatRecorder ? recorder.socket.send('never delivered') : undefined;
      await recorder.until('closed', () => recorder.closed !== undefined);
      t.equal(recorder.closed?.code, code, `${what}: closed with ${code}`);
      t.equal(recorder.socket.state, 'closed', `${what}: state closed`);
      // The service accepts the upgrade, then closes with the code: open, then closed, never waiting.
      t.same(recorder.states.map((s) => s.state), ['open', 'closed'], `${what}: open → closed, no backoff`);
      if (pending) t.match(await rejection(pending), { message: new RegExp(`socket closed \\(${code}`) }, `${what}: a pending send is rejected`);
      // QUICK retries after 20 ms: ten times that without a new attempt means none is coming.
      await delay(200);
      t.equal(user.wire.attempts.length - before, 1, `${what}: one attempt, no retry`);
    };

    const impostor: User = { ...alice, wire: new Wire() };
    impostor.client = new ChatClient({ baseUrl: base, token: `${alice.client.token}x`, WebSocket: impostor.wire.WebSocket, backoff: QUICK });
    await expectFatal(impostor, () => openChat(t, impostor, conversation.id, 0), 4401, 'chat, bad token');
    await expectFatal(impostor, () => openNotifications(t, impostor), 4401, 'notifications, bad token');
    await expectFatal(carol, () => openChat(t, carol, conversation.id, 0), 4403, 'chat, not a participant');
    await expectFatal(carol, () => openChat(t, carol, 2_000_000_000, 0), 4403, 'chat, no such conversation');

    // A socket the caller closed is closed for good too, and says so to late senders.
    const A = openChat(t, alice, conversation.id, 0, 'alice');
    await A.reach('open');
    A.socket.close();
    t.match(A.closed, { code: 1000 }, 'close(): closed 1000');
    t.match(await rejection(A.socket.send('after close')), { message: /closed/ }, 'send() on a closed socket rejects instead of hanging');
  });

  await t.test('NotificationSocket: new messages, and reads made on another device', async (t) => {
    const alice = await newUser(base);
    const bob = await newUser(base);
    const bobPhone = new ChatClient({ baseUrl: base });
    await bobPhone.login(bob.username, PASSWORD);
    const before = await server.openNotificationSockets();
    const N = openNotifications(t, bob, 'bob');
    await N.reach('open');
    await poll('the notification socket to be subscribed', async () => (await server.openNotificationSockets()) === before + 1);

    const conversation = await alice.client.createConversation([bob.id]);
    await N.until('told of the new conversation', () => N.notifications.some((n) => n.kind === 'conversation.added' && n.conversation_id === conversation.id));
    const message = await alice.client.sendMessage(conversation.id, 'are you there?');
    await N.until('told of the message', () => N.notifications.some((n) => n.kind === 'messages.new' && n.message_id === message.id));
    const news = N.notifications.find((n) => n.message_id === message.id)!;
    t.match(news, { id: Number, kind: 'messages.new', conversation_id: conversation.id, is_read: false, count: 1, message: String });
    t.same((await bob.client.listNotifications())[0], news, 'the pushed notification is the stored one');

    await bobPhone.readNotification(news.id);
    await N.until('told of the read', () => N.reads.length === 1);
    t.same(N.reads[0], { type: 'notification.read', id: news.id }, 'a read on another device arrives as a read event');
    await bobPhone.readAllNotifications();
    await N.until('told of the read-all', () => N.reads.length === 2);
    t.same(N.reads[1], { type: 'notification.read', all: true });
    t.equal(N.resyncs, 0, 'no resync without a reconnect');
    t.same(invalidFrames(bob.wire.frames, notificationEventValidator), [], 'every frame validates against NotificationServerEventSchema');
  });
}
