/**
 * The REST contract of API.md (accounts, users, conversations, messages), run against one
 * database kind. Every request goes through `app.inject`; every response is recorded so the
 * suite can finally check that no error left without the one error shape, and that nothing
 * answered 500.
 */
import { STATUS_CODES } from 'node:http';
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import { createMemoryBus } from '../../src/bus/bus-memory.js';
import { createDatabase, type DatabaseHandle } from '../../src/db/client.js';
import { users } from '../../src/db/schema/index.js';
import { readEvents } from '../../src/messages/event-log.js';
import type { ConversationEvent } from '../../src/contract/events.js';
import { buildTestApp, testDatabase, type DatabaseKind } from '../helpers/app.js';
import { call, createConversation, randomName, register, type Session } from '../helpers/api.js';
import { decodeJwt, nowSeconds, signJwt } from '../helpers/jwt.js';

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';
type CallOptions = NonNullable<Parameters<typeof call>[3]>;
type Response = Awaited<ReturnType<typeof call>>;

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MAX_INT4 = 2_147_483_647;
const STACK_TRACE = /\n\s+at .+:\d+:\d+/;

/** `rel="next"` of a Link header, as a path the app can be called with. */
function nextLink(response: Response): string | undefined {
  const header = response.headers.link;
  const match = typeof header === 'string' ? /<([^>]+)>;\s*rel="next"/.exec(header) : null;
  if (!match?.[1]) return undefined;
  const url = new URL(match[1]);
  return `${url.pathname}${url.search}`;
}

const ids = (response: Response): number[] => (response.json as { id: number }[]).map((m) => m.id);
const withoutRequestId = (body: unknown) => {
  const { requestId: _ignored, ...rest } = body as Record<string, unknown>;
  return rest;
};

export async function restSuite(t: Test, kind: DatabaseKind): Promise<void> {
  const { database, url } = await testDatabase(t, kind);
  const app = await buildTestApp(t, { database, bus: createMemoryBus() });
  const secret = app.config.JWT_SECRET;

  /** Every response the suite saw, for the final shape / no-500 / no-stack checks. */
  const seen: { label: string; status: number; body: string; json: unknown }[] = [];
  const req = async (target: FastifyInstance, method: Method, path: string, options: CallOptions = {}): Promise<Response> => {
    const response = await call(target, method, path, options);
    seen.push({ label: `${method} ${path}`, status: response.status, body: response.body, json: response.json });
    return response;
  };
  const api = (method: Method, path: string, options: CallOptions = {}) => req(app, method, path, options);

  function expectError(t: Test, response: Response, status: number, mentions?: string | RegExp, label = ''): void {
    t.equal(response.status, status, `${label} → ${status} (${response.body.slice(0, 300)})`);
    t.match(response.json, { statusCode: status, error: STATUS_CODES[status], message: String }, `${label} error shape`);
    if (mentions !== undefined) t.match(response.json?.message, mentions, `${label} message mentions ${String(mentions)}`);
  }

  /** Users straight into the table (search tests need many; scrypt for each would be slow). */
  async function insertUsers(names: string[]): Promise<void> {
    await database.db.insert(users).values(names.map((username) => ({ username, passwordHash: 'scrypt$not-a-real-hash' })));
  }

  async function send(session: Session, conversationId: number, content: string, clientId?: string, target = app) {
    const body = clientId === undefined ? { content } : { content, client_id: clientId };
    return req(target, 'POST', `/api/conversations/${conversationId}/messages/`, { token: session.token, body });
  }

  async function sendOk(t: Test, session: Session, conversationId: number, content: string): Promise<{ id: number; seq: number }> {
    const response = await send(session, conversationId, content);
    if (response.status !== 201) t.fail(`send failed: ${response.status} ${response.body}`);
    return response.json;
  }

  async function events(conversationId: number): Promise<ConversationEvent[]> {
    return readEvents(database, app.links, conversationId, 0, 100_000);
  }

  function expectGapFree(t: Test, seqs: number[], label: string): void {
    t.same(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), `${label}: seqs 1..${seqs.length}, no gap, no duplicate`);
  }

  // ---------------------------------------------------------------------------------------
  t.test('register', async (t) => {
    const name = randomName('Reg');
    const created = await api('POST', '/api/auth/register/', { body: { username: name, password: 'correct horse battery' } });
    t.equal(created.status, 201, created.body);
    t.match(created.json, { token: String, user: { id: Number, username: name } });
    t.same(Object.keys(created.json.user).sort(), ['id', 'username'], 'user object is {id, username}');
    t.ok(Number.isSafeInteger(created.json.user.id) && created.json.user.id > 0, 'id is a positive integer');

    const { header, payload } = decodeJwt(created.json.token);
    t.equal(header.alg, 'HS256', 'token is HS256');
    t.equal(payload.sub, String(created.json.user.id), 'sub is the user id');
    t.equal(payload.username, name, 'username claim');
    t.ok(typeof payload.exp === 'number' && payload.exp > nowSeconds(), 'exp in the future');

    const me = await api('GET', '/api/users/me/', { token: created.json.token });
    t.equal(me.status, 200);
    t.same(me.json, { id: created.json.user.id, username: name }, 'the token works at once');

    // Passwords are kept only as a salted slow hash.
    const twin = await register(app, randomName('twin'), 'correct horse battery');
    const hashes = await database.query<{ password_hash: string }>(
      sql`select password_hash from users where id in (${created.json.user.id}, ${twin.user.id}) order by id`,
    );
    t.equal(hashes.length, 2);
    for (const { password_hash } of hashes) {
      t.notMatch(password_hash, /correct horse battery/, 'no plain password');
      t.match(password_hash, /^scrypt\$/, 'scrypt hash');
    }
    t.not(hashes[0]?.password_hash, hashes[1]?.password_hash, 'same password, different salt');

    t.test('case-insensitive uniqueness', async (t) => {
      for (const variant of [name, name.toLowerCase(), name.toUpperCase()]) {
        const again = await api('POST', '/api/auth/register/', { body: { username: variant, password: 'another password' } });
        expectError(t, again, 409, /username/, variant);
      }
    });

    t.test('concurrent registrations of one name: exactly one wins', async (t) => {
      const contested = randomName('race');
      const variants = Array.from({ length: 8 }, (_, i) => (i % 2 ? contested.toUpperCase() : contested));
      const results = await Promise.all(
        variants.map((username) => api('POST', '/api/auth/register/', { body: { username, password: 'password123' } })),
      );
      t.equal(results.filter((r) => r.status === 201).length, 1, 'one 201');
      t.equal(results.filter((r) => r.status === 409).length, variants.length - 1, 'the rest 409');
    });

    t.test('username rules', async (t) => {
      const hex = randomBytes(4).toString('hex');
      const valid = [`a${hex}`.slice(0, 3), `A_b.c-${hex}`, `${hex}${'x'.repeat(24)}`, `__proto__${hex}`, `constructor${hex}`];
      t.equal(valid[2]?.length, 32);
      for (const username of valid) {
        const response = await api('POST', '/api/auth/register/', { body: { username, password: 'password123' } });
        t.equal(response.status, 201, `${username} is valid (${response.body})`);
        t.equal(response.json?.user?.username, username, 'kept as given');
      }
      const invalid = ['ab', 'x'.repeat(33), 'with space', 'semi;colon', 'at@sign', 'slash/', 'ali\u0000ce', '', 'tab\tbed', 'quote"d'];
      for (const username of invalid) {
        const response = await api('POST', '/api/auth/register/', { body: { username, password: 'password123' } });
        expectError(t, response, 400, /username/, JSON.stringify(username));
      }
    });

    t.test('password rules', async (t) => {
      for (const [password, status] of [
        ['1234567', 400],
        ['12345678', 201],
        ['p'.repeat(256), 201],
        ['p'.repeat(257), 400],
      ] as const) {
        const response = await api('POST', '/api/auth/register/', { body: { username: randomName(), password } });
        if (status === 201) t.equal(response.status, 201, `password of ${password.length} accepted`);
        else expectError(t, response, 400, /password/, `password of ${password.length}`);
      }
    });

    t.test('missing fields and wrong types name the field', async (t) => {
      const cases: [unknown, RegExp][] = [
        [{}, /username/],
        [{ password: 'password123' }, /username/],
        [{ username: randomName() }, /password/],
        [{ username: 12345, password: 'password123' }, /username/],
        [{ username: randomName(), password: 12345678 }, /password/],
        [{ username: [randomName()], password: 'password123' }, /username/],
        [{ username: null, password: 'password123' }, /username/],
        [{ username: randomName(), password: { length: 9 } }, /password/],
      ];
      for (const [body, mentions] of cases) {
        expectError(t, await api('POST', '/api/auth/register/', { body: body as object }), 400, mentions, JSON.stringify(body));
      }
    });

    t.test('unknown fields are ignored and not stored', async (t) => {
      const username = randomName();
      const response = await api('POST', '/api/auth/register/', {
        body: { username, password: 'password123', id: 424242, is_admin: true, user: { id: 1 } },
      });
      t.equal(response.status, 201);
      t.not(response.json.user.id, 424242, 'id not taken from the body');
      t.same(Object.keys(response.json.user).sort(), ['id', 'username']);
      const me = await api('GET', '/api/users/me/', { token: response.json.token });
      t.same(me.json, { id: response.json.user.id, username });
    });
  });

  // ---------------------------------------------------------------------------------------
  t.test('login', async (t) => {
    const alice = await register(app, randomName('Login'), 'the right password');
    const ok = await api('POST', '/api/auth/login/', { body: { username: alice.user.username, password: 'the right password' } });
    t.equal(ok.status, 200, ok.body);
    t.match(ok.json, { token: String, user: alice.user });
    t.same(Object.keys(ok.json).sort(), ['token', 'user'], 'same response as register');
    const me = await api('GET', '/api/users/me/', { token: ok.json.token });
    t.same(me.json, alice.user, 'the login token works');

    const wrong = await api('POST', '/api/auth/login/', { body: { username: alice.user.username, password: 'the wrong password' } });
    expectError(t, wrong, 401, undefined, 'wrong password');
    const unknown = await api('POST', '/api/auth/login/', { body: { username: randomName('nobody'), password: 'the right password' } });
    expectError(t, unknown, 401, undefined, 'unknown user');
    t.equal(unknown.json.message, wrong.json.message, 'unknown user and wrong password say the same');
    t.notOk(wrong.json.token ?? unknown.json.token, 'no token on failure');

    expectError(t, await api('POST', '/api/auth/login/', { body: { username: alice.user.username } }), 400, /password/);
    expectError(t, await api('POST', '/api/auth/login/', { body: { password: 'the right password' } }), 400, /username/);
    expectError(t, await api('POST', '/api/auth/login/', { body: { username: 5, password: 'the right password' } }), 400, /username/);
  });

  // ---------------------------------------------------------------------------------------
  t.test('tokens', async (t) => {
    const alice = await register(app);
    const claims = { sub: String(alice.user.id), username: alice.user.username, iat: nowSeconds(), exp: nowSeconds() + 600 };

    // The helper's own token with the right secret works: the refusals below are about the token.
    const genuine = await api('GET', '/api/users/me/', { token: signJwt(claims, secret) });
    t.equal(genuine.status, 200, 'a well-formed token signed with JWT_SECRET is accepted');
    t.same(genuine.json, alice.user);

    const refused: [string, Record<string, string>][] = [
      ['no Authorization header', {}],
      ['empty Authorization', { authorization: '' }],
      ['Bearer without token', { authorization: 'Bearer ' }],
      ['Basic scheme', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }],
      ['token without scheme', { authorization: alice.token }],
      ['malformed token', { authorization: 'Bearer not.a.jwt' }],
      ['garbage', { authorization: 'Bearer %%%%' }],
      ['two tokens', { authorization: `Bearer ${alice.token} ${alice.token}` }],
      ['truncated signature', { authorization: `Bearer ${alice.token.slice(0, -3)}` }],
      ['forged with another secret', { authorization: `Bearer ${signJwt(claims, 'another-secret-0123456789abcdef')}` }],
      ['expired', { authorization: `Bearer ${signJwt({ ...claims, iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 }, secret)}` }],
      ['alg none', { authorization: `Bearer ${signJwt(claims, secret, { alg: 'none', typ: 'JWT' })}` }],
      ['alg none, any signature', { authorization: `Bearer ${signJwt(claims, secret, { alg: 'none', typ: 'JWT' })}c2ln` }],
      ['HS512 with the right secret', { authorization: `Bearer ${signJwt(claims, secret, { alg: 'HS512', typ: 'JWT' })}` }],
      ['sub not a number', { authorization: `Bearer ${signJwt({ ...claims, sub: 'alice' }, secret)}` }],
      ['sub negative', { authorization: `Bearer ${signJwt({ ...claims, sub: '-1' }, secret)}` }],
      ['sub missing', { authorization: `Bearer ${signJwt({ username: alice.user.username, exp: claims.exp }, secret)}` }],
      ['username missing', { authorization: `Bearer ${signJwt({ sub: claims.sub, exp: claims.exp }, secret)}` }],
    ];
    const protectedRoutes: [Method, string][] = [
      ['GET', '/api/users/me/'],
      ['GET', '/api/users/?search=a'],
      ['GET', '/api/conversations/'],
      ['POST', '/api/conversations/'],
      ['GET', '/api/conversations/1/'],
      ['GET', '/api/conversations/1/messages/'],
      ['POST', '/api/conversations/1/messages/'],
      ['PATCH', '/api/conversations/1/messages/1/'],
      ['DELETE', '/api/conversations/1/messages/1/'],
    ];
    // Signed with the right secret, for a user id that does not exist (a reset database).
    const ghost = signJwt({ sub: String(MAX_INT4), username: 'ghost', exp: nowSeconds() + 600 }, secret);
    expectError(t, await api('POST', '/api/conversations/', { token: ghost, body: { participants: [alice.user.id] } }), 401, undefined, 'ghost creates a conversation');
    t.same((await api('GET', '/api/conversations/', { token: ghost })).json, [], 'a ghost has no conversations');
    for (const [method, path] of [['GET', '/api/conversations/1/messages/'], ['POST', '/api/conversations/1/messages/'], ['PATCH', '/api/conversations/1/messages/1/']] as const) {
      const response = await api(method, path, { token: ghost, body: method === 'GET' ? undefined : { content: 'boo' } });
      t.ok([401, 404].includes(response.status), `ghost ${method} ${path}: ${response.status}`);
    }

    for (const [label, headers] of refused) {
      expectError(t, await api('GET', '/api/users/me/', { headers }), 401, undefined, label);
    }
    const forged = refused.find(([label]) => label === 'forged with another secret')![1];
    for (const [method, path] of protectedRoutes) {
      const body = method === 'POST' || method === 'PATCH' ? { content: 'x', participants: [1] } : undefined;
      expectError(t, await api(method, path, { body }), 401, undefined, `${method} ${path} without a token`);
      expectError(t, await api(method, path, { body, headers: forged }), 401, undefined, `${method} ${path} forged`);
    }
  });

  // ---------------------------------------------------------------------------------------
  t.test('users', async (t) => {
    const alice = await register(app);
    const me = await api('GET', '/api/users/me/', { token: alice.token });
    t.equal(me.status, 200);
    t.same(me.json, { id: alice.user.id, username: alice.user.username });

    const prefix = `s${randomBytes(4).toString('hex')}`;
    const names = Array.from({ length: 25 }, (_, i) => `${prefix}${String(i).padStart(2, '0')}`);
    await insertUsers([...names, `${prefix}_under`, `${prefix}xunder`, `${prefix.toUpperCase()}Caps`]);

    const search = (term: string) => api('GET', `/api/users/?search=${encodeURIComponent(term)}`, { token: alice.token });

    const many = await search(prefix);
    t.equal(many.status, 200);
    t.equal(many.json.length, 20, 'at most 20');
    t.ok(many.json.every((u: { username: string }) => u.username.toLowerCase().startsWith(prefix)), 'all start with the prefix');
    t.ok(many.json.every((u: { id: unknown; username: unknown }) => Number.isInteger(u.id) && typeof u.username === 'string'));
    t.same(Object.keys(many.json[0]).sort(), ['id', 'username'], 'user objects only: no hashes');
    t.same(many.json.map((u: { username: string }) => u.username), names.slice(0, 20), 'alphabetical: the first 20');

    const exact = await search(`${prefix}07`);
    t.same(exact.json.map((u: { username: string }) => u.username), [`${prefix}07`], 'prefix narrows');

    const upper = await search(`${prefix}0`.toUpperCase());
    t.equal(upper.json.length, 10, 'case-insensitive: S…0 finds …00-…09');
    const caps = await search(`${prefix}caps`);
    t.equal(caps.json.length, 1, 'finds a name stored with capitals');

    const underscore = await search(`${prefix}_`);
    t.same(underscore.json.map((u: { username: string }) => u.username), [`${prefix}_under`], '_ is literal, not any character');
    t.same((await search(`${prefix}%`)).json, [], '% is literal, not a wildcard');
    t.same((await search('%')).json, [], 'a lone % matches nothing');
    const lone = await search('_');
    t.ok(lone.json.every((u: { username: string }) => u.username.startsWith('_')), 'a lone _ finds only names starting with _');
    t.same((await search('\\')).json, [], 'a backslash matches nothing and breaks nothing');
    t.same((await search(`${prefix}zzz-nope`)).json, [], 'no match: empty array');
    t.equal((await search(`  ${prefix}07  `)).json.length, 1, 'surrounding spaces are trimmed');

    const everyone = await api('GET', '/api/users/', { token: alice.token });
    t.equal(everyone.status, 200, 'no search: still a list');
    t.ok(everyone.json.length <= 20, 'still at most 20');
    t.equal((await api('GET', '/api/users/?search=', { token: alice.token })).status, 200, 'empty search');

    expectError(t, await search('a\u0000b'), 400, /search/, 'NUL in search');
    expectError(t, await search('x'.repeat(33)), 400, /search/, 'search longer than any username');
    expectError(t, await api('GET', '/api/users/?search=a&search=b', { token: alice.token }), 400, /search/, 'two searches');
  });

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
      t.same(got.json, byIds.json, 'GET returns the created object');

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
      t.same(await list(x), [c1, c3, c2], 'a message moves its conversation first');
      await sendOk(t, z, c2, 'wake c2');
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

  // ---------------------------------------------------------------------------------------
  t.test('messages', async (t) => {
    const [alice, bob, carol] = await Promise.all([register(app), register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob]);
    const other = await createConversation(app, alice, [carol]);

    t.test('send', async (t) => {
      const before = Date.now();
      const sent = await send(alice, cid, '  سلام!  \n');
      t.equal(sent.status, 201, sent.body);
      t.match(sent.json, {
        id: Number,
        sender: alice.user.username,
        content: 'سلام!',
        timestamp: ISO,
        is_edited: false,
        is_deleted: false,
        attachments: [],
        conversation_id: cid,
        sender_id: alice.user.id,
        client_id: null,
        seq: Number,
      });
      t.same(sent.json.attachments, []);
      const at = Date.parse(sent.json.timestamp);
      t.ok(at >= before - 60_000 && at <= Date.now() + 60_000, 'timestamp is now (UTC)');

      const listed = await api('GET', `/api/conversations/${cid}/messages/`, { token: bob.token });
      t.equal(listed.status, 200);
      t.same(listed.json.at(-1), sent.json, 'the other participant reads the same object');

      const unknownFields = await api('POST', `/api/conversations/${cid}/messages/`, {
        token: alice.token,
        body: { content: 'plain', sender: bob.user.username, sender_id: bob.user.id, id: 9_999_999, is_deleted: true, is_edited: true, seq: 9999, timestamp: '1999-01-01T00:00:00.000Z', attachments: [{ id: 1 }] },
      });
      t.equal(unknownFields.status, 201);
      t.match(unknownFields.json, { sender: alice.user.username, is_deleted: false, is_edited: false, attachments: [] });
      t.not(unknownFields.json.id, 9_999_999);
      t.not(unknownFields.json.seq, 9999);
      const [row] = await database.query<{ sender_id: number; is_deleted: boolean }>(
        sql`select sender_id, is_deleted from messages where id = ${unknownFields.json.id}`,
      );
      t.same({ sender_id: Number(row?.sender_id), is_deleted: row?.is_deleted }, { sender_id: alice.user.id, is_deleted: false }, 'stored as sent by the caller');
    });

    t.test('content rules', async (t) => {
      for (const [content, label] of [
        ['', 'empty'],
        ['   ', 'spaces'],
        [' \n\t\r ', 'whitespace'],
        ['\u3000\u00a0', 'unicode spaces'],
        ['a\u0000b', 'NUL'],
        ['\u0000', 'lone NUL'],
      ] as const) {
        expectError(t, await send(alice, cid, content), 400, /content/, label);
      }
      const body = (b: unknown) => api('POST', `/api/conversations/${cid}/messages/`, { token: alice.token, body: b as object });
      expectError(t, await body({}), 400, /content/, 'missing content');
      expectError(t, await body({ content: 5 }), 400, /content/, 'number');
      expectError(t, await body({ content: null }), 400, /content/, 'null');
      expectError(t, await body({ content: ['hi'] }), 400, /content/, 'array');
      expectError(t, await body({ content: { text: 'hi' } }), 400, /content/, 'object');

      t.equal((await send(alice, cid, 'a'.repeat(4000))).status, 201, '4000 characters');
      t.equal((await send(alice, cid, `   ${'a'.repeat(4000)}   `)).status, 201, '4000 after trimming');
      expectError(t, await send(alice, cid, 'a'.repeat(4001)), 400, /content/, '4001 characters');
      const emoji = await send(alice, cid, '😀'.repeat(4000));
      t.equal(emoji.status, 201, '4000 emoji (8000 UTF-16 units) fit: an emoji is one character');
      t.equal([...emoji.json.content].length, 4000, 'stored whole');
      expectError(t, await send(alice, cid, '😀'.repeat(4001)), 400, /content/, '4001 emoji');
      const unicode = await send(alice, cid, 'Ünïcødé ✓ 中文 عربي');
      t.equal(unicode.json.content, 'Ünïcødé ✓ 中文 عربي', 'round-trips');
      const lone = await send(alice, cid, 'lone \ud800 surrogate');
      t.ok([201, 400].includes(lone.status), `a lone surrogate is stored or refused, not a 500 (${lone.status})`);
    });

    t.test('MAX_MESSAGE_LENGTH from the environment', async (t) => {
      const limited = await buildTestApp(t, { database, bus: createMemoryBus(), env: { MAX_MESSAGE_LENGTH: '5' } });
      t.equal((await send(alice, cid, '12345', undefined, limited)).status, 201);
      t.equal((await send(alice, cid, '😀👍🎉🔥✨', undefined, limited)).status, 201, 'five emoji');
      expectError(t, await send(alice, cid, '123456', undefined, limited), 400, /content/);
      expectError(t, await send(alice, cid, '😀👍🎉🔥✨😀', undefined, limited), 400, /content/, 'six emoji');
      const edit = await req(limited, 'PATCH', `/api/conversations/${cid}/messages/${(await sendOk(t, alice, cid, 'x')).id}/`, {
        token: alice.token,
        body: { content: '123456' },
      });
      expectError(t, edit, 400, /content/, 'edits obey it too');
    });

    t.test('client_id: idempotent per sender', async (t) => {
      const key = `k-${randomBytes(6).toString('hex')}`;
      const first = await send(alice, cid, 'once', key);
      t.equal(first.status, 201);
      t.equal(first.json.client_id, key, 'client_id echoed');
      const retry = await send(alice, cid, 'once', key);
      t.equal(retry.status, 200, 'a retry is answered 200');
      t.same(retry.json, first.json, 'with the first message');
      const changed = await send(alice, cid, 'different text', key);
      t.equal(changed.status, 200);
      t.equal(changed.json.content, 'once', 'still the first message');
      const [stored] = await database.query<{ n: number }>(
        sql`select count(*)::int as n from messages where conversation_id = ${cid} and client_id = ${key}`,
      );
      t.equal(stored?.n, 1, 'one row');

      const bobs = await send(bob, cid, 'bob, same key', key);
      t.equal(bobs.status, 201, 'another sender with the same client_id: a new message');
      t.not(bobs.json.id, first.json.id);
      const elsewhere = await send(alice, other, 'other conversation', key);
      t.equal(elsewhere.status, 201, 'same client_id in another conversation: a new message');

      const lastSeq = (await events(cid)).at(-1)?.seq;
      t.equal(lastSeq, bobs.json.seq, 'retries took no seq');

      const raw = (b: unknown) => api('POST', `/api/conversations/${cid}/messages/`, { token: alice.token, body: b as object });
      t.equal((await raw({ content: 'k64', client_id: 'k'.repeat(64) })).status, 201, '64 characters');
      expectError(t, await raw({ content: 'k65', client_id: 'k'.repeat(65) }), 400, /client_id/, '65 characters');
      expectError(t, await raw({ content: 'k0', client_id: '' }), 400, /client_id/, 'empty');
      expectError(t, await raw({ content: 'kn', client_id: 5 }), 400, /client_id/, 'a number');
      expectError(t, await raw({ content: 'kz', client_id: 'a\u0000b' }), 400, /client_id/, 'NUL');
    });

    t.test('edit', async (t) => {
      const message = await sendOk(t, alice, cid, 'first draft');
      const path = `/api/conversations/${cid}/messages/${message.id}/`;
      const edited = await api('PATCH', path, { token: alice.token, body: { content: '  final text  ' } });
      t.equal(edited.status, 200, edited.body);
      t.match(edited.json, { id: message.id, content: 'final text', is_edited: true, is_deleted: false, sender: alice.user.username, edited_at: ISO });
      const listed = await api('GET', `/api/conversations/${cid}/messages/`, { token: bob.token });
      t.match(listed.json.find((m: { id: number }) => m.id === message.id), { content: 'final text', is_edited: true });

      expectError(t, await api('PATCH', path, { token: bob.token, body: { content: 'hijack' } }), 403, undefined, 'another participant');
      expectError(t, await api('PATCH', path, { token: carol.token, body: { content: 'hijack' } }), 404, undefined, 'a stranger');
      expectError(t, await api('PATCH', path, { token: alice.token, body: { content: '   ' } }), 400, /content/, 'empty');
      expectError(t, await api('PATCH', path, { token: alice.token, body: { content: 'a'.repeat(4001) } }), 400, /content/, 'too long');
      expectError(t, await api('PATCH', path, { token: alice.token, body: { content: 'a\u0000' } }), 400, /content/, 'NUL');
      expectError(t, await api('PATCH', path, { token: alice.token, body: {} }), 400, /content/, 'missing');
      expectError(t, await api('PATCH', path, { token: alice.token, body: { content: 1 } }), 400, /content/, 'number');
      expectError(t, await api('PATCH', `/api/conversations/${cid}/messages/${Number.MAX_SAFE_INTEGER}/`, { token: alice.token, body: { content: 'x' } }), 404, undefined, 'no such message');
      expectError(t, await api('PATCH', `/api/conversations/${other}/messages/${message.id}/`, { token: alice.token, body: { content: 'x' } }), 404, undefined, 'message of another conversation');
      const still = await api('GET', `/api/conversations/${cid}/messages/`, { token: alice.token });
      t.equal(still.json.find((m: { id: number }) => m.id === message.id)?.content, 'final text', 'refused edits changed nothing');

      const bobsMessage = await sendOk(t, bob, cid, 'bob speaks');
      expectError(t, await api('DELETE', `/api/conversations/${cid}/messages/${bobsMessage.id}/`, { token: alice.token }), 403, undefined, 'delete by another participant');
      expectError(t, await api('DELETE', `/api/conversations/${cid}/messages/${bobsMessage.id}/`, { token: carol.token }), 404, undefined, 'delete by a stranger');
      expectError(t, await api('DELETE', `/api/conversations/${cid}/messages/${Number.MAX_SAFE_INTEGER}/`, { token: bob.token }), 404, undefined, 'delete of nothing');
      expectError(t, await api('DELETE', `/api/conversations/${other}/messages/${bobsMessage.id}/`, { token: alice.token }), 404, undefined, 'delete through another conversation');

      const deleted = await api('DELETE', path, { token: alice.token });
      t.equal(deleted.status, 204);
      t.equal(deleted.body, '', 'no body');
      expectError(t, await api('PATCH', path, { token: alice.token, body: { content: 'revive' } }), 409, undefined, 'a deleted message cannot be edited');
      t.equal((await api('DELETE', path, { token: alice.token })).status, 204, 'deleting again is harmless');
    });

    t.test('strangers can do nothing, and learn nothing', async (t) => {
      const message = await sendOk(t, alice, cid, 'private');
      const pairs: [Method, string, object | undefined][] = [
        ['GET', `/api/conversations/${cid}/messages/`, undefined],
        ['POST', `/api/conversations/${cid}/messages/`, { content: 'let me in' }],
        ['PATCH', `/api/conversations/${cid}/messages/${message.id}/`, { content: 'edit' }],
        ['DELETE', `/api/conversations/${cid}/messages/${message.id}/`, undefined],
      ];
      for (const [method, path, body] of pairs) {
        const stranger = await api(method, path, { token: carol.token, body });
        const missing = await api(method, path.replace(`/conversations/${cid}/`, `/conversations/${MAX_INT4}/`), { token: carol.token, body });
        expectError(t, stranger, 404, undefined, `${method} as a stranger`);
        expectError(t, missing, 404, undefined, `${method} on nothing`);
        t.same(withoutRequestId(stranger.json), withoutRequestId(missing.json), `${method}: the same answer`);
        t.notMatch(stranger.body, /private/);
      }
      const [count] = await database.query<{ n: number }>(sql`select count(*)::int as n from messages where content = 'let me in'`);
      t.equal(count?.n, 0, 'nothing stored');
    });
  });

  // ---------------------------------------------------------------------------------------
  t.test('pagination', async (t) => {
    const [alice, bob] = await Promise.all([register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob]);
    const path = `/api/conversations/${cid}/messages/`;
    const page = (query = '') => api('GET', `${path}${query}`, { token: bob.token });

    const empty = await page();
    t.same(empty.json, [], 'no messages: []');
    t.notOk(empty.headers.link, 'no Link on an empty conversation');

    const sent: number[] = [];
    for (let i = 0; i < 50; i++) sent.push((await sendOk(t, i % 2 ? bob : alice, cid, `m${i}`)).id);
    const fifty = await page();
    t.same(ids(fifty), sent, 'exactly 50: one full page');
    t.notOk(nextLink(fifty), 'no Link: nothing older');
    for (let i = 50; i < 120; i++) sent.push((await sendOk(t, i % 2 ? bob : alice, cid, `m${i}`)).id);
    const interleaved = await createConversation(app, bob, [alice]);
    await sendOk(t, alice, interleaved, 'ids of another conversation in between');
    sent.push((await sendOk(t, alice, cid, 'm120')).id);
    t.equal(sent.length, 121);

    const first = await page();
    t.equal(first.status, 200);
    t.same(ids(first), sent.slice(-50), 'default: the newest 50, ascending');
    t.same(first.json.map((m: { content: string }) => m.content), sent.slice(-50).map((_, i) => `m${71 + i}`));
    const next = nextLink(first);
    t.ok(next, 'Link rel="next" when older messages exist');
    t.match(first.headers.link, /^<http:\/\/chat\.test\/api\/conversations\/\d+\/messages\/\?[^>]+>; rel="next"/, 'absolute URL on PUBLIC_URL');
    t.match(next, new RegExp(`before=${sent.at(-50)}`));
    const second = await page(next!.slice(path.length));
    t.same(ids(second), sent.slice(-100, -50));
    const third = await api('GET', nextLink(second)!, { token: bob.token });
    t.same(ids(third), sent.slice(0, -100), 'the last page holds the rest');
    t.notOk(nextLink(third), 'no rel="next" on the last page');

    // Walk the whole history with a small page: every message once, in order.
    const walked: number[] = [];
    let cursor: string | undefined = `${path}?limit=7`;
    let pages = 0;
    while (cursor) {
      const response = await api('GET', cursor, { token: bob.token });
      t.equal(response.status, 200);
      walked.unshift(...ids(response));
      cursor = nextLink(response);
      pages++;
    }
    t.equal(pages, Math.ceil(121 / 7));
    t.same(walked, sent, 'following rel="next" visits every message once');

    t.same(ids(await page('?limit=1')), sent.slice(-1), 'limit=1');
    const all = await page('?limit=200');
    t.same(ids(all), sent, 'limit=200 returns all 121');
    t.notOk(nextLink(all));
    t.notOk(nextLink(await page('?limit=121')), 'limit equal to the count: no next');
    t.ok(nextLink(await page('?limit=120')), 'one short: next');

    t.same(ids(await page(`?before=${sent[10]}&limit=5`)), sent.slice(5, 10), 'before: the older page');
    const oldest = await page(`?before=${sent[0]}`);
    t.same(oldest.json, [], 'nothing before the first');
    t.notOk(nextLink(oldest));
    t.same(ids(await page(`?before=${Number.MAX_SAFE_INTEGER}&limit=3`)), sent.slice(-3), 'before beyond the newest');

    t.same(ids(await page(`?after=${sent[10]}&limit=5`)), sent.slice(11, 16), 'after: the newer page, ascending');
    t.same(ids(await page(`?after=${sent[115]}`)), sent.slice(116), 'after near the end');
    t.same((await page(`?after=${sent.at(-1)}`)).json, [], 'nothing after the newest');
    t.same(ids(await page(`?after=${sent[10]}&before=${sent[20]}`)), sent.slice(11, 20), 'between after and before');
    t.same(ids(await page(`?after=${sent[10]}&before=${sent[20]}&limit=3`)), sent.slice(17, 20), 'between, limited: the newest of the range');

    for (const bad of ['0', '201', '-1', 'abc', '1.5', '', '1e400', '99999999999999999999', '0x10', '1e1', '+5', '%205']) {
      expectError(t, await page(`?limit=${bad}`), 400, /limit/, `limit=${bad}`);
    }
    for (const param of ['before', 'after']) {
      for (const bad of ['0', '-1', 'abc', '1.5', '9223372036854775808', '1e400', '0x10', '%00', '1e1', '+5', '%205']) {
        expectError(t, await page(`?${param}=${bad}`), 400, new RegExp(param), `${param}=${bad}`);
      }
    }
  });

  // ---------------------------------------------------------------------------------------
  t.test('deleted content never comes back', async (t) => {
    const [alice, bob] = await Promise.all([register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob]);
    const original = `original-${randomBytes(8).toString('hex')}`;
    const edited = `edited-${randomBytes(8).toString('hex')}`;
    const key = `key-${randomBytes(4).toString('hex')}`;
    await sendOk(t, bob, cid, 'before it');
    const sent = await send(alice, cid, original, key);
    t.equal(sent.status, 201);
    const id = sent.json.id as number;
    await sendOk(t, bob, cid, 'after it');
    const path = `/api/conversations/${cid}/messages/${id}/`;
    t.equal((await api('PATCH', path, { token: alice.token, body: { content: edited } })).status, 200);

    const from = seen.length;
    t.equal((await api('DELETE', path, { token: alice.token })).status, 204);

    const history = await api('GET', `/api/conversations/${cid}/messages/`, { token: bob.token });
    const tombstone = history.json.find((m: { id: number }) => m.id === id);
    t.match(tombstone, { id, is_deleted: true, content: '', attachments: [], sender: alice.user.username });
    t.same(tombstone.attachments, []);
    t.equal(history.json.length, 3, 'the message keeps its place in the history');

    // Every way a client could ask for it again.
    await api('GET', `/api/conversations/${cid}/messages/`, { token: alice.token });
    await api('GET', `/api/conversations/${cid}/messages/?before=${id + 1}&limit=1`, { token: bob.token });
    await api('GET', `/api/conversations/${cid}/messages/?after=${id - 1}&limit=1`, { token: bob.token });
    await api('GET', `/api/conversations/${cid}/messages/?limit=200`, { token: bob.token });
    expectError(t, await api('PATCH', path, { token: alice.token, body: { content: original } }), 409, undefined, 'edit back');
    expectError(t, await api('PATCH', path, { token: bob.token, body: { content: 'x' } }), 403, undefined, 'edit by the other');
    await api('DELETE', path, { token: alice.token });
    const retried = await send(alice, cid, original, key);
    t.equal(retried.status, 200, 'a retried client_id returns the message…');
    t.match(retried.json, { id, is_deleted: true, content: '' }, '…deleted, without its text');
    await api('GET', `/api/conversations/${cid}/`, { token: bob.token });
    await api('GET', '/api/conversations/', { token: alice.token });
    await api('GET', '/api/conversations/', { token: bob.token });
    await api('GET', `/api/users/?search=${encodeURIComponent(alice.user.username)}`, { token: bob.token });

    const leaks = seen.slice(from).filter((r) => r.body.includes(original) || r.body.includes(edited));
    t.same(leaks.map((r) => r.label), [], 'no response after the delete carries the text');

    const [row] = await database.query<{ content: string; is_deleted: boolean }>(sql`select content, is_deleted from messages where id = ${id}`);
    t.same(row, { content: '', is_deleted: true }, 'the row keeps no text');
    const replay = JSON.stringify(await events(cid));
    t.notOk(replay.includes(original) || replay.includes(edited), 'the event replay does not carry it');
    const tables = await database.query<{ tablename: string }>(sql`select tablename from pg_tables where schemaname = 'public'`);
    t.ok(tables.length >= 5);
    for (const { tablename } of tables) {
      const [hit] = await database.query<{ n: number }>(
        sql`select count(*)::int as n from ${sql.identifier(tablename)} x where x::text like ${`%${original}%`} or x::text like ${`%${edited}%`}`,
      );
      t.equal(hit?.n, 0, `no trace in table ${tablename}`);
    }
  });

  // ---------------------------------------------------------------------------------------
  t.test('seq: every create, edit and delete takes the next one', async (t) => {
    const [alice, bob, carol] = await Promise.all([register(app), register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob]);
    const base = `/api/conversations/${cid}/messages/`;
    const m1 = await sendOk(t, alice, cid, 'one');
    const m2 = await sendOk(t, alice, cid, 'two');
    const m3 = await sendOk(t, bob, cid, 'three');
    t.same([m1.seq, m2.seq, m3.seq], [1, 2, 3], 'messages carry their seq');
    // Refusals between the writes must not use a seq.
    await api('PATCH', `${base}${m1.id}/`, { token: bob.token, body: { content: 'no' } });
    await api('POST', base, { token: carol.token, body: { content: 'no' } });
    await api('POST', base, { token: alice.token, body: { content: '  ' } });
    t.equal((await api('PATCH', `${base}${m1.id}/`, { token: alice.token, body: { content: 'one, edited' } })).status, 200);
    await api('DELETE', `${base}${m3.id}/`, { token: alice.token });
    t.equal((await api('DELETE', `${base}${m2.id}/`, { token: alice.token })).status, 204);
    await api('PATCH', `${base}${m2.id}/`, { token: alice.token, body: { content: 'no' } });
    await api('DELETE', `${base}${m2.id}/`, { token: alice.token });
    const m4 = await sendOk(t, bob, cid, 'four');
    t.equal(m4.seq, 6);
    t.equal((await api('PATCH', `${base}${m4.id}/`, { token: bob.token, body: { content: 'four, edited' } })).status, 200);
    t.equal((await api('DELETE', `${base}${m4.id}/`, { token: bob.token })).status, 204);

    const log = await events(cid);
    expectGapFree(t, log.map((e) => e.seq), 'event log');
    t.same(
      log.map((e) => e.type),
      ['chat.message', 'chat.message', 'chat.message', 'message.edited', 'message.deleted', 'chat.message', 'message.deleted', 'message.deleted'],
      'event kinds (an edit of a since-deleted message replays as its deletion)',
    );
    t.equal((await events(cid)).length, 8);
    t.same((await readEvents(database, app.links, cid, 5, 2)).map((e) => e.seq), [6, 7], 'resume after a seq, limited');
    const conversation = await api('GET', `/api/conversations/${cid}/`, { token: alice.token });
    t.equal(conversation.json.last_seq, 8, 'the conversation knows its newest seq');
  });

  // ---------------------------------------------------------------------------------------
  t.test('concurrency across two app instances on one database', async (t) => {
    let secondDatabase: DatabaseHandle = database;
    if (kind === 'postgres') {
      // A second pool of its own: two replicas in all but process.
      secondDatabase = createDatabase({ url, embeddedDir: '', poolSize: 10 });
      t.teardown(() => secondDatabase.close());
    }
    const second = await buildTestApp(t, { database: secondDatabase, bus: createMemoryBus() });
    const [alice, bob] = await Promise.all([register(app), register(second)]);
    const cid = await createConversation(second, alice, [bob]);

    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => send(i % 3 ? alice : bob, cid, `parallel ${i}`, undefined, i % 2 ? app : second)),
    );
    t.same([...new Set(results.map((r) => r.status))], [201], 'all 200 sent');
    const seqs = results.map((r) => r.json.seq as number).sort((x, y) => x - y);
    expectGapFree(t, seqs, '200 parallel sends');
    t.equal(new Set(results.map((r) => r.json.id)).size, 200, '200 distinct ids');
    const listed = await api('GET', `/api/conversations/${cid}/messages/?limit=200`, { token: alice.token });
    t.equal(listed.json.length, 200, '200 messages stored');
    const bySeq = [...listed.json].sort((x: { seq: number }, y: { seq: number }) => x.seq - y.seq);
    t.same(bySeq.map((m: { id: number }) => m.id), ids(listed), 'id order is seq order');
    expectGapFree(t, (await events(cid)).map((e) => e.seq), 'event log');

    const key = `same-${randomBytes(4).toString('hex')}`;
    const retries = await Promise.all(
      Array.from({ length: 20 }, (_, i) => send(alice, cid, `retry ${i}`, key, i % 2 ? app : second)),
    );
    t.equal(retries.filter((r) => r.status === 201).length, 1, 'one 201');
    t.equal(retries.filter((r) => r.status === 200).length, 19, 'nineteen 200s');
    t.equal(new Set(retries.map((r) => r.json.id)).size, 1, 'all carry the same id');
    const [count] = await database.query<{ n: number }>(
      sql`select count(*)::int as n from messages where conversation_id = ${cid} and client_id = ${key}`,
    );
    t.equal(count?.n, 1, 'exactly one row');
    t.equal(retries[0]?.json.seq, 201, 'it took seq 201');
    const log = await events(cid);
    expectGapFree(t, log.map((e) => e.seq), 'after the retries');
    t.equal(log.length, 201);

    // Edits racing a delete of the same message: serialised; the delete wins for good.
    const target = await sendOk(t, alice, cid, 'contested');
    const secretEdit = `race-${randomBytes(6).toString('hex')}`;
    const raced = await Promise.all([
      ...Array.from({ length: 10 }, (_, i) =>
        req(i % 2 ? app : second, 'PATCH', `/api/conversations/${cid}/messages/${target.id}/`, { token: alice.token, body: { content: `${secretEdit} ${i}` } }),
      ),
      req(second, 'DELETE', `/api/conversations/${cid}/messages/${target.id}/`, { token: alice.token }),
    ]);
    t.ok(raced.slice(0, 10).every((r) => r.status === 200 || r.status === 409), 'each edit applied before the delete, or refused after it');
    t.equal(raced[10]?.status, 204);
    const [row] = await database.query<{ content: string }>(sql`select content from messages where id = ${target.id}`);
    t.equal(row?.content, '', 'no edit resurrected the text');
    const final = await events(cid);
    expectGapFree(t, final.map((e) => e.seq), 'after the race');
    t.equal(final.length, 201 + 1 + raced.filter((r) => r.status === 200 || r.status === 204).length, 'one seq per applied write');
    t.notOk(JSON.stringify(final).includes(secretEdit), 'the replay has no raced text');
  });

  // ---------------------------------------------------------------------------------------
  t.test('bad input never gets a 500', async (t) => {
    const [alice, bob] = await Promise.all([register(app), register(app)]);
    const cid = await createConversation(app, alice, [bob]);
    const mid = (await sendOk(t, alice, cid, 'target')).id;
    const json = { 'content-type': 'application/json' };
    const messages = `/api/conversations/${cid}/messages/`;

    interface Case {
      label: string;
      method: Method;
      path: string;
      status: number | number[];
      options?: CallOptions;
      mentions?: RegExp;
    }
    const auth = { token: alice.token };
    const cases: Case[] = [
      { label: 'malformed JSON', method: 'POST', path: messages, status: 400, options: { ...auth, payload: '{"content": "x"', headers: json } },
      { label: 'not JSON at all', method: 'POST', path: messages, status: 400, options: { ...auth, payload: 'content=x', headers: json } },
      { label: 'empty JSON body', method: 'POST', path: messages, status: 400, options: { ...auth, payload: '', headers: json } },
      { label: 'JSON null', method: 'POST', path: messages, status: 400, options: { ...auth, payload: 'null', headers: json } },
      { label: 'JSON array', method: 'POST', path: messages, status: 400, options: { ...auth, payload: '[{"content":"x"}]', headers: json } },
      { label: 'JSON string', method: 'POST', path: messages, status: 400, options: { ...auth, payload: '"x"', headers: json } },
      { label: 'no body', method: 'POST', path: messages, status: 400, options: auth },
      { label: 'XML', method: 'POST', path: messages, status: 415, options: { ...auth, payload: '<content>x</content>', headers: { 'content-type': 'application/xml' } } },
      { label: 'form', method: 'POST', path: messages, status: 415, options: { ...auth, payload: 'content=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } } },
      { label: 'register as form', method: 'POST', path: '/api/auth/register/', status: 415, options: { payload: 'username=abc&password=12345678', headers: { 'content-type': 'application/x-www-form-urlencoded' } } },
      { label: 'text/plain', method: 'POST', path: messages, status: [400, 415], options: { ...auth, payload: '{"content":"x"}', headers: { 'content-type': 'text/plain' } } },
      { label: 'body over BODY_LIMIT_BYTES', method: 'POST', path: messages, status: 413, options: { ...auth, body: { content: 'a'.repeat(1024 * 1024 + 1) } } },
      { label: '__proto__ in a message', method: 'POST', path: messages, status: 400, options: { ...auth, payload: '{"content":"x","__proto__":{"is_admin":true}}', headers: json } },
      { label: 'constructor.prototype', method: 'POST', path: messages, status: 400, options: { ...auth, payload: '{"content":"x","constructor":{"prototype":{"polluted":true}}}', headers: json } },
      { label: '__proto__ in register', method: 'POST', path: '/api/auth/register/', status: 400, options: { payload: '{"username":"protouser","password":"12345678","__proto__":{"x":1}}', headers: json } },
      { label: '__proto__ in a conversation', method: 'POST', path: '/api/conversations/', status: 400, options: { ...auth, payload: `{"participants":[${bob.user.id}],"__proto__":{"x":1}}`, headers: json } },
      { label: '1e400 as a participant', method: 'POST', path: '/api/conversations/', status: 400, options: { ...auth, payload: '{"participants":[1e400]}', headers: json }, mentions: /participants/ },
      { label: '2^63 as a participant', method: 'POST', path: '/api/conversations/', status: 400, options: { ...auth, payload: '{"participants":[9223372036854775808]}', headers: json }, mentions: /participants/ },
      { label: '1e400 as content', method: 'POST', path: messages, status: 400, options: { ...auth, payload: '{"content":1e400}', headers: json }, mentions: /content/ },
      { label: 'NUL escaped in register', method: 'POST', path: '/api/auth/register/', status: 400, options: { payload: '{"username":"nul\\u0000name","password":"12345678"}', headers: json }, mentions: /username/ },
      { label: 'NUL in a login password', method: 'POST', path: '/api/auth/login/', status: [400, 401], options: { payload: `{"username":"${alice.user.username}","password":"1234\\u00005678"}`, headers: json } },
      { label: 'NUL in search', method: 'GET', path: '/api/users/?search=%00', status: 400, options: auth, mentions: /search/ },
      { label: 'bad percent-encoding in search', method: 'GET', path: '/api/users/?search=%E0%A4%A', status: [200, 400], options: auth },
      { label: 'deeply nested JSON', method: 'POST', path: '/api/conversations/', status: 400, options: { ...auth, payload: `{"participants":${'['.repeat(50_000)}${']'.repeat(50_000)}}`, headers: json } },
      { label: 'deeply nested object', method: 'POST', path: messages, status: 400, options: { ...auth, payload: `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`, headers: json } },
      { label: 'PUT is not a route', method: 'PUT', path: messages, status: [404, 405], options: { ...auth, body: { content: 'x' } } },
      { label: 'unknown route', method: 'GET', path: '/api/nothing-here/', status: 404, options: auth },
    ];
    const oddIds: [string, number | number[]][] = [
      ['abc', 400],
      ['1.5', 400],
      ['-1', 400],
      ['0', 400],
      ['1e400', 400],
      ['9223372036854775808', 400],
      ['2147483648', 400],
      ['99999999999999999999999999', 400],
      ['0x10', 400],
      ['%00', 400],
      ['%20', 400],
      ['NaN', 400],
      ['Infinity', 400],
      ['1_000', 400],
      ['1e1', 400],
      ['+16', 400],
      ['%2016', 400],
      ['%E0%A4%A', 400],
      [`${MAX_INT4}`, 404],
    ];
    for (const [id, status] of oddIds) {
      cases.push({ label: `conversation id ${id}`, method: 'GET', path: `/api/conversations/${id}/`, status, options: auth });
      cases.push({ label: `messages of conversation ${id}`, method: 'GET', path: `/api/conversations/${id}/messages/`, status, options: auth });
      cases.push({ label: `send to conversation ${id}`, method: 'POST', path: `/api/conversations/${id}/messages/`, status, options: { ...auth, body: { content: 'x' } } });
    }
    for (const [id, status] of [...oddIds.filter(([id]) => id !== `${MAX_INT4}` && id !== '2147483648'), ['9007199254740992', 400], [`${Number.MAX_SAFE_INTEGER}`, 404]] as const) {
      cases.push({ label: `edit message ${id}`, method: 'PATCH', path: `${messages}${id}/`, status, options: { ...auth, body: { content: 'x' } } });
      cases.push({ label: `delete message ${id}`, method: 'DELETE', path: `${messages}${id}/`, status, options: auth });
    }

    for (const c of cases) {
      const response = await api(c.method, c.path, c.options);
      const allowed = Array.isArray(c.status) ? c.status : [c.status];
      t.ok(allowed.includes(response.status), `${c.label}: ${response.status} in [${allowed}] (${response.body.slice(0, 200)})`);
      if (response.status >= 400) {
        t.match(response.json, { statusCode: response.status, error: STATUS_CODES[response.status], message: String }, `${c.label}: error shape`);
        t.notMatch(response.body, STACK_TRACE, `${c.label}: no stack trace`);
      }
      if (c.mentions) t.match(response.json?.message, c.mentions, `${c.label}: names the field`);
    }

    const charset = await api('POST', messages, { ...auth, payload: JSON.stringify({ content: 'with charset' }), headers: { 'content-type': 'application/json; charset=utf-8' } });
    t.equal(charset.status, 201, 'application/json; charset=utf-8 is JSON');
    const listed = await api('GET', `${messages}?limit=200`, { token: alice.token });
    t.same(listed.json.map((m: { id: number }) => m.id), [mid, charset.json.id], 'none of the rest was stored');
    t.equal(({} as Record<string, unknown>).is_admin, undefined, 'no prototype pollution');
    t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
  });

  t.test('small BODY_LIMIT_BYTES from the environment', async (t) => {
    const limited = await buildTestApp(t, { database, bus: createMemoryBus(), env: { BODY_LIMIT_BYTES: '2048' } });
    const alice = await register(limited);
    const bob = await register(limited);
    const cid = await createConversation(limited, alice, [bob]);
    t.equal((await send(alice, cid, 'a'.repeat(1900), undefined, limited)).status, 201, 'under the limit');
    expectError(t, await send(alice, cid, 'a'.repeat(2100), undefined, limited), 413, undefined, 'over the limit');
  });

  // ---------------------------------------------------------------------------------------
  t.test('paths without the trailing slash', async (t) => {
    const username = randomName('slash');
    const registered = await api('POST', '/api/auth/register', { body: { username, password: 'password123' } });
    t.equal(registered.status, 201, 'POST /api/auth/register');
    const alice = registered.json as Session;
    const login = await api('POST', '/api/auth/login', { body: { username, password: 'password123' } });
    t.equal(login.status, 200, 'POST /api/auth/login');
    const bob = await register(app);
    t.equal((await api('GET', '/api/users/me', { token: alice.token })).status, 200, 'GET /api/users/me');
    t.equal((await api('GET', `/api/users?search=${username}`, { token: alice.token })).json.length, 1, 'GET /api/users');
    const created = await api('POST', '/api/conversations', { token: alice.token, body: { participants: [bob.user.id] } });
    t.equal(created.status, 201, 'POST /api/conversations');
    const cid = created.json.id;
    t.equal((await api('GET', '/api/conversations', { token: alice.token })).status, 200, 'GET /api/conversations');
    t.equal((await api('GET', `/api/conversations/${cid}`, { token: alice.token })).status, 200, 'GET /api/conversations/{id}');
    const sent = await api('POST', `/api/conversations/${cid}/messages`, { token: alice.token, body: { content: 'no slash' } });
    t.equal(sent.status, 201, 'POST …/messages');
    t.equal((await api('GET', `/api/conversations/${cid}/messages?limit=5`, { token: alice.token })).json.length, 1, 'GET …/messages');
    t.equal((await api('PATCH', `/api/conversations/${cid}/messages/${sent.json.id}`, { token: alice.token, body: { content: 'edited' } })).status, 200, 'PATCH …/{mid}');
    t.equal((await api('DELETE', `/api/conversations/${cid}/messages/${sent.json.id}`, { token: alice.token })).status, 204, 'DELETE …/{mid}');
  });

  // ---------------------------------------------------------------------------------------
  t.test('health, OpenAPI and docs', async (t) => {
    t.equal((await api('GET', '/healthz')).status, 200);
    t.equal((await api('GET', '/readyz')).status, 200);
    const spec = await api('GET', '/openapi.json');
    t.equal(spec.status, 200);
    t.match(spec.json, { openapi: /^3\./, info: { title: String }, paths: Object });
    const expected: [string, string][] = [
      ['/api/auth/register/', 'post'],
      ['/api/auth/login/', 'post'],
      ['/api/users/me/', 'get'],
      ['/api/users/', 'get'],
      ['/api/conversations/', 'get'],
      ['/api/conversations/', 'post'],
      ['/api/conversations/{id}/', 'get'],
      ['/api/conversations/{id}/messages/', 'get'],
      ['/api/conversations/{id}/messages/', 'post'],
      ['/api/conversations/{id}/messages/{mid}/', 'patch'],
      ['/api/conversations/{id}/messages/{mid}/', 'delete'],
    ];
    for (const [path, method] of expected) t.ok(spec.json.paths?.[path]?.[method], `OpenAPI lists ${method.toUpperCase()} ${path}`);

    let docs = await api('GET', '/docs');
    for (let hops = 0; hops < 3 && docs.status >= 300 && docs.status < 400; hops++) {
      docs = await api('GET', new URL(String(docs.headers.location), 'http://localhost/docs/').pathname);
    }
    t.equal(docs.status, 200, '/docs answers');
    t.match(String(docs.headers['content-type']), /text\/html/);
    t.match(docs.body, /swagger/i, 'the Swagger UI');
  });

  // ---------------------------------------------------------------------------------------
  t.test('database down', async (t) => {
    let down: DatabaseHandle;
    if (kind === 'postgres') {
      down = createDatabase({ url: 'postgres://postgres@127.0.0.1:1/nothing', embeddedDir: '', poolSize: 2 });
      t.teardown(() => down.close());
    } else {
      // The embedded database has no server to lose: closing it is its outage.
      down = createDatabase({ embeddedDir: 'memory://', poolSize: 1 });
      await down.close();
    }
    const broken = await buildTestApp(t, { database: down, bus: createMemoryBus(), env: { MIGRATE_ON_START: 'false' } });
    // A valid token, as an existing user would hold.
    const token = signJwt({ sub: '1', username: 'someone', exp: nowSeconds() + 600 }, broken.config.JWT_SECRET);
    const requests: [Method, string, object | undefined, string | undefined][] = [
      ['POST', '/api/auth/register/', { username: randomName(), password: 'password123' }, undefined],
      ['POST', '/api/auth/login/', { username: 'someone', password: 'password123' }, undefined],
      ['GET', '/api/users/?search=a', undefined, token],
      ['GET', '/api/conversations/', undefined, token],
      ['POST', '/api/conversations/', { participants: [2] }, token],
      ['GET', '/api/conversations/1/', undefined, token],
      ['GET', '/api/conversations/1/messages/', undefined, token],
      ['POST', '/api/conversations/1/messages/', { content: 'hello' }, token],
      ['PATCH', '/api/conversations/1/messages/1/', { content: 'hello' }, token],
      ['DELETE', '/api/conversations/1/messages/1/', undefined, token],
    ];
    for (let round = 0; round < 2; round++) {
      for (const [method, path, body, bearer] of requests) {
        const started = Date.now();
        const response = await req(broken, method, path, { body, token: bearer });
        expectError(t, response, 503, undefined, `${method} ${path} (round ${round + 1})`);
        t.ok(Date.now() - started < 3000, `${method} ${path}: the 503 comes fast (${Date.now() - started} ms)`);
        t.match(response.headers['retry-after'], /^\d+$/, 'with Retry-After');
        t.notMatch(response.body, STACK_TRACE);
      }
      const ready = await req(broken, 'GET', '/readyz');
      t.equal(ready.status, 503, '/readyz: not ready');
      t.equal(ready.json?.checks?.database, false, 'because of the database');
      t.equal((await req(broken, 'GET', '/healthz')).status, 200, '/healthz: the process is alive');
    }
    t.equal((await req(broken, 'GET', '/openapi.json')).status, 200, 'what needs no database still works');
    expectError(t, await req(broken, 'GET', '/api/users/me/', { token }), 503, undefined, '/api/users/me/ reads the user row');
  });

  // ---------------------------------------------------------------------------------------
  t.test('every response: no 500, one error shape, no stack trace', async (t) => {
    t.ok(seen.length > 300, `${seen.length} responses checked`);
    t.same(seen.filter((r) => r.status >= 500 && r.status !== 503).map((r) => `${r.label} ${r.status}`), [], 'no 5xx but 503');
    const misshapen = seen.filter((r) => {
      // /readyz reports its checks in its own shape, 503 included.
      if (r.status < 400 || r.label.endsWith(' /readyz')) return false;
      const body = r.json as { statusCode?: unknown; error?: unknown; message?: unknown } | undefined;
      return !body || body.statusCode !== r.status || body.error !== STATUS_CODES[r.status] || typeof body.message !== 'string';
    });
    t.same(misshapen.map((r) => `${r.label} ${r.status} ${r.body.slice(0, 100)}`), [], 'every error has {statusCode, error, message}');
    t.same(seen.filter((r) => STACK_TRACE.test(r.body)).map((r) => r.label), [], 'no stack traces');
  });
}
