/**
 * The web client's rich messages (issue 17) in Debian's Chromium: alice on one replica, bob
 * on the other (sharing PostgreSQL and Redis). A reply written from a message's reply button
 * (the composer's preview, cancelable), its preview in the conversation, and a click on it
 * that loads older pages to reach the original; a deleted original's preview without text;
 * reactions toggled and seen live by the other; the edit history opened from "edited"; a
 * search result that opens the conversation at its message; an upload's progress bar and its
 * cancel (the network throttled through CDP so progress is observable); a file dropped and an
 * image pasted into the composer.
 */
import type { Page } from 'playwright-core';
import t from 'tap';
import { launchBrowser, pngImage, screenshot } from './helpers/browser.js';
import { api, listItem, messageWithText, type Person, send, signUp } from './helpers/e2e-people.js';
import { poll } from './helpers/client-harness.js';
import { type Replica, startTopology } from './helpers/replicas.js';

interface Message {
  id: number;
  content: string;
  attachments: Array<{ filename: string }>;
  reactions: Array<{ emoji: string; count: number }>;
}

const messageById = (page: Page, id: number) => page.locator(`[data-testid=messages] > [data-testid=message][data-id="${id}"]`);
const reaction = (page: Page, id: number, emoji: string) => messageById(page, id).locator(`[data-testid=reaction][data-emoji="${emoji}"]`);

async function openConversation(page: Page, conversationId: number): Promise<void> {
  await listItem(page, conversationId).click();
  await page.locator(`[data-testid=conversation-pane][data-id="${conversationId}"][data-state=open]`).waitFor();
}

async function messageOf(person: Person, conversationId: number, id: number): Promise<Message> {
  const page = await api<Message[]>(person, 'GET', `/api/conversations/${conversationId}/messages/?after=${id - 1}&limit=1`);
  if (page[0]?.id !== id) throw new Error(`message ${id} not found`);
  return page[0];
}

/** Dispatches `type` (drop or paste) carrying one file, built in the page from base64 bytes. */
async function dispatchFile(page: Page, type: 'drop' | 'paste', file: { name: string; mimeType: string; base64: string }): Promise<void> {
  // A string: the tests compile without DOM types.
  await page.evaluate(`(() => {
    const bytes = Uint8Array.from(atob(${JSON.stringify(file.base64)}), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], ${JSON.stringify(file.name)}, { type: ${JSON.stringify(file.mimeType)} }));
    if (${JSON.stringify(type)} === 'drop') {
      const form = document.querySelector('form.composer');
      form.dispatchEvent(new DragEvent('dragover', { bubbles: true, cancelable: true, dataTransfer: data }));
      form.dispatchEvent(new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: data }));
    } else {
      document.querySelector('[data-testid=composer]').dispatchEvent(new ClipboardEvent('paste', { bubbles: true, cancelable: true, clipboardData: data }));
    }
  })()`);
}

t.test('rich messages in the browser: two people on two replicas', async (t) => {
  const topology = await startTopology(t, { backend: 'redis', replicas: 2 });
  const [r0, r1] = topology.replicas as [Replica, Replica];
  const browser = await launchBrowser(t);
  const errors: string[][] = [];
  const alice = await signUp(t, browser, r0, 'alice', errors);
  const bob = await signUp(t, browser, r1, 'bob', errors);
  const group = await api<{ id: number }>(alice, 'POST', '/api/conversations/', { participants: [bob.id], title: 'Rich' });
  const tag = `kw${Math.random().toString(36).slice(2, 8)}`;
  // Made over REST: the creator's page hears of it only by reading the list again.
  await alice.page.reload();
  await openConversation(alice.page, group.id);
  await openConversation(bob.page, group.id);

  let original = 0;
  let answer = 0;
  await t.test('a reply: the quoted preview in the composer, the preview in the message, the jump to the original', async (t) => {
    await send(bob.page, 'what time on Saturday?');
    original = Number(await messageWithText(bob.page, 'what time on Saturday?').getAttribute('data-id'));
    await messageById(alice.page, original).getByTestId('reply').click();
    const replying = alice.page.getByTestId('replying');
    await replying.getByTestId('reply-preview').filter({ hasText: 'what time on Saturday?' }).waitFor();
    await screenshot(alice.page, 'rich-01-composer-replying');
    await replying.getByTestId('cancel-reply').click();
    await replying.waitFor({ state: 'hidden' });
    await messageById(alice.page, original).getByTestId('reply').click();
    await replying.waitFor();

    // Enough messages after the original that a freshly opened page does not hold it.
    for (let i = 1; i <= 40; i++) await api(bob, 'POST', `/api/conversations/${group.id}/messages/`, { content: i === 5 ? `filler ${i} ${tag}` : `filler ${i}` });
    await messageWithText(alice.page, 'filler 40').waitFor();
    await send(alice.page, 'ten in the morning');
    const reply = messageWithText(alice.page, 'ten in the morning');
    answer = Number(await reply.getAttribute('data-id'));
    await reply.getByTestId('reply-preview').filter({ hasText: 'what time on Saturday?' }).waitFor();
    t.equal(await replying.isHidden(), true, 'the composer no longer replies');
    t.match(await messageOf(alice, group.id, answer), { reply_to: { id: original } }, 'sent as a reply');

    await bob.page.reload();
    await openConversation(bob.page, group.id);
    const bobsReply = messageById(bob.page, answer);
    await bobsReply.getByTestId('reply-preview').filter({ hasText: 'what time on Saturday?' }).waitFor();
    t.equal(await messageById(bob.page, original).count(), 0, 'the original is not on the first page');
    await bobsReply.getByTestId('reply-preview').click();
    await bob.page.locator(`[data-testid=message][data-id="${original}"][data-highlighted=true]`).waitFor();
    t.ok(await messageById(bob.page, original).isVisible(), 'older pages loaded, the original on screen and highlighted');
    await screenshot(bob.page, 'rich-02-jumped-to-original');
  });

  await t.test('reactions: toggled, the caller’s own highlighted, seen live by the other', async (t) => {
    await messageById(bob.page, answer).scrollIntoViewIfNeeded();
    await messageById(bob.page, answer).getByTestId('add-reaction').click();
    await messageById(bob.page, answer).locator('[data-testid=pick-emoji][data-emoji="👍"]').click();
    await reaction(bob.page, answer, '👍').and(bob.page.locator('[aria-pressed=true][data-count="1"]')).waitFor();
    await reaction(alice.page, answer, '👍').and(alice.page.locator('[aria-pressed=false][data-count="1"]')).waitFor();
    await reaction(alice.page, answer, '👍').click();
    await reaction(alice.page, answer, '👍').and(alice.page.locator('[aria-pressed=true][data-count="2"]')).waitFor();
    await reaction(bob.page, answer, '👍').and(bob.page.locator('[aria-pressed=true][data-count="2"]')).waitFor();
    await screenshot(bob.page, 'rich-03-reactions-both');
    await reaction(bob.page, answer, '👍').click();
    await reaction(alice.page, answer, '👍').and(alice.page.locator('[aria-pressed=true][data-count="1"]')).waitFor();
    await reaction(bob.page, answer, '👍').and(bob.page.locator('[aria-pressed=false][data-count="1"]')).waitFor();
    await poll('the service to agree', async () => JSON.stringify((await messageOf(bob, group.id, answer)).reactions.map((r) => [r.emoji, r.count])) === JSON.stringify([['👍', 1]]));
    t.pass('one 👍, alice’s');
  });

  await t.test('edit history opened from "edited"', async (t) => {
    await messageById(alice.page, answer).getByTestId('edit').click();
    await alice.page.getByTestId('edit-input').fill('half past ten');
    await alice.page.getByTestId('save-edit').click();
    const edited = messageById(bob.page, answer);
    await edited.getByTestId('content').getByText('half past ten', { exact: true }).waitFor();
    await edited.getByTestId('edited').click();
    const versions = edited.getByTestId('history').getByTestId('version');
    await versions.filter({ hasText: 'ten in the morning' }).waitFor();
    t.equal(await versions.count(), 1, 'one earlier version');
    t.ok(await versions.locator('time').getAttribute('datetime'), 'with its time');
    await screenshot(bob.page, 'rich-04-edit-history');
  });

  await t.test('a deleted original: the reply preview shows no text', async (t) => {
    await api(bob, 'DELETE', `/api/conversations/${group.id}/messages/${original}/`);
    const preview = messageById(alice.page, answer).getByTestId('reply-preview');
    await preview.filter({ hasText: 'message deleted' }).waitFor();
    t.notOk((await preview.textContent())?.includes('Saturday'), 'no trace of the deleted text');
  });

  await t.test('search: a result opens the conversation at the message', async (t) => {
    const other = await api<{ id: number }>(bob, 'POST', '/api/conversations/', { participants: [alice.id], title: 'Other' });
    await listItem(alice.page, other.id).waitFor();
    await openConversation(alice.page, other.id);
    await alice.page.getByRole('searchbox', { name: 'Search messages' }).fill(tag);
    await alice.page.getByTestId('run-search').click();
    const result = alice.page.getByTestId('search-result');
    await result.filter({ hasText: `filler 5 ${tag}` }).waitFor();
    t.equal(await result.count(), 1, 'one match');
    t.equal(await result.getByTestId('result-conversation').textContent(), 'Rich', 'naming its conversation');
    await screenshot(alice.page, 'rich-05-search-results');
    await result.click();
    const target = alice.page.locator(`[data-testid=conversation-pane][data-id="${group.id}"] [data-testid=message][data-highlighted=true]`);
    await target.filter({ hasText: `filler 5 ${tag}` }).waitFor();
    t.ok(await target.isVisible(), 'the message on screen, highlighted');
    await screenshot(alice.page, 'rich-06-search-opened');
  });

  await t.test('an upload shows its progress and can be cancelled', async (t) => {
    await openConversation(alice.page, group.id);
    // A slow uplink, so the progress bar is there to see and to cancel.
    const cdp = await alice.page.context().newCDPSession(alice.page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 256 * 1024 });
    t.teardown(() => cdp.detach().catch(() => undefined));
    await alice.page.getByTestId('file-input').setInputFiles({ name: 'big.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(8 * 1024 * 1024, 1) });
    await alice.page.getByTestId('composer').fill('a big file');
    await alice.page.getByTestId('send').click();
    const row = alice.page.locator('[data-testid=upload][data-filename="big.bin"]');
    await row.getByTestId('upload-progress').waitFor();
    await poll('some progress', async () => Number((await row.getAttribute('data-loaded')) ?? 0) > 0);
    const progress = await row.getByTestId('upload-progress').evaluate((bar) => [Number(bar.getAttribute('value')), Number(bar.getAttribute('max'))]);
    t.ok(progress[0]! > 0 && progress[0]! < progress[1]!, `part of it sent (${progress.join(' of ')})`);
    await screenshot(alice.page, 'rich-07-upload-progress');
    await row.getByTestId('cancel-upload').click();
    await alice.page.locator('[data-testid=upload][data-state=cancelled]').waitFor();
    await screenshot(alice.page, 'rich-08-upload-cancelled');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    const sent = Number(await messageWithText(alice.page, 'a big file').getAttribute('data-id'));
    const attachments = await api<unknown[]>(alice, 'GET', `/api/conversations/${group.id}/messages/${sent}/attachments/`);
    t.same(attachments, [], 'nothing kept');
  });

  await t.test('a file dropped and an image pasted into the composer are attached', async (t) => {
    await dispatchFile(alice.page, 'drop', { name: 'notes.txt', mimeType: 'text/plain', base64: Buffer.from('dropped notes').toString('base64') });
    await alice.page.getByTestId('previews').getByTestId('preview-file').filter({ hasText: 'notes.txt' }).waitFor();
    await dispatchFile(alice.page, 'paste', { name: 'pasted.png', mimeType: 'image/png', base64: pngImage(30, 20, [40, 160, 60]).toString('base64') });
    await alice.page.getByTestId('previews').getByTestId('preview').waitFor();
    t.equal(await alice.page.getByTestId('composer').inputValue(), '', 'the paste added no text');
    await screenshot(alice.page, 'rich-09-dropped-and-pasted');
    await alice.page.getByTestId('composer').fill('two files');
    await alice.page.getByTestId('send').click();
    const message = messageWithText(bob.page, 'two files');
    await message.getByTestId('attachment-link').filter({ hasText: 'notes.txt' }).waitFor();
    await message.getByTestId('attachment-image').waitFor();
    const id = Number(await message.getAttribute('data-id'));
    t.same((await messageOf(alice, group.id, id)).attachments.map((a) => a.filename).sort(), ['notes.txt', 'pasted.png'], 'both stored');
    await screenshot(bob.page, 'rich-10-bob-sees-attachments');
  });

  t.same(errors.flat(), [], 'no script errors in any page');
});
