/**
 * Migration 0007 moves the mention notifications' uniqueness from `message_id` to
 * `mention_message_id` (notification-hot-updates.test.ts says why). A database that already
 * holds mention notifications keeps them, keyed: after the upgrade each has its key, and the
 * flush, given the same mention again, adds nothing.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import t from 'tap';
import { createDatabase } from '../src/db/client.js';
import { NotificationBatcher } from '../src/notifications/batcher.js';
import { freshPostgresDatabase } from './helpers/database.js';

const ROOT = join(import.meta.dirname, '..');
const silent = { warn() {}, error() {}, info() {} } as never;

interface Journal {
  entries: { tag: string }[];
}

t.test('mention notifications written before 0007 keep their one-per-member-and-message key', async (t) => {
  const url = await freshPostgresDatabase(t, 'migration');
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  t.teardown(() => sql.end());

  // The migrations up to 0006, as the previous version shipped them.
  const before = mkdtempSync(join(tmpdir(), 'migrations-'));
  t.teardown(() => rmSync(before, { recursive: true, force: true }));
  cpSync(join(ROOT, 'drizzle'), before, { recursive: true });
  const journal = JSON.parse(readFileSync(join(before, 'meta', '_journal.json'), 'utf8')) as Journal;
  const upTo = journal.entries.findIndex((entry) => entry.tag.startsWith('0007_'));
  t.ok(upTo > 0, 'the journal has 0007');
  writeFileSync(join(before, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries: journal.entries.slice(0, upTo) }));
  await migrate(drizzle({ client: sql }), { migrationsFolder: before });

  const [alice, bob] = await sql<{ id: number }[]>`
    insert into users (username, password_hash) values ('alice', 'x'), ('bob', 'x') returning id`;
  const [conversation] = await sql<{ id: number }[]>`insert into conversations (created_by_id, member_count) values (${alice!.id}, 2) returning id`;
  const [message] = await sql<{ id: number }[]>`
    insert into messages (conversation_id, sender_id, content, seq) values (${conversation!.id}, ${alice!.id}, 'hi @bob', 1) returning id`;
  await sql`insert into notifications (user_id, kind, conversation_id, message_id, text)
            values (${bob!.id}, 'mention', ${conversation!.id}, ${message!.id}, 'alice mentioned you: hi @bob'),
                   (${bob!.id}, 'messages.new', ${conversation!.id}, ${message!.id}, 'New message from alice')`;

  await migrate(drizzle({ client: sql }), { migrationsFolder: join(ROOT, 'drizzle') });

  const rows = await sql<{ kind: string; message_id: string; mention_message_id: string | null }[]>`
    select kind, message_id, mention_message_id from notifications order by kind`;
  t.same(
    rows.map((row) => [row.kind, Number(row.message_id), row.mention_message_id === null ? null : Number(row.mention_message_id)]),
    [['mention', message!.id, message!.id], ['messages.new', message!.id, null]],
    'the mention has its key; the other kind has none',
  );
  // The flush itself, mentioning bob in the same message again: the key holds.
  await sql`insert into participants (conversation_id, user_id, role) values (${conversation!.id}, ${alice!.id}, 'owner'), (${conversation!.id}, ${bob!.id}, 'member')`;
  const database = createDatabase({ url, embeddedDir: '', poolSize: 2 });
  t.teardown(() => database.close());
  const failed: boolean[] = [];
  const batcher = new NotificationBatcher(database, () => {}, silent, { flushed: (_entries, _seconds, failure) => void failed.push(failure) });
  batcher.add(conversation!.id, alice!.id, 'alice', Number(message!.id), ['bob']);
  await batcher.flush();
  t.same(failed, [false], 'the flush ran');
  const mentions = await sql<{ text: string }[]>`select text from notifications where kind = 'mention'`;
  t.same(mentions.map((row) => row.text), ['alice mentioned you: hi @bob'], 'a mention already there is not written twice');
});
