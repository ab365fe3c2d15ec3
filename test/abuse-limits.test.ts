/**
 * Every limit of issue 12 hit with real requests: 429 with Retry-After (or an `error` event),
 * plus TRUST_PROXY, API_DOCS and the search prefix; and the limits shared by two replicas.
 */
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { socketSlotsKey } from '../src/redis/names.js';
import { call, createConversation, randomName, register } from './helpers/api.js';
import { buildTestApp as buildApp, testDatabase, type TestAppOptions } from './helpers/app.js';

/** An app on its own migrated in-memory PGlite. */
const buildTestApp = async (t: Test, options: TestAppOptions = {}) => buildApp(t, { database: (await testDatabase(t, 'pglite')).database, ...options });
import { startTopology } from './helpers/replicas.js';
import { chatUrl, WsClient } from './helpers/ws-client.js';

const limited = (t: Test, response: { status: number; headers: Record<string, unknown> }, label: string) => {
  t.equal(response.status, 429, `${label} → 429`);
  t.ok(Number(response.headers['retry-after']) > 0, `${label}: Retry-After`);
};

t.test('per-user write limits: edits and deletes, conversations, uploads, tickets and password changes', async (t) => {
  const app = await buildTestApp(t, {
    env: { EDIT_RATE_LIMIT: '2', CONVERSATION_RATE_LIMIT: '1', UPLOAD_RATE_LIMIT: '1', TOKEN_RATE_LIMIT: '2' },
  });
  const alice = await register(app);
  const bob = await register(app);
  const id = await createConversation(app, alice, [bob]);
  limited(t, await call(app, 'POST', '/api/conversations/', { token: alice.token, body: { participants: [bob.user.id] } }), 'second conversation');
  const sent = await call(app, 'POST', `/api/conversations/${id}/messages/`, { token: alice.token, body: { content: 'hi' } });
  const path = `/api/conversations/${id}/messages/${sent.json.id}/`;
  t.equal((await call(app, 'PATCH', path, { token: alice.token, body: { content: 'one' } })).status, 200);
  t.equal((await call(app, 'PATCH', path, { token: alice.token, body: { content: 'two' } })).status, 200);
  limited(t, await call(app, 'DELETE', path, { token: alice.token }), 'third edit/delete');
  t.equal((await call(app, 'PATCH', path, { token: bob.token, body: { content: 'x' } })).status, 403, 'another user has their own budget');

  const upload = () =>
    app.inject({
      method: 'POST',
      url: `${path}attachments/`,
      headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'multipart/form-data; boundary=b' },
      payload: '--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n',
    });
  const message2 = await call(app, 'POST', `/api/conversations/${id}/messages/`, { token: alice.token, body: { content: 'file' } });
  const first = await app.inject({
    method: 'POST',
    url: `/api/conversations/${id}/messages/${message2.json.id}/attachments/`,
    headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'multipart/form-data; boundary=b' },
    payload: '--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n',
  });
  t.equal(first.statusCode, 201, 'one upload');
  const second = await upload();
  limited(t, { status: second.statusCode, headers: second.headers }, 'second upload');

  t.equal((await call(app, 'POST', '/api/auth/ws-ticket/', { token: alice.token })).status, 201);
  t.equal((await call(app, 'POST', '/api/users/me/password/', { token: alice.token, body: { current_password: 'wrong one!', new_password: 'whatever 123' } })).status, 403);
  limited(t, await call(app, 'POST', '/api/auth/ws-ticket/', { token: alice.token }), 'third ticket or password change');
});

t.test('edits over a socket are limited too: an error event rate_limited with retry_after', async (t) => {
  const app = await buildTestApp(t, { env: { EDIT_RATE_LIMIT: '1' } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const alice = await register(app);
  const bob = await register(app);
  const id = await createConversation(app, alice, [bob]);
  const sent = await call(app, 'POST', `/api/conversations/${id}/messages/`, { token: alice.token, body: { content: 'hi' } });
  const socket = await WsClient.connect(chatUrl(`ws://127.0.0.1:${port}`, id), { token: alice.token });
  socket.send({ type: 'edit_message', message_id: sent.json.id, content: 'one' });
  socket.send({ type: 'edit_message', message_id: sent.json.id, content: 'two' });
  const error = (await socket.waitFor((e) => e.type === 'error')) as { code: string; retry_after?: number };
  t.equal(error.code, 'rate_limited');
  t.ok(Number(error.retry_after) > 0, 'with retry_after');
  socket.ws.close();
});

t.test('typing: alternating true and false is throttled as a pair', async (t) => {
  const app = await buildTestApp(t);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const alice = await register(app);
  const bob = await register(app);
  const id = await createConversation(app, alice, [bob]);
  const url = chatUrl(`ws://127.0.0.1:${port}`, id);
  const [typist, watcher] = await Promise.all([WsClient.connect(url, { token: alice.token }), WsClient.connect(url, { token: bob.token })]);
  // The watcher is in the room once its own frame has come back to it.
  watcher.send({ type: 'chat_message', message: 'ready', client_id: 'r' });
  await watcher.waitFor((e) => e.type === 'chat.message');
  for (let i = 0; i < 20; i++) typist.send({ type: 'typing', is_typing: i % 2 === 0 });
  typist.send({ type: 'chat_message', message: 'after typing', client_id: 'a' });
  await watcher.waitFor((e) => e.type === 'chat.message' && (e as { message: { content: string } }).message.content === 'after typing');
  const typing = watcher.events.filter((e) => e.type === 'user.typing').map((e) => (e as { is_typing: boolean }).is_typing);
  t.same(typing, [true, false], '20 alternating frames within a second: one true and one false reach the others');
  typist.ws.close();
  watcher.ws.close();
});

t.test('concurrent uploads: per user and per replica, 429 past the bound', async (t) => {
  const app = await buildTestApp(t, { env: { MAX_UPLOADS_PER_USER: '1', MAX_UPLOADS: '2' } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const users = [await register(app), await register(app), await register(app)];
  const id = await createConversation(app, users[0]!, [users[1]!, users[2]!]);
  const messageOf = async (token: string) =>
    (await call(app, 'POST', `/api/conversations/${id}/messages/`, { token, body: { content: 'file' } })).json.id as number;
  const head = '--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\n';
  /** An upload whose body is held open until `finish` is called. */
  const slowUpload = async (token: string) => {
    const mid = await messageOf(token);
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: `/api/conversations/${id}/messages/${mid}/attachments/`,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'multipart/form-data; boundary=b' },
    });
    const answer = new Promise<number>((resolve, reject) => {
      req.on('response', (res) => {
        res.resume();
        if (res.statusCode === 429) t.ok(Number(res.headers['retry-after']) > 0, '429 with Retry-After');
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    req.write(head + 'x'.repeat(1024));
    return { answer, finish: () => req.end('\r\n--b--\r\n') };
  };
  const quickUpload = async (token: string) =>
    app.inject({
      method: 'POST',
      url: `/api/conversations/${id}/messages/${await messageOf(token)}/attachments/`,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'multipart/form-data; boundary=b' },
      payload: `${head}hello\r\n--b--\r\n`,
    });
  // Two held uploads of one user: whichever arrives second is refused while the first is held.
  const sameUser = [await slowUpload(users[0]!.token), await slowUpload(users[0]!.token)];
  const firstAnswer = await Promise.race(sameUser.map((upload, index) => upload.answer.then((status) => ({ status, index }))));
  t.equal(firstAnswer.status, 429, 'same user, second concurrent upload → 429');
  const held = sameUser[1 - firstAnswer.index]!;
  // One place of two left on the replica: of two more users' held uploads one is refused.
  const others = [await slowUpload(users[1]!.token), await slowUpload(users[2]!.token)];
  const otherAnswer = await Promise.race(others.map((upload, index) => upload.answer.then((status) => ({ status, index }))));
  t.equal(otherAnswer.status, 429, 'the replica bound (2) reached → 429 for another user');
  const other = others[1 - otherAnswer.index]!;
  // The refused ones end their bodies too, so the server can close.
  for (const upload of [...sameUser, ...others]) upload.finish();
  t.same(await Promise.all([held.answer, other.answer]), [201, 201], 'the held uploads complete');
  t.equal((await quickUpload(users[0]!.token)).statusCode, 201, 'places are given back');
});

t.test('user search needs USER_SEARCH_MIN_PREFIX characters', async (t) => {
  const app = await buildTestApp(t, { env: { USER_SEARCH_MIN_PREFIX: '2' } });
  const alice = await register(app);
  t.equal((await call(app, 'GET', '/api/users/', { token: alice.token })).status, 400, 'no prefix → 400');
  t.equal((await call(app, 'GET', '/api/users/?search=', { token: alice.token })).status, 400, 'empty → 400');
  t.equal((await call(app, 'GET', '/api/users/?search=%20a%20', { token: alice.token })).status, 400, 'one character after trimming → 400');
  const found = await call(app, 'GET', `/api/users/?search=${alice.user.username.slice(0, 2)}`, { token: alice.token });
  t.equal(found.status, 200);
});

t.test('API_DOCS=false turns off /docs and /openapi.json', async (t) => {
  const on = await buildTestApp(t);
  t.equal((await on.inject('/openapi.json')).statusCode, 200, 'on by default');
  t.equal((await on.inject('/docs')).statusCode < 400, true);
  const off = await buildTestApp(t, { env: { API_DOCS: 'false' } });
  t.equal((await off.inject('/openapi.json')).statusCode, 404);
  t.equal((await off.inject('/docs')).statusCode, 404);
});

t.test('TRUST_PROXY decides whose X-Forwarded-For counts for the per-IP login limit', async (t) => {
  const attempts = async (env: Record<string, string>) => {
    const app = await buildTestApp(t, { env: { AUTH_RATE_LIMIT: '2', ...env } });
    const statuses: number[] = [];
    for (const ip of ['203.0.113.1', '203.0.113.2', '203.0.113.3']) {
      const response = await app.inject({
        method: 'POST',
        url: '/api/auth/login/',
        headers: { 'x-forwarded-for': ip },
        payload: { username: randomName(), password: 'wrong password!' },
      });
      statuses.push(response.statusCode);
      if (response.statusCode === 429) t.ok(Number(response.headers['retry-after']) > 0, 'Retry-After');
    }
    return statuses;
  };
  t.same(await attempts({}), [401, 401, 429], 'unset: nobody is trusted, a forged X-Forwarded-For buys no fresh budget');
  t.same(await attempts({ TRUST_PROXY: '127.0.0.1' }), [401, 401, 401], 'the load balancer at 127.0.0.1 is trusted: one budget per client');
  t.same(await attempts({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.0/8' }), [401, 401, 401], 'CIDRs');
  t.same(await attempts({ TRUST_PROXY: '1' }), [401, 401, 401], 'a hop count');
  t.same(await attempts({ TRUST_PROXY: '192.0.2.1' }), [401, 401, 429], 'another proxy address: the peer is not trusted');
});

t.test('limits are shared by two replicas: edits, tickets, and MAX_SOCKETS_PER_USER', async (t) => {
  const topology = await startTopology(t, {
    backend: 'redis',
    replicas: 2,
    env: { EDIT_RATE_LIMIT: '2', TOKEN_RATE_LIMIT: '2', MAX_SOCKETS_PER_USER: '2' },
  });
  const [r0, r1] = [topology.at(0), topology.at(1)];
  const reg = async () =>
    (await r0.http('POST', '/api/auth/register/', { body: { username: randomName(), password: 'correct horse battery' } })).json as {
      token: string;
      user: { id: number };
    };
  const alice = await reg();
  const bob = await reg();
  const id = (await r0.http('POST', '/api/conversations/', { token: alice.token, body: { participants: [bob.user.id] } })).json.id as number;
  const mid = (await r0.http('POST', `/api/conversations/${id}/messages/`, { token: alice.token, body: { content: 'hi' } })).json.id as number;
  const edit = (replica: typeof r0) => replica.http('PATCH', `/api/conversations/${id}/messages/${mid}/`, { token: alice.token, body: { content: 'e' } });
  t.same([(await edit(r0)).status, (await edit(r1)).status], [200, 200]);
  const third = await edit(r0);
  t.equal(third.status, 429, 'the third edit, on the first replica again → 429');
  t.ok(Number(third.headers.get('retry-after')) > 0, 'Retry-After');

  const ticket = (replica: typeof r0) => replica.http('POST', '/api/auth/ws-ticket/', { token: bob.token });
  t.same([(await ticket(r1)).status, (await ticket(r0)).status, (await ticket(r1)).status], [201, 201, 429], 'tickets counted across replicas');

  const url = (replica: typeof r0) => chatUrl(replica.wsUrl, id);
  const one = await WsClient.connect(url(r0), { token: alice.token });
  const two = await WsClient.connect(url(r1), { token: alice.token });
  for (const socket of [one, two]) {
    socket.send({ type: 'chat_message', message: 'in', client_id: `c${Math.random()}` });
    await socket.waitFor((e) => e.type === 'chat.message');
  }
  const three = await WsClient.connect(url(r0), { token: alice.token });
  t.equal((await three.closed).code, 4429, 'a third socket, on either replica, closes with 4429');
  t.match(three.events[0], { type: 'error', code: 'rate_limited' }, 'after an error event rate_limited');
  const openOnR1 = () => r1.metric('chat_open_sockets', { kind: 'chat' });
  t.equal(await openOnR1(), 1);
  two.ws.close();
  await two.closed;
  // The service frees the place when it has seen the close, which may be after the client has,
  // and the slot's release reaches Redis after that: wait for the slot itself.
  for (const deadline = Date.now() + 5000; (await openOnR1()) !== 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
  const redis = new Redis(topology.redis!.url, { lazyConnect: true });
  t.teardown(() => redis.disconnect());
  const slotsHeld = () => redis.zcard(socketSlotsKey(alice.user.id));
  for (const deadline = Date.now() + 5000; (await slotsHeld()) !== 1 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
  t.equal(await slotsHeld(), 1, "the closed socket's slot is released in Redis");
  const four = await WsClient.connect(url(r0), { token: alice.token });
  four.send({ type: 'chat_message', message: 'again', client_id: 'again' });
  await t.resolves(four.waitFor((e) => e.type === 'chat.message'), 'a closed socket gives its place back');
  one.ws.close();
  four.ws.close();
});
