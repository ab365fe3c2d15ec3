/**
 * Conversation traffic across replicas (API.md "WebSocket: chat"): messages, edits and deletes
 * sent over WebSockets and REST reach every replica in seq order, byte for byte the same, and a
 * late joiner's replay holds no deleted text; typing reaches the others only and is not stored.
 */
import type { Test } from 'tap';
import { assertKeys, assertSeqRun, createConversation, fetchHistory, isAnswerTo, ISO, openChat, registerUsers } from '../helpers/chat-api.js';
import type { Topology } from '../helpers/replicas.js';
import { isConversationEvent, ofType, type ServerEvent, type WsClient } from '../helpers/ws-client.js';

export async function chatMessagesSuite(t: Test, topology: Topology): Promise<void> {
  const at = (index: number) => topology.at(index);

  await t.test('messages, edits and deletes from WS and REST reach every replica in seq order', async (t) => {
    const [a, b, c] = await registerUsers(topology, 3);
    const cid = await createConversation(at(0), a!, [b!, c!]);
    const clients = [
      await openChat(t, at(0), cid, a, { lastSeq: 0 }),
      await openChat(t, at(1), cid, b, { lastSeq: 0, header: true }),
      await openChat(t, at(2), cid, c, { lastSeq: 0 }),
    ];
    const [A, , C] = clients as [WsClient, WsClient, WsClient];
    const eachGets = <T extends ServerEvent>(predicate: (event: ServerEvent) => event is T) =>
      Promise.all(clients.map((client) => client.waitFor(predicate)));

    A.send({ type: 'chat_message', message: '  hello from A  ', client_id: 'hello-1' });
    const created = await eachGets(isAnswerTo('hello-1'));
    const first = created[0]!;
    if (first.type !== 'chat.message') throw new Error(`send failed: ${JSON.stringify(first)}`);
    assertKeys(t, first, ['type', 'message'], ['seq', 'conversation_id'], 'chat.message');
    assertKeys(t, first.message, ['id', 'sender', 'content', 'timestamp', 'is_edited', 'is_deleted', 'attachments'],
      ['conversation_id', 'sender_id', 'edited_at', 'client_id', 'seq', 'reply_to', 'reactions', 'mentions'], 'message object');
    t.equal(first.seq, 1, 'the first event of a conversation has seq 1');
    t.match(first.message, {
      id: Number,
      conversation_id: cid,
      sender: a!.user.username,
      sender_id: a!.user.id,
      content: 'hello from A',
      is_edited: false,
      is_deleted: false,
      attachments: [],
      client_id: 'hello-1',
      seq: 1,
    }, 'the sender learns its id and client_id; content is trimmed');
    t.match(first.message.timestamp, ISO, 'timestamp is ISO 8601 UTC');
    const messageId = first.message.id;

    A.send({ type: 'edit_message', message_id: messageId, content: 'hello, edited' });
    const edited = await eachGets(ofType('message.edited'));
    assertKeys(t, edited[0]!, ['type', 'message'], ['seq', 'conversation_id'], 'message.edited');
    t.match(edited[0], { type: 'message.edited', seq: 2, message: { id: messageId, content: 'hello, edited' } });

    const rest = await at(0).http('POST', `/api/conversations/${cid}/messages/`, { token: c!.token, body: { content: 'sent over REST', client_id: 'rest-1' } });
    t.equal(rest.status, 201, 'REST send');
    const viaRest = await eachGets(isAnswerTo('rest-1'));
    t.match(viaRest[1], { type: 'chat.message', seq: 3, message: { id: rest.json.id, sender: c!.user.username, content: 'sent over REST' } },
      'a message sent over REST is delivered over WebSockets');

    const patched = await at(1).http('PATCH', `/api/conversations/${cid}/messages/${rest.json.id}/`, { token: c!.token, body: { content: 'REST, edited' } });
    t.equal(patched.status, 200, 'REST edit');
    await Promise.all(clients.map((client) => client.waitForSeq(4)));

    A.send({ type: 'delete_message', message_id: messageId });
    const deleted = await eachGets(ofType('message.deleted'));
    assertKeys(t, deleted[0]!, ['type', 'message_id'], ['seq', 'conversation_id'], 'message.deleted');
    t.match(deleted[0], { type: 'message.deleted', seq: 5, message_id: messageId });

    const removed = await at(2).http('DELETE', `/api/conversations/${cid}/messages/${rest.json.id}/`, { token: c!.token });
    t.equal(removed.status, 204, 'REST delete');
    await Promise.all(clients.map((client) => client.waitForSeq(6)));

    const expectedTypes = ['chat.message', 'message.edited', 'chat.message', 'message.edited', 'message.deleted', 'message.deleted'];
    for (const client of clients) {
      const events = client.conversationEvents();
      assertSeqRun(t, events, 1, 6, client.label);
      t.same(events.map((event) => event.type), expectedTypes, `${client.label}: event types in order`);
      t.same(client.errors(), [], `${client.label}: no errors`);
    }
    // The same event, byte for byte, on every replica.
    const rawOf = (client: WsClient) => client.raw.filter((_, i) => isConversationEvent(client.events[i]!));
    t.same(rawOf(clients[1]!), rawOf(A), 'replica 2 delivered the same JSON as replica 1');
    t.same(rawOf(C), rawOf(A), 'replica 3 delivered the same JSON as replica 1');

    // A late joiner replays the log as it stands now: deleted text is never served again.
    const late = await openChat(t, at(1), cid, b, { lastSeq: 0, label: 'late joiner' });
    await late.waitForSeq(6);
    assertSeqRun(t, late.conversationEvents(), 1, 6, 'late joiner');
    t.notMatch(late.raw.join('\n'), /hello from A|hello, edited|sent over REST|REST, edited/, 'the replay holds no deleted text');
    t.match(late.events[0], { type: 'chat.message', seq: 1, message: { id: messageId, is_deleted: true, content: '' } });

    const history = await fetchHistory(at(1), cid, b!.token);
    t.match(history, [
      { id: messageId, is_deleted: true, content: '' },
      { id: rest.json.id, is_deleted: true, content: '' },
    ], 'history keeps deleted messages without their text');
  });

  await t.test('typing reaches the others, not the sender, and is not stored', async (t) => {
    const [a, b] = await registerUsers(topology, 2);
    const cid = await createConversation(at(0), a!, [b!]);
    const A = await openChat(t, at(0), cid, a);
    const B = await openChat(t, at(1), cid, b);
    // Typing is live only: both sockets must be in their rooms before it is sent.
    await Promise.all([A.sync(), B.sync()]);

    A.send({ type: 'typing', is_typing: true });
    const typing = await B.waitFor(ofType('user.typing'));
    assertKeys(t, typing, ['type', 'user', 'is_typing'], ['conversation_id'], 'user.typing');
    t.match(typing, { type: 'user.typing', user: a!.user.username, is_typing: true });
    A.send({ type: 'typing', is_typing: false });
    await B.waitFor((event) => event.type === 'user.typing' && !event.is_typing);

    // Typing and messages share the conversation's channel, in publish order: once the sender
    // has its own message back, any typing event meant for it would already be here.
    A.send({ type: 'chat_message', message: 'after typing', client_id: 'after-typing' });
    const own = await A.waitFor(isAnswerTo('after-typing'));
    t.match(own, { type: 'chat.message', seq: 1 }, 'typing took no seq');
    t.equal(A.events.filter(ofType('user.typing')).length, 0, 'the sender does not get its own typing');
    await B.waitFor(isAnswerTo('after-typing'));

    const replay = await openChat(t, at(2), cid, b, { lastSeq: 0 });
    await replay.waitForSeq(1);
    A.send({ type: 'chat_message', message: 'second', client_id: 'second' });
    await replay.waitForSeq(2);
    t.same(replay.events.map((event) => event.type), ['chat.message', 'chat.message'], 'a replay holds no typing');
    const history = await fetchHistory(at(0), cid, a!.token);
    t.same(history.map((m) => m.content), ['after typing', 'second'], 'history holds no typing');
  });
}
