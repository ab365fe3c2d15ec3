import { type SQL, sql } from 'drizzle-orm';
import { isMemberSql } from '../conversations/membership.js';
import type { DatabaseHandle } from '../db/client.js';
import { EventKind } from '../db/schema/index.js';
import { intArray, isoTime, textArray, toNumber } from '../db/sql.js';
import { databaseErrorCode, DEADLOCK_DETECTED, UNIQUE_VIOLATION } from '../db/errors.js';
import { unavailable } from '../domain/errors.js';
import { type ContextCarrier, timeStatement, type StatementTimer } from '../domain/observer.js';
import { mentionsSql } from './mentions-sql.js';

/** One send, validated and normalised, waiting for its batch. */
export interface SendRequest {
  conversationId: number;
  senderId: number;
  content: string;
  clientId: string | null;
  /** The message it answers (checked by the caller to be of the same conversation); none by default. */
  replyToId?: number | null;
  /** Names the text may mention (mentions.ts), space-separated; null: none. */
  mentionNames?: string | null;
}

/** What the batch statement stored for a request; undefined: it stored nothing for it. */
export interface StoredSend {
  id: number;
  seq: number;
  timestamp: string;
  /** The members the text mentions (usernames). */
  mentions: string[];
}

interface Waiting {
  request: SendRequest;
  /** The sender's trace context (tracing on only). */
  context?: unknown;
  resolve(stored: StoredSend | undefined): void;
  reject(error: unknown): void;
}

/** What a batcher reports (metrics); every hook is optional. */
export interface SendBatcherObserver {
  /** Sends waiting for a statement, after each change of the queue. */
  queued?(depth: number): void;
  /** A batch statement is about to run with this many sends. */
  batch?(size: number): void;
  statement?: StatementTimer;
  /** Tracing: a batch's statement joins its first send's trace, a one-by-one retry each send's own. */
  context?: ContextCarrier;
}

interface StoredRow extends Record<string, unknown> {
  id: unknown;
  seq: unknown;
  timestamp: string;
  mentions: string[] | null;
}

const storedSend = (row: StoredRow): StoredSend => ({
  id: toNumber(row.id),
  seq: toNumber(row.seq),
  timestamp: row.timestamp,
  mentions: row.mentions ?? [],
});

/**
 * Main-lane statements that may pass over a conversation, one after the other, before its
 * sends move to the waiting lane. Most locks a batch finds taken are the other replicas'
 * batches for the same conversation, released within a statement's time: the next batch
 * stores those sends, where a statement of their own in the waiting lane (the design before)
 * doubled the statements per message once both replicas sent to the same conversations.
 */
export const RETRIES_BEFORE_WAITING = 2;
/** Sends per statement at most; more wait for the next one. */
export const MAX_BATCH = 256;
/**
 * Sends waiting for storage per replica at most (queued and in flight). Past it a send is
 * refused as `unavailable` (REST 503 with Retry-After, a socket's `unavailable` error event)
 * instead of growing the heap while the database is slow: a few seconds of a replica's peak rate.
 */
export const MAX_QUEUED_SENDS = 8_192;

/**
 * The batch statement (see SendBatcher); built once per lane. `skipLocked`: conversation rows
 * locked by another transaction are passed over, and reported in `skipped` rows, instead of
 * waited for.
 */
const batchStatement = (skipLocked: boolean) => sql`
    with input as (
      select * from unnest(
        ${sql.placeholder('conversationIds')}::int4[], ${sql.placeholder('senderIds')}::int4[],
        ${sql.placeholder('contents')}::text[], ${sql.placeholder('clientIds')}::text[], ${sql.placeholder('replyTos')}::int8[],
        ${sql.placeholder('mentionNames')}::text[]
      ) with ordinality as i(conversation_id, sender_id, content, client_id, reply_to_id, mention_names, ord)),
    locked as (
      select c.id, c.last_seq, c.message_count from conversations c
       -- The array itself, not the input rows: an index condition in any plan, where a
       -- semi-join re-planned on small statistics walked the whole primary key.
       where c.id = any(${sql.placeholder('conversationIds')}::int4[])
       order by c.id for no key update${skipLocked ? sql` skip locked` : sql``}),
    accepted as (
      select distinct on (i.conversation_id, i.sender_id, i.client_id, case when i.client_id is null then i.ord end) i.*
        from input i
       where ${isMemberSql(sql`i.conversation_id`, sql`i.sender_id`)}
         and (i.client_id is null or not exists (
               select 1 from messages m
                where m.conversation_id = i.conversation_id and m.sender_id = i.sender_id and m.client_id = i.client_id))
       order by i.conversation_id, i.sender_id, i.client_id, case when i.client_id is null then i.ord end, i.ord),
    numbered as (
      select a.*, l.last_seq + row_number() over w as seq, l.message_count + row_number() over w as message_count
        from accepted a join locked l on l.id = a.conversation_id
      window w as (partition by a.conversation_id order by a.ord)),
    bumped as (
      update conversations c set last_seq = n.seq, message_count = n.message_count, last_message_at = now()
        from (select conversation_id, max(seq) as seq, max(message_count) as message_count from numbered group by conversation_id) n
       -- The array again: the join alone, costed on small tables, hashed a walk of the whole key.
       where c.id = n.conversation_id and c.id = any(${sql.placeholder('conversationIds')}::int4[])),
    msg as (
      insert into messages (conversation_id, sender_id, content, client_id, seq, reply_to_id, mentions)
      select conversation_id, sender_id, content, client_id, seq, reply_to_id, ${mentionsSql(sql`numbered.conversation_id`, sql`numbered.mention_names`)}
        from numbered order by conversation_id, seq
      returning id, conversation_id, seq, created_at, mentions),
    ev as (
      insert into conversation_events (conversation_id, seq, kind, message_id, message_count)
      select msg.conversation_id, msg.seq, ${EventKind.messageCreated}, msg.id, n.message_count
        from msg join numbered n on n.conversation_id = msg.conversation_id and n.seq = msg.seq),
    newest as (
      select distinct on (conversation_id, sender_id) conversation_id, sender_id, seq, message_count
        from numbered order by conversation_id, sender_id, seq desc),
    -- The senders' rows locked in (conversation, user) order, as the inbox-order update
    -- (notifications/batcher.ts) locks them: two writers of the same rows cannot deadlock.
    senders as (
      select p.conversation_id, p.user_id, s.seq, s.message_count
        from participants p join newest s on p.conversation_id = s.conversation_id and p.user_id = s.sender_id
       where p.last_read_seq < s.seq
       order by p.conversation_id, p.user_id for update of p),
    marker as (
      update participants p set last_read_seq = s.seq, read_count = s.message_count,
             activity_at = case when p.large then p.activity_at else now() end
        from senders s
       where p.conversation_id = s.conversation_id and p.user_id = s.user_id)
    select n.ord, msg.id, msg.seq, ${isoTime(sql`msg.created_at`)} as timestamp, to_json(msg.mentions) as mentions, null::int4 as skipped
      from msg join numbered n on n.conversation_id = msg.conversation_id and n.seq = msg.seq
    union all
    select null, null, null, null, null, s.conversation_id
      from (select distinct conversation_id from input) s
     where s.conversation_id not in (select id from locked)`;
const FREE_ROWS_ONLY = batchStatement(true);
const WAITING_FOR_ROWS = batchStatement(false);

/**
 * Stores concurrent sends together: while one batch statement runs, new sends queue, and the
 * next statement takes all of them, so under load many messages share one round trip and
 * one commit (one WAL flush: the cost that bounded fan-out capacity), and at low load a send
 * goes out at once, alone. One statement is in flight per replica.
 *
 * The statement locks the batch's conversation rows in id order (so two replicas' batches
 * cannot deadlock), FOR NO KEY UPDATE, the lock an UPDATE of non-key columns takes: the
 * foreign-key checks of other writers' inserts (notifications, members) take a key-share lock
 * on the conversation row, which FOR UPDATE would make wait for the send, and a send waiting
 * in turn for one of their rows is a deadlock PostgreSQL breaks only after deadlock_timeout
 * (seen as one-second stalls under load), numbers each conversation's new messages from its `last_seq`, and
 * writes messages and event records (their words for search follow: search-indexer.ts). It also keeps the read state's counts (INBOX.md):
 * the conversation's `message_count`, each event record's running `message_count`, and the
 * sender's read marker, moved to their newest message of the batch (sending counts as
 * reading, so a member never has unread messages of their own). Participant rows are locked
 * after the conversation rows, as every other writer of both locks them. It skips, rather than fails on, a send from a
 * non-participant and a `client_id` the sender already used (stored earlier, or twice in the
 * batch): the caller finds out which by the missing row. A `client_id` committed by another
 * replica while this statement waited for the lock is not visible to its snapshot and makes
 * it fail with a unique violation; the batch's sends are then stored one by one, in order,
 * before the next batch: sends leave the queue in the order they entered it, always, so a
 * socket may queue its next send before the previous one commits.
 *
 * A conversation whose row another transaction holds (a long edit or membership change, a
 * stuck statement, another replica's batch) must not hold every other conversation's sends
 * behind its lock wait: the batch statement passes over locked rows (SKIP LOCKED). Sends it
 * passed over go back to the head of the queue for the next statement, and once their
 * conversation has been passed over RETRIES_BEFORE_WAITING times in a row they move to a
 * second lane, per conversation, whose statement waits for that conversation's row. While a conversation has sends in that lane its new sends queue
 * behind them there, so each conversation's sends are still stored in the order they came.
 * The main lane never waits for a lock; a unique violation or deadlock there also hands its
 * sends to the waiting lane, which stores them one by one.
 */
export class SendBatcher {
  private queue: Waiting[] = [];
  private running = false;
  private inFlight = 0;
  /** Conversations passed over (row locked elsewhere) by the last main-lane statements in a row: how many times. */
  private readonly passedOver = new Map<number, number>();
  /** Conversations whose row was locked elsewhere: their sends, in order, for the waiting lane. */
  private readonly held = new Map<number, Waiting[]>();
  private heldCount = 0;
  private holding = false;
  constructor(
    private readonly database: DatabaseHandle,
    private readonly observer: SendBatcherObserver = {},
    private readonly maxQueued = MAX_QUEUED_SENDS,
  ) {}

  /** Sends waiting for storage, including the batches in flight and the waiting lane. */
  get queued(): number {
    return this.queue.length + this.inFlight + this.heldCount;
  }

  store(request: SendRequest): Promise<StoredSend | undefined> {
    if (this.queued >= this.maxQueued) return Promise.reject(unavailable('database (send queue full)'));
    const carrier = this.observer.context;
    return new Promise((resolve, reject) => {
      this.queue.push(carrier ? { request, resolve, reject, context: carrier.capture() } : { request, resolve, reject });
      this.observer.queued?.(this.queue.length);
      if (!this.running) void this.run();
    });
  }

  /** The main lane: one statement in flight, over every conversation whose row is free. */
  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const taken = this.queue.splice(0, MAX_BATCH);
        this.observer.queued?.(this.queue.length);
        // Behind a conversation's sends already in the waiting lane: there, in order.
        const batch = taken.filter((waiting) => !this.hold(waiting, false));
        if (batch.length === 0) continue;
        this.observer.batch?.(batch.length);
        this.inFlight += batch.length;
        try {
          const { stored, skipped } = await this.withContext(batch[0]!, () => this.insert(batch.map((w) => w.request), FREE_ROWS_ONLY));
          const retry: Waiting[] = [];
          batch.forEach((waiting, index) => {
            const id = waiting.request.conversationId;
            if (!skipped.has(id)) {
              this.passedOver.delete(id);
              if (!this.hold(waiting, false)) waiting.resolve(stored.get(index + 1));
            } else if ((this.passedOver.get(id) ?? 0) < RETRIES_BEFORE_WAITING) retry.push(waiting);
            else {
              this.passedOver.delete(id);
              this.hold(waiting, true);
            }
          });
          if (retry.length > 0) {
            for (const id of new Set(retry.map((waiting) => waiting.request.conversationId))) this.passedOver.set(id, (this.passedOver.get(id) ?? 0) + 1);
            // Ahead of everything queued since: still before the later sends of their conversations.
            this.queue.unshift(...retry);
          }
        } catch (error) {
          // A client_id raced by another replica (or, never expected, a deadlock): the waiting
          // lane stores them one by one. Anything else fails the batch's sends.
          const retry = [UNIQUE_VIOLATION, DEADLOCK_DETECTED].includes(databaseErrorCode(error) ?? '');
          for (const waiting of batch) if (!this.hold(waiting, retry)) waiting.reject(error);
        } finally {
          this.inFlight -= batch.length;
        }
        if (this.held.size > 0 && !this.holding) void this.runHeld();
      }
    } finally {
      this.running = false;
    }
  }

  /** Puts `waiting` in the waiting lane when `always` or when its conversation has sends there; whether it did. */
  private hold(waiting: Waiting, always: boolean): boolean {
    const id = waiting.request.conversationId;
    const lane = this.held.get(id);
    if (!lane && !always) return false;
    if (lane) lane.push(waiting);
    else this.held.set(id, [waiting]);
    this.heldCount += 1;
    return true;
  }

  /**
   * The waiting lane: one conversation's sends at a time (taking turns), in a statement that
   * waits for its row (lock_timeout bounds the wait: then they fail as unavailable).
   */
  private async runHeld(): Promise<void> {
    this.holding = true;
    try {
      for (let next = this.held.entries().next(); !next.done; next = this.held.entries().next()) {
        const [conversationId, lane] = next.value;
        // The conversation stays in the map until its lane is empty: a send that arrives
        // meanwhile joins the lane instead of overtaking these through the main lane.
        const batch = lane.splice(0, MAX_BATCH);
        try {
          const { stored } = await this.withContext(batch[0]!, () => this.insert(batch.map((w) => w.request), WAITING_FOR_ROWS));
          batch.forEach((waiting, index) => waiting.resolve(stored.get(index + 1)));
        } catch (error) {
          const retry = [UNIQUE_VIOLATION, DEADLOCK_DETECTED].includes(databaseErrorCode(error) ?? '');
          for (const waiting of batch) {
            if (!retry) waiting.reject(error);
            else await this.withContext(waiting, () => this.storeOne(waiting.request)).then(waiting.resolve, waiting.reject);
          }
        } finally {
          this.heldCount -= batch.length;
        }
        // Taking turns: a conversation with more to store goes to the back.
        this.held.delete(conversationId);
        if (lane.length > 0) this.held.set(conversationId, lane);
      }
    } finally {
      this.holding = false;
    }
  }

  /** Tracing: the statement runs in the context of the send it is attributed to. */
  private withContext<R>(waiting: Waiting, work: () => Promise<R>): Promise<R> {
    const carrier = this.observer.context;
    return carrier ? carrier.run(waiting.context, work) : work();
  }

  /**
   * One send in one statement: the conversation row's lock, taken by the UPDATE and held to
   * commit, makes concurrent senders' seqs gap-free and unique. Undefined when it stored
   * nothing (a client_id used before, or not a participant).
   */
  private async storeOne(request: SendRequest): Promise<StoredSend | undefined> {
    const { conversationId, senderId, content, clientId, replyToId = null, mentionNames } = request;
    let rows: StoredRow[];
    try {
      rows = await timeStatement(this.observer.statement, 'send_one', () => this.database.query(sql`
        with conv as (
          update conversations c set last_seq = c.last_seq + 1, message_count = c.message_count + 1, last_message_at = now()
           where c.id = ${conversationId}
             and ${isMemberSql(conversationId, senderId)}
          returning c.id, c.last_seq, c.message_count),
        msg as (
          insert into messages (conversation_id, sender_id, content, client_id, seq, reply_to_id, mentions)
          select conv.id, ${senderId}, ${content}, ${clientId}, conv.last_seq, ${replyToId}::int8, ${mentionsSql(sql`conv.id`, sql`${mentionNames ?? null}::text`)} from conv
          returning id, seq, created_at, mentions),
        ev as (
          insert into conversation_events (conversation_id, seq, kind, message_id, message_count)
          select ${conversationId}, msg.seq, ${EventKind.messageCreated}, msg.id, conv.message_count from msg, conv),
        marker as (
          update participants p set last_read_seq = conv.last_seq, read_count = conv.message_count,
                 activity_at = case when p.large then p.activity_at else now() end
            from conv where p.conversation_id = conv.id and p.user_id = ${senderId} and p.last_read_seq < conv.last_seq)
        select msg.id, msg.seq, ${isoTime(sql`msg.created_at`)} as timestamp, msg.mentions from msg`));
    } catch (error) {
      // A client_id used before: the whole statement rolled back (no seq used).
      if (clientId !== null && databaseErrorCode(error) === UNIQUE_VIOLATION) return undefined;
      throw error;
    }
    const [row] = rows;
    return row && storedSend(row);
  }

  /** Runs a batch statement: what it stored, keyed by the request's 1-based position, and the conversations it passed over. */
  private async insert(requests: SendRequest[], statement: SQL): Promise<{ stored: Map<number, StoredSend>; skipped: Set<number> }> {
    // Index lookups only, whatever the tables held when the plan was made (db/client.ts).
    const rows = await timeStatement(this.observer.statement, 'send_batch', () =>
      this.database.prepare<StoredRow & { ord: unknown; skipped: unknown }>(statement, { indexOnly: true })({
        conversationIds: intArray(requests.map((r) => r.conversationId)),
        senderIds: intArray(requests.map((r) => r.senderId)),
        contents: textArray(requests.map((r) => r.content)),
        clientIds: textArray(requests.map((r) => r.clientId)),
        replyTos: textArray(requests.map((r) => (r.replyToId === null || r.replyToId === undefined ? null : String(r.replyToId)))),
        mentionNames: textArray(requests.map((r) => r.mentionNames ?? null)),
      }),
    );
    const stored = new Map<number, StoredSend>();
    const skipped = new Set<number>();
    for (const row of rows) {
      if (row.skipped !== null) skipped.add(toNumber(row.skipped));
      else stored.set(toNumber(row.ord), storedSend(row));
    }
    return { stored, skipped };
  }
}
