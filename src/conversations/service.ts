import { sql } from 'drizzle-orm';
import type { AuthUser } from '../domain/auth-user.js';
import type { DatabaseHandle } from '../db/client.js';
import type { AttachmentLinkSigner } from '../attachments/links.js';
import { conversations, participants } from '../db/schema/index.js';
import { toNumber } from '../db/sql.js';
import { getConversation } from './inbox.js';
import type { ConversationView } from '../contract/conversations.js';
import { invalid, unauthenticated } from '../domain/errors.js';

export interface CreatedConversation {
  conversation: ConversationView;
  /** Everyone but the creator: they are told they were added. */
  addedUserIds: number[];
}

export async function createConversation(
  database: DatabaseHandle,
  links: AttachmentLinkSigner,
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
    const [row] = await tx.insert(conversations).values({ createdById: creator.id, memberCount: members.size }).returning({ id: conversations.id });
    if (!row) throw new Error('insert returned no row');
    // The creator joins first, so it leads the participant list.
    await tx.insert(participants).values([...members.keys()].map((userId) => ({ conversationId: row.id, userId })));
    return row.id;
  });
  return {
    conversation: await getConversation(database, links, creator, id),
    addedUserIds: [...members.keys()].filter((userId) => userId !== creator.id),
  };
}

/** A PostgreSQL array literal with every element quoted, so usernames need no escaping rules. */
const toTextArray = (values: string[]): string =>
  `{${values.map((v) => `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`).join(',')}}`;
