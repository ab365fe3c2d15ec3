/**
 * The client library's sessions (issue 12): sockets connect with single-use tickets (no token
 * in any URL), logout / logoutAll / changePassword / deleteAccount, and a 4401 close reaches
 * `onUnauthorized`. Against the real service in-process.
 */
import t from 'tap';
import { ChatClient } from '@chat-service/client';
import { newUser, openChat, openNotifications, PASSWORD, QUICK, rejection, startServer } from './helpers/client-service.js';

t.test('sessions: sockets use tickets, logout / logoutAll / changePassword / deleteAccount, and 4401 reaches onUnauthorized', async (t) => {
  const { base } = await startServer(t);
  let unauthorized = 0;
  const alice = await newUser(base, { onUnauthorized: () => unauthorized++ });
  const bob = await newUser(base);
  const conversation = await alice.client.createConversation([bob.id]);

  const A = openChat(t, alice, conversation.id, 0, 'alice');
  const N = openNotifications(t, alice);
  await A.reach('open');
  await N.reach('open');
  const urls = alice.wire.attempts.map((attempt) => attempt.url);
  t.ok(urls.length >= 2 && urls.every((url) => url.searchParams.get('ticket') !== null), 'every socket URL carries a ticket');
  t.ok(urls.every((url) => url.searchParams.get('token') === null && !url.href.includes(alice.client.token!)), 'and no token');

  const second = new ChatClient({ baseUrl: base, backoff: QUICK });
  await second.login(alice.username, PASSWORD);
  await alice.client.logout();
  t.equal(alice.client.token, undefined, 'logout forgets the token');
  await A.until('closed', () => A.closed !== undefined);
  await N.until('closed', () => N.closed !== undefined);
  t.equal(A.closed?.code, 4401, 'the chat socket closed with 4401');
  t.equal(N.closed?.code, 4401, 'the notification socket too');
  t.equal(unauthorized, 2, 'onUnauthorized heard both');
  t.equal((await second.me()).username, alice.username, 'another session of the same user goes on');

  t.match(await rejection(second.changePassword('wrong password', 'new password 1')), { statusCode: 403 }, 'a wrong current password → ApiError 403');
  const before = second.token;
  await second.changePassword(PASSWORD, 'new password 1');
  t.not(second.token, before, 'changePassword carries on with a new token');
  t.equal((await second.me()).username, alice.username);
  const third = new ChatClient({ baseUrl: base, backoff: QUICK });
  await third.login(alice.username, 'new password 1');
  await second.logoutAll();
  t.match(await rejection(third.me()), { statusCode: 401 }, 'logoutAll ends every session');

  const fourth = new ChatClient({ baseUrl: base, backoff: QUICK });
  await fourth.login(alice.username, 'new password 1');
  t.match(await rejection(fourth.deleteAccount('wrong password')), { statusCode: 403 }, 'deleteAccount with a wrong password → 403');
  await fourth.deleteAccount('new password 1');
  t.match(await rejection(fourth.login(alice.username, 'new password 1')), { statusCode: 401 }, 'the account is gone');
});
