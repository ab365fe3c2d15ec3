/**
 * The web client end to end, in Debian's Chromium: two people in two browser contexts, each
 * behind their own load-balancer stand-in (a TCP proxy) that puts them on different replicas
 * sharing PostgreSQL, Redis and S3; then on the embedded defaults (one node, nothing else).
 */
import type { Page } from 'playwright-core';
import t, { type Test } from 'tap';
import { launchBrowser, newPage, pngImage, screenshot } from './helpers/browser.js';
import { startTopology, type Replica } from './helpers/replicas.js';
import { startS3Server } from './helpers/s3-server.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { randomName } from './helpers/api.js';
import { poll } from './helpers/client-harness.js';

const PASSWORD = 'correct horse battery';
const PAGE_SIZE = 30;

async function signUp(page: Page, baseUrl: string, username: string): Promise<void> {
  await page.goto(`${baseUrl}/`);
  await page.getByTestId('username').fill(username);
  await page.getByTestId('password').fill(PASSWORD);
  await page.getByTestId('register').click();
  await page.getByTestId('me').filter({ hasText: username }).waitFor();
  await page.locator('[data-testid=connection][data-state=online]').waitFor();
}

/** Alice and Bob, signed up in browser contexts of their own, each on the given base URL. */
async function twoPeople(t: Test, aliceUrl: string, bobUrl: string) {
  const browser = await launchBrowser(t);
  const { page: alice, errors: aliceErrors } = await newPage(t, browser, 'alice');
  const { page: bob, errors: bobErrors } = await newPage(t, browser, 'bob');
  const aliceName = randomName('alice');
  const bobName = randomName('bob');
  await signUp(alice, aliceUrl, aliceName);
  await signUp(bob, bobUrl, bobName);
  return { alice, bob, aliceName, bobName, errors: () => [...aliceErrors, ...bobErrors] };
}

const messageWithText = (page: Page, text: string) =>
  page.locator('[data-testid=messages] > [data-testid=message]').filter({ has: page.getByTestId('content').getByText(text, { exact: true }) });

async function send(page: Page, text: string): Promise<void> {
  await page.getByTestId('composer').fill(text);
  await page.getByTestId('send').click();
  await messageWithText(page, text).waitFor();
}

/** Ids of the messages the page shows, top to bottom. */
const shownIds = (page: Page): Promise<number[]> =>
  page.$$eval('[data-testid=messages] > [data-testid=message]', (items) => items.map((item) => Number(item.getAttribute('data-id'))));

const tokenOf = (page: Page): Promise<string> => page.evaluate(() => (JSON.parse(localStorage.getItem('chat.session') ?? '{}') as { token: string }).token);

async function api<T>(replica: Replica | { url: string }, token: string, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${replica.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/**
 * Width and height of the first attachment image once it has loaded; throws if it fails to.
 * (Elements inside `evaluate` are untyped: the tests compile without DOM types.)
 */
async function imageSize(page: Page): Promise<[number, number]> {
  const image = page.getByTestId('attachment-image').first();
  await image.waitFor();
  return image.evaluate((img) =>
    img.complete
      ? img.naturalWidth > 0
        ? [img.naturalWidth, img.naturalHeight]
        : Promise.reject(new Error('the image failed to load'))
      : new Promise((resolve, reject) => {
          img.addEventListener('load', () => resolve([img.naturalWidth, img.naturalHeight]));
          img.addEventListener('error', () => reject(new Error('the image failed to load')));
        }),
  );
}

/** Every message id of a conversation, oldest first, read page by page over REST. */
async function historyIds(base: { url: string }, token: string, conversationId: number): Promise<number[]> {
  const ids: number[] = [];
  let before: number | undefined;
  for (;;) {
    const page = await api<Array<{ id: number }>>(base, token, 'GET', `/api/conversations/${conversationId}/messages/?limit=200${before ? `&before=${before}` : ''}`);
    ids.unshift(...page.map((message) => message.id));
    if (page.length < 200) return ids;
    before = page[0]!.id;
  }
}

t.test('two people on two replicas chat in the browser, through a replica going away', async (t) => {
  const s3 = await startS3Server(t);
  // Started before the replicas so that their addresses can be the replicas' public URL and CORS origins.
  const aliceProxy = await startTcpProxy(t, []);
  const bobProxy = await startTcpProxy(t, []);
  const topology = await startTopology(t, {
    backend: 'redis',
    replicas: 2,
    env: {
      S3_BUCKET: s3.bucket,
      S3_ENDPOINT: s3.endpoint,
      S3_REGION: s3.region,
      S3_ACCESS_KEY_ID: s3.accessKeyId,
      S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      S3_FORCE_PATH_STYLE: 'true',
      PUBLIC_URL: aliceProxy.url,
      // Bob's page is another origin than PUBLIC_URL: it may embed the attachment links.
      CORS_ORIGIN: `${aliceProxy.url},${bobProxy.url}`,
    },
  });
  const [r0, r1] = topology.replicas as [Replica, Replica];
  aliceProxy.setUpstreams([r0.port, r1.port]);
  bobProxy.setUpstreams([r1.port, r0.port]);

  const { alice, bob, aliceName, bobName, errors } = await twoPeople(t, aliceProxy.url, bobProxy.url);
  t.ok(aliceProxy.routes().every((port) => port === r0.port), 'alice is on replica 0');
  t.ok(bobProxy.routes().every((port) => port === r1.port), 'bob is on replica 1');
  await screenshot(bob, '01-bob-signed-up');

  // Alice starts a conversation (Persian first: right-to-left text) and writes a page and a half of history.
  await alice.getByTestId('new-participants').fill(bobName);
  await alice.getByTestId('start-conversation').click();
  await alice.getByTestId('conversation-pane').waitFor();
  const conversationId = Number(await alice.getByTestId('conversation-pane').getAttribute('data-id'));
  const persian = 'سلام! حالت چطوره؟';
  await send(alice, persian);
  t.equal(await messageWithText(alice, persian).getByTestId('content').getAttribute('dir'), 'auto', 'message text has dir="auto"');
  const aliceToken = await tokenOf(alice);
  for (let i = 1; i <= PAGE_SIZE + 5; i += 1) {
    await api(aliceProxy, aliceToken, 'POST', `/api/conversations/${conversationId}/messages/`, { content: `history ${i}` });
  }

  // Bob hears of it without opening anything: notifications and an unread badge.
  const bobConversation = bob.locator(`[data-testid=conversation][data-id="${conversationId}"]`);
  await bobConversation.getByTestId('unread').waitFor();
  const unread = bob.locator('[data-testid=notification][data-read=false]');
  await unread.first().waitFor();
  await screenshot(bob, '02-bob-notified');
  const notificationId = Number(await unread.first().getAttribute('data-id'));
  await unread.first().getByTestId('mark-read').click();
  await bob.locator(`[data-testid=notification][data-id="${notificationId}"][data-read=true]`).waitFor();
  const bobToken = await tokenOf(bob);
  const stored = await api<Array<{ id: number; is_read: boolean }>>(bobProxy, bobToken, 'GET', '/api/notifications/');
  t.equal(stored.find((notification) => notification.id === notificationId)?.is_read, true, 'the notification is read in the service too');

  // Bob opens the conversation: the newest page, then older pages as he scrolls up.
  await bobConversation.click();
  await messageWithText(bob, `history ${PAGE_SIZE + 5}`).waitFor();
  t.equal((await shownIds(bob)).length, PAGE_SIZE, 'one page at first');
  await bob.getByTestId('messages').evaluate((list) => list.scrollTo({ top: 0 }));
  await messageWithText(bob, persian).waitFor();
  t.same(await shownIds(bob), await historyIds(bobProxy, bobToken, conversationId), 'scrolling back shows the whole history in order');
  await bobConversation.getByTestId('unread').waitFor({ state: 'detached' });
  t.equal(await bob.getByTestId('messages').getByText(persian).evaluate((node) => node.ownerDocument.defaultView.getComputedStyle(node).direction), 'rtl', 'Persian renders right to left');

  // Both directions, live.
  await send(bob, 'hi alice, bob here');
  await messageWithText(alice, 'hi alice, bob here').waitFor();
  await send(alice, 'hello bob');
  await messageWithText(bob, 'hello bob').waitFor();

  // Typing shows on the other side only.
  await alice.getByTestId('composer').pressSequentially('typing…', { delay: 20 });
  await bob.getByTestId('typing').filter({ hasText: `${aliceName} is typing` }).waitFor();
  t.equal(await alice.getByTestId('typing').textContent(), '', 'no typing indicator for oneself');
  await screenshot(bob, '03-bob-sees-typing');
  await alice.getByTestId('composer').fill('');

  // Edit and delete one's own messages.
  await messageWithText(alice, 'hello bob').getByTestId('edit').click();
  await alice.getByTestId('edit-input').fill('hello bob (edited)');
  await alice.getByTestId('save-edit').click();
  const edited = messageWithText(bob, 'hello bob (edited)');
  await edited.getByTestId('edited').waitFor();
  t.equal(await messageWithText(bob, 'hi alice, bob here').getByTestId('edit').count(), 1, 'bob may edit his own message');
  t.equal(await edited.getByTestId('edit').count(), 0, "no edit button on someone else's message");
  await send(alice, 'a message to take back');
  const doomedId = Number(await messageWithText(alice, 'a message to take back').getAttribute('data-id'));
  await messageWithText(bob, 'a message to take back').waitFor();
  await messageWithText(alice, 'a message to take back').getByTestId('delete').click();
  await alice.locator(`[data-testid=message][data-id="${doomedId}"]`).getByTestId('confirm-delete').click();
  await bob.locator(`[data-testid=message][data-id="${doomedId}"].deleted`).waitFor();
  t.equal(await bob.getByText('a message to take back').count(), 0, 'deleted text is gone from the other screen');

  // An image: previewed before sending, shown to both once uploaded.
  await alice.getByTestId('file-input').setInputFiles({ name: 'red-square.png', mimeType: 'image/png', buffer: pngImage(40, 30, [220, 40, 40]) });
  await alice.getByTestId('preview').waitFor();
  await alice.getByTestId('composer').fill('a picture');
  await alice.getByTestId('send').click();
  t.same(await imageSize(bob), [40, 30], 'bob sees the image');
  t.same(await imageSize(alice), [40, 30], 'and so does alice');
  await screenshot(bob, '04-bob-sees-image');

  // Bob's replica dies. While he cannot reach any replica, Alice goes on writing; then the
  // balancer sends him to the surviving replica, and his page shows everything he missed.
  bobProxy.setUpstreams([]);
  await r1.kill('SIGKILL');
  await bob.locator('[data-testid=connection]:not([data-state=online])').waitFor();
  await screenshot(bob, '05-bob-reconnecting');
  const missed = ['while you were away 1', 'while you were away 2', 'پیام سوم'];
  for (const text of missed) await send(alice, text);
  bobProxy.setUpstreams([r1.port, r0.port]);
  await bob.locator('[data-testid=connection][data-state=online]').waitFor();
  for (const text of missed) await messageWithText(bob, text).waitFor();
  t.ok(bobProxy.routes().slice(-1)[0] === r0.port, 'bob is now on replica 0');
  await bobConversation.getByTestId('unread').waitFor({ state: 'detached' });
  t.equal(await bob.locator('[data-testid=notification][data-read=false]').count(), 0, 'what arrived while he looked at it counts as read');
  await send(bob, 'back again');
  await messageWithText(alice, 'back again').waitFor();
  t.same(await shownIds(bob), await historyIds(aliceProxy, aliceToken, conversationId), "bob's page holds every message once, in order");
  t.same(await shownIds(alice), (await historyIds(aliceProxy, aliceToken, conversationId)).slice(-(await shownIds(alice)).length), "alice's page too");
  await screenshot(bob, '06-bob-caught-up');
  await screenshot(alice, '07-alice-end');
  t.same(errors(), [], 'no script errors in either page');
});

t.test('the embedded defaults: start, open the page, chat', async (t) => {
  const topology = await startTopology(t, { backend: 'embedded' });
  const node = topology.replicas[0]!;
  const { alice, bob, bobName, errors } = await twoPeople(t, node.url, node.url);
  await alice.getByTestId('new-participants').fill(bobName);
  await alice.getByTestId('start-conversation').click();
  await send(alice, 'hello from the embedded node');
  await bob.locator('[data-testid=conversation]').first().click();
  await messageWithText(bob, 'hello from the embedded node').waitFor();
  await send(bob, 'درود');
  await messageWithText(alice, 'درود').waitFor();
  await screenshot(alice, '10-embedded');
  t.same(errors(), [], 'no script errors');
});

t.test('sessions in the browser: sockets use tickets, log out, log out everywhere returns every tab to the login', async (t) => {
  const topology = await startTopology(t, { backend: 'embedded' });
  const node = topology.replicas[0]!;
  const { alice, bob, bobName, errors } = await twoPeople(t, node.url, node.url);
  const socketUrls: string[] = [];
  for (const page of [alice, bob]) page.on('websocket', (socket) => socketUrls.push(socket.url()));
  await alice.getByTestId('new-participants').fill(bobName);
  await alice.getByTestId('start-conversation').click();
  await send(alice, 'before logging out');
  await bob.locator('[data-testid=conversation]').first().click();
  await messageWithText(bob, 'before logging out').waitFor();
  // Bob's page shows the message from its history read; his chat socket may open just after.
  await poll('both chat sockets to open', async () => socketUrls.length >= 2);
  t.ok(socketUrls.length >= 2, `${socketUrls.length} sockets opened`);
  t.ok(socketUrls.every((url) => /[?&]ticket=/.test(url) && !/[?&]token=/.test(url)), 'each with a ticket, none with a token');

  // Log out: the token is refused by the service, not only forgotten by the page.
  const aliceToken = await tokenOf(alice);
  await alice.getByTestId('logout').click();
  await alice.getByTestId('login-form').waitFor();
  await screenshot(alice, '20-alice-logged-out');
  t.equal((await fetch(`${node.url}/api/users/me/`, { headers: { authorization: `Bearer ${aliceToken}` } })).status, 401, 'the logged-out token is refused');

  // Bob has a second session elsewhere; logging out everywhere from it returns this tab to the login (4401).
  const elsewhere = await fetch(`${node.url}/api/auth/login/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: bobName, password: 'correct horse battery' }),
  });
  const { token: otherToken } = (await elsewhere.json()) as { token: string };
  t.equal((await fetch(`${node.url}/api/auth/logout-all/`, { method: 'POST', headers: { authorization: `Bearer ${otherToken}` } })).status, 204);
  await bob.getByTestId('login-form').waitFor();
  await screenshot(bob, '21-bob-logged-out-everywhere');
  t.same(errors(), [], 'no script errors');
});
