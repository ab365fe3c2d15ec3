/**
 * The client library's inbox (issue 13) against real replica processes: two replicas of the
 * service on Redis sharing PostgreSQL, with alice and carol on one and bob on the other.
 * Direct conversations, named groups, the list cursor, members (paged, add, remove, leave,
 * roles), renames, read markers over REST and the socket, unread counts, receipts, and the
 * per-conversation state each client keeps from the events; a removed member's socket ends
 * in the "removed" state instead of reconnecting.
 */
import t, { type Test } from 'tap';
import { ApiError, type ConversationState, type LiveConversation } from '@chat-service/client';
import { chatEventValidator, invalidFrames, newClientUser, poll, untilEmitted, WAIT_MS, type ClientUser } from './helpers/client-harness.js';
import { rejection } from './helpers/client-service.js';
import { type Replica, startTopology } from './helpers/replicas.js';

/** Fast retries: a socket that wrongly reconnected after its removal would show it quickly. */
const QUICK = { initialMs: 20, maxMs: 200, factor: 2, random: () => 1 };

const newUser = (replica: Replica): Promise<ClientUser> => newClientUser(replica.url, { backoff: QUICK });

/** Opens a conversation kept live from its events, closed at the end of `t`. */
async function openLive(t: Test, user: ClientUser, conversationId: number): Promise<LiveConversation> {
  const live = await user.client.openConversation(conversationId);
  t.teardown(() => live.close());
  await until(live, 'the socket to open', () => live.socket.state === 'open');
  return live;
}

/** Resolves once `check(state)` holds: re-checked after every change of the live conversation, bounded. */
function until(live: LiveConversation, what: string, check: (state: ConversationState) => boolean, timeoutMs = WAIT_MS): Promise<void> {
  return untilEmitted(what, (wake) => [live.on('change', wake), live.socket.on('state', wake)], () => check(live.state), () => {
    const members = [...live.state.members.values()].map((m) => `${m.username}:${m.role}@${m.last_read_seq}`).join(' ');
    return `conversation ${live.id}: socket ${live.socket.state}, seq ${live.state.lastSeq}, unread ${live.state.unreadCount}, members ${members}`;
  }, timeoutMs);
}

async function expectApiError(t: Test, promise: Promise<unknown>, statusCode: number, what: string): Promise<void> {
  const caught = await rejection(promise);
  t.ok(caught instanceof ApiError && caught.statusCode === statusCode, `${what}: ${statusCode} (${caught instanceof ApiError ? `${caught.statusCode} ${caught.message}` : String(caught)})`);
}

const roles = (state: ConversationState): Record<string, string> => Object.fromEntries([...state.members.values()].map((m) => [m.username, m.role]));

t.test('the inbox through the client library, two replicas', async (t) => {
  const topology = await startTopology(t, { backend: 'redis', replicas: 2 });
  const [r0, r1] = topology.replicas as [Replica, Replica];

  await t.test('direct conversations: 201 when created, 200 when found, from either side', async (t) => {
    const alice = await newUser(r0);
    const bob = await newUser(r1);
    const first = await alice.client.openDirect(bob.id);
    t.equal(first.created, true, 'created now (201)');
    t.match(first.conversation, { kind: 'direct', title: null, member_count: 2, unread_count: 0, last_message: null });
    const again = await alice.client.openDirect(bob.username);
    t.same({ id: again.conversation.id, created: again.created }, { id: first.conversation.id, created: false }, 'the same one again, by username (200)');
    const fromBob = await bob.client.openDirect(alice.id);
    t.same({ id: fromBob.conversation.id, created: fromBob.created }, { id: first.conversation.id, created: false }, 'and from the other side, on the other replica');
    const plain = await alice.client.createConversation([bob.id]);
    t.not(plain.id, first.conversation.id, 'a plain create still makes a new conversation');
    t.equal(plain.kind, 'group');

    await expectApiError(t, alice.client.openDirect(alice.id), 400, 'a direct conversation with oneself');
    await expectApiError(t, alice.client.addMembers(first.conversation.id, [(await newUser(r0)).id]), 409, 'adding to a direct conversation');
    await expectApiError(t, alice.client.leaveConversation(first.conversation.id), 409, 'leaving a direct conversation');
  });

  await t.test('groups: title, roles, members paged, add, remove, set role, rename, and the errors', async (t) => {
    const [alice, carol, dave] = await Promise.all([newUser(r0), newUser(r0), newUser(r0)]);
    const bob = await newUser(r1);
    const group = await alice.client.createGroup('Project', [bob.id, carol.username]);
    t.match(group, { title: 'Project', kind: 'group', member_count: 3 });
    t.equal(group.participants[0], alice.username, 'the caller first in participants');

    const members = await bob.client.listMembers(group.id);
    t.same(members.map((m) => m.id), [alice.id, bob.id, carol.id].sort((a, b) => a - b), 'every member, by user id');
    t.same(Object.fromEntries(members.map((m) => [m.id, m.role])), { [alice.id]: 'owner', [bob.id]: 'member', [carol.id]: 'member' }, 'the creator owns it');
    const firstPage = await bob.client.listMembersPage(group.id, { limit: 2 });
    t.equal(firstPage.items.length, 2, 'a page of 2');
    t.ok(firstPage.next, 'with a next page');
    const secondPage = await bob.client.listMembersPage(group.id, firstPage.next);
    t.same([...firstPage.items, ...secondPage.items].map((m) => m.id), members.map((m) => m.id), 'the pages together are the list');
    const paged: number[] = [];
    for await (const member of bob.client.members(group.id, { limit: 1 })) paged.push(member.id);
    t.same(paged, members.map((m) => m.id), 'members() walks every page once');

    await expectApiError(t, bob.client.addMembers(group.id, [dave.id]), 403, 'a plain member adds');
    await expectApiError(t, bob.client.setRole(group.id, carol.id, 'admin'), 403, 'a plain member sets a role');
    const promoted = await alice.client.setRole(group.id, bob.id, 'admin');
    t.match(promoted, { id: bob.id, role: 'admin' }, 'the owner makes bob admin');
    const added = await bob.client.addMembers(group.id, [dave.username, carol.id]);
    t.equal(added.member_count, 4, 'an admin adds dave (carol, already in, is ignored)');
    await expectApiError(t, bob.client.setRole(group.id, carol.id, 'admin'), 403, 'an admin sets a role');
    await expectApiError(t, bob.client.removeMember(group.id, alice.id), 403, 'nobody removes the owner');
    await expectApiError(t, bob.client.addMembers(group.id, ['no_such_user_zz']), 400, 'an unknown user');
    await expectApiError(t, bob.client.renameConversation(group.id, 'x'.repeat(101)), 400, 'a title too long');
    const renamed = await bob.client.renameConversation(group.id, 'Project 2');
    t.equal(renamed.title, 'Project 2', 'an admin renames');
    t.equal((await carol.client.getConversation(group.id)).title, 'Project 2', 'everyone sees the new title');
    await bob.client.removeMember(group.id, dave.id);
    await expectApiError(t, dave.client.getConversation(group.id), 404, 'a removed member');
    await carol.client.leaveConversation(group.id);
    await expectApiError(t, carol.client.listMessages(group.id), 404, 'a member who left');
    const demoted = await alice.client.setRole(group.id, bob.id, 'member');
    t.match(demoted, { id: bob.id, role: 'member' }, 'and back to member');
    t.same((await alice.client.listMembers(group.id)).map((m) => m.id), [alice.id, bob.id].sort((a, b) => a - b));
  });

  await t.test('the inbox list: pages along the Link cursor, newest activity first, unread counts', async (t) => {
    const alice = await newUser(r0);
    const bob = await newUser(r1);
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await alice.client.createGroup(`list ${i}`, [bob.id])).id);
    // Activity in the oldest one makes it the newest.
    const message = await bob.client.sendMessage(ids[0]!, 'bump');
    // Bob's inbox moves with his send; alice's with the notification flush (coalesced, 100 ms).
    t.equal((await bob.client.listConversationsPage({ limit: 1 })).items[0]?.id, ids[0], "the sender's inbox moves at once");
    await poll("alice's inbox to follow the message", async () => (await alice.client.listConversationsPage({ limit: 1 })).items[0]?.id === ids[0]);
    const first = await alice.client.listConversationsPage({ limit: 2 });
    t.equal(first.items.length, 2);
    t.ok(first.next && typeof first.next.before === 'string', `the next page's cursor comes from the Link header (${JSON.stringify(first.next)})`);
    const walked: number[] = [];
    for await (const conversation of alice.client.conversations({ limit: 2 })) walked.push(conversation.id);
    t.same(walked, [ids[0], ids[4], ids[3], ids[2], ids[1]], 'every conversation once, newest activity first');
    t.same((await alice.client.listConversations()).map((c) => c.id), walked, 'the first page (default size) holds them all');
    const bumped = first.items[0]!;
    t.match(bumped, { id: ids[0], unread_count: 1, last_message: { id: message.id, content: 'bump' } }, 'with its last message and unread count');

    const counts = await alice.client.unreadCounts();
    t.same(ids.map((id) => counts.get(id)), [1, 0, 0, 0, 0], 'unreadCounts() per conversation');
    t.same(await alice.client.markRead(ids[0]!, message.seq), { last_read_seq: message.seq, unread_count: 0 }, 'markRead answers the new marker and count');
    t.same(await alice.client.markRead(ids[0]!, 0), { last_read_seq: message.seq, unread_count: 0 }, 'a marker never moves back');
    t.same(await alice.client.markRead(ids[0]!, 1_000_000), { last_read_seq: message.seq, unread_count: 0 }, 'nor past last_seq');
    await expectApiError(t, alice.client.markRead(ids[0]!, -1), 400, 'a negative seq');
    await expectApiError(t, alice.client.markRead(ids[0]!, 1.5), 400, 'a seq that is not an integer');
    t.equal((await alice.client.unreadCounts()).get(ids[0]!), 0, 'read now');
  });

  await t.test('state kept from events: members, roles, title, markers, unread, across replicas', async (t) => {
    const alice = await newUser(r0);
    const carol = await newUser(r0);
    const bob = await newUser(r1);
    const group = await alice.client.createGroup('Live', [bob.id]);
    const A = await openLive(t, alice, group.id);
    const B = await openLive(t, bob, group.id);
    t.same(roles(A.state), { [alice.username]: 'owner', [bob.username]: 'member' }, 'the state starts from the member list');
    t.equal(A.state.canManage, true, 'the owner manages');
    t.equal(B.state.canManage, false, 'a plain member does not');

    await alice.client.addMembers(group.id, [carol.id]);
    await until(B, 'carol in bob’s state', (s) => s.members.has(carol.id));
    t.equal(B.state.members.get(carol.id)?.role, 'member', 'member.added: a member');
    await alice.client.setRole(group.id, bob.id, 'admin');
    await until(B, 'bob admin', (s) => s.members.get(bob.id)?.role === 'admin');
    t.equal(B.state.canManage, true, 'member.role: bob manages now');
    await bob.client.renameConversation(group.id, 'Live, renamed');
    await until(A, 'the new title', (s) => s.title === 'Live, renamed');

    // Bob writes twice: alice's unread count follows, and bob's marker is at his own message.
    const m1 = await B.socket.send('one');
    const m2 = await B.socket.send('two');
    await until(A, 'two unread', (s) => s.unreadCount === 2);
    t.equal(A.state.members.get(bob.id)?.last_read_seq, m2.seq, "a member's own message moves their marker");
    t.equal(B.state.unreadCount, 0, 'nothing unread for the sender');

    // Alice reads the first over the socket: bob gets the receipt on the other replica.
    A.read(m1.seq);
    t.equal(A.state.unreadCount, 1, 'the reader’s own state follows at once');
    await until(B, "alice's receipt", (s) => s.members.get(alice.id)?.last_read_seq === m1.seq);
    t.same(B.state.seenBy(m1.seq, [bob.id]).map((m) => m.id), [alice.id], 'seen by alice');
    t.same(B.state.seenBy(m2.seq, [bob.id]), [], 'the second one not yet');
    const frames = alice.wire.attempts.flatMap((attempt) => attempt.sent).map((text) => JSON.parse(text) as { type: string; seq?: number });
    t.same(frames.filter((frame) => frame.type === 'read'), [{ type: 'read', seq: m1.seq }], 'one read frame went out');
    t.equal((await alice.client.getConversation(group.id)).last_read_seq, m1.seq, 'the service has the marker');

    // A deleted unread message is no longer unread.
    const m3 = await B.socket.send('three');
    await until(A, 'two unread again', (s) => s.unreadCount === 2 && s.lastSeq >= m3.seq);
    await bob.client.deleteMessage(group.id, m3.id);
    await until(A, 'one unread after the delete', (s) => s.unreadCount === 1);

    // REST read: the answer's exact count; the receipt reaches bob (at most one a second).
    await A.markRead(m2.seq);
    t.equal(A.state.unreadCount, 0, 'markRead: nothing unread');
    await until(B, "alice's second receipt", (s) => s.members.get(alice.id)?.last_read_seq === m2.seq);

    // Carol joins late: her state starts with everyone's marker from the member list.
    const C = await openLive(t, carol, group.id);
    t.equal(C.state.members.get(bob.id)?.last_read_seq, m3.seq, "bob's marker, at his own newest message");
    t.equal(C.state.title, 'Live, renamed');
    await carol.client.leaveConversation(group.id);
    await until(A, 'carol gone', (s) => !s.members.has(carol.id));
    await until(C, 'carol removed', (s) => s.removed !== undefined);
    t.match(C.state.removed, { user: { id: carol.id }, by: { id: carol.id } }, 'leaving: by is the user');
    t.same(invalidFrames(bob.wire.frames, chatEventValidator), [], "every frame bob's client got validates");
  });

  await t.test('the owner leaves: succession reaches the state; a read asked before the socket opened is sent once it does', async (t) => {
    const alice = await newUser(r0);
    const bob = await newUser(r1);
    const carol = await newUser(r0);
    const group = await alice.client.createGroup('Succession', [bob.id, carol.id]);
    await alice.client.setRole(group.id, carol.id, 'admin');
    const sent = await alice.client.sendMessage(group.id, 'read me');
    // Bob's other socket is open first: a receipt is live only, so a socket that subscribes
    // after it was published (with a state read before the marker moved) would never hear it.
    const B = await openLive(t, bob, group.id);
    // The read is asked before the socket can have opened: it waits for the connection.
    const attemptsBefore = bob.wire.attempts.length;
    const early = bob.client.chat(group.id, { lastSeq: 0 });
    t.teardown(() => early.close());
    t.equal(early.state, 'connecting');
    early.read(sent.seq);
    await poll('the early read to reach the service', async () => (await bob.client.getConversation(group.id)).last_read_seq === sent.seq);
    const frames = bob.wire.attempts[attemptsBefore]!.sent.map((text) => JSON.parse(text) as { type: string });
    t.same(frames, [{ type: 'read', seq: sent.seq }], 'sent once, on the connection that opened');
    // Bob's other socket hears of it: a receipt goes to the reader's own other sockets too.
    await until(B, "bob's marker in the state of his other socket", (s) => s.lastReadSeq === sent.seq);

    await alice.client.leaveConversation(group.id);
    await until(B, 'carol (the admin) owner', (s) => s.members.get(carol.id)?.role === 'owner' && !s.members.has(alice.id));
    t.equal(B.state.members.get(bob.id)?.role, 'member', 'bob stays a member');
    t.equal(B.state.canManage, false);
  });

  await t.test('a removed member: the member.removed event, then 4403 and the removed state, no reconnect', async (t) => {
    const alice = await newUser(r0);
    const bob = await newUser(r1);
    const group = await alice.client.createGroup('Kick', [bob.id]);
    const A = await openLive(t, alice, group.id);
    const B = await openLive(t, bob, group.id);
    const removedEvents: unknown[] = [];
    B.on('removed', (event) => removedEvents.push(event));
    await alice.client.sendMessage(group.id, 'before');
    await until(B, 'the message', (s) => s.lastSeq >= 1);
    const attemptsBefore = bob.wire.attempts.length;

    await alice.client.removeMember(group.id, bob.id);
    await until(B, 'removed', () => B.socket.state === 'removed');
    t.match(B.state.removed, { type: 'member.removed', user: { id: bob.id }, by: { id: alice.id } }, 'the state says who removed bob');
    t.equal(B.socket.removed, B.state.removed, 'and so does the socket');
    t.equal(removedEvents.length, 1, 'one removed event');
    const last = B.socket.lastSeq;
    t.equal(B.state.lastSeq, last, 'the member.removed was the last event bob got');
    await until(A, 'bob out of alice’s state', (s) => !s.members.has(bob.id));
    // A socket that reconnected would show here: QUICK retries would have made several by now.
    await alice.client.sendMessage(group.id, 'after');
    await until(A, 'alice sees her message', (s) => s.lastSeq > (last ?? 0));
    t.equal(bob.wire.attempts.length, attemptsBefore, 'no reconnect after the removal');
    t.equal(B.socket.state, 'removed', 'still removed');
    await expectApiError(t, bob.client.getConversation(group.id), 404, 'the conversation is gone for bob');
  });
});
