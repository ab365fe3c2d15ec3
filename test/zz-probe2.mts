import postgres from 'postgres';
import { recordingPostgres } from './helpers/database.ts';
import { SendBatcher } from '../src/messages/send-batcher.ts';
const url = 'postgres://postgres@127.0.0.1:5432/bench_project';
const sql = postgres(url, { max: 1, onnotice: () => {} });
const [row] = await sql`select conversation_id, user_id from participants limit 1`;
const { database, queries } = recordingPostgres(url);
const batcher = new SendBatcher(database);
await batcher.store({ conversationId: row.conversation_id, senderId: row.user_id, content: 'probe message hello', clientId: null, words: ['probe', 'message', 'hello'], mentionNames: null, replyToId: null });
const q = queries.find((x) => /with input/.test(x.sql))!;
for (let i = 0; i < 3; i++) {
  const plan = await sql.unsafe(`explain (analyze, buffers, summary) ${q.sql}`, q.params as any[]);
  const lines = plan.map((r: any) => r['QUERY PLAN']);
  console.log(lines.filter((l: string) => /Planning Time|Execution Time|Planning:/.test(l)).join(' | '));
}
if (process.env.PLAN) { const plan = await sql.unsafe(`explain (analyze, buffers) ${q.sql}`, q.params as any[]); console.log(plan.map((r: any) => r['QUERY PLAN']).join('\n')); }
await sql.end(); await database.close();
