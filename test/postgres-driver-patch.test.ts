/**
 * The postgres.js fix the service carries (patches/postgres+3.4.9.patch, applied by
 * patch-package on install, inlined into dist/ by the server bundle). postgres.js 3.4.9
 * buffers small writes behind a setImmediate; when a connection's socket closed with that
 * flush armed, it cancelled the flush but left the timer handle and the bytes in place, so
 * the connection's next startup message queued behind them and was never sent: every later
 * statement on it waited for the connect timeout (seen in failovers as sends answered late,
 * then 500s when the stale bytes went out on a new socket). Against the real server.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import postgres from 'postgres';
import t from 'tap';
import { isConnectionError } from '../src/db/errors.js';
import { ADMIN_DATABASE_URL } from './helpers/database.js';

t.test('a socket that closes with a write armed leaves the connection usable', async (t) => {
  const server = new URL(ADMIN_DATABASE_URL);
  const sockets: Socket[] = [];
  // `socket` is documented in postgres.js's README and missing from its types (as in src/db/client.ts).
  const options = {
    max: 1,
    fetch_types: false,
    connect_timeout: 2,
    onnotice: () => {},
    socket: () => {
      const socket = connect(Number(server.port || 5432), server.hostname);
      sockets.push(socket);
      return socket;
    },
  } as postgres.Options<Record<string, never>>;
  const sql = postgres(ADMIN_DATABASE_URL, options);
  t.teardown(() => sql.end({ timeout: 0 }));
  t.same(await sql`select 1 as one`, [{ one: 1 }]);
  const pending = sql`select 2 as two`.then(
    () => 'answered',
    (error: { code?: string }) => error.code,
  );
  // After one tick the statement is written into the driver's buffer and its flush is armed
  // (setImmediate). Its socket closes first: the order a close callback in the same loop turn
  // gives, emitted here so that it happens every run.
  await new Promise((resolve) => process.nextTick(resolve));
  const dying = sockets.at(-1)!;
  dying.destroy();
  dying.emit('close', false);
  t.equal(await pending, 'CONNECTION_CLOSED', 'the statement on the closed socket is answered as a closed connection');
  const started = Date.now();
  const next = await sql`select 3 as three`.then(
    (rows) => rows,
    (error: { code?: string }) => error.code,
  );
  t.same(next, [{ three: 3 }], 'the next statement reconnects and is answered (unpatched: CONNECT_TIMEOUT after 2 s)');
  t.ok(Date.now() - started < 1_500, `answered in ${Date.now() - started} ms, not after the connect timeout`);
  t.equal(sockets.length, 2, 'on a new socket');
});

t.test("Node's errors for a write to a closed socket are connection errors (503, not 500)", async (t) => {
  for (const code of ['ERR_SOCKET_CLOSED', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']) {
    t.ok(isConnectionError(Object.assign(new Error('Socket is closed'), { code })), code);
  }
  t.notOk(isConnectionError(Object.assign(new Error('x'), { code: 'ERR_INVALID_ARG_TYPE' })), 'other Node errors are not');
});

t.test('the server bundle carries the patched driver', async (t) => {
  for (const entry of ['server', 'migrate']) {
    const bundle = readFileSync(new URL(`../dist/${entry}.js`, import.meta.url), 'utf8');
    t.match(bundle, /nextWriteTimer = chunk = null/, `dist/${entry}.js resets the armed flush on close`);
    t.notMatch(bundle, /from ["']postgres["']/, `dist/${entry}.js does not load the driver from node_modules`);
  }
});
