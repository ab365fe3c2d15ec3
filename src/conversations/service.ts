import { sql } from 'drizzle-orm';
import type { AuthUser } from '../domain/auth-user.js';
import type { DatabaseHandle } from '../db/client.js';
import { conversations, participants } from '../db/schema/index.js';
import { isoTime, toNumber } from '../db/sql.js';
import type { ConversationView } from '../contract/conversations.js';
import { invalid, notFound, unauthenticated } from '../domain/errors.js';

type ConversationRecord = Omit<ConversationView, 'last_seq' | 'participants'> & { last_seq: unknown; participants: unknown };

const view = (row: ConversationRecord): ConversationView => ({
  ...row,
  id: toNumber(row.id),
  last_seq: toNumber(row.last_seq),
  participants: typeof row.participants === 'string' ? JSON.parse(row.participants) : (row.participants as string[]),
});

/** Conversations with their members' usernames in one query (no N+1). */
const selectConversations = (where: ReturnType<typeof sql>, limit: number) => sql`
  select c.id, ${isoTime(sql`c.created_at`)} as created_at, ${isoTime(sql`c.last_message_at`)} as last_message_at,
         c.last_seq,
         (select json_agg(u.username order by p2.joined_at, p2.user_id <> c.created_by_id, u.id)
            from participants p2 join users u on u.id = p2.user_id
           where p2.conversation_id = c.id) as participants
    from participants p join conversations c on c.id = p.conversation_id
   where ${where}
   order by coalesce(c.last_message_at, c.created_at) desc, c.id desc
   limit ${limit}`;

export async function listConversations(database: DatabaseHandle, user: AuthUser, limit: number): Promise<ConversationView[]> {
  const rows = await database.query<ConversationRecord>(selectConversations(sql`p.user_id = ${user.id}`, limit));
  return rows.map(view);
}

/** 404 both when it does not exist and when the caller is not in it: existence is not revealed. */
export async function getConversation(database: DatabaseHandle, user: AuthUser, id: number): Promise<ConversationView> {
  const [row] = await database.query<ConversationRecord>(
    selectConversations(sql`p.user_id = ${user.id} and p.conversation_id = ${id}`, 1),
  );
  if (!row) throw notFound('conversation not found');
  return view(row);
}

export interface CreatedConversation {
  conversation: ConversationView;
  /** Everyone but the creator: they are told they were added. */
  addedUserIds: number[];
}

export async function createConversation(
  database: DatabaseHandle,
  creator: AuthUser,
  references: (number | string)[],
  maxParticipants: number,
): Promise<CreatedConversation> {
  // The creator is looked up too: a validly signed token whose user no longer exists must not
  // reach the insert (a foreign-key violation there was a 500).
  const ids = [...new Set([creator.id, ...references.filter((r): r is number => typeof r === 'number')])];
  const names = [...new Set(references.filter((r): r is string => typeof r === 'string').map((n) => n.toLowerCase()))];
  const found = await database.query<{ id: number; username: string }>(sql`
    select id, username from users
     where deleted_at is null and (id = any(${`{${ids.join(',')}}`}::int4[]) or lower(username) = any(${toTextArray(names)}::text[]))`);
  const byId = new Map(found.map((u) => [toNumber(u.id), u.username]));
  const byName = new Map(found.map((u) => [u.username.toLowerCase(), toNumber(u.id)]));
  if (!byId.has(creator.id)) throw unauthenticated();
  const missing = references.find((r) => (typeof r === 'number' ? !byId.has(r) : !byName.has(r.toLowerCase())));
  if (missing !== undefined) throw invalid(`participants: unknown user ${JSON.stringify(missing)}`);

  const members = new Map<number, string>([[creator.id, creator.username], ...byId]);
  if (members.size < 2) throw invalid('participants: name at least one other user');
  if (members.size > maxParticipants) throw invalid(`participants: at most ${maxParticipants} members, caller included`);

  const id = await database.db.transaction(async (tx) => {
    const [row] = await tx.insert(conversations).values({ createdById: creator.id }).returning({ id: conversations.id });
    if (!row) throw new Error('insert returned no row');
    // The creator joins first, so it leads the participant list.
    await tx.insert(participants).values([...members.keys()].map((userId) => ({ conversationId: row.id, userId })));
    return row.id;
  });
  return {
    conversation: await getConversation(database, creator, id),
    addedUserIds: [...members.keys()].filter((userId) => userId !== creator.id),
  };
}

/** A PostgreSQL array literal with every element quoted, so usernames need no escaping rules. */
const toTextArray = (values: string[]): string =>
  `{${values.map((v) => `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`).join(',')}}`;
