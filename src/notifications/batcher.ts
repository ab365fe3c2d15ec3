import type { Logger } from '../domain/logger.js';
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db/client.js';
import { intArray, textArray } from '../db/sql.js';
import { INBOX_TRACKED_MEMBERS } from '../conversations/inbox-order.js';
import { databaseErrorCode } from '../db/errors.js';
import { timeStatement, type StatementTimer } from '../domain/observer.js';
import { notificationColumns, type NotificationRecord } from './views.js';

/**
 * How long new-message notifications gather before they are written: a user hears of new
 * messages within this (API.md: about a second), and a busy conversation costs one upsert per
 * interval instead of one per message per member. Short enough that a flush stays small: a
 * long interval makes each upsert and its burst of pushes a latency spike for the sockets of
 * the same replica (bench/README.md, tuning notes).
 */
export const NOTIFY_FLUSH_MS = 100;

/**
 * (conversation, sender) entries gathered at most. While PostgreSQL is unreachable failed
 * batches are kept for a retry; past this, new ones are dropped (and counted): the messages
 * are stored, only their "new messages" notifications are lost (README: what a crash loses).
 */
export const MAX_PENDING = 10_000;
/**
 * NOTIFY_MAX_MEMBERS' default: past this many members a new message notifies only the members
 * it mentions (API.md version 2); their unread counts carry the rest.
 */
export const NOTIFY_MAX_MEMBERS = 100;
/** The longest excerpt of the message a mention notification quotes. */
const MENTION_EXCERPT_CHARS = 100;

/** A failed flush is retried after this. */
export const NOTIFY_RETRY_MS = NOTIFY_FLUSH_MS * 4;

/** A row a flush wrote: a notification to push, or one the sender's own message read. */
export interface FlushedRow extends NotificationRecord {
  read_by_sending: boolean;
}

interface Pending {
  conversationId: number;
  senderId: number;
  sender: string;
  messageId: number;
  count: number;
}

/** A flush's entries as the array literals its statements take, built once per flush. */
interface BatchArrays {
  conversations: string;
  senders: string;
  messages: string;
  counts: string;
  names: string;
}

const batchArrays = (batch: readonly Pending[]): BatchArrays => ({
  conversations: intArray(batch.map((b) => b.conversationId)),
  senders: intArray(batch.map((b) => b.senderId)),
  messages: intArray(batch.map((b) => b.messageId)),
  counts: intArray(batch.map((b) => b.count)),
  names: textArray(batch.map((b) => b.sender)),
});

/** A message that mentions members: one `mention` notification each (not the sender), written with the next flush. */
interface PendingMention {
  conversationId: number;
  senderId: number;
  sender: string;
  messageId: number;
  usernames: string[];
}

/** What a batcher reports (metrics); every hook is optional. */
export interface NotificationBatcherObserver {
  /** A flush of `entries` (conversation, sender) pairs ended after `seconds`, written or failed (to be retried). */
  flushed?(entries: number, seconds: number, failed: boolean): void;
  statement?: StatementTimer;
}

/**
 * Coalesces "new messages" notifications: everything gathered in one interval becomes one
 * upsert statement over all conversations and recipients, which keeps at most one unread row
 * per user and conversation (later messages raise its count and refresh its text).
 */
export class NotificationBatcher {
  private pending = new Map<string, Pending>();
  private mentions: PendingMention[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  /** Entries dropped because `MAX_PENDING` was reached. */
  dropped = 0;

  constructor(
    private readonly database: DatabaseHandle,
    private readonly deliver: (rows: FlushedRow[]) => void,
    private readonly logger: Logger,
    private readonly observer: NotificationBatcherObserver = {},
    private readonly maxPending = MAX_PENDING,
    private readonly notifyMaxMembers = NOTIFY_MAX_MEMBERS,
  ) {}

  /** Whether a write is scheduled, and whether that timer would keep the process alive (it never should). */
  get timerState(): 'none' | 'unref' | 'ref' {
    if (!this.timer) return 'none';
    return this.timer.hasRef() ? 'ref' : 'unref';
  }

  /** Entries gathered and not yet written. */
  get size(): number {
    return this.pending.size + this.mentions.length;
  }

  /**
   * A new message: counted into the "new messages" notification of the conversation's other
   * members (only in conversations of up to NOTIFY_MAX_MEMBERS members, checked at the flush),
   * and, whatever the size, one `mention` notification per member it mentions.
   */
  add(conversationId: number, senderId: number, sender: string, messageId: number, mentions: readonly string[] = []): void {
    if (mentions.length > 0) {
      if (this.mentions.length >= this.maxPending) this.dropped += 1;
      else this.mentions.push({ conversationId, senderId, sender, messageId, usernames: [...mentions] });
      this.arm(NOTIFY_FLUSH_MS);
    }
    const key = `${conversationId}:${senderId}`;
    const entry = this.pending.get(key);
    if (entry) {
      entry.count += 1;
      entry.messageId = Math.max(entry.messageId, messageId);
    } else if (this.pending.size >= this.maxPending) {
      if (this.dropped++ % 1000 === 0) this.logger.warn({ dropped: this.dropped }, 'notifications: too many pending, new ones dropped');
      return;
    } else {
      this.pending.set(key, { conversationId, senderId, sender, messageId, count: 1 });
    }
    this.arm(NOTIFY_FLUSH_MS);
  }

  /** Writes what is gathered, then stops: no timer is left to keep a closing process busy. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => void this.flush(), ms);
    // Shutdown flushes explicitly; a pending write must not hold the event loop open by itself.
    this.timer.unref();
  }

  /** Writes what is gathered now; waits for a flush already under way first. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.flushing) await this.flushing;
    if (this.pending.size === 0 && this.mentions.length === 0) return;
    const batch = [...this.pending.values()];
    const mentions = this.mentions;
    this.pending = new Map();
    this.mentions = [];
    this.flushing = this.write(batch, mentions).finally(() => {
      this.flushing = undefined;
    });
    await this.flushing;
  }

  private async write(batch: Pending[], mentions: PendingMention[]): Promise<void> {
    const started = performance.now();
    const flushed = (failed: boolean) => this.observer.flushed?.(batch.length + mentions.length, (performance.now() - started) / 1000, failed);
    try {
      await timeStatement(this.observer.statement, 'notification_upsert', async () => {
        // Two statements, each its own transaction, and each locking its rows in (user,
        // conversation) order: the senders' reads first, then the recipients' upserts. In one
        // statement the two sets were locked one after the other, so two replicas' flushes
        // whose senders and recipients crossed could each hold a row of one set while waiting
        // for the other's (test/notification-flush-locks.test.ts). The reads are pushed as
        // soon as they commit: a retry of the upserts would not return them again.
        const arrays = batchArrays(batch);
        if (batch.length > 0) this.deliver(await this.readBySending(arrays));
        this.deliver(await this.upsert(arrays, mentions));
      });
      flushed(false);
      await this.moveInboxes(batch);
    } catch (error) {
      flushed(true);
      // Deadlock victims and outages: put the batch back (merged with newer ones) and retry.
      this.logger.warn({ err: error, code: databaseErrorCode(error) }, 'notification flush failed; will retry');
      // Mentions are written at most once each (a unique index), so a retry cannot double them.
      for (const mention of mentions) {
        if (this.mentions.length < this.maxPending) this.mentions.push(mention);
        else this.dropped += 1;
      }
      for (const item of batch) {
        const key = `${item.conversationId}:${item.senderId}`;
        const newer = this.pending.get(key);
        if (newer) {
          newer.count += item.count;
          newer.messageId = Math.max(newer.messageId, item.messageId);
        } else if (this.pending.size < this.maxPending) this.pending.set(key, item);
        else this.dropped += 1;
      }
      this.arm(NOTIFY_RETRY_MS);
    }
  }

  /**
   * The inbox order (conversations/inbox-order.ts): every tracked membership of a conversation
   * with new messages moves to its newest message. A statement of its own, after the
   * notifications committed, that locks nothing but participant rows, in (conversation, user)
   * order as the send statement locks the senders' rows: holding notification rows (or the
   * conversation's key lock their foreign key takes) while waiting for a participant row
   * would make a cycle with a send or a read marker. Failing, it only leaves an order behind
   * until the conversation's next message: logged, not retried.
   */
  private async moveInboxes(batch: Pending[]): Promise<void> {
    const active = new Map<number, number>();
    for (const item of batch) active.set(item.conversationId, Math.max(active.get(item.conversationId) ?? 0, item.messageId));
    // The id arrays are repeated as conditions on the tables: joins alone, costed on small
    // tables, could walk a whole index (participants_inbox_idx by activity_at, for one).
    const conversations = intArray([...active.keys()]);
    const messages = intArray([...active.values()]);
    try {
      await this.database.query(sql`
        -- Materialized, so only conversations whose memberships are tracked have their members
        -- read: in a large one every membership is \`large\`, and the plan read them all to move none.
        with active as materialized (
          select a.conversation_id, m.created_at as at
            from unnest(${conversations}::int4[], ${messages}::int8[]) as a(conversation_id, message_id)
            join messages m on m.id = a.message_id and m.id = any(${messages}::int8[])
            join conversations c on c.id = a.conversation_id and c.id = any(${conversations}::int4[])
                                and c.member_count <= ${INBOX_TRACKED_MEMBERS}),
        moving as (
          select p.conversation_id, p.user_id, a.at from participants p join active a on a.conversation_id = p.conversation_id
           where p.conversation_id = any(${conversations}::int4[]) and not p.large and p.activity_at < a.at
           order by p.conversation_id, p.user_id for update of p)
        update participants p set activity_at = m.at from moving m
         where p.conversation_id = m.conversation_id and p.user_id = m.user_id and p.conversation_id = any(${conversations}::int4[])`, { indexOnly: true });
    } catch (error) {
      this.logger.warn({ err: error, code: databaseErrorCode(error) }, 'inbox order update failed; the next message moves it');
    }
  }

  /**
   * Sending counts as reading (INBOX.md): each sender's unread "new messages" notification of
   * the conversation is read, unless someone else's message in this flush is beyond the
   * sender's marker (the sender is then one of its recipients: the upsert refreshes that row
   * instead, counting anew). Only the senders' own rows are visited: most have none, having
   * read by sending before.
   */
  private readBySending(arrays: BatchArrays): Promise<FlushedRow[]> {
    // Lookups per sender, whatever the planner believes of the tables' sizes: costed on stale
    // statistics, a join let it walk every unread row and test each sender against each.
    return this.database.query<FlushedRow>(
      sql`
      with batch as (
        select b.conversation_id, b.sender_id, m.seq from unnest(
          ${arrays.conversations}::int4[], ${arrays.senders}::int4[], ${arrays.messages}::int8[]
        ) as b(conversation_id, sender_id, message_id)
        cross join lateral (select m.seq from messages m where m.id = b.message_id) m),
      -- A sender's marker is at or past their own messages (the send moved it), so "someone
      -- else's message past the marker" is "the conversation's newest message in the flush".
      newest as (select conversation_id, max(seq) as seq from batch group by conversation_id),
      readers as materialized (
        select s.conversation_id, s.sender_id from batch s join newest t on t.conversation_id = s.conversation_id
         where not exists (
           select 1 from conversations c join participants p on p.conversation_id = c.id and p.user_id = s.sender_id
            where c.id = s.conversation_id and c.member_count <= ${this.notifyMaxMembers} and p.last_read_seq < t.seq)),
      found as (
        select n.id from readers r
        cross join lateral (
          select n.id from notifications n
           where n.user_id = r.sender_id and n.conversation_id = r.conversation_id and not n.is_read and n.kind = 'messages.new'
           -- At most one such row (notifications_one_unread_key); the limit keeps the lookup
           -- per sender, which a flattened join would trade for a walk of the whole index.
           limit 1) n),
      -- Locked apart from the lookups, so in (user, conversation) order. The lock returns each
      -- row as it is now: one read meanwhile is left alone. The test is on the locked row's
      -- copy: on the table's, the planner could walk the whole partial index of unread rows.
      reading as (
        select n.id, n.is_read from notifications n
         where n.id = any(array(select id from found))
         order by n.user_id, n.conversation_id for update)
      update notifications n set is_read = true from reading r
       where n.id = r.id and not r.is_read and n.id = any(array(select id from reading))
      returning ${notificationColumns}, true as read_by_sending`,
      { indexOnly: true },
    );
  }

  private upsert(arrays: BatchArrays, mentions: PendingMention[]): Promise<FlushedRow[]> {
    // One row per (message, mentioned username): flat arrays, as unnest takes them.
    const flat = mentions.flatMap((m) => m.usernames.map((username) => ({ ...m, username })));
    // Rows are locked in (user, conversation) order, so two replicas flushing at once cannot
    // deadlock; mention rows are new ones, one per message and member, that no other replica
    // writes. Nobody is notified of a message at or below their marker (they read it
    // meanwhile), and only current members are (the participants join, at flush).
    const statement = sql`
      with batch as (
        select b.*, m.seq, m.created_at as sent_at from unnest(
          ${arrays.conversations}::int4[], ${arrays.senders}::int4[],
          ${arrays.messages}::int8[], ${arrays.counts}::int4[], ${arrays.names}::text[]
        ) as b(conversation_id, sender_id, message_id, count, sender)
        join messages m on m.id = b.message_id and m.id = any(${arrays.messages}::int8[])),
      senders as (select distinct conversation_id, sender_id from batch),
      -- Materialized, so the size test comes before the members are read: joined in one go,
      -- the plan read every member of a large conversation and dropped them after (4 ms a
      -- flush for 1,000 members, test/notification-flush-large.test.ts).
      notified as materialized (
        select b.* from batch b
        -- The id arrays repeated as conditions: joins alone, costed on small tables, could
        -- hash a walk of a whole primary key.
          join conversations c on c.id = b.conversation_id and c.member_count <= ${this.notifyMaxMembers}
                              and c.id = any(${arrays.conversations}::int4[])),
      targets as (
        select p.user_id, b.conversation_id, sum(b.count)::int4 as count, max(b.message_id) as message_id,
               (array_agg(b.sender order by b.message_id desc))[1] as sender
          from notified b
          join participants p on p.conversation_id = b.conversation_id and p.user_id <> b.sender_id
                             and p.conversation_id = any(${arrays.conversations}::int4[])
         where p.last_read_seq < b.seq
         group by p.user_id, b.conversation_id),
      upserted as (
        insert into notifications as n (user_id, kind, conversation_id, message_id, count, text)
        select user_id, 'messages.new', conversation_id, message_id, count,
               case when count = 1 then 'New message from ' || sender
                    else count || ' new messages, the latest from ' || sender end
          from targets order by user_id, conversation_id
        on conflict (user_id, conversation_id) where not is_read and kind = 'messages.new' do update
          set count = case when exists (select 1 from senders s where s.sender_id = n.user_id and s.conversation_id = n.conversation_id)
                           then excluded.count else n.count + excluded.count end,
              message_id = greatest(n.message_id, excluded.message_id),
              updated_at = now(),
              text = case when exists (select 1 from senders s where s.sender_id = n.user_id and s.conversation_id = n.conversation_id)
                          then excluded.text
                          else (n.count + excluded.count) || ' new messages, the latest from '
                               || substring(excluded.text from ' from ([^ ]+)$') end
        returning ${notificationColumns}),
      mention_input as (
        select * from unnest(
          ${intArray(flat.map((m) => m.conversationId))}::int4[], ${intArray(flat.map((m) => m.senderId))}::int4[],
          ${intArray(flat.map((m) => m.messageId))}::int8[], ${textArray(flat.map((m) => m.sender))}::text[],
          ${textArray(flat.map((m) => m.username))}::text[]
        ) as x(conversation_id, sender_id, message_id, sender, username)),
      mentioned as (
        insert into notifications as n (user_id, kind, conversation_id, message_id, mention_message_id, count, text)
        select u.id, 'mention', x.conversation_id, x.message_id, x.message_id, 1,
               x.sender || ' mentioned you: ' || left(m.content, ${MENTION_EXCERPT_CHARS})
          from mention_input x
          join messages m on m.id = x.message_id and not m.is_deleted
          cross join lateral (select u.id from users u where lower(u.username) = lower(x.username) limit 1) u
          join participants p on p.conversation_id = x.conversation_id and p.user_id = u.id
         where u.id <> x.sender_id and p.last_read_seq < m.seq
         order by u.id, x.message_id
        on conflict (user_id, mention_message_id) where kind = 'mention' do nothing
        returning ${notificationColumns})
      select *, false as read_by_sending from upserted
      union all
      select *, false as read_by_sending from mentioned`;
    // On the connections whose generic plans read tables by lookups only (db/client.ts:
    // indexOnly): planned per call, planning cost a third of the flush.
    return this.database.query<FlushedRow>(statement, { indexOnly: true });
  }
}
