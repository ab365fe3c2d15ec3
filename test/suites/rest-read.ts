/**
 * Read state (API.md version 2, "Read state"): markers move forward only and never past
 * `last_seq`, unread counts are exact (others' messages, not deleted, after the marker),
 * sending counts as reading, and reading everything reads the "new messages" notification.
 */
import { sql } from 'drizzle-orm';
import type { Test } from 'tap';
import { createConversation, register, type Session } from '../helpers/api.js';
import { expectError, MAX_INT4, type RestContext } from '../helpers/rest-context.js';

export function restReadSuite(t: Test, context: RestContext): void {
  const { app, api, sendOk, database } = context;
  const read = (session: Session, id: number, body: unknown) => api('POST', `/api/conversations/${id}/read/`, { token: session.token, body });
  const state = async (session: Session, id: number) => {
    const response = await api('GET', `/api/conversations/${id}/`, { token: session.token });
    return { last_read_seq: response.json.last_read_seq as number, unread_count: response.json.unread_count as number, last_seq: response.json.last_seq as number };
  };
  const unreadNews = async (session: Session, id: number) => {
    await app.notifications.flush();
    const response = await api('GET', '/api/notifications/?unread=true', { token: session.token });
    return (response.json as { kind: string; conversation_id: number; id: number; count: number }[]).filter(
      (n) => n.kind === 'messages.new' && n.conversation_id === id,
    );
  };

  t.test('read markers', async (t) => {
    const [alice, bob, carol] = await Promise.all([register(app), register(app), register(app)]);
    const id = await createConversation(app, alice, [bob]);

    await t.test('forward only, clamped to last_seq, exact unread counts', async (t) => {
      t.same(await state(bob, id), { last_read_seq: 0, unread_count: 0, last_seq: 0 }, 'a new conversation: nothing to read');
      for (const text of ['one', 'two', 'three']) await sendOk(t, alice, id, text);
      t.same(await state(bob, id), { last_read_seq: 0, unread_count: 3, last_seq: 3 }, 'three unread for bob');
      t.same(await state(alice, id), { last_read_seq: 3, unread_count: 0, last_seq: 3 }, 'sending moved alice’s marker: her own messages are not unread');

      const two = await read(bob, id, { seq: 2 });
      t.equal(two.status, 200, two.body);
      t.same(two.json, { last_read_seq: 2, unread_count: 1 });
      t.same(await state(bob, id), { last_read_seq: 2, unread_count: 1, last_seq: 3 }, 'the object agrees');
      t.same((await read(bob, id, { seq: 1 })).json, { last_read_seq: 2, unread_count: 1 }, 'backwards: no change');
      t.same((await read(bob, id, { seq: 0 })).json, { last_read_seq: 2, unread_count: 1 }, 'zero: no change');
      t.same((await read(bob, id, { seq: 2 })).json, { last_read_seq: 2, unread_count: 1 }, 'the same seq again: no change');
      t.same((await read(bob, id, { seq: 1_000_000 })).json, { last_read_seq: 3, unread_count: 0 }, 'past last_seq: clamped to it');
      t.same(await state(bob, id), { last_read_seq: 3, unread_count: 0, last_seq: 3 });
    });

    await t.test('bad input and strangers', async (t) => {
      for (const bad of [-1, 1.5, '2', null, true, {}, [1], 2 ** 53]) {
        expectError(t, await read(bob, id, { seq: bad }), 400, /seq/, `seq ${JSON.stringify(bad)}`);
      }
      expectError(t, await read(bob, id, {}), 400, /seq/, 'no seq');
      expectError(t, await read(carol, id, { seq: 1 }), 404, undefined, 'a non-member');
      expectError(t, await read(carol, MAX_INT4, { seq: 1 }), 404, undefined, 'a conversation that does not exist');
      t.same(await state(bob, id), { last_read_seq: 3, unread_count: 0, last_seq: 3 }, 'nothing changed');
    });

    await t.test('deleted messages and the reader’s own messages', async (t) => {
      const four = await sendOk(t, alice, id, 'four');
      const five = await sendOk(t, alice, id, 'five');
      await sendOk(t, alice, id, 'six');
      t.equal((await state(bob, id)).unread_count, 3);
      t.equal((await api('DELETE', `/api/conversations/${id}/messages/${five.id}/`, { token: alice.token })).status, 204);
      const after = await state(bob, id);
      t.same(after, { last_read_seq: 3, unread_count: 2, last_seq: 7 }, 'a deleted message is not unread (its delete took seq 7)');
      t.same((await read(bob, id, { seq: four.seq })).json, { last_read_seq: 4, unread_count: 1 }, 'the deleted one after the marker is not counted');
      t.same((await read(bob, id, { seq: 7 })).json, { last_read_seq: 7, unread_count: 0 }, 'reading to a non-message event');
      await sendOk(t, bob, id, 'bob answers');
      t.same(await state(bob, id), { last_read_seq: 8, unread_count: 0, last_seq: 8 }, 'bob’s own message is not unread for him');
      t.same(await state(alice, id), { last_read_seq: 6, unread_count: 1, last_seq: 8 }, 'it is for alice');
      await sendOk(t, alice, id, 'alice again');
      t.same(await state(alice, id), { last_read_seq: 9, unread_count: 0, last_seq: 9 }, 'sending reads everything before it');
    });

    await t.test('a member joining late starts with nothing unread', async (t) => {
      // The join rule of INBOX.md (marker at last_seq, read_count at message_count), as the
      // members routes (wip/members) apply it.
      await database.query(sql`
        insert into participants (conversation_id, user_id, last_read_seq, read_count)
        select id, ${carol.user.id}, last_seq, message_count from conversations where id = ${id}`);
      await database.query(sql`update conversations set member_count = member_count + 1 where id = ${id}`);
      t.same(await state(carol, id), { last_read_seq: 9, unread_count: 0, last_seq: 9 }, 'the history before joining is read');
      await sendOk(t, alice, id, 'welcome carol');
      await sendOk(t, bob, id, 'hi carol');
      t.same(await state(carol, id), { last_read_seq: 9, unread_count: 2, last_seq: 11 }, 'what came after is unread');
      t.same((await read(carol, id, { seq: 10 })).json, { last_read_seq: 10, unread_count: 1 });
      const conversation = await api('GET', `/api/conversations/${id}/`, { token: alice.token });
      t.same(conversation.json.participants, [alice.user.username, bob.user.username, carol.user.username], 'the late member is listed last');
      t.equal(conversation.json.member_count, 3);
    });
  });

  t.test('read markers and the "new messages" notification', async (t) => {
    const [alice, bob] = await Promise.all([register(app), register(app)]);
    const id = await createConversation(app, alice, [bob]);
    const first = await sendOk(t, alice, id, 'first');
    await sendOk(t, alice, id, 'second');
    const [news] = await unreadNews(bob, id);
    t.match(news, { count: 2 }, 'bob has one unread notification for two messages');

    t.same((await read(bob, id, { seq: first.seq })).json, { last_read_seq: 1, unread_count: 1 });
    t.equal((await unreadNews(bob, id)).length, 1, 'reading part of it leaves the notification unread');
    t.same((await read(bob, id, { seq: 2 })).json, { last_read_seq: 2, unread_count: 0 });
    t.same(await unreadNews(bob, id), [], 'reading up to the newest message reads the notification');
    const all = await api('GET', '/api/notifications/', { token: bob.token });
    t.match(all.json.find((n: { id: number }) => n.id === news!.id), { is_read: true });

    await sendOk(t, alice, id, 'third');
    t.equal((await unreadNews(bob, id)).length, 1, 'a later message: a new unread notification');
    await sendOk(t, bob, id, 'bob answers');
    t.same(await unreadNews(bob, id), [], 'sending counts as reading: the sender’s notification is read at the flush');
    t.same((await unreadNews(alice, id)).map((n) => n.count), [1], 'and alice hears of bob’s message');

    // A recipient who read the message before the flush is not notified of it (or, if the
    // flush came first, reading read the notification): either way nothing is left unread.
    await sendOk(t, bob, id, 'bob again');
    t.same((await read(alice, id, { seq: 1_000 })).json, { last_read_seq: 5, unread_count: 0 });
    t.same(await unreadNews(alice, id), [], 'nothing unread for alice');
  });
}
