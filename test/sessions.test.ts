/**
 * API.md's sessions (version 2) on real processes: two replicas sharing PostgreSQL and Redis,
 * and the embedded single node. Logout, logout-all, password change, account deletion and
 * socket tickets; revocations reach the other replica's requests and sockets.
 */
import { setTimeout as delay } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { randomName } from './helpers/api.js';
import { signJwt, nowSeconds } from './helpers/jwt.js';
import { startTopology, TEST_JWT_SECRET, type Topology } from './helpers/replicas.js';
import { chatUrl, notificationsUrl, WsClient } from './helpers/ws-client.js';

const PASSWORD = 'correct horse battery';
/** API.md: "within about a second"; allowed twice that on a loaded CI machine. */
const REVOCATION_MS = 2000;

async function sessionsSuite(t: Test, topology: Topology): Promise<void> {
  const [r0, r1] = [topology.at(0), topology.at(1)];
  const register = async (username = randomName()) => {
    const response = await r0.http('POST', '/api/auth/register/', { body: { username, password: PASSWORD } });
    t.equal(response.status, 201, 'registered');
    return response.json as { token: string; user: { id: number; username: string } };
  };
  const login = async (username: string, password = PASSWORD) =>
    r1.http('POST', '/api/auth/login/', { body: { username, password } });
  const ticket = async (token: string, replica = r0) => {
    const response = await replica.http('POST', '/api/auth/ws-ticket/', { token });
    t.equal(response.status, 201, 'ticket issued');
    t.equal(response.json.expires_in, 30);
    return response.json.ticket as string;
  };
  /** Polls a request until it is refused: revocation is asynchronous on the other replica. */
  const refusedWithin = async (token: string, ms = REVOCATION_MS) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const status = (await r1.http('GET', '/api/conversations/', { token })).status;
      if (status === 401 || Date.now() > deadline) return status;
      await delay(50);
    }
  };
  const closedWith = async (client: WsClient) => {
    const timeout = delay(REVOCATION_MS * 2).then(() => ({ code: 0, reason: 'still open' }));
    return (await Promise.race([client.closed, timeout])).code;
  };

  await t.test('a token of a user that does not exist is refused: 401 and 4401', async (t) => {
    const ghost = signJwt({ sub: '2147483000', username: 'ghost', jti: 'x', iat: nowSeconds(), exp: nowSeconds() + 600 }, TEST_JWT_SECRET);
    t.equal((await r0.http('GET', '/api/conversations/', { token: ghost })).status, 401);
    t.equal((await r1.http('GET', '/api/users/me/', { token: ghost })).status, 401);
    const socket = await WsClient.connect(notificationsUrl(r1.wsUrl), { token: ghost });
    t.equal((await socket.closed).code, 4401);
  });

  await t.test('tickets: single use across replicas, forged ones refused, no token no ticket', async (t) => {
    const alice = await register();
    const bob = await register();
    const created = await r0.http('POST', '/api/conversations/', { token: alice.token, body: { participants: [bob.user.id] } });
    const conversationId = created.json.id as number;
    const issued = await ticket(alice.token, r0);
    const chat = await WsClient.connect(chatUrl(r1.wsUrl, conversationId), { query: { ticket: issued } });
    chat.send({ type: 'chat_message', message: 'via ticket', client_id: 'c1' });
    const event = await chat.waitFor((e) => e.type === 'chat.message');
    t.equal((event as { message: { content: string } }).message.content, 'via ticket', 'a ticket opens a chat socket on the other replica');
    const again = await WsClient.connect(notificationsUrl(r0.wsUrl), { query: { ticket: issued } });
    t.equal((await again.closed).code, 4401, 'a used ticket → 4401, even on another replica');
    const forged = await WsClient.connect(notificationsUrl(r0.wsUrl), { query: { ticket: 'A'.repeat(32) } });
    t.equal((await forged.closed).code, 4401, 'a forged ticket → 4401');
    const junk = await WsClient.connect(chatUrl(r0.wsUrl, conversationId), { query: { ticket: '../../etc' } });
    t.equal((await junk.closed).code, 4401, 'a malformed ticket → 4401');
    const notes = await WsClient.connect(notificationsUrl(r0.wsUrl), { query: { ticket: await ticket(alice.token, r1) } });
    t.equal(await closedWith(notes), 0, 'a fresh ticket opens the notification socket');
    notes.ws.close();
    chat.ws.close();
    t.equal((await r0.http('POST', '/api/auth/ws-ticket/')).status, 401, 'no token → 401');
  });

  await t.test('logout refuses that token only, on every replica, and closes its sockets with 4401', async (t) => {
    const alice = await register();
    const second = (await login(alice.user.username)).json.token as string;
    const first = await WsClient.connect(notificationsUrl(r1.wsUrl), { query: { ticket: await ticket(alice.token) } });
    const other = await WsClient.connect(notificationsUrl(r1.wsUrl), { token: second });
    t.equal((await r0.http('POST', '/api/auth/logout/', { token: alice.token })).status, 204);
    t.equal(await refusedWithin(alice.token), 401, 'the token is refused on the other replica');
    t.equal(await closedWith(first), 4401, 'its socket (opened with a ticket) closed with 4401');
    t.equal((await r1.http('GET', '/api/users/me/', { token: second })).status, 200, 'the other token still works');
    t.equal(other.ws.readyState, other.ws.OPEN, 'its socket stays open');
    t.equal((await r0.http('POST', '/api/auth/logout/', { token: alice.token })).status, 401, 'logging out twice → 401');

    t.equal((await r0.http('POST', '/api/auth/logout-all/', { token: second })).status, 204, 'logout-all → 204');
    t.equal(await refusedWithin(second), 401, 'every token refused');
    t.equal(await closedWith(other), 4401, 'every socket closed with 4401');
    const fresh = await login(alice.user.username);
    t.equal(fresh.status, 200, 'logging in again works');
    t.equal((await r0.http('GET', '/api/users/me/', { token: fresh.json.token })).status, 200, 'with a token issued after logout-all');
  });

  await t.test('password change: 403 for a wrong password, 400 for missing fields, earlier tokens refused', async (t) => {
    const alice = await register();
    const socket = await WsClient.connect(notificationsUrl(r1.wsUrl), { token: alice.token });
    const change = (body: unknown) => r0.http('POST', '/api/users/me/password/', { token: alice.token, body });
    t.equal((await change({ current_password: 'wrong password', new_password: 'new password 1' })).status, 403);
    t.equal((await change({ current_password: PASSWORD })).status, 400, 'new_password missing');
    t.equal((await change({ new_password: 'new password 1' })).status, 400, 'current_password missing');
    t.equal((await change({ current_password: PASSWORD, new_password: 'short' })).status, 400, 'new_password too short');
    const changed = await change({ current_password: PASSWORD, new_password: 'new password 1' });
    t.equal(changed.status, 200);
    t.same(changed.json.user, alice.user);
    t.equal(await refusedWithin(alice.token), 401, 'the earlier token is refused');
    t.equal(await closedWith(socket), 4401, 'its socket closed');
    t.equal((await r1.http('GET', '/api/users/me/', { token: changed.json.token })).status, 200, 'the new token works');
    t.equal((await login(alice.user.username)).status, 401, 'the old password no longer logs in');
    t.equal((await login(alice.user.username, 'new password 1')).status, 200, 'the new one does');
  });

  await t.test('account deletion: tokens refused, messages erased, participants left, username kept', async (t) => {
    const alice = await register();
    const bob = await register();
    const created = await r0.http('POST', '/api/conversations/', { token: alice.token, body: { participants: [bob.user.id] } });
    const conversationId = created.json.id as number;
    const sent = await r0.http('POST', `/api/conversations/${conversationId}/messages/`, { token: bob.token, body: { content: 'secret' } });
    const form = new FormData();
    form.append('file', new Blob(['attached bytes']), 'note.txt');
    const upload = await fetch(`${r0.url}/api/conversations/${conversationId}/messages/${sent.json.id}/attachments/`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bob.token}` },
      body: form,
    });
    t.equal(upload.status, 201, 'bob attached a file');
    const attachment = (await upload.json()) as { file: string };
    const watcher = await WsClient.connect(chatUrl(r1.wsUrl, conversationId), { token: alice.token, lastSeq: 2 });
    const bobSocket = await WsClient.connect(notificationsUrl(r1.wsUrl), { token: bob.token });

    const remove = (body?: unknown) => r0.http('DELETE', '/api/users/me/', { token: bob.token, body });
    t.equal((await remove({ password: 'wrong password' })).status, 403, 'a wrong password → 403');
    t.equal((await remove({})).status, 400, 'no password → 400');
    t.equal((await remove({ password: PASSWORD })).status, 204);

    t.equal(await refusedWithin(bob.token), 401, 'its token is refused');
    t.equal(await closedWith(bobSocket), 4401, 'its socket closed');
    const deleted = await watcher.waitFor((e) => e.type === 'message.deleted');
    t.equal((deleted as { message_id: number }).message_id, sent.json.id, 'a message.deleted event for its message');
    const history = await r1.http('GET', `/api/conversations/${conversationId}/messages/`, { token: alice.token });
    t.same(
      history.json.map((m: { content: string; is_deleted: boolean; attachments: unknown[] }) => [m.content, m.is_deleted, m.attachments.length]),
      [['', true, 0]],
      'its message is erased, with its attachments',
    );
    t.equal((await fetch(attachment.file)).status, 404, 'the attachment link leads nowhere');
    const conversation = await r1.http('GET', `/api/conversations/${conversationId}/`, { token: alice.token });
    t.same(conversation.json.participants, [alice.user.username], 'it left the conversation');
    t.same((await r1.http('GET', `/api/users/?search=${bob.user.username}`, { token: alice.token })).json, [], 'not in user search');
    t.equal((await login(bob.user.username)).status, 401, 'cannot log in');
    const again = await r1.http('POST', '/api/auth/register/', { body: { username: bob.user.username, password: PASSWORD } });
    t.equal(again.status, 409, 'its username is never given again');
    const invite = await r0.http('POST', '/api/conversations/', { token: alice.token, body: { participants: [bob.user.username] } });
    t.equal(invite.status, 400, 'nobody can start a conversation with it');
    watcher.ws.close();
  });
}

t.test('two replicas on PostgreSQL and Redis', async (t) => {
  await sessionsSuite(t, await startTopology(t, { backend: 'redis', replicas: 2 }));
});

t.test('the embedded single node', async (t) => {
  await sessionsSuite(t, await startTopology(t, { backend: 'embedded' }));
});
