/**
 * The web client's presence and mentions (issue 14) in Debian's Chromium: alice on one
 * replica, bob (and carol, who never opens a page) on the other, sharing PostgreSQL and Redis.
 * Bob's dot in alice's members panel turns online when he opens the page and offline, with a
 * "last seen", when he closes it; a message mentioning alice stands out for her and not for
 * bob; `@` completion in alice's composer (typing, arrows, Escape, click, Enter and Tab)
 * inserts the names, and what she sends mentions them; the direct conversation with bob shows
 * his status in its header and in the list; a mention in a conversation she has not open
 * marks it in the list and in her notifications.
 */
import type { Page } from 'playwright-core';
import t from 'tap';
import { randomName } from './helpers/api.js';
import { launchBrowser, screenshot } from './helpers/browser.js';
import { api, listItem, logIn, messageWithText, PASSWORD, send, signUp } from './helpers/e2e-people.js';
import { poll } from './helpers/client-harness.js';
import { type Replica, startTopology } from './helpers/replicas.js';

/** A user whose last tab closed counts as online this long more (PRESENCE_GRACE_MS). */
const GRACE_MS = 500;

interface Message {
  id: number;
  content: string;
  mentions: string[];
}

/** An account made over REST: nobody has seen it online yet. */
async function account(replica: Replica, label: string): Promise<{ name: string; id: number; token: string; replica: Replica }> {
  const name = randomName(label);
  const response = await replica.http('POST', '/api/auth/register/', { body: { username: name, password: PASSWORD } });
  if (response.status !== 201) throw new Error(`register: ${response.status} ${response.body}`);
  return { name, id: response.json.user.id, token: response.json.token, replica };
}

async function openMembers(page: Page): Promise<void> {
  const toggle = page.getByRole('button', { name: 'Members' });
  if ((await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click();
  await page.getByTestId('members-panel').waitFor();
}

async function openConversation(page: Page, conversationId: number): Promise<void> {
  await listItem(page, conversationId).click();
  await page.locator(`[data-testid=conversation-pane][data-id="${conversationId}"][data-state=open]`).waitFor();
}

const memberRow = (page: Page, userId: number) => page.locator(`[data-testid=member][data-id="${userId}"]`);
const dotOf = (page: Page, userId: number, status: 'online' | 'offline') => memberRow(page, userId).locator(`[data-testid=presence-dot][data-status=${status}]`);
const composer = (page: Page) => page.getByTestId('composer');
const options = (page: Page) => page.getByTestId('mention-list').getByTestId('mention-option');
const optionNames = (page: Page): Promise<string[]> => options(page).evaluateAll((items) => items.map((item) => item.getAttribute('data-username') ?? ''));
const selectedName = (page: Page) => page.getByTestId('mention-list').locator('[aria-selected=true]').getAttribute('data-username');

t.test('presence and mentions in the browser: alice and bob on two replicas', async (t) => {
  const topology = await startTopology(t, { backend: 'redis', replicas: 2, env: { PRESENCE_TIMEOUT_SECONDS: '5', PRESENCE_GRACE_MS: String(GRACE_MS) } });
  const [r0, r1] = topology.replicas as [Replica, Replica];
  const browser = await launchBrowser(t);
  const errors: string[][] = [];
  const alice = await signUp(t, browser, r0, 'alice', errors);
  const bob = await account(r1, 'bob');
  const carol = await account(r1, 'carol');
  const group = await api<{ id: number }>(alice, 'POST', '/api/conversations/', { participants: [bob.id, carol.id], title: 'Presence' });
  // Made over REST: alice's page hears of it only by reading the list again.
  await alice.page.reload();
  await openConversation(alice.page, group.id);
  await openMembers(alice.page);

  await t.test('bob’s dot: offline, online when he opens the page, offline with "last seen" when he closes it', async (t) => {
    await dotOf(alice.page, bob.id, 'offline').waitFor();
    t.equal(await memberRow(alice.page, bob.id).getByTestId('presence-text').textContent(), 'not seen yet', 'bob has never been online');
    await dotOf(alice.page, alice.id, 'online').waitFor();
    await alice.page.getByTestId('header-presence').filter({ hasText: '1 of 3 online' }).waitFor();
    await screenshot(alice.page, 'presence-01-bob-never-seen');

    const first = await logIn(t, browser, r1, bob.name, errors);
    await dotOf(alice.page, bob.id, 'online').waitFor();
    t.equal(await memberRow(alice.page, bob.id).getByTestId('presence-text').textContent(), 'online');
    await alice.page.getByTestId('header-presence').filter({ hasText: '2 of 3 online' }).waitFor();
    await screenshot(alice.page, 'presence-02-bob-online');

    const closedAt = Date.now();
    await first.page.close();
    await dotOf(alice.page, bob.id, 'offline').waitFor();
    t.ok(Date.now() - closedAt >= GRACE_MS - 100, 'offline once the grace has run out');
    const text = memberRow(alice.page, bob.id).getByTestId('presence-text');
    t.equal(await text.textContent(), 'last seen just now');
    t.ok(Date.parse((await text.getAttribute('data-last-seen-at')) ?? '') >= closedAt - 1_000, 'seen last when he closed the page');
    t.equal(await dotOf(alice.page, carol.id, 'offline').count(), 1, 'carol never came');
    await screenshot(alice.page, 'presence-03-bob-last-seen');
  });

  // Bob comes back, for the rest of the test.
  const bobPage = (await logIn(t, browser, r1, bob.name, errors)).page;
  await openConversation(bobPage, group.id);

  const mentionText = `hey @${alice.name}, look at this`;
  await t.test('a mention of alice stands out for her, not for bob', async (t) => {
    const page = bobPage;
    await send(page, mentionText);
    const hers = messageWithText(alice.page, mentionText);
    await hers.and(alice.page.locator('[data-mentions-me=true]')).waitFor();
    t.equal(await hers.getByTestId('mention-me').textContent(), `@${alice.name}`, 'her name marked as her own mention');
    t.equal(await hers.getByTestId('content').textContent(), mentionText, 'the text itself unchanged');
    await screenshot(alice.page, 'presence-04-alice-mentioned');

    const his = messageWithText(page, mentionText);
    t.equal(await his.getAttribute('data-mentions-me'), 'false', 'not his mention');
    t.equal(await his.getByTestId('mention-me').count(), 0);
    t.equal(await his.getByTestId('mention').textContent(), `@${alice.name}`, 'marked lightly as a mention of someone else');
    const mark = await his.getByTestId('mention').evaluate((span) => span.ownerDocument.defaultView?.getComputedStyle(span).backgroundColor);
    const strong = await hers.getByTestId('mention-me').evaluate((span) => span.ownerDocument.defaultView?.getComputedStyle(span).backgroundColor);
    t.not(mark, strong, 'styled apart');
    await screenshot(page, 'presence-05-bob-sees-no-highlight');
  });

  await t.test('@ completion: typing, Enter, and what is sent mentions bob', async (t) => {
    await composer(alice.page).click();
    await composer(alice.page).pressSequentially('see @b');
    await options(alice.page).first().waitFor();
    t.same(await optionNames(alice.page), [bob.name], 'bob, not carol');
    await screenshot(alice.page, 'presence-06-completion');
    await composer(alice.page).press('Enter');
    t.equal(await composer(alice.page).inputValue(), `see @${bob.name} `, 'his name and a space in place of @b');
    await alice.page.getByTestId('mention-list').waitFor({ state: 'hidden' });
    await composer(alice.page).pressSequentially('ok?');
    await composer(alice.page).press('Enter');
    const text = `see @${bob.name} ok?`;
    await messageWithText(alice.page, text).waitFor();
    const sent = (await api<Message[]>(alice, 'GET', `/api/conversations/${group.id}/messages/?limit=5`)).find((m) => m.content === text);
    t.same(sent?.mentions, [bob.name], 'the service says it mentions bob');
    await messageWithText(bobPage, text).and(bobPage.locator('[data-mentions-me=true]')).waitFor();
    await screenshot(bobPage, 'presence-07-bob-mentioned');
  });

  await t.test('@ completion: arrows, Escape, click and Tab', async (t) => {
    await composer(alice.page).pressSequentially('@');
    await poll('both others listed', async () => (await optionNames(alice.page)).length === 2);
    t.same(await optionNames(alice.page), [bob.name, carol.name], 'everyone but alice, shorter names first');
    t.equal(await selectedName(alice.page), bob.name, 'the first one chosen');
    await composer(alice.page).press('ArrowDown');
    t.equal(await selectedName(alice.page), carol.name, 'down');
    await composer(alice.page).press('ArrowDown');
    t.equal(await selectedName(alice.page), bob.name, 'and round');
    await composer(alice.page).press('ArrowUp');
    t.equal(await selectedName(alice.page), carol.name, 'up');
    await composer(alice.page).press('Escape');
    await alice.page.getByTestId('mention-list').waitFor({ state: 'hidden' });
    t.equal(await composer(alice.page).inputValue(), '@', 'Escape closes the list and changes nothing');
    await composer(alice.page).pressSequentially('c');
    await options(alice.page).filter({ hasText: carol.name }).click();
    t.equal(await composer(alice.page).inputValue(), `@${carol.name} `, 'a click takes carol');
    await composer(alice.page).pressSequentially('and @B');
    await options(alice.page).first().waitFor();
    await composer(alice.page).press('Tab');
    t.equal(await composer(alice.page).inputValue(), `@${carol.name} and @${bob.name} `, 'Tab takes bob (typed in capitals)');
    t.equal(await composer(alice.page).evaluate((box) => box.ownerDocument.activeElement === box), true, 'the caret stays in the box');
    await alice.page.getByTestId('send').click();
    const text = `@${carol.name} and @${bob.name}`;
    await messageWithText(alice.page, text).waitFor();
    const sent = (await api<Message[]>(alice, 'GET', `/api/conversations/${group.id}/messages/?limit=5`)).find((m) => m.content === text);
    t.same(sent?.mentions, [bob.name, carol.name].sort(), 'both mentioned');
    await composer(alice.page).pressSequentially(`mail ${bob.name}@b`);
    t.equal(await alice.page.getByTestId('mention-list').isHidden(), true, 'no completion inside an e-mail address');
    await composer(alice.page).fill('');
  });

  await t.test('a direct conversation: bob’s status in its header and in the list', async (t) => {
    await alice.page.getByRole('searchbox', { name: 'Find people' }).fill(bob.name);
    await alice.page.getByRole('button', { name: `Message ${bob.name}` }).click();
    const header = alice.page.getByTestId('header-presence');
    await header.locator('[data-testid=presence-dot][data-status=online]').waitFor();
    t.equal(await header.getByTestId('presence-text').textContent(), 'online');
    const directId = Number(await alice.page.getByTestId('conversation-pane').getAttribute('data-id'));
    await listItem(alice.page, directId).locator('[data-testid=presence-dot][data-status=online]').waitFor();
    // A mention in the group, not open now (an open one is read before the service would notify):
    // its list item and the notification say so.
    await api(bob, 'POST', `/api/conversations/${group.id}/messages/`, { content: `@${alice.name} are you there?` });
    await listItem(alice.page, group.id).getByTestId('mentioned').waitFor();
    await alice.page.locator('[data-testid=notification][data-kind=mention][data-read=false]').filter({ hasText: `${bob.name} mentioned you: @${alice.name} are you there?` }).waitFor();
    await screenshot(alice.page, 'presence-08-direct-online');
    await bobPage.close();
    await header.locator('[data-testid=presence-dot][data-status=offline]').waitFor();
    t.equal(await header.getByTestId('presence-text').textContent(), 'last seen just now');
    await listItem(alice.page, directId).locator('[data-testid=presence-dot][data-status=offline]').waitFor();
    await screenshot(alice.page, 'presence-09-direct-last-seen');
  });

  t.same(errors.flat(), [], 'no script errors in any page');
});
