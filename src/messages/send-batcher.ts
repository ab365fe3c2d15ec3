import { type SQL, sql } from 'drizzle-orm';
import { isMemberSql } from '../conversations/membership.js';
import type { DatabaseHandle } from '../db/client.js';
import { EventKind } from '../db/schema/index.js';
import { intArray, isoTime, textArray, toNumber } from '../db/sql.js';
import { databaseErrorCode, DEADLOCK_DETECTED, UNIQUE_VIOLATION } from '../db/errors.js';
import { unavailable } from '../domain/errors.js';

/** One send, validated and normalised, waiting for its batch. */
export interface SendRequest {
  conversationId: number;
  senderId: number;
  content: string;
  clientId: string | null;
}

/** What the batch statement stored for a request; undefined: it stored nothing for it; `locked`: its conversation row was held elsewhere. */
export interface StoredSend {
  id: number;
  seq: number;
  timestamp: string;
}

interface Waiting {
  request: SendRequest;
  resolve(stored: StoredSend | undefined): void;
  reject(error: unknown): void;
}

interface Lane {
  queue: Waiting[];
  running: boolean;
  statement: SQL;
}

/** Sends per statement at most; more wait for the next one. */
export const MAX_BATCH = 256;
/**
 * Sends waiting for storage per replica at most (both lanes). Past it a send is refused as
 * `unavailable` (REST 503 with Retry-After, a socket's `unavailable` error event) instead of
 * growing the heap while the database is slow: a few seconds of a replica's peak rate.
 */
export const MAX_QUEUED_SENDS = 8_192;

/**
 * The batch statement (see SendBatcher), in two variants built once: the fast lane's skips
 * conversation rows another transaction holds (their sends go to the slow lane), the slow
 * lane's waits for them (up to the session's lock_timeout).
 */
const batchStatement = (lock: 'skip' | 'wait') => sql`
    with input as (
      select * from unnest(
        ${sql.placeholder('conversationIds')}::int4[], ${sql.placeholder('senderIds')}::int4[],
        ${sql.placeholder('contents')}::text[], ${sql.placeholder('clientIds')}::text[]
      ) with ordinality as i(conversation_id, sender_id, content, client_id, ord)),
    locked as (
      select c.id, c.last_seq from conversations c
       where c.id in (select conversation_id from input)
       order by c.id for update ${lock === 'skip' ? sql`skip locked` : sql``}),
    accepted as (
      select distinct on (i.conversation_id, i.sender_id, i.client_id, case when i.client_id is null then i.ord end) i.*
        from input i
       where ${isMemberSql(sql`i.conversation_id`, sql`i.sender_id`)}
         and (i.client_id is null or not exists (
               select 1 from messages m
                where m.conversation_id = i.conversation_id and m.sender_id = i.sender_id and m.client_id = i.client_id))
       order by i.conversation_id, i.sender_id, i.client_id, case when i.client_id is null then i.ord end, i.ord),
    numbered as (
      select a.*, l.last_seq + row_number() over (partition by a.conversation_id order by a.ord) as seq
        from accepted a join locked l on l.id = a.conversation_id),
    bumped as (
      update conversations c set last_seq = n.seq, last_message_at = now()
        from (select conversation_id, max(seq) as seq from numbered group by conversation_id) n
       where c.id = n.conversation_id),
    msg as (
      insert into messages (conversation_id, sender_id, content, client_id, seq)
      select conversation_id, sender_id, content, client_id, seq from numbered order by conversation_id, seq
      returning id, conversation_id, seq, created_at),
    ev as (
      insert into conversation_events (conversation_id, seq, kind, message_id)
      select conversation_id, seq, ${EventKind.messageCreated}, id from msg)
    select n.ord, msg.id, msg.seq, ${isoTime(sql`msg.created_at`)} as timestamp
      from msg join numbered n on n.conversation_id = msg.conversation_id and n.seq = msg.seq
    union all
    select i.ord, null, null, null from input i
     where i.conversation_id not in (select id from locked)
       and exists (select 1 from conversations c where c.id = i.conversation_id)`;
const skipLockedStatement = batchStatement('skip');
const waitingStatement = batchStatement('wait');

/**
 * Stores concurrent sends together: while one batch statement runs, new sends queue, and the
 * next statement takes all of them, so under load many messages share one round trip and
 * one commit (one WAL flush: the cost that bounded fan-out capacity), and at low load a send
 * goes out at once, alone. One statement is in flight per lane (below).
 *
 * The statement locks the batch's conversation rows in id order (so two replicas' batches
 * cannot deadlock), numbers each conversation's new messages from its `last_seq`, and
 * writes messages and event records. It skips, rather than fails on, a send from a
 * non-participant and a `client_id` the sender already used (stored earlier, or twice in the
 * batch): the caller finds out which by the missing row. A `client_id` committed by another
 * replica while this statement waited for the lock is not visible to its snapshot and makes
 * it fail with a unique violation; the batch's sends are then stored one by one, in order,
 * before the next batch: sends leave the queue in the order they entered it, always, so a
 * socket may queue its next send before the previous one commits.
 *
 * Two lanes keep one hot conversation's lock wait from holding every other conversation's
 * sends: the fast lane's statement skips conversation rows locked by another transaction
 * (another replica's batch, an edit, a stuck session), and those conversations' sends (with
 * any queued behind them) move to the slow lane, whose statement waits for the lock (bounded
 * by lock_timeout). While a conversation has sends in the slow lane its new sends go there
 * too, so each conversation's sends still commit in the order they were queued.
 */
export class SendBatcher {
  private readonly fast: Lane = { queue: [], running: false, statement: skipLockedStatement };
  private readonly slow: Lane = { queue: [], running: false, statement: waitingStatement };
  /** Sends in the slow lane, per conversation. */
  private readonly slowConversations = new Map<number, number>();

  constructor(
    private readonly database: DatabaseHandle,
    private readonly maxQueued = MAX_QUEUED_SENDS,
  ) {}

  /** Sends waiting in either lane (including the batches in flight). */
  get queued(): number {
    return this.fast.queue.length + this.slow.queue.length + this.inFlight;
  }

  private inFlight = 0;

  store(request: SendRequest): Promise<StoredSend | undefined> {
    if (this.queued >= this.maxQueued) return Promise.reject(unavailable('database (send queue full)'));
    return new Promise((resolve, reject) => {
      const waiting = { request, resolve, reject };
      if (this.slowConversations.has(request.conversationId)) this.toSlow([waiting]);
      else this.enqueue(this.fast, [waiting]);
    });
  }

  private enqueue(lane: Lane, items: Waiting[]): void {
    lane.queue.push(...items);
    if (!lane.running) void this.run(lane);
  }

  private toSlow(items: Waiting[]): void {
    for (const item of items) {
      const id = item.request.conversationId;
      this.slowConversations.set(id, (this.slowConversations.get(id) ?? 0) + 1);
    }
    this.enqueue(this.slow, items);
  }

  /** The batch's sends whose conversation row was locked elsewhere, and those queued behind them, go to the slow lane. */
  private defer(skipped: Waiting[]): void {
    const conversations = new Set(skipped.map((w) => w.request.conversationId));
    const behind = this.fast.queue.filter((w) => conversations.has(w.request.conversationId));
    this.fast.queue = this.fast.queue.filter((w) => !conversations.has(w.request.conversationId));
    this.toSlow([...skipped, ...behind]);
  }

  private settled(lane: Lane, waiting: Waiting): void {
    if (lane !== this.slow) return;
    const id = waiting.request.conversationId;
    const left = (this.slowConversations.get(id) ?? 1) - 1;
    if (left > 0) this.slowConversations.set(id, left);
    else this.slowConversations.delete(id);
  }

  private async run(lane: Lane): Promise<void> {
    lane.running = true;
    try {
      while (lane.queue.length > 0) {
        const batch = lane.queue.splice(0, MAX_BATCH);
        this.inFlight += batch.length;
        try {
          const stored = await this.insert(lane.statement, batch.map((w) => w.request));
          const skipped: Waiting[] = [];
          batch.forEach((waiting, index) => {
            const result = stored.get(index + 1);
            if (result === 'locked') skipped.push(waiting);
            else {
              this.settled(lane, waiting);
              waiting.resolve(result);
            }
          });
          if (skipped.length > 0) this.defer(skipped);
        } catch (error) {
          // A client_id raced by another replica (or, never expected, a deadlock): one by one.
          const retry = [UNIQUE_VIOLATION, DEADLOCK_DETECTED].includes(databaseErrorCode(error) ?? '');
          for (const waiting of batch) {
            this.settled(lane, waiting);
            if (!retry) waiting.reject(error);
            else await this.storeOne(waiting.request).then(waiting.resolve, waiting.reject);
          }
        } finally {
          this.inFlight -= batch.length;
        }
      }
    } finally {
      lane.running = false;
    }
  }

  /**
   * One send in one statement: the conversation row's lock, taken by the UPDATE and held to
   * commit, makes concurrent senders' seqs gap-free and unique. Undefined when it stored
   * nothing (a client_id used before, or not a participant).
   */
  private async storeOne(request: SendRequest): Promise<StoredSend | undefined> {
    const { conversationId, senderId, content, clientId } = request;
    let rows: { id: unknown; seq: unknown; timestamp: string }[];
    try {
      rows = await this.database.query(sql`
        with conv as (
          update conversations c set last_seq = c.last_seq + 1, last_message_at = now()
           where c.id = ${conversationId}
             and ${isMemberSql(conversationId, senderId)}
          returning c.id, c.last_seq),
        msg as (
          insert into messages (conversation_id, sender_id, content, client_id, seq)
          select conv.id, ${senderId}, ${content}, ${clientId}, conv.last_seq from conv
          returning id, seq, created_at),
        ev as (
          insert into conversation_events (conversation_id, seq, kind, message_id)
          select ${conversationId}, msg.seq, ${EventKind.messageCreated}, msg.id from msg)
        select msg.id, msg.seq, ${isoTime(sql`msg.created_at`)} as timestamp from msg`);
    } catch (error) {
      // A client_id used before: the whole statement rolled back (no seq used).
      if (clientId !== null && databaseErrorCode(error) === UNIQUE_VIOLATION) return undefined;
      throw error;
    }
    const [row] = rows;
    return row && { id: toNumber(row.id), seq: toNumber(row.seq), timestamp: row.timestamp };
  }

  /** Runs a batch statement; the map is keyed by the request's 1-based position. */
  private async insert(statement: SQL, requests: SendRequest[]): Promise<Map<number, StoredSend | 'locked'>> {
    const rows = await this.database.prepare<{ ord: unknown; id: unknown; seq: unknown; timestamp: string | null }>(statement)({
      conversationIds: intArray(requests.map((r) => r.conversationId)),
      senderIds: intArray(requests.map((r) => r.senderId)),
      contents: textArray(requests.map((r) => r.content)),
      clientIds: textArray(requests.map((r) => r.clientId)),
    });
    const stored = new Map<number, StoredSend | 'locked'>();
    for (const row of rows) {
      const ord = toNumber(row.ord);
      stored.set(ord, row.id === null || row.timestamp === null ? 'locked' : { id: toNumber(row.id), seq: toNumber(row.seq), timestamp: row.timestamp });
    }
    return stored;
  }
}
