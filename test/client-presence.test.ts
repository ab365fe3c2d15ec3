/**
 * The client library's presence and mentions (issue 14). Units first: the mention finder and
 * `@` completion (e-mail addresses, inside a word, trailing punctuation, Persian text around a
 * name, ranking and bounds). Then against real replica processes, two on Redis sharing
 * PostgreSQL, alice on one and bob on the other: the finder agrees with the service's
 * `mentions` for the same texts; a `PresenceStore` sees bob come online and go offline live
 * across replicas, never hears of alice herself, follows membership, and reads everything again
 * after its socket reconnects, so a change made while it was down does not stay unseen; an
 * edited message's `mentions` follow its new text in a `LiveConversation`'s store.
 */
import t, { type Test } from 'tap';
import {
  ApiError,
  ChatClient,
  type ChatSocket,
  findMentions,
  insertMention,
  MAX_MENTION_MATCHES,
  mentionCompletion,
  mentionedMembers,
  mentionQueryAt,
  mentionSpans,
  mentionsUser,
  PresenceStore,
  type PresenceEvent,
  type PresenceView,
  rankMentionMatches,
} from '@chat-service/client';
import { randomName } from './helpers/api.js';
import { newClientUser, untilEmitted, WAIT_MS, type ClientUser } from './helpers/client-harness.js';
import { PASSWORD, QUICK, rejection } from './helpers/client-service.js';
import { eventually, type Replica, startTopology } from './helpers/replicas.js';

const TIMEOUT_SECONDS = 3;
const GRACE_MS = 300;

t.test('the mention finder', async (t) => {
  const spans = (content: string, name: string) => findMentions(content, name).map((span) => content.slice(span.start, span.end));
  t.same(spans('hi @alice and @ALICE!', 'Alice'), ['@alice', '@ALICE'], 'case-insensitive, both places');
  t.same(spans('alice@example.com, mail@alice, @@alice', 'alice'), [], 'an e-mail address, mail@name and @@name are no mentions');
  t.same(spans('@alicex @alice_ @xalice', 'alice'), [], 'a longer name is another name');
  t.same(spans('(@alice) @alice. @alice- @alice?', 'alice'), ['@alice', '@alice', '@alice', '@alice'], 'punctuation around a name is not part of it');
  t.same(spans('سلام @alice، خوبی؟', 'alice'), ['@alice'], 'Persian text around it, a Persian comma after it');
  t.same(spans('سلام@alice', 'alice'), [], 'after a Persian letter: inside a word');
  t.same(spans('@aliceجان @alice۲', 'alice'), [], 'followed by a Persian letter or digit: inside a word');
  t.same(spans('@al', 'al'), [], 'shorter than a username can be');
  t.equal(mentionsUser('ping @Bob.Smith.', 'bob.smith'), true, 'a name holding a dot, then a full stop');
  t.equal(mentionsUser('ping @Bob.Smith.', 'bob'), false, 'not its first part');

  const all = mentionSpans('@ann, @bob. and someone@else.org @x');
  t.same(all.map((span) => span.username), ['ann', 'bob.'], 'without a member list every possible name counts, the longest reading first');
  const members = [{ username: 'Bob' }, { username: 'bob.' }, { username: 'Carol' }];
  t.same(mentionSpans('@bob. @carol', (name) => name === 'bob' || name === 'carol').map((span) => [span.username, span.end - span.start]), [['bob', 4], ['carol', 6]], 'the reading that is a member');
  t.same(mentionedMembers('@BOB. and @carol and @carol and @dave', members), ['Bob', 'bob.', 'Carol'], 'as the service lists them: both readings that are members, as registered, once each');
  t.same(mentionedMembers('no one', members), [], 'none');
});

t.test('@ completion', async (t) => {
  const people = ['alice', 'Bob_Smith', 'bob', 'bobby', 'carol.b', 'Zed-bo', 'robert'].map((username, index) => ({ id: index + 1, username }));
  const names = (text: string, caret = text.length, options = {}) => mentionCompletion(text, caret, people, options)?.matches.map((member) => member.username);

  t.same(mentionQueryAt('hi @bo', 6), { start: 3, end: 6, prefix: 'bo' }, 'the @prefix before the caret');
  t.same(names('hi @bo'), ['bob', 'bobby', 'Bob_Smith', 'Zed-bo'], 'names starting with it (shorter first), then names with a part starting with it');
  t.same(names('hi @BOB'), ['bob', 'bobby', 'Bob_Smith'], 'case-insensitive; the name itself first');
  t.same(names('@smi'), ['Bob_Smith'], 'a later part of a name');
  t.same(names('@'), ['bob', 'alice', 'bobby', 'robert', 'Zed-bo', 'carol.b', 'Bob_Smith'], 'a bare @: everyone');
  t.same(names('@', 1, { exclude: (member: { id: number }) => member.id === 3, limit: 2 }), ['alice', 'bobby'], 'excluded members left out, bounded by limit');
  t.same(names('@zz'), [], 'nothing matches: an empty list');
  t.equal(mentionCompletion('mail bob@bo', 11, people), undefined, 'inside an e-mail address: no completion');
  t.equal(mentionCompletion('سلام@bo', 7, people), undefined, 'after a Persian letter: no completion');
  t.same(mentionQueryAt('😀@bo', 5), { start: 2, end: 5, prefix: 'bo' }, 'after an emoji (no letter, and outside the BMP): a mention may start');
  t.equal(mentionQueryAt('@@bo', 4), undefined, '@@: no completion');
  t.equal(mentionQueryAt('@bo x', 5), undefined, 'the caret past a space: done typing');
  t.equal(mentionQueryAt(`@${'a'.repeat(33)}`, 34), undefined, 'longer than a username: no completion');
  t.same(mentionQueryAt('سلام @bo', 8), { start: 5, end: 8, prefix: 'bo' }, 'after a space in Persian text');
  t.same(mentionQueryAt('(@bo)', 4), { start: 1, end: 4, prefix: 'bo' }, 'after a bracket');
  t.same(mentionQueryAt('@bobb and', 2), { start: 0, end: 5, prefix: 'b' }, 'the caret inside a name: the whole name is replaced');

  const many = Array.from({ length: 200 }, (_, i) => ({ username: `user${String(i).padStart(3, '0')}` }));
  t.equal(rankMentionMatches(many, 'user').length, 8, 'a popup’s worth by default');
  t.equal(rankMentionMatches(many, 'user', { limit: 1_000 }).length, MAX_MENTION_MATCHES, 'never more than MAX_MENTION_MATCHES');
  t.same(rankMentionMatches(many, 'USER19', { limit: 3 }).map((m) => m.username), ['user190', 'user191', 'user192'], 'then by name');

  t.same(insertMention('hi @bo', { start: 3, end: 6, prefix: 'bo' }, 'bobby'), { text: 'hi @bobby ', caret: 10 }, 'the name and a space, the caret after it');
  t.same(insertMention('hi @bo there', { start: 3, end: 6, prefix: 'bo' }, 'bob'), { text: 'hi @bob there', caret: 8 }, 'no second space before one already there');
  const mid = mentionQueryAt('@bobb and', 2)!;
  t.same(insertMention('@bobb and', mid, 'bobby'), { text: '@bobby and', caret: 7 }, 'the whole name replaced');
  t.ok(mentionsUser(insertMention('x @bo', mentionQueryAt('x @bo', 5)!, 'Bob_Smith').text, 'bob_smith'), 'what completion inserts is a mention');
});

t.test('presence and mentions against two replicas', async (t) => {
  const topology = await startTopology(t, {
    backend: 'redis',
    replicas: 2,
    env: { PRESENCE_TIMEOUT_SECONDS: String(TIMEOUT_SECONDS), PRESENCE_GRACE_MS: String(GRACE_MS) },
  });
  const [r0, r1] = topology.replicas as [Replica, Replica];

  await t.test('the finder agrees with the service’s mentions', async (t) => {
    const alice = await newUser(r0);
    const bob = await newUser(r1);
    const stem = randomName('n');
    // "n….": a username may end in a dot, so "@n…." reads as both.
    const dotted = await registered(r0, `${stem}.`);
    const plain = await registered(r1, stem);
    const outsider = await newUser(r0);
    const group = await alice.client.createGroup('Mentions', [bob.id, dotted.id, plain.id]);
    const members = await alice.client.listMembers(group.id);
    const texts = [
      `hi @${bob.username.toUpperCase()}, see ${bob.username}@example.com and mail@${alice.username}`,
      `(@${alice.username}) @${stem}. and @${outsider.username}`,
      `سلام @${bob.username}، خوبی؟ سلام@${alice.username} @${alice.username}جان`,
      `@@${bob.username} @${bob.username}x @${bob.username}-`,
      'no mention at all',
    ];
    for (const content of texts) {
      const sent = await alice.client.sendMessage(group.id, content);
      t.same(sent.mentions, mentionedMembers(content, members), `mentions of: ${content}`);
      for (const member of members) {
        t.equal(mentionsUser(content, member.username), sent.mentions.includes(member.username), `${member.username} in: ${content}`);
      }
    }
    const persian = await rejection(new ChatClient({ baseUrl: r0.url }).register('علی_رضا', PASSWORD));
    t.ok(persian instanceof ApiError && persian.statusCode === 400, 'the service takes no Persian usernames (ASCII only), so completion and mentions need none');
  });

  await t.test('an edited message’s mentions follow its new text in the store', async (t) => {
    const alice = await newUser(r0);
    const bob = await newUser(r1);
    const carol = await newUser(r1);
    const group = await alice.client.createGroup('Edits', [bob.id, carol.id]);
    const live = await alice.client.openConversation(group.id);
    t.teardown(() => live.close());
    const sent = await live.socket.send(`@${bob.username} look`);
    live.messages.add([sent]);
    t.same(live.messages.get(sent.id)?.mentions, [bob.username]);
    const edited = await alice.client.editMessage(group.id, sent.id, `no, @${carol.username} and @${alice.username}`);
    await eventually('the edit event', () => live.messages.get(sent.id)?.content === edited.content, WAIT_MS);
    t.same(live.messages.get(sent.id)?.mentions, edited.mentions, 'the same as the service’s answer');
    t.equal(edited.mentions.length, 2, 'carol and alice herself');
  });

  await t.test('a presence store follows the other replica live; never of oneself', async (t) => {
    const { counted, alice, bob, group, socket, store } = await watchedPair(t, r0, r1, 'Presence');
    const changes = recordChanges(store);
    const events: PresenceEvent[] = [];
    socket.on('presence', (event) => events.push(event));
    await untilStore(store, 'loaded', () => store.fresh && store.get(bob.id) !== undefined);
    t.match(store.get(bob.id), { user_id: bob.id, username: bob.username, status: 'offline', last_seen_at: null }, 'bob never connected');
    // The first read may come before the service counted this very socket; the settle read after it has.
    await untilStore(store, 'alice online', () => store.isOnline(alice.id));

    // Wait for the settle read after open, so what follows can only come from events.
    await eventually('the settle read', () => counted.presenceReads() >= 2, WAIT_MS);
    const readsBefore = counted.presenceReads();
    const bobSocket = bob.client.notifications();
    await untilStore(store, 'bob online', () => store.isOnline(bob.id));
    t.equal(counted.presenceReads(), readsBefore, 'live: from the socket’s presence event, no read');
    t.match(changes.at(-1), [{ user_id: bob.id, status: 'online', last_seen_at: String }], 'a change names bob');

    const closedAt = Date.now();
    bobSocket.close();
    await untilStore(store, 'bob offline', () => store.get(bob.id)?.status === 'offline');
    const seen = store.get(bob.id)!;
    t.ok(Date.parse(seen.last_seen_at!) >= closedAt - 1_000, 'with last_seen_at when he left');
    t.equal(counted.presenceReads(), readsBefore, 'still no read');
    const [rest] = (await alice.client.listPresence(group.id)).filter((row) => row.user_id === bob.id);
    t.same(rest, seen, 'the store holds what the service says');
    t.same(events.map((event) => [event.user_id, event.status]), [[bob.id, 'online'], [bob.id, 'offline']], 'two events, both about bob: none about alice');
  });

  await t.test('membership: an added member is read, a removed one forgotten', async (t) => {
    const alice = await newUser(r0);
    const bob = await newUser(r1);
    const carol = await newUser(r1);
    const group = await alice.client.createGroup('Joining', [bob.id]);
    const store = openStore(t, alice, openSocket(t, alice, group.id));
    await untilStore(store, 'loaded', () => store.fresh && store.get(bob.id) !== undefined);
    t.equal(store.get(carol.id), undefined, 'carol is not a member');
    const carolSocket = carol.client.notifications();
    t.teardown(() => carolSocket.close());
    await eventually('carol online', async () => (await carol.client.userPresence(carol.id)).status === 'online', WAIT_MS);
    await alice.client.addMembers(group.id, [carol.id]);
    await untilStore(store, 'carol read', () => store.isOnline(carol.id));
    await alice.client.removeMember(group.id, bob.id);
    // A member forgotten is no change of anyone's presence (the members list is the state's).
    await eventually('bob forgotten', () => store.get(bob.id) === undefined, WAIT_MS);
    t.same(store.list().map((row) => row.user_id).sort(), [alice.id, carol.id].sort(), 'alice and carol');
  });

  // Last: it restarts r0.
  await t.test('a change while the socket was down is read after it reconnects', async (t) => {
    const { counted, bob, store } = await watchedPair(t, r0, r1, 'Reconnect');
    const freshness: boolean[] = [];
    store.on('fresh', (fresh) => freshness.push(fresh));
    await untilStore(store, 'loaded', () => store.fresh && store.get(bob.id)?.status === 'offline');

    await r0.kill('SIGTERM');
    await untilStore(store, 'stale once its socket is down', () => !store.fresh);
    t.equal(store.get(bob.id)?.status, 'offline', 'what it held stays, marked not fresh');
    // Bob comes online meanwhile: the event goes to a replica alice's socket is not on.
    const bobSocket = bob.client.notifications();
    t.teardown(() => bobSocket.close());
    await eventually('bob online, as r1 has it', async () => (await bob.client.userPresence(bob.id)).status === 'online', WAIT_MS);
    t.equal(store.get(bob.id)?.status, 'offline', 'not heard while down');

    const readsBefore = counted.presenceReads();
    await r0.restart();
    await untilStore(store, 'bob online after the reconnect', () => store.fresh && store.isOnline(bob.id), 30_000);
    t.ok(counted.presenceReads() > readsBefore, 'read again over REST on reopening');
    t.same(freshness.slice(0, 3), [true, false, true], 'fresh, stale while down, fresh again');
  });
});

const newUser = (replica: Replica, options: Parameters<typeof newClientUser>[1] = {}): Promise<ClientUser> => newClientUser(replica.url, { backoff: QUICK, ...options });

async function registered(replica: Replica, username: string): Promise<{ id: number; username: string }> {
  return (await new ChatClient({ baseUrl: replica.url }).register(username, PASSWORD)).user;
}

function openSocket(t: Test, user: ClientUser, conversationId: number): ChatSocket {
  const socket = user.client.chat(conversationId);
  t.teardown(() => socket.close());
  return socket;
}

function openStore(t: Test, user: ClientUser, socket: ChatSocket): PresenceStore {
  const store = new PresenceStore(user.client, socket, { backoff: QUICK });
  t.teardown(() => store.close());
  return store;
}

/** Alice on `aliceOn` (her presence reads counted) with a store on a group with bob, on `bobOn`. */
async function watchedPair(t: Test, aliceOn: Replica, bobOn: Replica, title: string) {
  const counted = countingFetch();
  const alice = await newUser(aliceOn, { fetch: counted.fetch });
  const bob = await newUser(bobOn);
  const group = await alice.client.createGroup(title, [bob.id]);
  const socket = openSocket(t, alice, group.id);
  return { counted, alice, bob, group, socket, store: openStore(t, alice, socket) };
}

function recordChanges(store: PresenceStore): PresenceView[][] {
  const changes: PresenceView[][] = [];
  store.on('change', (rows) => changes.push(rows));
  return changes;
}

/** The platform fetch, counting conversation presence reads. */
function countingFetch() {
  let reads = 0;
  const counting: typeof fetch = (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (/\/api\/conversations\/\d+\/presence\//.test(new URL(url).pathname)) reads += 1;
    return globalThis.fetch(input, init);
  };
  return { fetch: counting, presenceReads: () => reads };
}

/** Resolves once `check()` holds, re-checked on every change of the store; bounded. */
const untilStore = (store: PresenceStore, what: string, check: () => boolean, timeoutMs = WAIT_MS): Promise<void> =>
  untilEmitted(what, (wake) => [store.on('change', wake), store.on('fresh', wake)], check, () => `presence of ${store.conversationId}: ${JSON.stringify(store.list())}, fresh ${store.fresh}`, timeoutMs);
