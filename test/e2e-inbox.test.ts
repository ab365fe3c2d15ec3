/**
 * The web client's inbox (issue 13) in Debian's Chromium: alice, bob and carol in browser
 * contexts of their own, alice on one replica and bob and carol on the other (sharing
 * PostgreSQL and Redis). A direct conversation started from the user search, a named group,
 * the members panel (add, promote, demote, remove, leave), unread counts in the list updated
 * live, the read marker moved only as messages are seen (tab visible, message on screen),
 * "seen by" under the last message, and the page of a member who was removed.
 */
import type { Page } from 'playwright-core';
import t from 'tap';
import { launchBrowser, screenshot } from './helpers/browser.js';
import { api, listItem, messageWithText, type Person, send, signUp } from './helpers/e2e-people.js';
import { poll } from './helpers/client-harness.js';
import { type Replica, startTopology } from './helpers/replicas.js';

const pane = (page: Page) => page.getByTestId('conversation-pane');
const openConversationId = async (page: Page): Promise<number> => Number(await pane(page).getAttribute('data-id'));

/** The badge of a conversation in the list shows `count` (none for 0). */
async function badge(page: Page, conversationId: number, count: number): Promise<void> {
  const unread = listItem(page, conversationId).getByTestId('unread');
  if (count === 0) await unread.waitFor({ state: 'detached' });
  else await unread.filter({ hasText: new RegExp(`^${count}$`) }).waitFor();
}

/** A member's read marker as the service has it. */
async function markerOf(reader: Person, conversationId: number): Promise<number> {
  const conversation = await api<{ last_read_seq: number }>(reader, 'GET', `/api/conversations/${conversationId}/`);
  return conversation.last_read_seq;
}

async function openMembers(page: Page): Promise<void> {
  const toggle = page.getByRole('button', { name: 'Members' });
  if ((await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click();
  await page.getByTestId('members-panel').waitFor();
}

const memberRow = (page: Page, userId: number) => page.locator(`[data-testid=member][data-id="${userId}"]`);

/** Pretends the tab went to the background (or came back): what the browser does when the user switches tabs. */
async function setTabVisible(page: Page, visible: boolean): Promise<void> {
  // A string: the tests compile without DOM types.
  await page.evaluate(`(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => '${visible ? 'visible' : 'hidden'}' });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => ${!visible} });
    document.dispatchEvent(new Event('visibilitychange'));
  })()`);
}

t.test('the inbox in the browser: three people on two replicas', async (t) => {
  const topology = await startTopology(t, { backend: 'redis', replicas: 2 });
  const [r0, r1] = topology.replicas as [Replica, Replica];
  const browser = await launchBrowser(t);
  const errors: string[][] = [];
  const alice = await signUp(t, browser, r0, 'alice', errors);
  const bob = await signUp(t, browser, r1, 'bob', errors);
  const carol = await signUp(t, browser, r1, 'carol', errors);

  await t.test('a direct conversation from the user search; unread counts live; seen by', async (t) => {
    await alice.page.getByRole('searchbox', { name: 'Find people' }).fill(bob.name.slice(0, 8));
    await alice.page.getByRole('button', { name: `Message ${bob.name}` }).click();
    await pane(alice.page).waitFor();
    const directId = await openConversationId(alice.page);
    await send(alice.page, 'hi bob, directly');
    await send(alice.page, 'second one');
    const direct = await api<{ kind: string; title: string | null }>(alice, 'GET', `/api/conversations/${directId}/`);
    t.match(direct, { kind: 'direct', title: null }, 'a direct conversation');

    // Bob has no conversation open: his list shows it with 2 unread, pushed live.
    await badge(bob.page, directId, 2);
    await screenshot(bob.page, 'inbox-01-bob-unread-direct');
    await send(alice.page, 'and a third');
    await badge(bob.page, directId, 3);

    // He opens it: the messages are on screen, his marker moves, the badge goes, alice sees "seen by".
    await bob.page.getByRole('button', { name: `${alice.name}, 3 unread` }).click();
    await messageWithText(bob.page, 'and a third').waitFor();
    await badge(bob.page, directId, 0);
    await alice.page.getByTestId('seen-by').filter({ hasText: `Seen by ${bob.name}` }).waitFor();
    const { last_seq: newest } = await api<{ last_seq: number }>(alice, 'GET', `/api/conversations/${directId}/`);
    await poll("bob's marker in the service", async () => (await markerOf(bob, directId)) >= newest);
    await screenshot(alice.page, 'inbox-02-alice-seen-by-bob');

    // The search again finds the same conversation (200), not a new one.
    await alice.page.getByRole('searchbox', { name: 'Find people' }).fill(bob.name);
    await alice.page.getByRole('button', { name: `Message ${bob.name}` }).click();
    await poll('the direct conversation to be open again', async () => (await openConversationId(alice.page)) === directId);
    t.equal(await alice.page.locator(`[data-testid=conversation]`).count(), 1, 'still one conversation in the list');
    await openMembers(alice.page);
    t.equal(await alice.page.getByRole('button', { name: 'Leave conversation' }).count(), 0, 'no membership changes in a direct conversation');
    t.equal(await alice.page.getByRole('button', { name: `Remove ${bob.name}` }).count(), 0);
  });

  let groupId = 0;
  await t.test('a named group; the members panel: add, promote, demote', async (t) => {
    await alice.page.getByLabel('New group name').fill('Weekend plans');
    await alice.page.getByLabel('Group members').fill(bob.name);
    await alice.page.getByRole('button', { name: 'Create group' }).click();
    await pane(alice.page).filter({ has: alice.page.getByTestId('conversation-title').getByText('Weekend plans') }).waitFor();
    groupId = await openConversationId(alice.page);
    await listItem(bob.page, groupId).filter({ hasText: 'Weekend plans' }).waitFor();

    await openMembers(alice.page);
    await memberRow(alice.page, alice.id).filter({ hasText: 'owner' }).waitFor();
    await alice.page.getByLabel('Add members').fill(carol.name);
    await alice.page.getByRole('button', { name: 'Add', exact: true }).click();
    await memberRow(alice.page, carol.id).waitFor();
    await alice.page.getByTestId('system').filter({ hasText: `${alice.name} added ${carol.name}` }).waitFor();
    await listItem(carol.page, groupId).filter({ hasText: 'Weekend plans' }).waitFor();

    // Bob has it open; alice promotes him and his panel changes live (he may now add and remove).
    await listItem(bob.page, groupId).click();
    await openMembers(bob.page);
    t.equal(await bob.page.getByRole('button', { name: `Remove ${carol.name}` }).count(), 0, 'a plain member removes nobody');
    await alice.page.getByRole('button', { name: `Make ${bob.name} admin` }).click();
    await memberRow(bob.page, bob.id).filter({ hasText: 'admin' }).waitFor();
    await bob.page.getByRole('button', { name: `Remove ${carol.name}` }).waitFor();
    t.equal(await bob.page.getByRole('button', { name: `Remove ${alice.name}` }).count(), 0, 'nobody removes the owner');
    t.equal(await bob.page.getByRole('button', { name: `Make ${carol.name} admin` }).count(), 0, 'only the owner changes roles');
    await screenshot(bob.page, 'inbox-03-bob-admin-members-panel');
    await alice.page.getByRole('button', { name: `Make ${bob.name} member` }).click();
    await memberRow(bob.page, bob.id).and(bob.page.locator('[data-role=member]')).waitFor();
    await bob.page.getByRole('button', { name: `Remove ${carol.name}` }).waitFor({ state: 'detached' });
    const members = await api<Array<{ id: number; role: string }>>(alice, 'GET', `/api/conversations/${groupId}/members/`);
    t.same(Object.fromEntries(members.map((m) => [m.id, m.role])), { [alice.id]: 'owner', [bob.id]: 'member', [carol.id]: 'member' }, 'the service agrees');

    // A rename: bob's title and list follow live (conversation.updated).
    await alice.page.getByLabel('Group name', { exact: true }).fill('Weekend plans (Saturday)');
    await alice.page.getByRole('button', { name: 'Rename' }).click();
    await bob.page.getByTestId('conversation-title').filter({ hasText: 'Weekend plans (Saturday)' }).waitFor();
    await listItem(bob.page, groupId).filter({ hasText: 'Weekend plans (Saturday)' }).waitFor();
    await bob.page.getByTestId('system').filter({ hasText: 'The group is now called “Weekend plans (Saturday)”' }).waitFor();
    t.equal(await bob.page.getByLabel('Group name', { exact: true }).count(), 0, 'a plain member cannot rename');
  });

  await t.test('the read marker moves only for messages on screen in a visible tab; seen by in the group', async (t) => {
    // Carol opens the group and scrolls up, away from the newest messages.
    await listItem(carol.page, groupId).click();
    await pane(carol.page).waitFor();
    let filler = { seq: 0 };
    for (let i = 1; i <= 40; i++) filler = await api<{ seq: number }>(alice, 'POST', `/api/conversations/${groupId}/messages/`, { content: `filler ${i}` });
    await messageWithText(carol.page, 'filler 40').waitFor();
    await poll("carol's marker to reach the end", async () => (await markerOf(carol, groupId)) >= filler.seq);
    await carol.page.getByTestId('messages').evaluate((list) => list.scrollTo({ top: 0 }));
    const offScreen = await api<{ seq: number }>(bob, 'POST', `/api/conversations/${groupId}/messages/`, { content: 'while carol reads old ones' });
    await messageWithText(carol.page, 'while carol reads old ones').waitFor();
    t.ok((await markerOf(carol, groupId)) < offScreen.seq, 'a message below the fold is not read');
    // The tab goes to the background; she scrolls down (as a page left scrolled would show it), a new message comes.
    await setTabVisible(carol.page, false);
    await carol.page.getByTestId('messages').evaluate((list) => list.scrollTo({ top: list.scrollHeight }));
    const hidden = await api<{ seq: number }>(bob, 'POST', `/api/conversations/${groupId}/messages/`, { content: 'while the tab is hidden' });
    await messageWithText(carol.page, 'while the tab is hidden').waitFor();
    await poll('carol’s page to count it unread', async () => Number(await pane(carol.page).getAttribute('data-unread')) >= 1);
    t.ok((await markerOf(carol, groupId)) < hidden.seq, 'nothing is read while the tab is hidden');
    await setTabVisible(carol.page, true);
    await poll('carol’s marker to reach the newest message once visible', async () => (await markerOf(carol, groupId)) >= hidden.seq);

    // Bob has the group open too: alice's last message is seen by both.
    await send(alice.page, 'who has seen this?');
    await alice.page.getByTestId('seen-by').filter({ hasText: `Seen by ${[bob.name, carol.name].sort().join(', ')}` }).waitFor();
    await screenshot(alice.page, 'inbox-04-alice-seen-by-both');
  });

  await t.test('unread counts in the list of a group not open; a removed member; leaving', async (t) => {
    // Carol starts another group and looks at it; alice writes twice in the first: carol's badge counts live.
    await carol.page.getByLabel('New group name').fill('Side chat');
    await carol.page.getByLabel('Group members').fill(alice.name);
    await carol.page.getByRole('button', { name: 'Create group' }).click();
    await pane(carol.page).filter({ has: carol.page.getByTestId('conversation-title').getByText('Side chat') }).waitFor();
    await send(alice.page, 'group message 1');
    await badge(carol.page, groupId, 1);
    await send(alice.page, 'group message 2');
    await badge(carol.page, groupId, 2);
    await screenshot(carol.page, 'inbox-05-carol-unread-group');

    // Carol goes back to the group; alice removes her: her page says so, and takes no input.
    await listItem(carol.page, groupId).click();
    await messageWithText(carol.page, 'group message 2').waitFor();
    await badge(carol.page, groupId, 0);
    await openMembers(alice.page);
    await alice.page.getByRole('button', { name: `Remove ${carol.name}` }).click();
    await carol.page.getByRole('status').filter({ hasText: `You were removed from this conversation by ${alice.name}.` }).waitFor();
    t.equal(await carol.page.getByTestId('composer').count(), 0, 'no composer on the removed page');
    await listItem(carol.page, groupId).waitFor({ state: 'detached' });
    await memberRow(alice.page, carol.id).waitFor({ state: 'detached' });
    await screenshot(carol.page, 'inbox-06-carol-removed');
    const status = (await carol.replica.http('GET', `/api/conversations/${groupId}/`, { token: carol.token })).status;
    t.equal(status, 404, 'the service refuses her too');

    // Bob leaves: his page says so; alice sees him go.
    await openMembers(bob.page);
    await bob.page.getByRole('button', { name: 'Leave conversation' }).click();
    await bob.page.getByRole('status').filter({ hasText: 'You left this conversation.' }).waitFor();
    await alice.page.getByTestId('system').filter({ hasText: `${bob.name} left` }).waitFor();
    await memberRow(alice.page, bob.id).waitFor({ state: 'detached' });
    await screenshot(alice.page, 'inbox-07-alice-after-leave');
  });

  t.same(errors.flat(), [], 'no script errors in any page');
});
