/**
 * Mentions and large conversations (API.md version 2, "Large conversations and mentions"):
 * `@username` of a member fills `mentions` and makes one `mention` notification per mentioned
 * member per message (not the sender); e-mail addresses, non-members and oneself notify
 * nobody; thousands of `@` make at most one each; past NOTIFY_MAX_MEMBERS a message notifies
 * only its mentions while unread counts still count it.
 */
import { sql } from 'drizzle-orm';
import type { Test } from 'tap';
import { createMemoryBus } from '../../src/bus/bus-memory.js';
import { createConversation, register, type Session } from '../helpers/api.js';
import { buildTestApp } from '../helpers/app.js';
import type { RestContext } from '../helpers/rest-context.js';

interface NotificationRow {
  id: number;
  kind: string;
  conversation_id: number;
  message_id: number;
  message: string;
}

export function restMentionsSuite(t: Test, context: RestContext): void {
  const { app, api, req, database } = context;
  const notifications = async (session: Session, target = app) => {
    await target.notifications.flush();
    const response = await req(target, 'GET', '/api/notifications/?limit=200', { token: session.token });
    return response.json as NotificationRow[];
  };
  const mentionsOf = async (session: Session, target = app) => (await notifications(session, target)).filter((n) => n.kind === 'mention');
  const send = async (session: Session, cid: number, content: string, target = app) => {
    const response = await req(target, 'POST', `/api/conversations/${cid}/messages/`, { token: session.token, body: { content } });
    if (response.status !== 201) throw new Error(`send: ${response.status} ${response.body}`);
    return response.json as { id: number; mentions: string[]; seq: number };
  };

  t.test('mentions: who is mentioned, who is notified', async (t) => {
    const [alice, bob, carol, stranger] = await Promise.all([register(app), register(app), register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob, carol]);
    const B = bob.user.username;
    const C = carol.user.username;

    const plain = await send(alice, cid, 'no mention here');
    t.same(plain.mentions, [], 'a message without @ mentions nobody');

    const one = await send(alice, cid, `hi @${B.toUpperCase()}, see ${B}@example.com and mail@${C}`);
    t.same(one.mentions, [B], 'case-insensitive, as registered; an e-mail address and mail@name are no mentions');
    t.same((await mentionsOf(bob)).map((n) => [n.message_id, n.conversation_id]), [[one.id, cid]], 'bob gets one mention notification');
    t.match((await mentionsOf(bob))[0]?.message, new RegExp(`^${alice.user.username} mentioned you: hi @`), 'it names the sender and quotes the text');
    t.same(await mentionsOf(carol), [], 'carol, only in an address, gets none');

    const both = await send(alice, cid, `@${C}. and (@${B}) and @${alice.user.username} and @${stranger.user.username}`);
    const expected = [B, C, alice.user.username].sort((x, y) => x.toLowerCase().localeCompare(y.toLowerCase()));
    t.same(both.mentions, expected, 'trailing punctuation is not part of the name; the sender is a member mentioned too');
    t.notOk(both.mentions.includes(stranger.user.username), 'a non-member is not mentioned');
    t.same(await mentionsOf(alice), [], 'mentioning oneself notifies nobody');
    t.same(await mentionsOf(stranger), [], 'a non-member is notified of nothing');
    t.equal((await mentionsOf(carol)).length, 1, 'carol now has one');

    // As many mentions as fit in MAX_MESSAGE_LENGTH, and a thousand more bare @.
    const many = await send(alice, cid, `${Array.from({ length: 200 }, (_, i) => (i % 2 ? `@${B}` : `@${C.toUpperCase()}`)).join(' ')} ${'@'.repeat(500)} ${'@ '.repeat(250)}`);
    t.equal(many.mentions.length, 2, 'thousands of @: each member once');
    const bobs = (await mentionsOf(bob)).filter((n) => n.message_id === many.id);
    t.equal(bobs.length, 1, 'bob: one notification for the message');
    t.equal((await mentionsOf(carol)).filter((n) => n.message_id === many.id).length, 1, 'carol: one');

    const history = await api('GET', `/api/conversations/${cid}/messages/`, { token: bob.token });
    t.same(history.json.map((m: { mentions: string[] }) => m.mentions.length), [0, 1, 3, 2], 'history carries mentions');
    const edited = await api('PATCH', `/api/conversations/${cid}/messages/${one.id}/`, { token: alice.token, body: { content: `now @${C}` } });
    t.same(edited.json.mentions, [C], 'an edit re-reads the mentions');
    t.equal((await api('DELETE', `/api/conversations/${cid}/messages/${one.id}/`, { token: alice.token })).status, 204);
    const after = await api('GET', `/api/conversations/${cid}/messages/`, { token: bob.token });
    t.same(after.json.find((m: { id: number }) => m.id === one.id).mentions, [], 'a deleted message mentions nobody');

    const rows = await database.query<{ count: unknown }>(
      sql`select count(*) as count from notifications where kind = 'mention' and conversation_id = ${cid}`,
    );
    t.equal(Number(rows[0]?.count), 5, 'five mention rows in all (bob 3, carol 2): one per member per message');
  });

  t.test('NOTIFY_MAX_MEMBERS: past it only mentions notify; unread counts carry the rest', async (t) => {
    const small = await buildTestApp(t, { database, bus: createMemoryBus(), env: { NOTIFY_MAX_MEMBERS: '2' } });
    const people = await Promise.all(Array.from({ length: 4 }, () => register(small)));
    const [alice, bob, carol, dan] = people as [Session, Session, Session, Session];
    const big = await createConversation(small, alice, [bob, carol, dan]);
    const pair = await createConversation(small, alice, [bob]);
    await send(alice, big, 'hello everyone', small);
    await send(alice, big, `@${carol.user.username} look`, small);
    await send(alice, pair, 'just us', small);
    const news = async (session: Session, cid: number) => (await notifications(session, small)).filter((n) => n.kind === 'messages.new' && n.conversation_id === cid);
    t.same(await news(bob, big), [], 'a conversation of 4 > 2: no "new messages" notification');
    t.same(await news(carol, big), [], 'not for carol either');
    t.equal((await mentionsOf(carol, small)).length, 1, 'carol gets her mention');
    t.equal((await news(bob, pair)).length, 1, 'a conversation of 2 still notifies');
    const state = await req(small, 'GET', `/api/conversations/${big}/`, { token: dan.token });
    t.equal(state.json.unread_count, 2, 'dan’s unread count counts both messages');
  });
}
