/**
 * Faults under live traffic, for Redis topologies: a replica SIGKILLed mid-traffic, and the
 * broker restarted mid-traffic. Clients behave as API.md asks real ones to: on a closed socket
 * they reconnect to any replica with `?last_seq=`, and they resend an unanswered message with
 * the same `client_id`. Afterwards every client must hold every stored event exactly once, in
 * seq order, and every acknowledged message must be stored exactly once.
 */
import postgres from 'postgres';
import type { Test } from 'tap';
import { conversationChannel, userChannel } from '../../src/redis/names.js';
import { eventually, type Replica, type Topology } from '../helpers/replicas.js';
import { chatUrl, type ConversationEvent, notificationsUrl, WsClient } from '../helpers/ws-client.js';
import { createConversation, fetchHistory, isAnswerTo, registerUsers, seqProblem, type Session } from '../helpers/chat-api.js';

/** How long a sender waits for the answer to one message; covers a broker restart. */
const ANSWER_MS = 30_000;
/** A reconnect attempt that fails (the replica is still dying) is retried after this. */
const RECONNECT_BACKOFF_MS = 100;

/**
 * One logical chat client: a chain of sockets ("incarnations"). When one closes unexpectedly
 * it reconnects, preferring other replicas than the one that dropped it, with `last_seq` =
 * the newest seq it has seen; the chain's events then continue without gap or duplicate.
 */
class ResumingClient {
  readonly incarnations: WsClient[] = [];
  private reconnecting: Promise<void> | undefined;
  private stopped = false;
  reconnects = 0;

  constructor(
    private readonly topology: Topology,
    private readonly home: number,
    private readonly conversationId: number,
    readonly session: Session,
    readonly label: string,
  ) {}

  async start(): Promise<void> {
    await this.connect(this.topology.at(this.home), 0);
  }

  current(): WsClient {
    return this.incarnations.at(-1)!;
  }

  /**
   * The conversation's events as this client's sockets got them, without the answers to its
   * own resends: a resent client_id that was stored is answered with the original chat.message
   * again (API.md, sockets version 2), which the client already has by seq.
   */
  events(): ConversationEvent[] {
    const events: ConversationEvent[] = [];
    let head = 0;
    for (const event of this.incarnations.flatMap((client) => client.conversationEvents())) {
      const resendAnswer = event.seq <= head && event.type === 'chat.message' && event.message.sender_id === this.session.user.id;
      if (resendAnswer && events.some((seen) => seen.seq === event.seq && seen.type === 'chat.message' && seen.message.id === event.message.id)) continue;
      events.push(event);
      head = Math.max(head, event.seq);
    }
    return events;
  }

  lastSeq(): number {
    return this.events().reduce((max, event) => Math.max(max, event.seq), 0);
  }

  /** The answer (own chat.message or error) to `clientId` on any incarnation so far. */
  answerTo(clientId: string) {
    for (const client of this.incarnations) {
      const answer = client.events.find(isAnswerTo(clientId));
      if (answer) return answer;
    }
    return undefined;
  }

  /** Resolves once a socket is open again (after a reconnect in progress, if any). */
  async settle(): Promise<void> {
    while (!this.current().isOpen) {
      if (this.stopped) throw new Error(`${this.label}: stopped`);
      if (this.reconnecting) {
        await this.reconnecting;
        continue;
      }
      // Closing but its close event not emitted yet: the reconnect starts with that event.
      await this.current().closed;
      if (!this.reconnecting && !this.current().isOpen) throw new Error(`${this.label}: closed and not reconnecting`);
    }
  }

  /** Waits until this client has seen seq `seq` (through reconnects). */
  async waitForSeq(seq: number, timeoutMs = ANSWER_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.lastSeq() < seq) {
      await this.settle();
      try {
        await this.current().waitForSeq(seq, Math.max(1, deadline - Date.now()));
      } catch (error) {
        if (this.current().isOpen || Date.now() > deadline) throw error;
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.reconnecting?.catch(() => {});
    for (const client of this.incarnations) client.terminate();
  }

  private async connect(replica: Replica, lastSeq: number): Promise<void> {
    const client = await WsClient.connect(chatUrl(replica.wsUrl, this.conversationId), {
      token: this.session.token,
      lastSeq,
      label: `${this.label}#${this.incarnations.length}@${replica.name}`,
    });
    this.incarnations.push(client);
    // Registered in the same tick as the client's own close handler, so a sender whose wait
    // was just rejected by the close finds `reconnecting` already set.
    client.ws.once('close', () => {
      if (this.stopped || client !== this.current()) return;
      this.reconnecting = this.reconnect(replica).finally(() => {
        this.reconnecting = undefined;
      });
    });
  }

  private async reconnect(lost: Replica): Promise<void> {
    this.reconnects += 1;
    const deadline = Date.now() + ANSWER_MS;
    for (let attempt = 0; ; attempt++) {
      const candidates = this.topology.replicas.filter((replica) => replica !== lost && replica.running);
      const target = candidates[(this.home + attempt) % Math.max(1, candidates.length)] ?? lost;
      try {
        await this.connect(target, this.lastSeq());
        return;
      } catch (error) {
        if (this.stopped || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_BACKOFF_MS));
      }
    }
  }
}

export interface TrafficStats {
  sent: number;
  acked: Set<string>;
  /** `unavailable` answers: the message was not stored, the sender moves on. */
  unavailable: number;
  resent: number;
  unexpected: string[];
  /** The longest a send waited for its answer (an echo or an error) on an open socket, ms. */
  slowestAnswerMs: number;
}

/** One sender: a message at a time, each resent with its client_id until answered. */
async function sendUntil(client: ResumingClient, prefix: string, stop: () => boolean, stats: TrafficStats): Promise<void> {
  for (let i = 0; !stop(); i++) {
    const clientId = `${prefix}-${i}`;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 10) throw new Error(`${client.label}: ${clientId} unanswered after ${attempt} attempts`);
      let answer = client.answerTo(clientId);
      if (!answer) {
        await client.settle();
        const socket = client.current();
        if (attempt > 0) stats.resent += 1;
        socket.send({ type: 'chat_message', message: `${prefix} #${i}`, client_id: clientId });
        stats.sent += 1;
        const sentAt = Date.now();
        try {
          answer = await socket.waitFor(isAnswerTo(clientId), ANSWER_MS);
          stats.slowestAnswerMs = Math.max(stats.slowestAnswerMs, Date.now() - sentAt);
        } catch (error) {
          if (socket.isOpen) throw error;
          // Its socket died with the message in flight: it may or may not be stored. Reconnect
          // (the replay brings it if it was) and send it again with the same client_id.
          continue;
        }
      }
      if (answer.type === 'chat.message') stats.acked.add(clientId);
      else if (answer.code === 'unavailable') stats.unavailable += 1;
      else stats.unexpected.push(JSON.stringify(answer));
      break;
    }
  }
}

export interface Traffic {
  clients: ResumingClient[];
  senders: ResumingClient[];
  stats: TrafficStats;
  conversationId: number;
  owner: Session;
  /** Resolves once every client has seen at least `seq`. */
  reach(seq: number): Promise<void>;
  /** Stops the senders and waits for their last answers. */
  stop(): Promise<void>;
}

/**
 * A conversation with one sender per replica plus one observer per replica, all connected
 * with `last_seq=0`, senders sending until stopped.
 */
export async function startTraffic(t: Test, topology: Topology, prefix: string): Promise<Traffic> {
  const count = topology.replicas.length;
  const users = await registerUsers(topology, count + 1, prefix);
  const observer = users[count]!;
  const conversationId = await createConversation(topology.at(0), observer, users.slice(0, count));
  const senders = users.slice(0, count).map((user, i) => new ResumingClient(topology, i, conversationId, user, `sender${i}`));
  const observers = topology.replicas.map((_, i) => new ResumingClient(topology, i, conversationId, observer, `observer${i}`));
  const clients = [...senders, ...observers];
  await Promise.all(clients.map((client) => client.start()));
  t.teardown(() => Promise.all(clients.map((client) => client.stop())));

  let stopping = false;
  const stats: TrafficStats = { sent: 0, acked: new Set(), unavailable: 0, resent: 0, unexpected: [], slowestAnswerMs: 0 };
  const running = Promise.all(senders.map((sender, i) => sendUntil(sender, `${prefix}${i}`, () => stopping, stats)));
  // A sender that fails stops the test with its reason instead of a later timeout.
  running.catch(() => {});
  return {
    clients,
    senders,
    stats,
    conversationId,
    owner: observer,
    reach: async (seq) => {
      await Promise.race([Promise.all(clients.map((client) => client.waitForSeq(seq))), running.then(() => new Promise(() => {}))]);
    },
    stop: async () => {
      stopping = true;
      await running;
    },
  };
}

/** After the traffic: the database and every client agree, and nothing acknowledged is missing or doubled. */
export async function verifyTraffic(t: Test, topology: Topology, traffic: Traffic): Promise<void> {
  const live = topology.replicas.find((replica) => replica.running)!;
  // Read soon after the fault: a 503 then is the documented answer, not lost data.
  const history = await fetchHistory(live, traffic.conversationId, traffic.owner.token, { unavailableForMs: 5_000 });
  const total = history.length;
  t.notOk(seqProblem(history.map((m) => m.seq), 1, total), `PostgreSQL holds seqs 1..${total}`);
  const clientIds = history.map((m) => m.client_id);
  t.equal(new Set(clientIds).size, total, 'every stored message has its own client_id: no resend stored twice');
  const stored = new Set(clientIds);
  const lost = [...traffic.stats.acked].filter((id) => !stored.has(id));
  t.same(lost, [], `every acknowledged message (${traffic.stats.acked.size}) is stored`);
  t.same(traffic.stats.unexpected, [], 'no unexpected errors');

  await Promise.all(traffic.clients.map((client) => client.waitForSeq(total)));
  const ids = history.map((m) => m.id);
  for (const client of traffic.clients) {
    const events = client.events();
    const problem = seqProblem(events.map((event) => event.seq), 1, total);
    t.notOk(problem, `${client.label} (${client.incarnations.length} socket(s)): seqs 1..${total}, no gap, no duplicate`, problem ? { problem } : {});
    t.same(events.map((event) => (event.type === 'chat.message' ? event.message.id : -1)), ids, `${client.label}: the stored messages, in order`);
    const errors = client.incarnations.flatMap((socket) => socket.errors()).filter((event) => event.code !== 'unavailable');
    t.same(errors, [], `${client.label}: no errors besides unavailable`);
  }
  t.comment(
    `${total} stored, ${traffic.stats.acked.size} acknowledged, ${traffic.stats.sent} frames sent, ${traffic.stats.resent} resent, ` +
      `${traffic.stats.unavailable} unavailable, ${traffic.clients.reduce((sum, c) => sum + c.reconnects, 0)} reconnects`,
  );
}

/** SIGKILL one replica mid-traffic; its clients resume elsewhere; then (optionally) it is restarted. */
export async function replicaKillSuite(t: Test, topology: Topology, { restart = true } = {}): Promise<void> {
  await t.test('a replica SIGKILLed mid-traffic: its clients resume on another, nothing lost, nothing doubled', async (t) => {
    const victim = topology.replicas.at(-1)!;
    const traffic = await startTraffic(t, topology, 'kill');
    await traffic.reach(40);
    const pid = victim.pid;
    await victim.kill('SIGKILL');
    t.pass(`${victim.name} (pid ${pid}) killed at seq ≥ 40`);
    const killedAt = Math.max(...traffic.clients.map((client) => client.lastSeq()));
    await traffic.reach(killedAt + 60);
    await traffic.stop();
    const moved = traffic.clients.filter((client) => client.incarnations.length > 1);
    t.ok(moved.length >= 2, `the victim's clients reconnected elsewhere (${moved.map((c) => c.label).join(', ')})`);
    t.ok(moved.every((client) => client.incarnations.slice(1).every((socket) => !socket.label.endsWith(`@${victim.name}`))), 'to surviving replicas');
    await verifyTraffic(t, topology, traffic);
    if (!restart) return;

    await victim.restart();
    t.ok(victim.running, `${victim.name} restarted on the same port`);
    const again = await WsClient.connect(chatUrl(victim.wsUrl, traffic.conversationId), { token: traffic.owner.token, lastSeq: 0 });
    t.teardown(() => again.terminate());
    const total = Math.max(...traffic.clients.map((client) => client.lastSeq()));
    await again.waitForSeq(total);
    t.notOk(seqProblem(again.conversationEvents().map((event) => event.seq), 1, total), 'the restarted replica replays the whole conversation');
  });
}

/**
 * Restart the broker mid-traffic (`restartBroker` stops it and starts it again on the same
 * port): while it is down replicas report not ready and live delivery stops; sends are still
 * stored; once it is back replicas re-subscribe and every client ends with every event.
 */
export async function brokerRestartSuite(
  t: Test,
  topology: Topology,
  /** The broker process serving `channel` (the Redis server, or the cluster master owning its slot). */
  brokerOf: (channel: string) => Promise<{ stop(): Promise<void>; start(): Promise<void> }>,
): Promise<void> {
  await t.test('the broker restarted mid-traffic: replicas re-subscribe, clients end with every event', async (t) => {
    const traffic = await startTraffic(t, topology, 'brk');
    const channel = conversationChannel(traffic.conversationId);
    await topology.waitSubscribers(channel, topology.replicas.length);
    // The owner's notification socket: user channels must come back too.
    const notifications = await WsClient.connect(notificationsUrl(topology.at(0).wsUrl), { token: traffic.owner.token, label: 'owner notifications' });
    t.teardown(() => notifications.terminate());
    await topology.waitSubscribers(userChannel(traffic.owner.user.id), 1);
    const resetsBefore = await Promise.all(topology.replicas.map((replica) => replica.metric('chat_bus_resets_total')));
    await traffic.reach(30);

    const broker = await brokerOf(channel);
    await broker.stop();
    // Readiness per dependency (README): the bus is reported, but a shared Redis outage must not
    // take every replica out of the load balancer, since REST serves without it.
    await Promise.all(
      topology.replicas.map((replica) =>
        eventually(`${replica.name} reports the bus down and stays ready`, async () => {
          const ready = await replica.http('GET', '/readyz');
          return ready.status === 200 && ready.json?.checks?.bus === false && ready.json?.status === 'degraded';
        }),
      ),
    );
    t.pass('every replica reports the bus down while the broker is down, and stays ready');
    // A live-only frame cannot be delivered now: the sender is told so, and its socket stays open.
    const typer = traffic.senders[0]!.current();
    const errorsBefore = typer.errors().length;
    typer.send({ type: 'typing', is_typing: true });
    const typingError = await typer.waitFor((event) => event.type === 'error' && !event.message.includes('__sync_'), 10_000, typer.events.length);
    t.match(typingError, { type: 'error', code: 'unavailable' }, 'typing while the broker is down: error "unavailable"');
    t.equal(typer.errors().length, errorsBefore + 1);
    // REST sends need only PostgreSQL: they are stored now and must reach every client later.
    const during = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        topology.at(i).http('POST', `/api/conversations/${traffic.conversationId}/messages/`, {
          token: traffic.owner.token,
          body: { content: `during the outage ${i}`, client_id: `outage-${i}` },
        }),
      ),
    );
    t.same(during.map((response) => response.status), Array(20).fill(201), 'REST sends during the outage are stored (201)');
    for (let i = 0; i < 20; i++) traffic.stats.acked.add(`outage-${i}`);
    const storedDuringOutage = traffic.stats.acked.size;

    await broker.start();
    await Promise.all(
      topology.replicas.map((replica) =>
        eventually(
          `${replica.name} ready again`,
          async () => {
            const ready = await replica.http('GET', '/readyz');
            return ready.status === 200 && ready.json?.checks?.bus === true;
          },
          30_000,
        ),
      ),
    );
    await topology.waitSubscribers(channel, topology.replicas.length, 30_000);
    await topology.waitSubscribers(userChannel(traffic.owner.user.id), 1, 30_000);
    t.pass('every replica is ready and re-subscribed');
    const readAll = await topology.at(1).http('POST', '/api/notifications/read-all/', { token: traffic.owner.token });
    t.equal(readAll.status, 200);
    await notifications.waitFor((event) => event.type === 'notification.read' && event.all === true);
    t.pass('a notification socket opened before the outage hears of a read-all after it');
    const resumedAt = Math.max(...traffic.clients.map((client) => client.lastSeq()));
    await traffic.reach(resumedAt + 30);
    await traffic.stop();
    t.ok(traffic.stats.acked.size > storedDuringOutage, 'traffic flowed again after the restart');
    const resetsAfter = await Promise.all(topology.replicas.map((replica) => replica.metric('chat_bus_resets_total')));
    t.ok(resetsAfter.every((after, i) => after > resetsBefore[i]!), 'each replica counted a bus reset', { resetsBefore, resetsAfter });
    await verifyTraffic(t, topology, traffic);
    t.ok(traffic.clients.every((client) => client.incarnations.length === 1), 'no socket was dropped by the outage');
  });
}

/**
 * SIGTERM a replica while sends of one of its sockets are still being stored: each message
 * it stores reaches a live socket on another replica, without that socket reconnecting. The
 * sends are held back by a lock the test takes on the conversation row, released only once
 * the victim has closed its sockets and its listener: without the shutdown waiting for them,
 * they would commit after the bus closed and nothing would ever reveal the gap to a quiet room.
 */
export async function gracefulStopSuite(t: Test, topology: Topology): Promise<void> {
  await t.test('a replica stopped (SIGTERM) while storing sends publishes them before it exits', async (t) => {
    const victim = topology.replicas.at(-1)!;
    const survivor = topology.at(0);
    const [sender, watcher] = await registerUsers(topology, 2, 'term');
    const conversationId = await createConversation(survivor, sender!, [watcher!]);
    const watching = await WsClient.connect(chatUrl(survivor.wsUrl, conversationId), { token: watcher!.token, lastSeq: 0, label: 'watcher' });
    t.teardown(() => watching.terminate());
    const sending = await WsClient.connect(chatUrl(victim.wsUrl, conversationId), { token: sender!.token, lastSeq: 0, label: 'sender' });
    t.teardown(() => sending.terminate());

    const sql = postgres(topology.databaseUrl!, { max: 2, onnotice: () => {} });
    t.teardown(() => sql.end({ timeout: 1 }));
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked = () => {};
    const lockTaken = new Promise<void>((resolve) => (locked = resolve));
    const holding = sql.begin(async (tx) => {
      await tx`select 1 from conversations where id = ${conversationId} for update`;
      locked();
      await released;
    });
    t.teardown(() => release());
    await lockTaken;

    for (let i = 0; i < 20; i++) sending.send({ type: 'chat_message', message: `held ${i}`, client_id: `held-${i}` });
    // The victim's batch statement is now waiting for the row lock.
    await eventually('the send batch waiting for the row lock', async () =>
      (await sql`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`).length > 0);
    const stopped = victim.kill('SIGTERM');
    t.equal(await sending.closeCode, 1001, 'the victim closed its sockets (going away)');
    await eventually('the victim to stop listening', async () => !(await fetch(`${victim.url}/healthz`).then(() => true, () => false)));
    release();
    await holding;
    await stopped;

    const stored = await fetchHistory(survivor, conversationId, watcher!.token);
    t.ok(stored.length > 0, `${stored.length} of 20 stored while the victim shut down`);
    const last = stored.at(-1)!.seq;
    // waitForSeq fails if the socket closes: this was one connection throughout.
    await watching.waitForSeq(last, 10_000);
    t.notOk(seqProblem(watching.conversationEvents().map((event) => event.seq), 1, last), 'the watcher saw every stored message live, in order');

    await victim.restart();
    t.ok(victim.running, `${victim.name} restarted`);
  });
}
