/**
 * A publish that fails while the subscribers stay up is repaired: only the publisher
 * connections are broken (CLIENT KILL by their name, and new connections refused by a
 * lowered `maxclients` while the subscribers keep theirs), a message is stored meanwhile, and
 * a quiet conversation still gets it live, as does the notification socket, once the
 * publisher is back. Without the retry, nothing but a later event would bring it.
 */
import { Redis } from 'ioredis';
import t from 'tap';
import { conversationChannel, userChannel } from '../src/redis/names.js';
import { eventually, startTopology } from './helpers/replicas.js';
import { createConversation, openChat, openNotifications, registerUsers } from './helpers/chat-api.js';

t.test('publisher connections broken, subscribers up: the quiet conversation still gets the event', async (t) => {
  const topology = await startTopology(t, { backend: 'redis', replicas: 2 });
  const redis = topology.redis!;
  const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await admin.connect();
  t.teardown(async () => {
    await admin.config('SET', 'maxclients', '10000').catch(() => {});
    admin.disconnect();
  });

  const [alice, bob] = await registerUsers(topology, 2, 'pub');
  const conversationId = await createConversation(topology.at(0), alice!, [bob!]);
  const watcher = await openChat(t, topology.at(1), conversationId, bob!, { lastSeq: 0 });
  const notifications = await openNotifications(t, topology.at(1), bob!);
  await topology.waitSubscribers(conversationChannel(conversationId), 1);
  await topology.waitSubscribers(userChannel(bob!.user.id), 1);
  const first = await topology.at(0).http('POST', `/api/conversations/${conversationId}/messages/`, { token: alice!.token, body: { content: 'before' } });
  t.equal(first.status, 201);
  await watcher.waitForSeq(1);
  await notifications.waitFor((event) => event.type === 'notification');

  // Break the publishers: no new connection is accepted, then theirs are killed.
  const clientList = async () => (await admin.client('LIST')) as string;
  const connected = (await clientList()).trim().split('\n').length;
  const publishers = (await clientList()).split('\n').filter((line) => / name=chat-bus-pub /.test(line)).length;
  t.equal(publishers, 2, 'one publisher connection per replica');
  await admin.config('SET', 'maxclients', String(connected - publishers));
  let killed = 0;
  for (const id of idsOf(await clientList(), 'chat-bus-pub')) killed += Number(await admin.call('CLIENT', 'KILL', 'ID', id));
  t.equal(killed, publishers, 'the publisher connections are gone');
  const failuresBefore = await topology.at(0).metric('chat_bus_publish_failures_total', { kind: 'conversation' });

  const during = await topology.at(0).http('POST', `/api/conversations/${conversationId}/messages/`, { token: alice!.token, body: { content: 'while the publisher is down' } });
  t.equal(during.status, 201, 'the send is stored (it needs only PostgreSQL)');
  await eventually('the publish fails', async () => (await topology.at(0).metric('chat_bus_publish_failures_total', { kind: 'conversation' })) > failuresBefore);
  t.ok((await clientList()).includes('name=chat-bus-sub'), 'the subscribers are still connected');
  t.equal(watcher.conversationEvents().length, 1, 'nothing arrived while the publisher was down');

  await admin.config('SET', 'maxclients', '10000');
  const repaired = await watcher.waitForSeq(2, 10_000);
  t.match(repaired, { type: 'chat.message', seq: 2, message: { content: 'while the publisher is down' } }, 'the quiet conversation gets the event live');
  const pushed = await notifications.waitFor((event) => event.type === 'notification' && JSON.stringify(event).includes('2 new messages'), 10_000);
  t.ok(pushed, 'and the notification push arrives too');
  t.same(watcher.conversationEvents().map((event) => event.seq), [1, 2], 'once each, in order');
});

/** The ids of the clients with connection name `name` in CLIENT LIST output. */
function idsOf(list: string, name: string): string[] {
  return list
    .split('\n')
    .filter((line) => line.includes(` name=${name} `))
    .map((line) => /\bid=(\d+)/.exec(line)![1]!);
}
