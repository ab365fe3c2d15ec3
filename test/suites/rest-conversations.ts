/**
 * Conversations (API.md): creation by ids and usernames, the refusals, MAX_PARTICIPANTS,
 * the activity-ordered list, and 404s that do not reveal existence.
 */
import { sql } from 'drizzle-orm';
import type { Test } from 'tap';
import { createMemoryBus } from '../../src/bus/bus-memory.js';
import { createConversation, randomName, register, type Session } from '../helpers/api.js';
import { buildTestApp } from '../helpers/app.js';
import { ISO, MAX_INT4, ids, withoutRequestId, expectError, type RestContext } from '../helpers/rest-context.js';

export function restConversationsSuite(t: Test, context: RestContext): void {
  const { database, app, req, api, sendOk } = context;

  // ---------------------------------------------------------------------------------------
  t.test('conversations', async (t) => {
    const [alice, bob, carol, dave] = await Promise.all([register(app), register(app), register(app), register(app)]);

    t.test('create by ids, usernames, mixed; duplicates ignored; caller included', async (t) => {
      const byIds = await api('POST', '/api/conversations/', { token: alice.token, body: { participants: [bob.user.id, carol.user.id] } });
      t.equal(byIds.status, 201, byIds.body);
      t.match(byIds.json, { id: Number, participants: Array, created_at: ISO });
      t.equal(byIds.json.participants[0], alice.user.username, 'the caller (creator) leads');
      t.same([...byIds.json.participants].sort(), [alice, bob, carol].map((s) => s.user.username).sort(), 'usernames of all three');
      t.equal(byIds.json.last_message_at, null, 'no activity yet');

      const byNames = await api('POST', '/api/conversations/', {
        token: alice.token,
        body: { participants: [bob.user.username.toUpperCase()] },
      });
      t.equal(byNames.status, 201, byNames.body);
      t.same(byNames.json.participants, [alice.user.username, bob.user.username], 'usernames resolve case-insensitively');

      const mixed = await api('POST', '/api/conversations/', {
        token: alice.token,
        body: { participants: [bob.user.id, carol.user.username, dave.user.id] },
      });
      t.equal(mixed.status, 201);
      t.same([...mixed.json.participants].sort(), [alice, bob, carol, dave].map((s) => s.user.username).sort());

      const duplicates = await api('POST', '/api/conversations/', {
        token: alice.token,
        body: { participants: [bob.user.id, bob.user.id, bob.user.username, alice.user.id, alice.user.username] },
      });
      t.equal(duplicates.status, 201);
      t.same(duplicates.json.participants, [alice.user.username, bob.user.username], 'each member once');
      const rows = await database.query<{ n: number }>(
        sql`select count(*)::int as n from participants where conversation_id = ${duplicates.json.id}`,
      );
      t.equal(rows[0]?.n, 2, 'two participant rows');

      const got = await api('GET', `/api/conversations/${byIds.json.id}/`, { token: carol.token });
      t.equal(got.status, 200);
      // API.md version 2: `participants` names the caller first, so carol's object leads with her.
      const { participants: seen, ...rest } = got.json;
      const { participants: created, ...createdRest } = byIds.json;
      t.same(rest, createdRest, 'GET returns the created object');
      t.equal(seen[0], carol.user.username, 'the caller leads');
      t.same([...seen].sort(), [...created].sort(), 'the same members');

      const unknownFields = await api('POST', '/api/conversations/', {
        token: alice.token,
        body: { participants: [bob.user.id], id: 999_999, created_at: '1999-01-01T00:00:00.000Z', created_by: bob.user.id },
      });
      t.equal(unknownFields.status, 201);
      t.not(unknownFields.json.id, 999_999, 'unknown fields ignored');
      t.not(unknownFields.json.created_at, '1999-01-01T00:00:00.000Z');
    });

    t.test('refused creations', async (t) => {
      const create = (body: unknown) => api('POST', '/api/conversations/', { token: alice.token, body: body as object });
      expectError(t, await create({ participants: [MAX_INT4] }), 400, new RegExp(String(MAX_INT4)), 'unknown id');
      const ghost = randomName('ghost');
      expectError(t, await create({ participants: [bob.user.id, ghost] }), 400, new RegExp(ghost), 'unknown username');
      expectError(t, await create({ participants: [alice.user.id] }), 400, /participants/, 'only the caller');
      expectError(t, await create({ participants: [alice.user.username.toUpperCase()] }), 400, /participants/, 'only the caller by name');
      expectError(t, await create({ participants: [] }), 400, /participants/, 'empty list');
      expectError(t, await create({}), 400, /participants/, 'missing');
      expectError(t, await create({ participants: bob.user.id }), 400, /participants/, 'not an array');
      expectError(t, await create({ participants: String(bob.user.id) }), 400, /participants/, 'a string');
      expectError(t, await create({ participants: [String(bob.user.id)] }), 400, new RegExp(`"${bob.user.id}"`), 'an id as a string is a (unknown) username');
      for (const bad of [0, -1, 1.5, MAX_INT4 + 1, 2 ** 53, true, null, {}, [bob.user.id], '', 'x'.repeat(33)]) {
        expectError(t, await create({ participants: [bad] }), 400, /participants/, `participant ${JSON.stringify(bad)}`);
      }
      expectError(t, await create({ participants: [`${bob.user.username}\u0000`] }), 400, /participants/, 'NUL in a name');
      expectError(t, await create({ participants: ['__proto__'] }), 400, /__proto__/, '__proto__ as a name is just unknown');
      const count = await database.query<{ n: number }>(sql`select count(*)::int as n from conversations c
        where not exists (select 1 from participants p where p.conversation_id = c.id and p.user_id <> c.created_by_id)`);
      t.equal(count[0]?.n, 0, 'no conversation without another member was stored');
    });

    t.test('MAX_PARTICIPANTS', async (t) => {
      const limited = await buildTestApp(t, { database, bus: createMemoryBus(), env: { MAX_PARTICIPANTS: '3' } });
      const create = (participants: unknown[]) => req(limited, 'POST', '/api/conversations/', { token: alice.token, body: { participants } });
      t.equal((await create([bob.user.id, carol.user.id])).status, 201, 'three members, caller included');
      t.equal((await create([alice.user.id, bob.user.id, carol.user.username])).status, 201, 'naming oneself does not count twice');
      t.equal((await create([bob.user.id, carol.user.id, bob.user.username, carol.user.id])).status, 201, 'duplicates do not count');
      expectError(t, await create([bob.user.id, carol.user.id, dave.user.id]), 400, /participants/, 'four members');
    });

    t.test('list: the caller’s, most recent activity first', async (t) => {
      const [x, y, z] = await Promise.all([register(app), register(app), register(app)]);
      const c1 = await createConversation(app, x, [y]);
      const c2 = await createConversation(app, x, [z]);
      const c3 = await createConversation(app, x, [y, z]);
      const elsewhere = await createConversation(app, y, [z]);
      const list = async (session: Session) => {
        const response = await api('GET', '/api/conversations/', { token: session.token });
        t.equal(response.status, 200);
        return ids(response);
      };
      t.same(await list(x), [c3, c2, c1], 'newest first without messages');
      await sendOk(t, y, c1, 'wake c1');
      t.same(await list(y), [c1, elsewhere, c3], 'the sender’s own inbox moves at once');
      // The other members' inboxes move with the notification flush (at most NOTIFY_FLUSH_MS later).
      await app.notifications.flush();
      t.same(await list(x), [c1, c3, c2], 'a message moves its conversation first');
      await sendOk(t, z, c2, 'wake c2');
      await app.notifications.flush();
      t.same(await list(x), [c2, c1, c3]);
      t.same(await list(y), [c1, elsewhere, c3]);
      t.notOk((await list(x)).includes(elsewhere), 'others’ conversations are not listed');
      t.same(await list(z), [c2, elsewhere, c3], 'each caller sees only their own, in activity order');

      const full = await api('GET', '/api/conversations/', { token: x.token });
      const first = full.json[0];
      t.match(first, { id: c2, participants: [x.user.username, z.user.username], created_at: ISO, last_message_at: ISO });
      const limited = await api('GET', '/api/conversations/?limit=1', { token: x.token });
      t.same(ids(limited), [c2], '?limit=1');
      expectError(t, await api('GET', '/api/conversations/?limit=0', { token: x.token }), 400, /limit/);
      expectError(t, await api('GET', '/api/conversations/?limit=abc', { token: x.token }), 400, /limit/);

      const fresh = await register(app);
      t.same(await list(fresh), [], 'no conversations: empty array');
    });

    t.test('get: 404 alike for strangers and nonexistent ids', async (t) => {
      const id = await createConversation(app, alice, [bob]);
      t.equal((await api('GET', `/api/conversations/${id}/`, { token: bob.token })).status, 200);
      const stranger = await api('GET', `/api/conversations/${id}/`, { token: dave.token });
      const missing = await api('GET', `/api/conversations/${MAX_INT4}/`, { token: dave.token });
      expectError(t, stranger, 404, undefined, 'non-participant');
      expectError(t, missing, 404, undefined, 'nonexistent');
      t.same(withoutRequestId(stranger.json), withoutRequestId(missing.json), 'the same answer: existence is not revealed');
    });
  });
}
