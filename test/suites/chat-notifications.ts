/**
 * Notifications across replicas (API.md "WebSocket: notifications", "Notifications"): being
 * added to a conversation, new messages coalesced into one unread row, reads and read-all
 * reaching every device, and nobody notified of their own messages.
 */
import type { Test } from 'tap';
import { userChannel } from '../../src/redis/names.js';
import { assertKeys, createConversation, ISO, openChat, openNotifications, range, registerUsers, sendMessages } from '../helpers/chat-api.js';
import type { Topology } from '../helpers/replicas.js';
import { type EventOf, ofType, type ServerEvent, type WsClient } from '../helpers/ws-client.js';

export async function chatNotificationsSuite(t: Test, topology: Topology): Promise<void> {
  const at = (index: number) => topology.at(index);

  await t.test('notifications: added to a conversation, coalesced new messages, read on every device', async (t) => {
    const [a, b, c] = await registerUsers(topology, 3);
    const B1 = await openNotifications(t, at(1), b);
    const B2 = await openNotifications(t, at(2), b);
    const C1 = await openNotifications(t, at(0), c);
    await topology.waitSubscribers(userChannel(b!.user.id), new Set([at(1), at(2)]).size);
    await topology.waitSubscribers(userChannel(c!.user.id), 1);

    const cid = await createConversation(at(0), a!, [b!, c!]);
    const isAdded = (event: ServerEvent): event is EventOf<'notification'> =>
      event.type === 'notification' && event.message.kind === 'conversation.added' && event.message.conversation_id === cid;
    const [added] = await Promise.all([B1.waitFor(isAdded), B2.waitFor(isAdded), C1.waitFor(isAdded)]);
    assertKeys(t, added, ['type', 'message'], [], 'notification event');
    assertKeys(t, added.message, ['id', 'message', 'is_read', 'timestamp'], ['kind', 'conversation_id', 'message_id', 'count'], 'notification object');
    t.match(added.message, { id: Number, message: String, is_read: false, timestamp: ISO });
    t.match(added.message.message, a!.user.username, 'the text names who added them');

    // Five messages from A, from two replicas at once (two batchers racing on one row).
    const A = await openChat(t, at(0), cid, a);
    const sent = sendMessages(A, range(1, 3).map((i) => ({ message: `news ${i}`, client_id: `news-${i}` })));
    const restSends = Promise.all([4, 5].map((i) =>
      at(1).http('POST', `/api/conversations/${cid}/messages/`, { token: a!.token, body: { content: `news ${i}` } })));
    await sent;
    t.same((await restSends).map((r) => r.status), [201, 201]);

    const isNews = (event: ServerEvent): event is EventOf<'notification'> =>
      event.type === 'notification' && event.message.kind === 'messages.new' && event.message.conversation_id === cid;
    const newsOf = (client: WsClient) => client.events.filter(isNews);
    await Promise.all([B1, B2].map((client) => client.waitFor((event) => isNews(event) && event.message.count === 5)));
    const rowIds = new Set([...newsOf(B1), ...newsOf(B2)].map((event) => event.message.id));
    t.equal(rowIds.size, 1, 'one unread "new messages" notification, updated in place');
    t.ok(newsOf(B1).length <= 5, `pushes coalesced (${newsOf(B1).length} for 5 messages)`);
    const [rowId] = rowIds;
    const unread = await at(2).http('GET', '/api/notifications/?unread=true', { token: b!.token });
    t.match(unread.json.filter((n: { kind: string }) => n.kind === 'messages.new'), [{ id: rowId, count: 5, is_read: false, conversation_id: cid }],
      'REST lists the one row with the full count');
    t.equal(unread.json.filter((n: { kind: string }) => n.kind === 'messages.new').length, 1, 'exactly one unread row per conversation');

    const read = await at(0).http('POST', `/api/notifications/${rowId}/read/`, { token: b!.token });
    t.equal(read.status, 200);
    t.match(read.json, { id: rowId, is_read: true });
    const readEvents = await Promise.all([B1, B2].map((client) => client.waitFor(ofType('notification.read'))));
    for (const event of readEvents) t.same(event, { type: 'notification.read', id: rowId }, 'the other devices hear of it');

    // A new message after reading starts a new row.
    A.send({ type: 'chat_message', message: 'news 6', client_id: 'news-6' });
    const fresh = await B1.waitFor((event) => isNews(event) && event.message.id !== rowId);
    t.match(fresh, { message: { count: 1, is_read: false } }, 'a new unread row after the old one was read');

    const readAll = await at(1).http('POST', '/api/notifications/read-all/', { token: b!.token });
    t.same(readAll.json, { updated: 2 }, 'read-all marks the added-to and the new row');
    const readAllEvents = await Promise.all([B1, B2].map((client) => client.waitFor((event) => event.type === 'notification.read' && event.all === true)));
    t.same(readAllEvents[0], { type: 'notification.read', all: true });

    // Nobody is notified of their own messages: B's message bumps C's row (to 7) and A's, not B's.
    const fromB = await at(2).http('POST', `/api/conversations/${cid}/messages/`, { token: b!.token, body: { content: 'from B' } });
    t.equal(fromB.status, 201);
    await C1.waitFor((event) => isNews(event) && event.message.count === 7);
    const bUnread = await at(0).http('GET', '/api/notifications/?unread=true', { token: b!.token });
    t.same(bUnread.json, [], 'no notification for your own message');
    const aList = await at(0).http('GET', '/api/notifications/', { token: a!.token });
    t.match(aList.json, [{ kind: 'messages.new', conversation_id: cid, count: 1 }], 'the sender hears only of the others');
    t.equal(aList.json.length, 1, 'the creator was not "added"');
  });
}
