import { mkdirSync } from 'node:fs';
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite';
import { fillPlaceholders, type SQL } from 'drizzle-orm';
import { PgDialect, type PgDatabase, type PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { databaseErrorCode, READ_ONLY_TRANSACTION } from './errors.js';
import { migrateEmbedded, migratePostgresLocked } from './migrate.js';
import { postgresTarget, type PostgresTarget } from './read-write-host.js';
import { retryConflicts } from './retry.js';
import * as schema from './schema/index.js';
import { watchedSockets, watchSocket } from './watched-socket.js';

/** One type for both drivers: features never know which one they run on. */
export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface DatabaseHandle {
  readonly db: Database;
  readonly kind: 'postgres' | 'pglite';
  /** Rows of a raw statement, in the same shape on both drivers. */
  query<T extends Row>(statement: SQL, options?: StatementOptions): Promise<T[]>;
  /**
   * Runs a statement with values for its `sql.placeholder(name)`s. The statement is turned
   * into SQL text once per handle (remembered by the statement object, so keep it in a
   * constant): for the hottest statements, whose per-call query building by drizzle showed
   * in profiles. Rows as `query` returns them.
   */
  prepare<T extends Row>(statement: SQL, options?: StatementOptions): Prepared<T>;
  /**
   * Runs `work` in one transaction; `query` inside it returns rows in the same shape as
   * `DatabaseHandle.query`. A thrown error rolls back.
   */
  transaction<R>(work: (query: Query) => Promise<R>): Promise<R>;
  /** Applies pending migrations; safe when several replicas call it at once. */
  migrate(): Promise<void>;
  /** True when a trivial query succeeds (readiness). */
  ping(): Promise<boolean>;
  /** How busy the handle is right now (metrics: pool saturation). */
  readonly load: DatabaseLoad;
  close(): Promise<void>;
}

/** How PostgreSQL plans a statement. */
export interface StatementOptions {
  /**
   * A batch statement (array parameters, rows looked up by key in tables that grow without
   * bound): run with a generic plan that walks indexes only (PLANNED_SETTINGS), on connections
   * of its own. Without it a statement is prepared once per connection, and after five calls
   * PostgreSQL may settle on a generic plan costed for the tables as they were then. PGlite
   * plans every call anyway.
   */
  indexOnly?: boolean;
}

/**
 * Statements (through `query` and `prepare`) and transactions running or waiting for a
 * connection: postgres.js does not expose its pool, so saturation is `inFlight / poolSize`,
 * and `inFlight > poolSize` means callers are queueing for a connection.
 */
export interface DatabaseLoad {
  readonly inFlight: number;
  readonly poolSize: number;
  /** Statements through `query` and `prepare` that failed, since the handle opened. */
  readonly failures: number;
}

type Row = Record<string, unknown>;
export type Query = <T extends Row>(statement: SQL) => Promise<T[]>;
export type Prepared<T extends Row> = (values: Record<string, unknown>) => Promise<T[]>;

export interface DatabaseOptions {
  /** PostgreSQL URL; when absent the embedded PGlite is used. */
  url?: string | undefined;
  /** PGlite data directory, or `memory://` for a throwaway database. */
  embeddedDir: string;
  poolSize: number;
  /** PostgreSQL session limits (0: none); a statement past one fails, and the caller answers 503. */
  timeouts?: DatabaseTimeouts;
}

export interface DatabaseTimeouts {
  statementMs: number;
  lockMs: number;
  idleInTransactionMs: number;
  connectMs: number;
  /** Longest silence of a connection with a request outstanding before it is dropped (watched-socket.ts); 0 = none. */
  responseMs?: number;
}

const DEFAULT_TIMEOUTS: DatabaseTimeouts = { statementMs: 15_000, lockMs: 5_000, idleInTransactionMs: 30_000, connectMs: 5_000, responseMs: 20_000 };
/** A readiness ping answers within this (false past it), whatever holds the connection. */
const PING_TIMEOUT_MS = 2_000;

export function createDatabase(options: DatabaseOptions): DatabaseHandle {
  const handle = options.url ? connectPostgres(options.url, options.poolSize, options.timeouts ?? DEFAULT_TIMEOUTS) : openPglite(options.embeddedDir);
  return withConflictRetry(handle);
}

/** Counts work in flight and failed statements for `DatabaseHandle.load`. */
function loadCounter(poolSize: number, onError: (error: unknown) => void = () => {}) {
  const load = { inFlight: 0, poolSize, failures: 0 };
  const track = async <R>(work: () => Promise<R>, countFailure: boolean): Promise<R> => {
    load.inFlight += 1;
    try {
      return await work();
    } catch (error) {
      if (countFailure) load.failures += 1;
      onError(error);
      throw error;
    } finally {
      load.inFlight -= 1;
    }
  };
  return { load, track };
}

/**
 * postgres.js's `socket` option (documented in its README, missing from its types): with a
 * multi-host URL, read-write-host.ts decides which server each pooled connection opens to.
 */
const socketOption = (target: PostgresTarget): postgres.Options<Record<string, never>> =>
  (target.socket ? { socket: target.socket } : {}) as postgres.Options<Record<string, never>>;

/**
 * The pool's sockets: to the read-write server read-write-host.ts located (a multi-host URL),
 * or to the URL's host; either way watched for stalls (watched-socket.ts).
 */
const pooledSockets = (target: PostgresTarget, responseMs: number): postgres.Options<Record<string, never>> => {
  const located = target.socket;
  const socket = located
    ? async () => {
        const opened = await located();
        watchSocket(opened, responseMs);
        return opened;
      }
    : watchedSockets(responseMs);
  return { socket } as postgres.Options<Record<string, never>>;
};

/**
 * Connections per replica for the batch statements (indexOnly): the send batcher's two
 * lanes and the notification flush (its three statements run one after the other), with one
 * to spare so a flush never waits behind both lanes.
 */
export const PLANNED_POOL_SIZE = 4;

/**
 * Planner settings of the send batch statements' connections: one generic plan per
 * connection, made at the first call, that reads tables only through index lookups. Those
 * statements look rows up by key in tables that grow without bound, so their best plan is the same at
 * any size; but a plan PostgreSQL costs on a nearly empty table (or on statistics not yet
 * taken: autovacuum may be off or behind) reads whole tables, and it would keep that plan.
 * Planned per call instead (force_custom_plan, or unnamed statements, which postgres.js
 * also describes in a round trip of their own), planning cost about as much PostgreSQL CPU
 * as execution, per batch, and held sends to a few hundred messages per second. Hash joins
 * stay allowed for joins between the statement's own row sets; test/explain-batches-postgres
 * checks that no plan reads a table whole. Only the statements that ask for it run here;
 * they return no arrays (json instead), so these connections skip postgres.js's type query,
 * which these settings make slow.
 */
export const PLANNED_SETTINGS: Readonly<Record<string, string>> = {
  plan_cache_mode: 'force_generic_plan',
  enable_seqscan: 'off',
  enable_mergejoin: 'off',
};

function connectPostgres(url: string, poolSize: number, timeouts: DatabaseTimeouts): DatabaseHandle {
  const target = postgresTarget(url, timeouts.connectMs);
  const open = (max: number, settings: Readonly<Record<string, string>> = {}, fetchTypes = true) =>
    postgres(target.url, {
      fetch_types: fetchTypes,
      // A stalled network must not hold statements until TCP gives up (watched-socket.ts), and a
      // multi-host URL's connections go to its read-write server (read-write-host.ts).
      ...pooledSockets(target, timeouts.responseMs ?? DEFAULT_TIMEOUTS.responseMs!),
      max,
      onnotice: () => {},
      // A dead server must surface as an error (503) quickly, not as a hung request.
      connect_timeout: timeouts.connectMs / 1000,
      // postgres.js waits up to 20 s between reconnect attempts (3^n/100 s) and holds queued
      // queries meanwhile: with the server down, a request took 16 s+ to get its 503. Capped at
      // half a second (jittered), a request fails fast and recovery is noticed at once.
      backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 0.5),
      idle_timeout: 60,
      // UTC sessions: timestamps arrive as `...+00` text that isoFrom() formats cheaply.
      // Session limits as start-up parameters: a stuck statement or lock wait ends as an error
      // instead of holding a connection (and the sends queued behind it) indefinitely.
      connection: {
        application_name: 'chat-service',
        TimeZone: 'UTC',
        statement_timeout: timeouts.statementMs,
        lock_timeout: timeouts.lockMs,
        idle_in_transaction_session_timeout: timeouts.idleInTransactionMs,
        ...settings,
      },
    });
  const client = open(poolSize);
  // The send batch statements (indexOnly) on connections of their own (PLANNED_SETTINGS).
  const planned = open(PLANNED_POOL_SIZE, PLANNED_SETTINGS, false);
  const clientFor = (options: StatementOptions | undefined) => (options?.indexOnly ? planned : client);
  const db = drizzlePostgres({ client, schema });
  const dialect = new PgDialect();
  // A read-only answer means this connection reached a standby, or a server fenced or not
  // yet promoted: have the pool move to the read-write server (closing the connections that
  // are not on it) instead of failing writes for as long as those connections live.
  const { load, track } = loadCounter(poolSize + PLANNED_POOL_SIZE, (error) => {
    if (databaseErrorCode(error) === READ_ONLY_TRANSACTION) target.readOnlyAnswered();
  });
  return {
    db,
    kind: 'postgres',
    load,
    // Named prepared statements (postgres.js caches them per connection by text): the hot
    // statements are parsed and planned once per connection, not once per message. drizzle's
    // execute() would send them unprepared. Statement texts are a fixed set: values are
    // always parameters.
    // indexOnly: the same, on the connections of PLANNED_SETTINGS.
    query: async <T extends Row>(statement: SQL, options?: StatementOptions): Promise<T[]> => {
      const { sql: text, params } = dialect.sqlToQuery(statement);
      // RowList is an Array subclass; its rows are typed by the caller's statement.
      const rows: Row[] = await track(() => clientFor(options).unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: true }), true);
      return rows as T[];
    },
    prepare: compiledOnce(dialect, (text, params, options) =>
      track(() => clientFor(options).unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: true }), true),
    ),
    // A transaction holds one connection throughout; what its work throws is not the database's failure.
    transaction: (work) =>
      track(() => db.transaction((tx) => work(async <T extends Row>(statement: SQL) => (await tx.execute<T>(statement)) as T[])), false),
    migrate: () => migratePostgresLocked(target.url, socketOption(target)),
    ping: () => pingWith(db),
    close: async () => {
      await Promise.all([client.end({ timeout: 5 }), planned.end({ timeout: 5 })]);
    },
  };
}

function openPglite(dir: string): DatabaseHandle {
  if (!dir.startsWith('memory://')) mkdirSync(dir, { recursive: true });
  const client = new PGlite(dir);
  const db = drizzlePglite({ client, schema });
  // PGlite is one connection.
  const { load, track } = loadCounter(1);
  return {
    db,
    kind: 'pglite',
    load,
    // PGlite sends every statement unnamed: each call is planned for its values (indexOnly).
    query: async <T extends Row>(statement: SQL): Promise<T[]> => (await track(() => db.execute<T>(statement), true)).rows as T[],
    // Timestamps as text, as drizzle's own PGlite session reads them for `query`.
    prepare: compiledOnce(new PgDialect(), async (text, params) => (await track(() => client.query<Row>(text, params, pgliteRawRows), true)).rows),
    transaction: (work) =>
      track(() => db.transaction((tx) => work(async <T extends Row>(statement: SQL) => (await tx.execute<T>(statement)).rows as T[])), false),
    migrate: () => migrateEmbedded(db),
    ping: () => pingWith(db),
    close: () => client.close(),
  };
}

const keepText = (value: string): string => value;
const pgliteRawRows = { rowMode: 'object' as const, parsers: { [pgliteTypes.TIMESTAMP]: keepText, [pgliteTypes.TIMESTAMPTZ]: keepText } };

/** `DatabaseHandle.prepare` over a driver's "text and parameters" call. */
function compiledOnce(dialect: PgDialect, run: (text: string, params: unknown[], options: StatementOptions | undefined) => Promise<Row[]>) {
  const compiled = new WeakMap<SQL, { text: string; params: unknown[] }>();
  return <T extends Row>(statement: SQL, options?: StatementOptions): Prepared<T> => {
    let query = compiled.get(statement);
    if (!query) {
      const { sql: text, params } = dialect.sqlToQuery(statement);
      compiled.set(statement, (query = { text, params }));
    }
    const { text, params } = query;
    // Rows are typed by the caller's statement.
    return async (values) => (await run(text, fillPlaceholders(params, values), options)) as T[];
  };
}

/** `select 1`, false on an error or past PING_TIMEOUT_MS (a stalled connection must not hang /readyz). */
async function pingWith(db: Database): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      db.execute('select 1').then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
      }),
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The handle with every statement and transaction retried on 40P01/40001 (a bounded number
 * of times, db/retry.ts). A statement outside a transaction and a whole transaction are
 * rolled back by PostgreSQL when chosen as the victim, so nothing runs twice; what still
 * fails after the last try is classified `unavailable` (503), never a 500.
 */
function withConflictRetry(handle: DatabaseHandle): DatabaseHandle {
  return {
    ...handle,
    query: (statement, options) => retryConflicts(() => handle.query(statement, options)),
    prepare: <T extends Row>(statement: SQL, options?: StatementOptions): Prepared<T> => {
      const prepared = handle.prepare<T>(statement, options);
      return (values) => retryConflicts(() => prepared(values));
    },
    transaction: (work) => retryConflicts(() => handle.transaction(work)),
  };
}
