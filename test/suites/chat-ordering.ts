/** Seq order under load: concurrent senders on every replica, seen the same by every client. */
import type { Test } from 'tap';
import { assertSeqRun, createConversation, fetchHistory, openChat, range, registerUsers, sendMessages } from '../helpers/chat-api.js';
import type { Topology } from '../helpers/replicas.js';
import { isConversationEvent } from '../helpers/ws-client.js';

/**
 * Concurrent senders on every replica into one conversation: every client on every replica
 * sees the same gap-free seq order 1..N, no duplicates, and each sender's messages in the order
 * it sent them.
 */
export async function orderingSuite(t: Test, topology: Topology, { senders = 4, perSender = 150 } = {}): Promise<void> {
  await t.test(`${senders} concurrent senders × ${perSender} messages: one order everywhere`, async (t) => {
    const users = await registerUsers(topology, senders + 1, 'ord');
    const observer = users[senders]!;
    const cid = await createConversation(topology.at(0), observer, users.slice(0, senders));
    const senderClients = await Promise.all(
      users.slice(0, senders).map((user, i) => openChat(t, topology.at(i), cid, user, { lastSeq: 0, label: `sender${i}@${topology.at(i).name}` })),
    );
    const observers = await Promise.all(
      topology.replicas.map((replica) => openChat(t, replica, cid, observer, { lastSeq: 0, label: `observer@${replica.name}` })),
    );
    const total = senders * perSender;
    const started = Date.now();
    await Promise.all(
      senderClients.map((client, s) =>
        sendMessages(client, range(0, perSender - 1).map((i) => ({ message: `s${s} #${i}`, client_id: `s${s}-${i}` }))),
      ),
    );
    const clients = [...senderClients, ...observers];
    await Promise.all(clients.map((client) => client.waitForSeq(total, 60_000)));
    t.comment(`${total} messages through ${topology.replicas.length} replica(s) in ${Date.now() - started} ms`);

    const reference = observers[0]!.conversationEvents().map((event) => (event.type === 'chat.message' ? event.message.id : -1));
    for (const client of clients) {
      const events = client.conversationEvents();
      assertSeqRun(t, events, 1, total, client.label);
      t.same(events.map((event) => (event.type === 'chat.message' ? event.message.id : -1)), reference, `${client.label}: the same messages in the same order`);
      for (let s = 0; s < senders; s++) {
        const order = events.flatMap((event) =>
          event.type === 'chat.message' && event.message.client_id?.startsWith(`s${s}-`) ? [Number(event.message.client_id.slice(`s${s}-`.length))] : [],
        );
        const inOrder = order.length === perSender && order.every((value, i) => value === i);
        t.ok(inOrder, `${client.label}: sender ${s}'s messages in its send order`, inOrder ? {} : { order: order.slice(0, 20) });
      }
      t.same(client.errors(), [], `${client.label}: no errors`);
    }
    const history = await fetchHistory(topology.at(1), cid, observer.token);
    t.same(history.map((m) => m.id), reference, 'PostgreSQL holds the same order');

    // A replay longer than one page (500 events) read back from PostgreSQL.
    const late = await openChat(t, topology.at(topology.replicas.length - 1), cid, observer, { lastSeq: 0, label: 'late joiner' });
    await late.waitForSeq(total, 60_000);
    assertSeqRun(t, late.conversationEvents(), 1, total, 'late joiner');
    t.same(late.raw.filter((_, i) => isConversationEvent(late.events[i]!)), observers[0]!.raw.filter((_, i) => isConversationEvent(observers[0]!.events[i]!)),
      'the replay is byte for byte what was delivered live');
  });
}
