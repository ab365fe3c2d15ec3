/**
 * The inbox (API.md version 2): the conversation object's new fields, the list's order and
 * its opaque cursor, `participants` capped at 100 with the caller first, `last_message`.
 */
import { sql } from 'drizzle-orm';
import type { Test } from 'tap';
import { createConversation, randomName, register } from '../helpers/api.js';
import { INBOX_TRACKED_MEMBERS } from '../../src/conversations/inbox-order.js';
import { expectError, ids, ISO, nextLink, type RestContext } from '../helpers/rest-context.js';

export function restInboxSuite(t: Test, context: RestContext): void {
  const { app, api, sendOk, database, insertUsers } = context;

  t.test('inbox: conversation fields and last_message', async (t) => {
    const [alice, bob] = await Promise.all([register(app), register(app)]);
    const id = await createConversation(app, alice, [bob]);
    const empty = await api('GET', `/api/conversations/${id}/`, { token: bob.token });
    t.same(
      { ...empty.json, created_at: undefined },
      {
        id,
        participants: [bob.user.username, alice.user.username],
        created_at: undefined,
        last_message_at: null,
        last_seq: 0,
        title: null,
        kind: 'group',
        member_count: 2,
        last_message: null,
        last_read_seq: 0,
        unread_count: 0,
      },
      'every field, the caller first',
    );
    t.match(empty.json.created_at, ISO);

    await sendOk(t, alice, id, 'hello');
    const newest = await sendOk(t, bob, id, 'hi there');
    const history = await api('GET', `/api/conversations/${id}/messages/`, { token: alice.token });
    const got = await api('GET', `/api/conversations/${id}/`, { token: alice.token });
    t.same(got.json.last_message, history.json.at(-1), 'last_message is the newest message as history renders it');
    t.equal(got.json.last_message.id, newest.id);
    t.match(got.json, { last_seq: 2, last_read_seq: 1, unread_count: 1, last_message_at: ISO });

    t.equal((await api('DELETE', `/api/conversations/${id}/messages/${newest.id}/`, { token: bob.token })).status, 204);
    const deleted = await api('GET', `/api/conversations/${id}/`, { token: alice.token });
    t.match(deleted.json.last_message, { id: newest.id, is_deleted: true, content: '', attachments: [] }, 'a deleted newest message shows as deleted');
    t.equal(deleted.json.unread_count, 0, 'and is not unread');
    const listed = await api('GET', '/api/conversations/', { token: alice.token });
    t.same(listed.json.find((c: { id: number }) => c.id === id), deleted.json, 'the list item is the same object');
  });

  t.test('inbox: newest activity first, paged by an opaque cursor', async (t) => {
    const [x, y] = await Promise.all([register(app), register(app)]);
    const created: number[] = [];
    for (let i = 0; i < 7; i++) created.push(await createConversation(app, x, [y]));
    // Activity: c2 and c5 get messages (c5 last), the rest keep their creation time.
    await sendOk(t, y, created[2]!, 'wake 2');
    await sendOk(t, y, created[5]!, 'wake 5');
    // x's inbox moves with the notification flush (at most NOTIFY_FLUSH_MS after the sends).
    await app.notifications.flush();
    const expected = [created[5], created[2], created[6], created[4], created[3], created[1], created[0]];

    const whole = await api('GET', '/api/conversations/', { token: x.token });
    t.same(ids(whole), expected, 'newest activity first');
    t.equal(whole.headers.link, undefined, 'one page: no Link');

    const pages: number[][] = [];
    let path: string | undefined = '/api/conversations/?limit=3';
    while (path) {
      const page = await api('GET', path, { token: x.token });
      t.equal(page.status, 200, path);
      pages.push(ids(page));
      path = nextLink(page);
      if (path) t.match(path, /^\/api\/conversations\/\?limit=3&before=[A-Za-z0-9_-]+$/, 'the next page keeps the limit');
      if (pages.length > 5) break;
    }
    t.same(pages.map((p) => p.length), [3, 3, 1], 'three pages');
    t.same(pages.flat(), expected, 'each conversation once, in order');

    // Activity moves while paging: a conversation that wakes up moves to the front, and the
    // pages after the cursor still hold each older one once.
    const first = await api('GET', '/api/conversations/?limit=3', { token: x.token });
    await sendOk(t, y, created[0]!, 'wake 0');
    await app.notifications.flush();
    const rest: number[] = [];
    for (let next = nextLink(first); next; ) {
      const page = await api('GET', next, { token: x.token });
      rest.push(...ids(page));
      next = nextLink(page);
    }
    t.same(rest, expected.slice(3, 6), 'the woken one left the older pages; none repeats');

    for (const bad of ['garbage!', 'bm90IGEgY3Vyc29y', Buffer.from('2024-13-45T99:00:00.000000|5').toString('base64url'),
      Buffer.from('2024-01-01T00:00:00.000000|0').toString('base64url'), Buffer.from('2024-01-01T00:00:00.000000|99999999999').toString('base64url'), '']) {
      expectError(t, await api('GET', `/api/conversations/?before=${encodeURIComponent(bad)}`, { token: x.token }), 400, /before/, `cursor ${JSON.stringify(bad)}`);
    }
    expectError(t, await api('GET', '/api/conversations/?limit=501', { token: x.token }), 400, /limit/, 'limit over 500');
    t.equal((await api('GET', '/api/conversations/?limit=500', { token: x.token })).status, 200, 'limit 500');
  });

  t.test('inbox: participants name at most 100 members, the caller first', async (t) => {
    const owner = await register(app);
    const names = Array.from({ length: 120 }, () => randomName('m'));
    await insertUsers(names);
    const response = await api('POST', '/api/conversations/', { token: owner.token, body: { participants: names } });
    t.equal(response.status, 201, response.body);
    const id = response.json.id as number;
    t.equal(response.json.member_count, 121, 'member_count counts everyone');
    t.equal(response.json.participants.length, 100, 'participants: at most 100');
    t.equal(response.json.participants[0], owner.user.username, 'the caller first');

    const rows = await database.query<{ id: number; username: string }>(
      sql`select u.id, u.username from participants p join users u on u.id = p.user_id
           where p.conversation_id = ${id} order by p.joined_at, p.user_id`,
    );
    const inJoiningOrder = rows.map((r) => r.username);
    t.same(response.json.participants.slice(1), inJoiningOrder.filter((n) => n !== owner.user.username).slice(0, 99), 'then joining order');

    const member = rows.find((r) => r.username === names[110])!;
    const token = app.signToken({ id: Number(member.id), username: member.username });
    const seen = await api('GET', `/api/conversations/${id}/`, { token });
    t.equal(seen.status, 200);
    t.equal(seen.json.participants[0], member.username, 'another member sees themselves first');
    t.equal(seen.json.participants.length, 100);
    t.equal(new Set(seen.json.participants).size, 100, 'nobody twice');
    const listed = await api('GET', '/api/conversations/', { token });
    t.same(listed.json, [seen.json], 'the list gives the same object');
  });

  t.test('inbox: a conversation above INBOX_TRACKED_MEMBERS is ordered by its own activity, and tracked again below it', async (t) => {
    const [x, y] = await Promise.all([register(app), register(app)]);
    const names = Array.from({ length: INBOX_TRACKED_MEMBERS }, () => randomName('l'));
    await insertUsers(names);
    const large = await api('POST', '/api/conversations/', { token: x.token, body: { participants: [y.user.id, ...names] } });
    t.equal(large.status, 201, large.body);
    const big = large.json.id as number;
    const small = await createConversation(app, x, [y]);
    const flags = async () =>
      (await database.query<{ large: boolean }>(sql`select distinct large from participants where conversation_id = ${big}`)).map((r) => r.large);
    t.same(await flags(), [true], `${INBOX_TRACKED_MEMBERS + 2} members: every membership flagged large`);
    const order = async () => ids(await api('GET', '/api/conversations/', { token: x.token }));
    t.same(await order(), [small, big], 'newest first');

    // No flush in between: a large conversation's place is read from the conversation itself.
    await sendOk(t, y, big, 'to everyone');
    t.same(await order(), [big, small], 'a message in the large one moves it first at once');
    await sendOk(t, y, small, 'to x');
    await app.notifications.flush();
    t.same(await order(), [small, big]);

    // Down to the threshold: tracked again, starting from the conversation's activity.
    const ownerToken = x.token;
    const members = await api('GET', `/api/conversations/${big}/members/?limit=1000`, { token: ownerToken });
    const removable = (members.json as { id: number; role: string }[]).filter((m) => m.id !== x.user.id && m.id !== y.user.id).slice(0, 2);
    for (const member of removable) {
      t.equal((await api('DELETE', `/api/conversations/${big}/members/${member.id}/`, { token: ownerToken })).status, 204);
    }
    t.same(await flags(), [false], `${INBOX_TRACKED_MEMBERS} members: tracked again`);
    t.same(await order(), [small, big], 'the order holds across the switch');
    await sendOk(t, y, big, 'tracked now');
    await app.notifications.flush();
    t.same(await order(), [big, small], 'and follows messages through the flush');
  });
}
