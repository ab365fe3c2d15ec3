/**
 * How sockets are refused or cut off: 4401 for a bad, expired or missing token on both socket
 * kinds, 4403 for a conversation that is not the caller's, 1009 for a frame over
 * WS_MAX_PAYLOAD_BYTES (and only that socket).
 */
import type { Test } from 'tap';
import { createConversation, isAnswerTo, openChat, registerUsers } from '../helpers/chat-api.js';
import { nowSeconds, signJwt } from '../helpers/jwt.js';
import type { Topology } from '../helpers/replicas.js';
import { notificationsUrl, WsClient } from '../helpers/ws-client.js';

export async function chatCloseCodesSuite(t: Test, topology: Topology): Promise<void> {
  const at = (index: number) => topology.at(index);

  await t.test('close codes: 4401 for a bad, expired or missing token, 4403 for a conversation not yours', async (t) => {
    const [a, b, outsider] = await registerUsers(topology, 3);
    const cid = await createConversation(at(0), a!, [b!]);
    const secret = topology.jwtSecret;
    const claims = { sub: String(a!.user.id), username: a!.user.username };
    const tokens: [string, string | undefined, boolean?][] = [
      ['no token', undefined],
      ['garbage token', 'not-a-jwt'],
      ['expired token', signJwt({ ...claims, iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 }, secret)],
      ['token signed with another secret', signJwt({ ...claims, exp: nowSeconds() + 3600 }, 'another-secret-0123456789abcdef')],
      ['alg none', signJwt({ ...claims, exp: nowSeconds() + 3600 }, secret, { alg: 'none', typ: 'JWT' })],
      ['bad token in the Authorization header', 'not-a-jwt', true],
    ];
    for (const [what, token, header] of tokens) {
      const chat = await openChat(t, at(1), cid, undefined, { ...(token !== undefined ? { token } : {}), ...(header ? { header } : {}), label: what });
      t.equal((await chat.closed).code, 4401, `chat, ${what}: 4401`);
      const notifications = await WsClient.connect(notificationsUrl(at(1).wsUrl), { ...(token !== undefined ? { token } : {}), ...(header ? { header } : {}) });
      t.equal((await notifications.closed).code, 4401, `notifications, ${what}: 4401`);
    }
    const minted = await openChat(t, at(1), cid, a, { token: signJwt({ ...claims, exp: nowSeconds() + 3600 }, secret) });
    await minted.sync();
    t.pass('a token minted the same way with the right secret is accepted');

    for (const [what, session, target] of [
      ['non-participant', outsider, cid],
      ['nonexistent conversation', a, 2_147_483_647],
      ['conversation id 0', a, 0],
      ['conversation id not a number', a, 'abc'],
      ['conversation id beyond int4', a, '99999999999'],
    ] as const) {
      const client = await openChat(t, at(2), target, session);
      t.equal((await client.closed).code, 4403, `${what}: 4403`);
    }
  });

  await t.test('a frame over WS_MAX_PAYLOAD_BYTES closes the socket with 1009', async (t) => {
    const [a, b] = await registerUsers(topology, 2);
    const cid = await createConversation(at(0), a!, [b!]);
    const big = await openChat(t, at(2), cid, a);
    const other = await openChat(t, at(2), cid, a);
    await big.sync();
    big.send(JSON.stringify({ type: 'chat_message', message: 'x'.repeat(64 * 1024) }));
    t.equal((await big.closed).code, 1009, 'closed with 1009');
    other.send({ type: 'chat_message', message: 'still here', client_id: 'still' });
    t.match(await other.waitFor(isAnswerTo('still')), { type: 'chat.message', seq: 1 }, 'other sockets on that replica are unaffected');
  });
}
