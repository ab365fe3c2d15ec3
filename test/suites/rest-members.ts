/**
 * Membership (API.md version 2, "Conversations: members, roles, direct conversations, the
 * inbox"): titles and direct conversations at creation, the members list, adding, removing
 * and leaving (owner succession), roles and renames, every refusal INBOX.md lists, the
 * events they write (seq, stored payload, message_count) and their replay by last_seq.
 */
import { sql } from 'drizzle-orm';
import type { Test } from 'tap';
import { createMemoryBus } from '../../src/bus/bus-memory.js';
import { NotificationBatcher } from '../../src/notifications/batcher.js';
import { decodeEvent } from '../../src/messages/event-codec.js';
import { readEvents } from '../../src/messages/event-log.js';
import { conversationChannel } from '../../src/redis/names.js';
import { toNumber } from '../../src/db/sql.js';
import { createConversation, randomName, register, type Session } from '../helpers/api.js';
import { buildTestApp } from '../helpers/app.js';
import { within } from '../helpers/within.js';
import { ISO, MAX_INT4, expectError, expectGapFree, nextLink, type RestContext } from '../helpers/rest-context.js';

const PASSWORD = 'correct horse battery';

/** `N` sessions as a tuple, so destructured users need no assertion. */
type Sessions<N extends number, R extends Session[] = []> = R['length'] extends N ? R : Sessions<N, [Session, ...R]>;

export function restMembersSuite(t: Test, context: RestContext): void {
  const { database, app, req, api, sendOk, events } = context;

  const path = (cid: number, userId?: number) => `/api/conversations/${cid}/members/${userId === undefined ? '' : `${userId}/`}`;
  const list = (s: Session, cid: number, query = '') => api('GET', `${path(cid)}${query}`, { token: s.token });
  const add = (s: Session, cid: number, participants: unknown[]) => api('POST', path(cid), { token: s.token, body: { participants } });
  const remove = (s: Session, cid: number, userId: number) => api('DELETE', path(cid, userId), { token: s.token });
  const setRole = (s: Session, cid: number, userId: number, role: unknown) => api('PATCH', path(cid, userId), { token: s.token, body: { role } });
  const rename = (s: Session, cid: number, title: unknown) => api('PATCH', `/api/conversations/${cid}/`, { token: s.token, body: { title } });
  const create = (s: Session, body: object) => api('POST', '/api/conversations/', { token: s.token, body });

  const conversationRow = async (cid: number) => {
    const [row] = await database.query<{ title: string | null; kind: string; direct_key: string | null; member_count: number; message_count: unknown; last_seq: unknown }>(
      sql`select title, kind, direct_key, member_count, message_count, last_seq from conversations where id = ${cid}`,
    );
    return row && { ...row, message_count: toNumber(row.message_count), last_seq: toNumber(row.last_seq) };
  };
  const roles = async (cid: number): Promise<Record<string, string>> => {
    const rows = await database.query<{ username: string; role: string }>(sql`
      select u.username, p.role from participants p join users u on u.id = p.user_id where p.conversation_id = ${cid} order by u.username`);
    return Object.fromEntries(rows.map((r) => [r.username, r.role]));
  };
  const eventRows = async (cid: number) =>
    (
      await database.query<{ seq: unknown; kind: number; user_id: number | null; payload: string | null; message_count: unknown }>(
        sql`select seq, kind, user_id, payload, message_count from conversation_events where conversation_id = ${cid} order by seq`,
      )
    ).map((r) => ({ ...r, seq: toNumber(r.seq), message_count: toNumber(r.message_count) }));
  const userRef = (s: Session) => ({ id: s.user.id, username: s.user.username });
  const people = <N extends number>(n: N) => Promise.all(Array.from({ length: n }, () => register(app))) as Promise<Sessions<N>>;

  // ---------------------------------------------------------------------------------------
  t.test('members: creating groups and direct conversations', async (t) => {
    const [alice, bob, carol] = await people(3);

    t.test('a group: title, its creator owner, member_count; a plain POST makes a new one each time', async (t) => {
      const made = await create(alice, { participants: [bob.user.id, carol.user.username], title: '  Trip planning  ' });
      t.equal(made.status, 201, made.body);
      const row = await conversationRow(made.json.id);
      t.match(row, { title: 'Trip planning', kind: 'group', direct_key: null, member_count: 3 }, 'title trimmed, a group of three');
      t.same(await roles(made.json.id), { [alice.user.username]: 'owner', [bob.user.username]: 'member', [carol.user.username]: 'member' });
      const again = await create(alice, { participants: [bob.user.id, carol.user.username], title: 'Trip planning' });
      t.equal(again.status, 201);
      t.not(again.json.id, made.json.id, 'the same POST again is another conversation');
      const untitled = await create(alice, { participants: [bob.user.id] });
      t.equal((await conversationRow(untitled.json.id))?.title, null, 'no title: null');
      const notDirect = await create(alice, { participants: [bob.user.id], direct: false });
      t.equal(notDirect.status, 201);
      t.equal((await conversationRow(notDirect.json.id))?.kind, 'group', 'direct: false is a group');
    });

    t.test('direct: one per pair, 201 then 200, from either side', async (t) => {
      const [x, y] = await people(2);
      const first = await create(x, { participants: [y.user.id], direct: true });
      t.equal(first.status, 201, first.body);
      t.match(first.json, { id: Number, participants: [x.user.username, y.user.username], created_at: ISO });
      const row = await conversationRow(first.json.id);
      t.match(row, { kind: 'direct', title: null, member_count: 2 });
      t.equal(row?.direct_key, `${Math.min(x.user.id, y.user.id)}:${Math.max(x.user.id, y.user.id)}`);
      t.same(await roles(first.json.id), { [x.user.username]: 'member', [y.user.username]: 'member' }, 'no roles in a direct conversation');
      const again = await create(x, { participants: [y.user.username.toUpperCase()], direct: true });
      t.equal(again.status, 200, 'existing: 200');
      t.equal(again.json.id, first.json.id, 'the same conversation');
      const fromOther = await create(y, { participants: [x.user.id, y.user.id], direct: true });
      t.equal(fromOther.status, 200, 'from the other side (naming oneself too): 200');
      t.equal(fromOther.json.id, first.json.id);
      const group = await create(x, { participants: [y.user.id] });
      t.equal(group.status, 201, 'a plain POST still makes a group');
      t.not(group.json.id, first.json.id);
      const notices = await database.query<{ n: number }>(sql`
        select count(*)::int as n from notifications where user_id = ${y.user.id} and conversation_id = ${first.json.id}`);
      t.equal(notices[0]?.n, 1, 'one conversation.added notice, not one per request');
    });

    t.test('direct: racing requests from both sides make one conversation', async (t) => {
      const [x, y] = await people(2);
      const responses = await Promise.all(
        Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? create(x, { participants: [y.user.id], direct: true }) : create(y, { participants: [x.user.id], direct: true }))),
      );
      t.same(responses.map((r) => r.status).sort(), [200, 200, 200, 200, 200, 200, 200, 201], 'one 201, the rest 200');
      t.equal(new Set(responses.map((r) => r.json.id)).size, 1, 'all the same conversation');
      const key = `${Math.min(x.user.id, y.user.id)}:${Math.max(x.user.id, y.user.id)}`;
      const rows = await database.query<{ n: number; members: number }>(sql`
        select count(*)::int as n, (select count(*)::int from participants p join conversations c on c.id = p.conversation_id where c.direct_key = ${key}) as members
          from conversations where direct_key = ${key}`);
      t.same(rows[0], { n: 1, members: 2 }, 'one row, two members');
    });

    t.test('refused: direct with two others or oneself, a title on a direct one, titles too long or empty', async (t) => {
      const before = await database.query<{ n: number }>(sql`select count(*)::int as n from conversations`);
      expectError(t, await create(alice, { participants: [bob.user.id, carol.user.id], direct: true }), 400, /participants/, 'direct with two others');
      expectError(t, await create(alice, { participants: [alice.user.id], direct: true }), 400, /participants/, 'direct with oneself');
      expectError(t, await create(alice, { participants: [alice.user.username, alice.user.id], direct: true }), 400, /participants/, 'direct with oneself twice');
      expectError(t, await create(alice, { participants: [MAX_INT4], direct: true }), 400, new RegExp(String(MAX_INT4)), 'direct with an unknown user');
      expectError(t, await create(alice, { participants: [bob.user.id], direct: true, title: 'x' }), 400, /title/, 'direct with a title');
      expectError(t, await create(alice, { participants: [bob.user.id], title: 'x'.repeat(101) }), 400, /title/, 'title of 101 characters');
      expectError(t, await create(alice, { participants: [bob.user.id], title: '' }), 400, /title/, 'empty title');
      expectError(t, await create(alice, { participants: [bob.user.id], title: '   ' }), 400, /title/, 'blank title');
      expectError(t, await create(alice, { participants: [bob.user.id], title: 7 }), 400, /title/, 'title not a string');
      expectError(t, await create(alice, { participants: [bob.user.id], title: 'a\u0000b' }), 400, /title/, 'NUL in a title');
      expectError(t, await create(alice, { participants: [bob.user.id], direct: 'yes' }), 400, /direct/, 'direct not a boolean');
      t.equal((await create(alice, { participants: [bob.user.id], title: 'x'.repeat(100) })).status, 201, '100 characters is fine');
      const after = await database.query<{ n: number }>(sql`select count(*)::int as n from conversations`);
      t.equal(after[0]?.n, (before[0]?.n ?? 0) + 1, 'no refused request stored a conversation');
    });
  });

  // ---------------------------------------------------------------------------------------
  t.test('members: the list, by user id, paged', async (t) => {
    const everyone = await people(5);
    const [owner, ...others] = everyone as [Session, ...Session[]];
    const cid = await createConversation(app, owner, others);
    const all = await list(owner, cid);
    t.equal(all.status, 200, all.body);
    const sortedIds = everyone.map((s) => s.user.id).sort((a, b) => a - b);
    t.same(all.json.map((m: { id: number }) => m.id), sortedIds, 'ordered by user id');
    t.match(all.json.find((m: { id: number }) => m.id === owner.user.id), { id: owner.user.id, username: owner.user.username, role: 'owner', last_read_seq: 0, joined_at: ISO });
    t.same(Object.keys(all.json[0]).sort(), ['id', 'joined_at', 'last_read_seq', 'role', 'username']);
    t.equal(all.headers.link, undefined, 'everything on one page: no Link');

    const pageOne = await list(others[0]!, cid, '?limit=2');
    t.same(pageOne.json.map((m: { id: number }) => m.id), sortedIds.slice(0, 2), 'limit=2');
    const next = nextLink(pageOne);
    t.equal(next, `${path(cid)}?limit=2&after=${sortedIds[1]}`, 'rel=next continues after the last id');
    const pageTwo = await api('GET', next!, { token: others[0]!.token });
    t.same(pageTwo.json.map((m: { id: number }) => m.id), sortedIds.slice(2, 4));
    const pageThree = await api('GET', nextLink(pageTwo)!, { token: others[0]!.token });
    t.same(pageThree.json.map((m: { id: number }) => m.id), sortedIds.slice(4), 'the last page');
    t.equal(nextLink(pageThree), undefined, 'and no next');
    const beyond = await list(owner, cid, `?after=${sortedIds.at(-1)}`);
    t.same([beyond.status, beyond.json], [200, []], 'after the last id: an empty page');

    for (const bad of ['?limit=0', '?limit=1001', '?limit=x', '?after=0', '?after=-1', `?after=${MAX_INT4 + 1}`, '?after=abc']) {
      expectError(t, await list(owner, cid, bad), 400, /limit|after/, `members${bad}`);
    }
    t.equal((await list(owner, cid, '?limit=1000')).status, 200, 'limit=1000 is the maximum');
    const [outsider] = await people(1);
    expectError(t, await list(outsider!, cid), 404, undefined, 'a non-member');
    expectError(t, await list(owner, MAX_INT4), 404, undefined, 'a conversation that does not exist');
  });

  // ---------------------------------------------------------------------------------------
  t.test('members: adding', async (t) => {
    const [owner, admin, member, newcomer, later, outsider] = await people(6);
    const cid = await createConversation(app, owner!, [admin!, member!]);
    t.equal((await setRole(owner!, cid, admin!.user.id, 'admin')).status, 200);
    await sendOk(t, member!, cid, 'before anyone new');
    await sendOk(t, owner!, cid, 'and another');

    const added = await add(admin!, cid, [newcomer!.user.username.toUpperCase(), member!.user.id, newcomer!.user.id]);
    t.equal(added.status, 200, added.body);
    t.equal(added.json.id, cid, 'answers with the conversation');
    t.ok(added.json.participants.includes(newcomer!.user.username), 'the newcomer is among its participants');
    const row = await conversationRow(cid);
    t.equal(row?.member_count, 4, 'member_count kept');
    const log = await events(cid);
    const event = log.at(-1);
    t.same(event, { type: 'member.added', seq: 4, conversation_id: cid, users: [userRef(newcomer!)], by: userRef(admin!) }, 'one member.added, the member already in left out');
    const [marker] = await database.query<{ last_read_seq: unknown; read_count: unknown; role: string }>(sql`
      select last_read_seq, read_count, role from participants where conversation_id = ${cid} and user_id = ${newcomer!.user.id}`);
    t.same(
      [toNumber(marker?.last_read_seq), toNumber(marker?.read_count), marker?.role],
      [4, row?.message_count, 'member'],
      'marker at the join (its own event), read_count = the conversation\'s message_count, role member',
    );
    const notices = await database.query<{ kind: string }>(sql`
      select kind from notifications where user_id = ${newcomer!.user.id} and conversation_id = ${cid}`);
    t.same(notices.map((n) => n.kind), ['conversation.added'], 'the newcomer is told');
    const history = await api('GET', `/api/conversations/${cid}/messages/`, { token: newcomer!.token });
    t.same(history.json.map((m: { content: string }) => m.content), ['before anyone new', 'and another'], 'a new member sees the whole history');

    const again = await add(owner!, cid, [newcomer!.user.id, member!.user.username]);
    t.equal(again.status, 200, 'only members already in: 200');
    t.equal((await events(cid)).length, log.length, 'and no event');

    const unknown = randomName('ghost');
    expectError(t, await add(owner!, cid, [later!.user.id, unknown]), 400, new RegExp(unknown), 'an unknown username');
    expectError(t, await add(owner!, cid, [later!.user.id, MAX_INT4]), 400, new RegExp(String(MAX_INT4)), 'an unknown id');
    t.equal((await roles(cid))[later!.user.username], undefined, 'nothing partial: the known user was not added either');
    for (const bad of [[], [0], [''], [true], ['x'.repeat(33)]]) expectError(t, await add(owner!, cid, bad), 400, /participants/, `participants ${JSON.stringify(bad)}`);
    expectError(t, await api('POST', path(cid), { token: owner!.token, body: {} }), 400, /participants/, 'no participants');
    expectError(t, await add(member!, cid, [later!.user.id]), 403, /owner and admins/, 'a plain member');
    expectError(t, await add(outsider!, cid, [later!.user.id]), 404, undefined, 'a non-member');
    expectError(t, await add(owner!, MAX_INT4, [later!.user.id]), 404, undefined, 'a conversation that does not exist');
    t.equal((await conversationRow(cid))?.member_count, 4);
    t.equal((await events(cid)).length, log.length, 'no refusal wrote an event or used a seq');

    t.test('past MAX_PARTICIPANTS: 400, nobody added', async (t) => {
      const limited = await buildTestApp(t, { database, bus: createMemoryBus(), env: { MAX_PARTICIPANTS: '5' } });
      const [p, q] = await people(2);
      const response = await req(limited, 'POST', path(cid), { token: owner!.token, body: { participants: [later!.user.id, p!.user.id] } });
      expectError(t, response, 400, /at most 5/, 'six members');
      t.equal((await conversationRow(cid))?.member_count, 4, 'member_count unchanged');
      t.equal((await roles(cid))[later!.user.username], undefined, 'nobody added');
      const fits = await req(limited, 'POST', path(cid), { token: owner!.token, body: { participants: [later!.user.id] } });
      t.equal(fits.status, 200, 'five fit');
      t.equal((await conversationRow(cid))?.member_count, 5);
      expectError(t, await req(limited, 'POST', path(cid), { token: owner!.token, body: { participants: [q!.user.id] } }), 400, /participants/, 'one more');
    });
  });

  // ---------------------------------------------------------------------------------------
  t.test('members: roles', async (t) => {
    const [owner, a, b, outsider] = await people(4);
    const cid = await createConversation(app, owner!, [a!, b!]);
    const other = await createConversation(app, owner!, [outsider!]);
    const promoted = await setRole(owner!, cid, a!.user.id, 'admin');
    t.equal(promoted.status, 200, promoted.body);
    t.match(promoted.json, { id: a!.user.id, username: a!.user.username, role: 'admin', last_read_seq: 0, joined_at: ISO });
    t.same((await events(cid)).at(-1), { type: 'member.role', seq: 1, conversation_id: cid, user: userRef(a!), role: 'admin' });
    const same = await setRole(owner!, cid, a!.user.id, 'admin');
    t.same([same.status, same.json.role], [200, 'admin'], 'unchanged: 200');
    t.equal((await events(cid)).length, 1, 'and no event');

    expectError(t, await setRole(a!, cid, b!.user.id, 'admin'), 403, /owner/, 'an admin changing roles');
    expectError(t, await setRole(b!, cid, b!.user.id, 'admin'), 403, /owner/, 'a member promoting themselves');
    expectError(t, await setRole(owner!, cid, owner!.user.id, 'member'), 403, /owner/, 'the owner demoting themselves');
    for (const role of ['owner', 'superuser', 'ADMIN', '', null, 1]) {
      expectError(t, await setRole(owner!, cid, b!.user.id, role), 400, /role/, `role ${JSON.stringify(role)}`);
    }
    expectError(t, await api('PATCH', path(cid, b!.user.id), { token: owner!.token, body: {} }), 400, /role/, 'no role');
    expectError(t, await setRole(owner!, cid, outsider!.user.id, 'admin'), 404, /member/, 'a user of another conversation');
    expectError(t, await setRole(owner!, cid, MAX_INT4, 'admin'), 404, /member/, 'an unknown user');
    expectError(t, await setRole(outsider!, cid, b!.user.id, 'admin'), 404, undefined, 'a non-member');
    expectError(t, await setRole(owner!, other, b!.user.id, 'admin'), 404, /member/, 'a member of another conversation of the caller');
    expectError(t, await api('PATCH', `${path(cid)}0/`, { token: owner!.token, body: { role: 'admin' } }), 400, /user_id/, 'user id 0');
    const demoted = await setRole(owner!, cid, a!.user.id, 'member');
    t.same([demoted.status, demoted.json.role], [200, 'member'], 'back to member');
    t.same((await roles(cid))[a!.user.username], 'member');
    expectGapFree(t, (await events(cid)).map((e) => e.seq), 'role events');
  });

  // ---------------------------------------------------------------------------------------
  t.test('members: removing, leaving, owner succession', async (t) => {
    const [owner, admin1, admin2, m1, m2, outsider] = await people(6);
    const cid = await createConversation(app, owner!, [m1!, admin2!, m2!]);
    const elsewhere = await createConversation(app, outsider!, [owner!]);
    t.equal((await add(owner!, cid, [admin1!.user.id])).status, 200);
    // admin2 joined (with the conversation) before admin1, who was promoted first: joining order decides.
    t.equal((await setRole(owner!, cid, admin1!.user.id, 'admin')).status, 200);
    t.equal((await setRole(owner!, cid, admin2!.user.id, 'admin')).status, 200);
    await sendOk(t, m1!, cid, 'hello');

    expectError(t, await remove(m1!, cid, m2!.user.id), 403, /owner and admins/, 'a member removing another');
    expectError(t, await remove(m1!, cid, owner!.user.id), 403, /owner/, 'a member removing the owner');
    expectError(t, await remove(admin1!, cid, owner!.user.id), 403, /owner/, 'an admin removing the owner');
    expectError(t, await remove(owner!, cid, outsider!.user.id), 404, /member/, 'someone who is not a member');
    expectError(t, await remove(owner!, elsewhere, MAX_INT4), 404, /member/, 'an unknown user');
    expectError(t, await remove(outsider!, cid, m1!.user.id), 404, undefined, 'a non-member');
    expectError(t, await remove(owner!, MAX_INT4, m1!.user.id), 404, undefined, 'a conversation that does not exist');
    t.equal((await conversationRow(cid))?.member_count, 5, 'nothing removed');

    const removed = await remove(admin1!, cid, m2!.user.id);
    t.equal(removed.status, 204, removed.body);
    t.same((await events(cid)).at(-1), { type: 'member.removed', seq: 5, conversation_id: cid, user: userRef(m2!), by: userRef(admin1!) });
    t.equal((await conversationRow(cid))?.member_count, 4);
    expectError(t, await api('GET', `/api/conversations/${cid}/`, { token: m2!.token }), 404, undefined, 'the removed member: the conversation');
    expectError(t, await api('GET', `/api/conversations/${cid}/messages/`, { token: m2!.token }), 404, undefined, 'its history');
    expectError(t, await api('POST', `/api/conversations/${cid}/messages/`, { token: m2!.token, body: { content: 'x' } }), 404, undefined, 'sending');
    expectError(t, await list(m2!, cid), 404, undefined, 'its members');
    expectError(t, await remove(m2!, cid, m2!.user.id), 404, undefined, 'leaving again');

    t.equal((await remove(m1!, cid, m1!.user.id)).status, 204, 'a member leaves');
    t.same((await events(cid)).at(-1), { type: 'member.removed', seq: 6, conversation_id: cid, user: userRef(m1!), by: userRef(m1!) }, 'by: themselves');

    t.equal((await remove(owner!, cid, owner!.user.id)).status, 204, 'the owner leaves');
    const log = await events(cid);
    t.same(log.slice(-2), [
      { type: 'member.removed', seq: 7, conversation_id: cid, user: userRef(owner!), by: userRef(owner!) },
      { type: 'member.role', seq: 8, conversation_id: cid, user: userRef(admin2!), role: 'owner' },
    ], 'member.removed, then the longest-standing admin becomes owner: two seqs');
    t.same(await roles(cid), { [admin1!.user.username]: 'admin', [admin2!.user.username]: 'owner' });
    expectGapFree(t, log.map((e) => e.seq), 'the log');

    t.test('without admins, the longest-standing member becomes owner', async (t) => {
      const [o, first, second] = await people(3);
      const group = await createConversation(app, o!, [first!]);
      t.equal((await add(o!, group, [second!.user.id])).status, 200);
      t.equal((await remove(o!, group, o!.user.id)).status, 204);
      t.same((await events(group)).at(-1), { type: 'member.role', seq: 3, conversation_id: group, user: userRef(first!), role: 'owner' });
      t.same(await roles(group), { [first!.user.username]: 'owner', [second!.user.username]: 'member' });
      t.equal((await remove(first!, group, second!.user.id)).status, 204, 'the new owner removes members');
      t.equal((await remove(first!, group, first!.user.id)).status, 204, 'the last member leaves');
      t.same((await events(group)).at(-1), { type: 'member.removed', seq: 5, conversation_id: group, user: userRef(first!), by: userRef(first!) }, 'no heir, no role event');
      t.equal((await conversationRow(group))?.member_count, 0);
    });
  });

  // ---------------------------------------------------------------------------------------
  t.test('members: renaming', async (t) => {
    const [owner, admin, member, outsider] = await people(4);
    const cid = await createConversation(app, owner!, [admin!, member!]);
    t.equal((await setRole(owner!, cid, admin!.user.id, 'admin')).status, 200);
    const renamed = await rename(admin!, cid, ' Book club ');
    t.equal(renamed.status, 200, renamed.body);
    t.equal(renamed.json.id, cid, 'answers with the conversation');
    t.equal((await conversationRow(cid))?.title, 'Book club');
    t.same((await events(cid)).at(-1), { type: 'conversation.updated', seq: 2, conversation_id: cid, conversation: { id: cid, title: 'Book club' } });
    t.equal((await rename(owner!, cid, 'Book club')).status, 200, 'the same title again');
    t.equal((await events(cid)).length, 2, 'writes no event');
    expectError(t, await rename(member!, cid, 'Mine'), 403, /owner and admins/, 'a plain member');
    expectError(t, await rename(outsider!, cid, 'Mine'), 404, undefined, 'a non-member');
    expectError(t, await rename(owner!, cid, 'x'.repeat(101)), 400, /title/, 'too long');
    expectError(t, await rename(owner!, cid, '  '), 400, /title/, 'blank');
    expectError(t, await rename(owner!, cid, null), 400, /title/, 'null');
    expectError(t, await api('PATCH', `/api/conversations/${cid}/`, { token: owner!.token, body: {} }), 400, /title/, 'missing');
    t.equal((await conversationRow(cid))?.title, 'Book club', 'unchanged by the refusals');
  });

  // ---------------------------------------------------------------------------------------
  t.test('members: a direct conversation never changes (409)', async (t) => {
    const [x, y, z] = await people(3);
    const direct = (await create(x, { participants: [y.user.id], direct: true })).json.id as number;
    await sendOk(t, x, direct, 'hi');
    expectError(t, await add(x, direct, [z.user.id]), 409, /direct/, 'adding');
    expectError(t, await add(x, direct, [MAX_INT4]), 409, /direct/, 'adding (even an unknown user)');
    expectError(t, await remove(x, direct, y.user.id), 409, /direct/, 'removing the other');
    expectError(t, await remove(y, direct, y.user.id), 409, /direct/, 'leaving');
    expectError(t, await setRole(x, direct, y.user.id, 'admin'), 409, /direct/, 'a role');
    expectError(t, await rename(x, direct, 'Us'), 409, /direct/, 'a title');
    expectError(t, await add(z, direct, [z.user.id]), 404, undefined, 'a non-member still gets 404');
    t.match(await conversationRow(direct), { member_count: 2, title: null, last_seq: 1 }, 'nothing written');
  });

  // ---------------------------------------------------------------------------------------
  t.test('members: events are stored as published, replayed by last_seq, with message_count', async (t) => {
    const [owner, a, b] = await people(3);
    const cid = await createConversation(app, owner!, [a!]);
    const published: string[] = [];
    let tenth: () => void = () => {};
    const allPublished = new Promise<void>((resolve) => (tenth = resolve));
    const unsubscribe = await app.bus.subscribe(conversationChannel(cid), (payload) => {
      published.push(payload);
      if (published.length === 10) tenth();
    });
    t.teardown(unsubscribe);
    const m1 = await sendOk(t, a!, cid, 'one');
    await sendOk(t, owner!, cid, 'two');
    t.equal((await add(owner!, cid, [b!.user.id])).status, 200);
    t.equal((await api('PATCH', `/api/conversations/${cid}/messages/${m1.id}/`, { token: a!.token, body: { content: 'one!' } })).status, 200);
    t.equal((await setRole(owner!, cid, a!.user.id, 'admin')).status, 200);
    t.equal((await rename(a!, cid, 'Named')).status, 200);
    await sendOk(t, b!, cid, 'three');
    t.equal((await remove(a!, cid, b!.user.id)).status, 204);
    t.equal((await remove(owner!, cid, owner!.user.id)).status, 204);

    const rows = await eventRows(cid);
    expectGapFree(t, rows.map((r) => r.seq), 'the log');
    t.same(rows.map((r) => r.kind), [1, 1, 5, 2, 7, 8, 1, 6, 6, 7], 'kinds in order');
    // Sends keep the running count (the send batcher's); every other event stores the count as it stands.
    rows.forEach((r, i) => {
      if (r.kind !== 1) t.equal(r.message_count, i === 0 ? 0 : rows[i - 1]!.message_count, `seq ${r.seq}: message_count unchanged by a ${r.kind} event`);
    });
    t.equal(rows.at(-1)?.message_count, (await conversationRow(cid))?.message_count, 'the last event: the conversation\'s message_count');
    t.same(rows.map((r) => r.user_id), [null, null, null, null, a!.user.id, null, null, b!.user.id, owner!.user.id, a!.user.id], 'user_id of removals and roles');
    t.same(rows.map((r) => r.payload !== null), [false, false, true, false, true, true, false, true, true, true], 'payload only for membership events');

    const replayed = await readEvents(database, app.links, cid, 2, 100);
    t.same(replayed.map((e) => e.seq), [3, 4, 5, 6, 7, 8, 9, 10], 'resumed after seq 2');
    await within(allPublished, 'the ten events on the bus');
    const live = new Map(published.map((payload) => decodeEvent(payload)!).map((event) => [event.seq, event]));
    for (const event of replayed) {
      if (!event.type.startsWith('member.') && event.type !== 'conversation.updated') continue;
      t.equal(JSON.stringify(event), live.get(event.seq)?.json, `seq ${event.seq} (${event.type}) replays byte for byte as published`);
    }
    t.equal(live.get(8)?.removedUserId, b!.user.id, 'the bus header of member.removed names the removed user');
    t.equal(live.get(9)?.removedUserId, owner!.user.id);
    t.equal(live.get(10)?.removedUserId, undefined, 'other events name nobody');
    t.same((await readEvents(database, app.links, cid, 9, 100)).map((e) => e.type), ['member.role'], 'the succession on its own');
  });

  // ---------------------------------------------------------------------------------------
  t.test('members: a removed member gets no more "new messages" notifications', async (t) => {
    const [owner, kept, leaving] = await people(3);
    const cid = await createConversation(app, owner!, [kept!, leaving!]);
    const delivered: { user_id: unknown }[] = [];
    const logger = { info() {}, warn() {}, error() {} };
    // A batcher of its own, flushed by hand: a message gathered before the removal and
    // written after it must not reach the removed member (recipients are read at flush).
    const batcher = new NotificationBatcher(database, (rows) => void delivered.push(...rows), logger);
    t.teardown(() => batcher.close());
    const message = await sendOk(t, owner!, cid, 'gathered before the removal');
    batcher.add(cid, owner!.user.id, owner!.user.username, message.id);
    t.equal((await remove(owner!, cid, leaving!.user.id)).status, 204);
    await batcher.flush();
    t.same(delivered.map((row) => toNumber(row.user_id)), [kept!.user.id], 'only the remaining member is notified');

    await app.notifications.flush();
    await sendOk(t, owner!, cid, 'after the removal');
    await app.notifications.flush();
    const rows = await database.query<{ user_id: number }>(sql`
      select user_id from notifications where conversation_id = ${cid} and kind = 'messages.new' order by user_id`);
    t.notOk(rows.some((r) => r.user_id === leaving!.user.id), 'the service writes none for the removed member');
    t.ok(rows.some((r) => r.user_id === kept!.user.id), 'the remaining member has theirs');
  });

  // ---------------------------------------------------------------------------------------
  t.test('members: deleting an account leaves every conversation with an event', async (t) => {
    const [doomed, a, b] = await people(3);
    const owned = await createConversation(app, doomed!, [a!, b!]);
    t.equal((await setRole(doomed!, owned, b!.user.id, 'admin')).status, 200);
    const joined = await createConversation(app, a!, [doomed!]);
    const direct = (await create(doomed!, { participants: [b!.user.id], direct: true })).json.id as number;
    const mine = await sendOk(t, doomed!, owned, 'my message');
    const deleted = await api('DELETE', '/api/users/me/', { token: doomed!.token, body: { password: PASSWORD } });
    t.equal(deleted.status, 204, deleted.body);
    const gone = { id: doomed!.user.id, username: doomed!.user.username };
    t.same((await events(owned)).slice(-3), [
      { type: 'message.deleted', seq: 3, conversation_id: owned, message_id: mine.id },
      { type: 'member.removed', seq: 4, conversation_id: owned, user: gone, by: gone },
      { type: 'member.role', seq: 5, conversation_id: owned, user: userRef(b!), role: 'owner' },
    ], 'its message erased, then it leaves and the admin becomes owner');
    t.same((await events(joined)).at(-1), { type: 'member.removed', seq: 1, conversation_id: joined, user: gone, by: gone });
    t.same((await events(direct)).at(-1), { type: 'member.removed', seq: 1, conversation_id: direct, user: gone, by: gone }, 'a direct conversation too');
    t.same([(await conversationRow(owned))?.member_count, (await conversationRow(joined))?.member_count, (await conversationRow(direct))?.member_count], [2, 1, 1]);
    const left = await database.query<{ n: number }>(sql`select count(*)::int as n from participants where user_id = ${doomed!.user.id}`);
    t.equal(left[0]?.n, 0, 'in no conversation');
  });

  // ---------------------------------------------------------------------------------------
  t.test('members: every membership route is rate limited (MEMBER_RATE_LIMIT)', async (t) => {
    const limited = await buildTestApp(t, { database, bus: createMemoryBus(), env: { MEMBER_RATE_LIMIT: '1' } });
    const [owner, a, b] = await people(3);
    const cid = await createConversation(app, owner!, [a!]);
    const call = (method: 'POST' | 'PATCH' | 'DELETE', url: string, body?: object) => req(limited, method, url, { token: owner!.token, ...(body ? { body } : {}) });
    t.equal((await call('PATCH', `/api/conversations/${cid}/`, { title: 'One' })).status, 200, 'the first write');
    for (const [method, url, body] of [
      ['POST', path(cid), { participants: [b!.user.id] }],
      ['DELETE', path(cid, a!.user.id)],
      ['PATCH', path(cid, a!.user.id), { role: 'admin' }],
      ['PATCH', `/api/conversations/${cid}/`, { title: 'Two' }],
    ] as const) {
      const response = await call(method, url, body);
      t.equal(response.status, 429, `${method} ${url} → 429`);
      t.ok(Number(response.headers['retry-after']) > 0, 'with Retry-After');
    }
    t.equal((await conversationRow(cid))?.member_count, 2, 'nothing done past the limit');
  });
}
