/**
 * Accounts and tokens (API.md, Authentication): register, login, and which bearer tokens
 * every protected route accepts or refuses.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Test } from 'tap';
import { randomName, register } from '../helpers/api.js';
import { decodeJwt, nowSeconds, signJwt } from '../helpers/jwt.js';
import { MAX_INT4, expectError, type Method, type RestContext } from '../helpers/rest-context.js';

export function restAuthSuite(t: Test, context: RestContext): void {
  const { database, app, secret, api } = context;

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
    // API.md, version 2: a token of a user that does not exist is refused.
    expectError(t, await api('GET', '/api/conversations/', { token: ghost }), 401, undefined, 'a ghost lists nothing: refused');
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
}
