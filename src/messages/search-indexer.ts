import { sql } from 'drizzle-orm';
import type { DatabaseHandle, Query } from '../db/client.js';
import { EventKind } from '../db/schema/index.js';
import { intArray, textArray, toNumber } from '../db/sql.js';
import { databaseErrorCode } from '../db/errors.js';
import type { Logger } from '../domain/logger.js';
import { timeStatement, type StatementTimer } from '../domain/observer.js';
import { wordsOf } from './search-words.js';

/**
 * How long written messages gather before their words are indexed: a message is searchable
 * within about this. The words of a message are most of what it writes (about ten index rows
 * with three index entries each, against four for the message and its event); written with
 * the send they held the conversation's row lock and the send's commit, and halved the fan-out
 * capacity (README, Performance). Gathered, they are one statement per interval per replica.
 */
export const SEARCH_INDEX_DELAY_MS = 100;
/** A failed round (database unreachable) is retried after this. */
export const SEARCH_INDEX_RETRY_MS = 1_000;
/**
 * Every replica looks for conversations whose index is behind their event log this often
 * (and once soon after it starts): those a replica that crashed had not indexed yet, messages
 * stored before the index existed, anything a failed round left.
 */
export const SEARCH_SWEEP_MS = 60_000;
/** The first sweep, after start-up. */
export const SEARCH_FIRST_SWEEP_MS = 2_000;
/** Conversations taken per round at most; more wait for the next one. */
export const CONVERSATIONS_PER_ROUND = 500;
/** Message events applied per round at most (a backfill proceeds in rounds of this). */
export const EVENTS_PER_ROUND = 2_000;

const MESSAGE_KINDS = [EventKind.messageCreated, EventKind.messageEdited, EventKind.messageDeleted];

/** What an indexer reports (metrics); every hook is optional. */
export interface SearchIndexerObserver {
  /** A round applied `events` message events of `conversations` conversations in `seconds`, or failed. */
  round?(conversations: number, events: number, seconds: number, failed: boolean): void;
  statement?: StatementTimer;
}

interface Progress extends Record<string, unknown> {
  conversation_id: unknown;
  indexed_seq: unknown;
  last_seq: unknown;
}

interface EventRow extends Record<string, unknown> {
  conversation_id: unknown;
  seq: unknown;
  message_id: unknown;
}

interface MessageRow extends Record<string, unknown> {
  id: unknown;
  conversation_id: unknown;
  content: string;
  is_deleted: boolean;
}

/**
 * Keeps `message_words` following the conversations' event logs (schema: `search_progress`).
 * A replica marks a conversation when it commits one of its message events (created, edited,
 * deleted); every interval one transaction per replica takes the marked conversations whose
 * progress row it can lock (SKIP LOCKED: another replica's indexer is at it), reads their
 * message events after `indexed_seq`, reads those messages as they are now, replaces their
 * words (none for a deleted one) and moves `indexed_seq`. Words and progress commit together,
 * so a round that fails or a replica that dies leaves nothing half-indexed: the conversation
 * is simply behind, and the next round or sweep takes it from where it is. Reading the
 * current text at each event means edits and deletes need no words of their own: the last
 * event that touched a message is applied last, with the text as it is then.
 *
 * The round commits with `synchronous_commit = off`: it writes nothing that cannot be
 * written again (its progress row rolls back with its words after a crash), so nobody waits
 * for its WAL flush.
 */
export class SearchIndexer {
  private marked = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  private closed = false;

  constructor(
    private readonly database: DatabaseHandle,
    private readonly logger: Logger,
    private readonly observer: SearchIndexerObserver = {},
  ) {}

  /** Begins the sweeps (soon, then every SEARCH_SWEEP_MS). */
  start(): void {
    this.sweepSoon(SEARCH_FIRST_SWEEP_MS);
  }

  /** A message event of the conversation committed: its words are indexed with the next round. */
  mark(conversationId: number): void {
    this.marked.add(conversationId);
    this.arm(SEARCH_INDEX_DELAY_MS);
  }

  /** Conversations marked and not yet indexed. */
  get backlog(): number {
    return this.marked.size;
  }

  /**
   * Indexes every marked conversation now, round after round, until none is left that this
   * replica can take; waits for a round already under way first.
   */
  async drain(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (;;) {
      while (this.running) await this.running;
      if (this.marked.size === 0) return;
      const before = this.marked.size;
      this.running = this.round().finally(() => {
        this.running = undefined;
      });
      const progressed = await this.running;
      // Left marked: locked by another replica's round, or the database failed. Not waited for here.
      if (!progressed && this.marked.size >= before) return;
    }
  }

  /** Indexes what is marked (best effort: a sweep elsewhere takes what is left), then stops. */
  async close(): Promise<void> {
    clearTimeout(this.sweepTimer);
    await this.drain().catch(() => undefined);
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Marks the conversations whose index is behind their event log. */
  async sweep(): Promise<number> {
    const rows = await this.database.query<{ id: unknown }>(sql`
      select c.id from conversations c left join search_progress p on p.conversation_id = c.id
       where c.last_seq > coalesce(p.indexed_seq, 0)`);
    for (const row of rows) this.marked.add(toNumber(row.id));
    if (rows.length > 0) this.arm(0);
    return rows.length;
  }

  private sweepSoon(ms: number): void {
    if (this.closed) return;
    this.sweepTimer = setTimeout(() => {
      this.sweep().then(
        () => this.sweepSoon(SEARCH_SWEEP_MS),
        (error: unknown) => {
          this.logger.warn({ err: error, code: databaseErrorCode(error) }, 'search index: sweep failed; will retry');
          this.sweepSoon(SEARCH_SWEEP_MS);
        },
      );
    }, ms);
    this.sweepTimer.unref();
  }

  private arm(ms: number): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.next();
    }, ms);
    // Shutdown drains explicitly; a pending round must not hold the event loop open by itself.
    this.timer.unref();
  }

  /** The timer's round: one, then the next after the interval (at once while a backlog is cut into rounds). */
  private async next(): Promise<void> {
    while (this.running) await this.running;
    if (this.marked.size === 0) return;
    this.running = this.round().finally(() => {
      this.running = undefined;
    });
    await this.running;
  }

  /** One transaction over up to CONVERSATIONS_PER_ROUND marked conversations; whether it indexed any. */
  private async round(): Promise<boolean> {
    const taken = [...this.marked].slice(0, CONVERSATIONS_PER_ROUND);
    for (const id of taken) this.marked.delete(id);
    const started = performance.now();
    try {
      const { left, conversations, events } = await timeStatement(this.observer.statement, 'search_index', () => this.index(taken));
      for (const id of left) this.marked.add(id);
      this.observer.round?.(conversations, events, (performance.now() - started) / 1000, false);
      // A round cut by its bounds goes on at once; otherwise what was marked meanwhile waits for
      // the interval, so that under load one round takes an interval's worth of messages.
      const cut = events === EVENTS_PER_ROUND || taken.length === CONVERSATIONS_PER_ROUND;
      if (this.marked.size > 0) this.arm(cut ? 0 : SEARCH_INDEX_DELAY_MS);
      return conversations > 0;
    } catch (error) {
      for (const id of taken) this.marked.add(id);
      this.observer.round?.(0, 0, (performance.now() - started) / 1000, true);
      this.logger.warn({ err: error, code: databaseErrorCode(error) }, 'search index: round failed; will retry');
      this.arm(SEARCH_INDEX_RETRY_MS);
      return false;
    }
  }

  private index(ids: number[]): Promise<{ left: number[]; conversations: number; events: number }> {
    return this.database.transaction(async (query) => {
      await query(sql`set local synchronous_commit = off`);
      // A progress row for every conversation that has none (and still exists), to lock.
      await query(sql`
        insert into search_progress (conversation_id)
        select c.id from conversations c where c.id = any(${intArray(ids)}::int4[])
        on conflict do nothing`);
      const progress = await query<Progress>(sql`
        select p.conversation_id, p.indexed_seq, c.last_seq
          from search_progress p join conversations c on c.id = p.conversation_id
         where p.conversation_id = any(${intArray(ids)}::int4[]) and c.last_seq > p.indexed_seq
         order by p.conversation_id
           for update of p skip locked`);
      const taken = new Set(progress.map((row) => toNumber(row.conversation_id)));
      // Behind but locked by another replica's round: marked again, for a round after it.
      const others = ids.filter((id) => !taken.has(id));
      const locked =
        others.length === 0
          ? []
          : (
              await query<{ conversation_id: unknown }>(sql`
                select p.conversation_id from search_progress p join conversations c on c.id = p.conversation_id
                 where p.conversation_id = any(${intArray(others)}::int4[]) and c.last_seq > p.indexed_seq`)
            ).map((row) => toNumber(row.conversation_id));
      if (progress.length === 0) return { left: locked, conversations: 0, events: 0 };
      const events = await query<EventRow>(sql`
        select e.conversation_id, e.seq, e.message_id
          from unnest(${intArray(progress.map((r) => toNumber(r.conversation_id)))}::int4[],
                      ${intArray(progress.map((r) => toNumber(r.indexed_seq)))}::int8[],
                      ${intArray(progress.map((r) => toNumber(r.last_seq)))}::int8[]) as r(conversation_id, after, upto)
          join conversation_events e on e.conversation_id = r.conversation_id and e.seq > r.after and e.seq <= r.upto
         where e.kind = any(${intArray(MESSAGE_KINDS)}::int2[])
         order by e.conversation_id, e.seq
         limit ${EVENTS_PER_ROUND}`);
      // Where each conversation got to: all of it, or, for the one the limit cut, its last event read.
      const reached = new Map(progress.map((r) => [toNumber(r.conversation_id), toNumber(r.last_seq)]));
      const left: number[] = [];
      if (events.length === EVENTS_PER_ROUND) {
        const last = events.at(-1)!;
        const cut = toNumber(last.conversation_id);
        reached.set(cut, toNumber(last.seq));
        left.push(cut);
        for (const id of [...reached.keys()]) if (id > cut) reached.delete(id), left.push(id);
      }
      const messageIds = [...new Set(events.map((e) => toNumber(e.message_id)))];
      if (messageIds.length > 0) await this.replaceWords(query, messageIds);
      await query(sql`
        update search_progress p set indexed_seq = r.seq
          from unnest(${intArray([...reached.keys()])}::int4[], ${intArray([...reached.values()])}::int8[]) as r(conversation_id, seq)
         where p.conversation_id = r.conversation_id`);
      return { left: [...left, ...locked], conversations: reached.size, events: events.length };
    });
  }

  /** The messages' words, as their text is now: a deleted message has none. */
  private async replaceWords(query: Query, messageIds: number[]): Promise<void> {
    const messages = await query<MessageRow>(sql`
      select id, conversation_id, content, is_deleted from messages where id = any(${intArray(messageIds)}::int8[])`);
    const rows: Array<{ messageId: number; conversationId: number; word: string }> = [];
    for (const message of messages) {
      if (message.is_deleted) continue;
      for (const word of wordsOf(message.content)) rows.push({ messageId: toNumber(message.id), conversationId: toNumber(message.conversation_id), word });
    }
    // In word order: neighbouring inserts land on the same index pages.
    rows.sort((a, b) => (a.word < b.word ? -1 : a.word > b.word ? 1 : a.messageId - b.messageId));
    await query(sql`delete from message_words where message_id = any(${intArray(messageIds)}::int8[])`);
    if (rows.length === 0) return;
    await query(sql`
      insert into message_words (message_id, conversation_id, word)
      select * from unnest(${intArray(rows.map((r) => r.messageId))}::int8[], ${intArray(rows.map((r) => r.conversationId))}::int4[], ${textArray(rows.map((r) => r.word))}::text[])
      on conflict do nothing`);
  }
}
