import { sql } from 'drizzle-orm';
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

/** Sends per statement at most; more wait for the next one. */
export const MAX_BATCH = 256;
/**
 * Sends waiting for storage per replica at most (queued and in flight). Past it a send is
 * refused as `unavailable` (REST 503 with Retry-After, a socket's `unavailable` error event)
 * instead of growing the heap while the database is slow: a few seconds of a replica's peak rate.
 */
export const MAX_QUEUED_SENDS = 8_192;

/** The batch statement (see SendBatcher); built once. */
const batchStatement = sql`
    with input as (
      select * from unnest(
        ${sql.placeholder('conversationIds')}::int4[], ${sql.placeholder('senderIds')}::int4[],
        ${sql.placeholder('contents')}::text[], ${sql.placeholder('clientIds')}::text[],
        ${sql.placeholder('mentionNames')}::text[]
      ) with ordinality as i(conversation_id, sender_id, content, client_id, mention_names, ord)),
    locked as (
      select c.id, c.last_seq, c.message_count from conversations c
       where c.id in (select conversation_id from input)
       order by c.id for update),
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
       where c.id = n.conversation_id),
    msg as (
      insert into messages (conversation_id, sender_id, content, client_id, seq, mentions)
      select conversation_id, sender_id, content, client_id, seq, ${mentionsSql(sql`numbered.conversation_id`, sql`numbered.mention_names`)}
        from numbered order by conversation_id, seq
      returning id, conversation_id, seq, created_at, mentions),
    ev as (
      insert into conversation_events (conversation_id, seq, kind, message_id, message_count)
      select msg.conversation_id, msg.seq, ${EventKind.messageCreated}, msg.id, n.message_count
        from msg join numbered n on n.conversation_id = msg.conversation_id and n.seq = msg.seq),
    marker as (
      update participants p set last_read_seq = s.seq, read_count = s.message_count
        from (select distinct on (conversation_id, sender_id) conversation_id, sender_id, seq, message_count
                from numbered order by conversation_id, sender_id, seq desc) s
       where p.conversation_id = s.conversation_id and p.user_id = s.sender_id and p.last_read_seq < s.seq)
    select n.ord, msg.id, msg.seq, ${isoTime(sql`msg.created_at`)} as timestamp, msg.mentions
      from msg join numbered n on n.conversation_id = msg.conversation_id and n.seq = msg.seq`;

/**
 * Stores concurrent sends together: while one batch statement runs, new sends queue, and the
 * next statement takes all of them, so under load many messages share one round trip and
 * one commit (one WAL flush: the cost that bounded fan-out capacity), and at low load a send
 * goes out at once, alone. One statement is in flight per replica.
 *
 * The statement locks the batch's conversation rows in id order (so two replicas' batches
 * cannot deadlock), numbers each conversation's new messages from its `last_seq`, and
 * writes messages and event records. It also keeps the read state's counts (INBOX.md):
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
 */
export class SendBatcher {
  private queue: Waiting[] = [];
  private running = false;
  private inFlight = 0;
  constructor(
    private readonly database: DatabaseHandle,
    private readonly observer: SendBatcherObserver = {},
    private readonly maxQueued = MAX_QUEUED_SENDS,
  ) {}

  /** Sends waiting for storage, including the batch in flight. */
  get queued(): number {
    return this.queue.length + this.inFlight;
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

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_BATCH);
        this.observer.queued?.(this.queue.length);
        this.observer.batch?.(batch.length);
        this.inFlight += batch.length;
        const carrier = this.observer.context;
        try {
          const requests = batch.map((w) => w.request);
          const stored = await (carrier ? carrier.run(batch[0]!.context, () => this.insert(requests)) : this.insert(requests));
          batch.forEach((waiting, index) => waiting.resolve(stored.get(index + 1)));
        } catch (error) {
          // A client_id raced by another replica (or, never expected, a deadlock): one by one.
          const retry = [UNIQUE_VIOLATION, DEADLOCK_DETECTED].includes(databaseErrorCode(error) ?? '');
          for (const waiting of batch) {
            if (!retry) waiting.reject(error);
            else
              await (carrier ? carrier.run(waiting.context, () => this.storeOne(waiting.request)) : this.storeOne(waiting.request)).then(
                waiting.resolve,
                waiting.reject,
              );
          }
        } finally {
          this.inFlight -= batch.length;
        }
      }
    } finally {
      this.running = false;
    }
  }

  /**
   * One send in one statement: the conversation row's lock, taken by the UPDATE and held to
   * commit, makes concurrent senders' seqs gap-free and unique. Undefined when it stored
   * nothing (a client_id used before, or not a participant).
   */
  private async storeOne(request: SendRequest): Promise<StoredSend | undefined> {
    const { conversationId, senderId, content, clientId, mentionNames } = request;
    let rows: StoredRow[];
    try {
      rows = await timeStatement(this.observer.statement, 'send_one', () => this.database.query(sql`
        with conv as (
          update conversations c set last_seq = c.last_seq + 1, message_count = c.message_count + 1, last_message_at = now()
           where c.id = ${conversationId}
             and ${isMemberSql(conversationId, senderId)}
          returning c.id, c.last_seq, c.message_count),
        msg as (
          insert into messages (conversation_id, sender_id, content, client_id, seq, mentions)
          select conv.id, ${senderId}, ${content}, ${clientId}, conv.last_seq, ${mentionsSql(sql`conv.id`, sql`${mentionNames ?? null}::text`)} from conv
          returning id, seq, created_at, mentions),
        ev as (
          insert into conversation_events (conversation_id, seq, kind, message_id, message_count)
          select ${conversationId}, msg.seq, ${EventKind.messageCreated}, msg.id, conv.message_count from msg, conv),
        marker as (
          update participants p set last_read_seq = conv.last_seq, read_count = conv.message_count
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

  /** Runs the batch statement; the map is keyed by the request's 1-based position. */
  private async insert(requests: SendRequest[]): Promise<Map<number, StoredSend>> {
    // Planned per batch: its best plan depends on the batch's size and on how many messages
    // are stored, which a generic plan made on a fresh database would not follow (db/client.ts).
    const rows = await timeStatement(this.observer.statement, 'send_batch', () =>
      this.database.prepare<StoredRow & { ord: unknown }>(batchStatement, { planEachCall: true })({
        conversationIds: intArray(requests.map((r) => r.conversationId)),
        senderIds: intArray(requests.map((r) => r.senderId)),
        contents: textArray(requests.map((r) => r.content)),
        clientIds: textArray(requests.map((r) => r.clientId)),
        mentionNames: textArray(requests.map((r) => r.mentionNames ?? null)),
      }),
    );
    const stored = new Map<number, StoredSend>();
    for (const row of rows) stored.set(toNumber(row.ord), storedSend(row));
    return stored;
  }
}
