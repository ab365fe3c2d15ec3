import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db/client.js';
import { EventKind } from '../db/schema/index.js';
import { intArray, textArray, toNumber } from '../db/sql.js';
import { databaseErrorCode, UNIQUE_VIOLATION } from '../db/errors.js';
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
/** Conversations remembered as having a progress row (then forgotten all at once and learnt again). */
const PROGRESS_ROWS_REMEMBERED = 100_000;

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
  kind: unknown;
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
  /** Conversations known to have a `search_progress` row (a deleted one may linger: harmless). */
  private readonly withProgress = new Set<number>();
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

  /**
   * A round in single statements, no interactive transaction: no connection is held across
   * round trips (the send batcher's connections are few), and nothing needs rolling back. It
   * reads where the conversations are and their message events with the messages' text now,
   * computes the words, then writes them in one statement that locks the progress rows
   * (SKIP LOCKED) and applies only where `indexed_seq` is still what was read: a round of
   * another replica that got there first (with text at least as new) wins, and this one's
   * conversations are marked again.
   */
  private async index(ids: number[]): Promise<{ left: number[]; conversations: number; events: number }> {
    const { database } = this;
    // A progress row for every conversation that has none (and still exists), to lock; only
    // for those not seen with one yet (the insert's conflict checks cost more than its reads).
    const unseen = ids.filter((id) => !this.withProgress.has(id));
    if (unseen.length > 0) {
      await database.query(sql`
        insert into search_progress (conversation_id)
        select c.id from conversations c where c.id = any(${intArray(unseen)}::int4[])
        on conflict do nothing`);
      if (this.withProgress.size + unseen.length > PROGRESS_ROWS_REMEMBERED) this.withProgress.clear();
      for (const id of unseen) this.withProgress.add(id);
    }
    // Lateral lookups (their limit keeps the planner from making them a join): the generic
    // plan of a join hashed every conversation.
    const progress = await database.query<Progress>(sql`
      select p.conversation_id, p.indexed_seq, c.last_seq
        from search_progress p
        cross join lateral (select c.last_seq from conversations c where c.id = p.conversation_id limit 1) c
       where p.conversation_id = any(${intArray(ids)}::int4[]) and c.last_seq > p.indexed_seq
       order by p.conversation_id`);
    if (progress.length === 0) return { left: [], conversations: 0, events: 0 };
    const behind = progress.map((r) => toNumber(r.conversation_id));
    // A lateral lookup per conversation, not a join: as a join, the generic plan of this
    // prepared statement (costed while the tables were small) merge-joined along the whole
    // event-log index, a cost that grew with every event stored (21 ms a round at 60,000
    // events, the largest statement of a fan-out run; test/explain-batches-postgres).
    const events = await database.query<EventRow & MessageRow>(sql`
      select r.conversation_id, e.seq, e.kind, e.message_id, m.content, m.is_deleted
        from unnest(${intArray(behind)}::int4[],
                    ${intArray(progress.map((r) => toNumber(r.indexed_seq)))}::int8[],
                    ${intArray(progress.map((r) => toNumber(r.last_seq)))}::int8[]) as r(conversation_id, after, upto)
        cross join lateral (
          select e.seq, e.kind, e.message_id from conversation_events e
           where e.conversation_id = r.conversation_id and e.seq > r.after and e.seq <= r.upto
             and e.kind = any(${intArray(MESSAGE_KINDS)}::int2[])
           order by e.seq limit ${EVENTS_PER_ROUND}) e
        join messages m on m.id = e.message_id
       order by r.conversation_id, e.seq
       limit ${EVENTS_PER_ROUND}`);
    // Where each conversation gets to: all of it, or, for the one the limit cut, its last event read.
    const reached = new Map(progress.map((r) => [toNumber(r.conversation_id), toNumber(r.last_seq)]));
    const left: number[] = [];
    if (events.length === EVENTS_PER_ROUND) {
      const cut = toNumber(events.at(-1)!.conversation_id);
      reached.set(cut, toNumber(events.at(-1)!.seq));
      left.push(cut);
      for (const id of [...reached.keys()]) if (id > cut) reached.delete(id), left.push(id);
    }
    // The words of each message as its text is now (a deleted message has none), in word
    // order: neighbouring inserts land on the same index pages. A message created in this
    // round (fresh) has no words yet: its creation is after `indexed_seq`, and words are only
    // ever written with the progress that covers the creation. Its words go in without the
    // lookups that replacing an older message's words needs (a third of the round's reads).
    const messages = new Map<number, { conversationId: number; words: string[]; fresh: boolean }>();
    for (const event of events) {
      const content = event.is_deleted ? '' : event.content;
      const id = toNumber(event.message_id);
      const fresh = toNumber(event.kind) === EventKind.messageCreated || messages.get(id)?.fresh === true;
      messages.set(id, { conversationId: toNumber(event.conversation_id), words: wordsOf(content), fresh });
    }
    const rows = [...messages].flatMap(([messageId, { conversationId, words, fresh }]) => words.map((word) => ({ messageId, conversationId, word, fresh })));
    rows.sort((a, b) => (a.word < b.word ? -1 : a.word > b.word ? 1 : a.messageId - b.messageId));
    // The messages whose words the round replaces (checking each): all, or all but the fresh.
    const touched = (trustFresh: boolean) => [...messages].filter(([, message]) => !trustFresh || !message.fresh);
    const after = new Map(progress.map((r) => [toNumber(r.conversation_id), toNumber(r.indexed_seq)]));
    const targets = [...reached.keys()];
    // One statement, one snapshot: its delete cannot see its insert, so it deletes only the
    // words a message no longer has, and the insert skips those it keeps. The set_config makes
    // this statement's own commit skip the wait for its WAL flush: nothing in it is lost for
    // good (a crash rolls the progress back with the words).
    const write = (trustFresh: boolean) => {
      const replaced = touched(trustFresh);
      return database.query<{ conversation_id: unknown }>(sql`
      with quick as (select set_config('synchronous_commit', 'off', true)),
      target as (
        select * from unnest(${intArray(targets)}::int4[], ${intArray(targets.map((id) => after.get(id)!))}::int8[], ${intArray(targets.map((id) => reached.get(id)!))}::int8[])
               as r(conversation_id, after, reached)),
      won as (
        select p.conversation_id, t.reached from search_progress p join target t on t.conversation_id = p.conversation_id
         where p.indexed_seq = t.after
           for update of p skip locked),
      incoming as (
        select n.message_id, n.conversation_id, n.word, n.fresh
          from unnest(${intArray(rows.map((r) => r.messageId))}::int8[], ${intArray(rows.map((r) => r.conversationId))}::int4[], ${textArray(rows.map((r) => r.word))}::text[],
                      ${textArray(rows.map((r) => String(trustFresh && r.fresh)))}::bool[])
               as n(message_id, conversation_id, word, fresh)
         where n.conversation_id in (select conversation_id from won)),
      touched as (
        select m.message_id from unnest(${intArray(replaced.map(([id]) => id))}::int8[], ${intArray(replaced.map(([, m]) => m.conversationId))}::int4[]) as m(message_id, conversation_id)
         where m.conversation_id in (select conversation_id from won)),
      dropped as (
        delete from message_words w using touched t
         where w.message_id = t.message_id
           and not exists (select 1 from incoming i where i.message_id = w.message_id and i.word = w.word)),
      -- Not ON CONFLICT: its speculative insertion logs a confirmation per row (a new message's
      -- ten words: ten WAL records more). No other writer inserts these rows meanwhile: the
      -- progress rows are locked (won).
      added as (
        insert into message_words (message_id, conversation_id, word)
        select i.message_id, i.conversation_id, i.word from incoming i
         where i.fresh or not exists (select 1 from message_words w where w.message_id = i.message_id and w.word = i.word)),
      moved as (
        update search_progress p set indexed_seq = won.reached from won where p.conversation_id = won.conversation_id)
      select won.conversation_id from won, quick`);
    };
    // Words of a "fresh" message already there (a version before the indexer wrote words with
    // the send, its messages not yet covered by any progress): the round again, checking each.
    let applied: { conversation_id: unknown }[];
    try {
      applied = await write(true);
    } catch (error) {
      if (databaseErrorCode(error) !== UNIQUE_VIOLATION) throw error;
      applied = await write(false);
    }
    const done = new Set(applied.map((r) => toNumber(r.conversation_id)));
    // Taken by another replica's round meanwhile: marked again, for a round after it.
    for (const id of targets) if (!done.has(id)) left.push(id);
    return { left, conversations: done.size, events: events.length };
  }
}
