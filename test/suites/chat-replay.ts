/**
 * Resuming with `?last_seq=N` on another replica: every later event replayed, byte for byte as
 * delivered live, then live ones, with no gap or duplicate; a last_seq at or beyond the newest
 * gets live events only.
 */
import type { Test } from 'tap';
import { assertSeqRun, createConversation, openChat, range, registerUsers, sendMessages } from '../helpers/chat-api.js';
import type { Topology } from '../helpers/replicas.js';
import { isConversationEvent, type WsClient } from '../helpers/ws-client.js';

export async function chatReplaySuite(t: Test, topology: Topology): Promise<void> {
  const at = (index: number) => topology.at(index);

  await t.test('?last_seq=N on another replica replays every later event, then live ones, with no gap or duplicate', async (t) => {
    const [a, b] = await registerUsers(topology, 2);
    const cid = await createConversation(at(0), a!, [b!]);
    const A = await openChat(t, at(0), cid, a, { lastSeq: 0 });
    await sendMessages(A, range(1, 30).map((i) => ({ message: `m${i}`, client_id: `m${i}` })));
    // Joins while the next thirty are being sent: replay and live delivery overlap.
    const more = sendMessages(A, range(31, 60).map((i) => ({ message: `m${i}`, client_id: `m${i}` })));
    const B = await openChat(t, at(1), cid, b, { lastSeq: 10 });
    await more;
    await B.waitForSeq(60);
    assertSeqRun(t, B.conversationEvents(), 11, 60, 'resumed at 10');
    const rawBySeq = (client: WsClient) =>
      new Map(client.events.flatMap((event, i) => (isConversationEvent(event) ? [[event.seq, client.raw[i]!] as const] : [])));
    const live = rawBySeq(A);
    const resumed = rawBySeq(B);
    t.ok([...resumed].every(([seq, raw]) => live.get(seq) === raw), 'replayed events are byte for byte the live ones');

    const upToDate = await openChat(t, at(2), cid, b, { lastSeq: 60 });
    const ahead = await openChat(t, at(1), cid, b, { lastSeq: 999_999 });
    await Promise.all([upToDate.sync(), ahead.sync()]);
    A.send({ type: 'chat_message', message: 'm61', client_id: 'm61' });
    await Promise.all([upToDate.waitForSeq(61), ahead.waitForSeq(61)]);
    assertSeqRun(t, upToDate.conversationEvents(), 61, 61, 'last_seq = newest: live only');
    assertSeqRun(t, ahead.conversationEvents(), 61, 61, 'last_seq beyond the newest: clamped, live from there');
    t.same(B.errors(), []);
  });
}
