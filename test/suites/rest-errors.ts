/**
 * Refusals and outages: bad input of every kind is a 4xx in the one error shape, never a 500;
 * BODY_LIMIT_BYTES; and a database that is down answers 503 fast.
 */
import { STATUS_CODES } from 'node:http';
import type { Test } from 'tap';
import { createMemoryBus } from '../../src/bus/bus-memory.js';
import { createDatabase, type DatabaseHandle } from '../../src/db/client.js';
import { createConversation, randomName, register } from '../helpers/api.js';
import { buildTestApp } from '../helpers/app.js';
import { nowSeconds, signJwt } from '../helpers/jwt.js';
import { MAX_INT4, STACK_TRACE, expectError, type Method, type CallOptions, type RestContext } from '../helpers/rest-context.js';

export function restErrorsSuite(t: Test, context: RestContext): void {
  const { kind, database, app, req, api, send, sendOk } = context;

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
}
