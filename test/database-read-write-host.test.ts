/**
 * A multi-host DATABASE_URL with `target_session_attrs=read-write` (db/read-write-host.ts),
 * on a primary and a streaming standby of the test's own: pooled connections open to the
 * read-write server and stay off the standby; a server that turns read-only has its
 * connections closed, and the pool moves to the promoted standby. postgres.js alone accepts
 * a hot standby as read-write and steps to the next host on every reconnect, so both fail
 * without the host selection.
 */
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import t from 'tap';
import { createDatabase, type DatabaseHandle } from '../src/db/client.js';
import { databaseErrorCode, isConnectionError } from '../src/db/errors.js';
import { createDatabaseOn, promote, startPostgresServer } from './helpers/postgres-server.js';

const TIMEOUTS = { statementMs: 5_000, lockMs: 2_000, idleInTransactionMs: 10_000, connectMs: 2_000 };
/** Every statement must be answered (a row or an error) within this; none may hang. */
const ANSWER_MS = 5_000;
const POOL = 4;

interface Outcome {
  port?: number;
  code?: string;
  ms: number;
}

/** One insert, answered within ANSWER_MS: the server port it ran on, or its error code. */
async function insert(handle: DatabaseHandle, note: string): Promise<Outcome> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`statement unanswered after ${ANSWER_MS} ms`)), ANSWER_MS);
  });
  try {
    const [row] = await Promise.race([handle.query<{ port: number }>(sql`insert into probe (note) values (${note}) returning inet_server_port() as port`), deadline]);
    return { port: row?.port, ms: Date.now() - started };
  } catch (error) {
    if (String(error).includes('unanswered')) throw error;
    if (!isConnectionError(error)) throw error;
    return { code: databaseErrorCode(error) ?? String(error), ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs POOL inserts at once (so every pooled connection is used) until `done` says stop; every outcome. */
async function insertUntil(handle: DatabaseHandle, done: (round: Outcome[]) => boolean, maxRounds = 200): Promise<Outcome[]> {
  const all: Outcome[] = [];
  for (let round = 0; round < maxRounds; round++) {
    const outcomes = await Promise.all(Array.from({ length: POOL }, (_v, i) => insert(handle, `r${round}.${i}`)));
    all.push(...outcomes);
    if (done(outcomes)) return all;
  }
  throw new Error(`condition not reached in ${maxRounds} rounds: ${JSON.stringify(all.slice(-POOL * 3))}`);
}

t.test('a multi-host DATABASE_URL follows the read-write server', async (t) => {
  const primary = await startPostgresServer(t);
  const url = await createDatabaseOn(primary, 'chat_rw_hosts');
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  t.teardown(() => admin.end({ timeout: 1 }));
  await admin`create table probe (id serial primary key, note text not null)`;
  const standby = await startPostgresServer(t, { standbyOf: primary });
  const name = new URL(url).pathname.slice(1);
  const multiHost = `postgres://postgres@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/${name}?target_session_attrs=read-write`;
  const handle = createDatabase({ url: multiHost, embeddedDir: 'memory://', poolSize: POOL, timeouts: TIMEOUTS });
  t.teardown(() => handle.close());

  await t.test('connections closed under the pool reopen to the primary, never the standby', async (t) => {
    const first = await insertUntil(handle, (round) => round.every((o) => o.port === primary.port), 5);
    t.ok(first.every((o) => o.port === primary.port), 'writes run on the primary');
    // Twice: postgres.js on its own steps every connection to the next host when it reopens.
    for (let cut = 1; cut <= 2; cut++) {
      const [killed] = await admin<{ count: number }[]>`
        select count(pg_terminate_backend(pid))::int as count from pg_stat_activity where application_name = 'chat-service'`;
      t.ok((killed?.count ?? 0) > 0, `cut ${cut}: the pool's backends terminated on the primary (${killed?.count})`);
      const after = await insertUntil(handle, (round) => round.every((o) => o.port === primary.port), 20);
      t.same(after.filter((o) => o.code === '25006'), [], `cut ${cut}: no write reached the standby (no 25006)`);
      t.ok(after.every((o) => o.port === primary.port || o.code !== undefined), `cut ${cut}: every write ran on the primary or failed as unavailable`);
    }
  });

  await t.test('a server turning read-only loses its connections; the pool moves to the promoted standby', async (t) => {
    // Fencing as a failover manager does: the old primary refuses writes from now on, even on
    // connections already open (a reload applies to every session).
    await admin`alter system set default_transaction_read_only = on`;
    await admin`select pg_reload_conf()`;
    const fenced = await insertUntil(handle, (round) => round.every((o) => o.code !== undefined && o.code !== '25006'), 50);
    const firstRefusal = fenced.findIndex((o) => o.code !== undefined);
    t.ok(
      firstRefusal >= 0 && fenced.slice(firstRefusal + POOL).every((o) => o.code !== undefined),
      'once the fence has reached the sessions, no server is read-write and every write fails as unavailable',
    );
    t.ok(Math.max(...fenced.map((o) => o.ms)) < ANSWER_MS, `and each is answered at once (slowest ${Math.max(...fenced.map((o) => o.ms))} ms)`);

    const promoting = Date.now();
    await promote(standby);
    const promotedAfter = Date.now() - promoting;
    const moved = await insertUntil(handle, (round) => round.every((o) => o.port === standby.port), 100);
    const recoveredMs = Date.now() - promoting - promotedAfter;
    t.ok(moved.slice(-POOL).every((o) => o.port === standby.port), 'every pooled connection writes on the promoted standby');
    t.notOk(moved.some((o) => o.port === primary.port), 'no write ran on the fenced server');
    t.ok(recoveredMs < 5_000, `the pool moved within ${recoveredMs} ms of the promotion completing`);
    const promoted = postgres(standby.url.replace(/\/postgres$/, `/${name}`), { max: 1, onnotice: () => {} });
    t.teardown(() => promoted.end({ timeout: 1 }));
    const [stored] = await promoted<{ count: number }[]>`select count(*)::int as count from probe`;
    t.ok((stored?.count ?? 0) > 0, `the writes are on the new primary (${stored?.count} rows)`);
  });
});
