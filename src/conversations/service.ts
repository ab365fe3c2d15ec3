import { sql } from 'drizzle-orm';
import type { AuthUser } from '../domain/auth-user.js';
import type { DatabaseHandle } from '../db/client.js';
import type { AttachmentLinkSigner } from '../attachments/links.js';
import { intArray, textArray, toNumber } from '../db/sql.js';
import type { ConversationView } from '../contract/conversations.js';
import { TITLE_MAX_LENGTH, type UserReference } from '../contract/members.js';
import { getConversation } from './inbox.js';
import { INBOX_TRACKED_MEMBERS } from './inbox-order.js';
import { resolveUsers } from './user-references.js';
import { invalid, unauthenticated } from '../domain/errors.js';

export interface CreatedConversation {
  conversation: ConversationView;
  /** False when `direct` found the pair's existing conversation (200, not 201). */
  created: boolean;
  /** Everyone but the creator: they are told they were added (none when it existed). */
  addedUserIds: number[];
}

export interface CreateConversationInput {
  participants: UserReference[];
  title?: string | undefined;
  direct?: boolean | undefined;
}

/**
 * A group (its creator `owner`, everyone else `member`), or with `direct` the caller's one
 * conversation with one other user: one per pair (`direct_key`), found again rather than made
 * twice, also when two requests race (the unique index decides, ON CONFLICT DO NOTHING).
 */
export async function createConversation(
  database: DatabaseHandle,
  links: AttachmentLinkSigner,
  creator: AuthUser,
  input: CreateConversationInput,
  maxParticipants: number,
): Promise<CreatedConversation> {
  const direct = input.direct === true;
  const title = input.title?.trim();
  if (title !== undefined && (title.length === 0 || title.length > TITLE_MAX_LENGTH)) throw invalid(`title: 1-${TITLE_MAX_LENGTH} characters`);
  if (direct && title !== undefined) throw invalid('title: a direct conversation has none');
  // The creator is looked up too: a validly signed token whose user no longer exists must not
  // reach the insert (a foreign-key violation there was a 500).
  const members = await resolveUsers((statement) => database.query(statement), input.participants, [creator.id]);
  if (!members.has(creator.id)) throw unauthenticated();
  if (direct && (members.size !== 2 || input.participants.length === 0)) {
    throw invalid('participants: a direct conversation names exactly one other user');
  }
  if (members.size < 2) throw invalid('participants: name at least one other user');
  if (members.size > maxParticipants) throw invalid(`participants: at most ${maxParticipants} members, caller included`);
  const others = [...members.keys()].filter((userId) => userId !== creator.id);
  const directKey = direct ? `${Math.min(creator.id, others[0]!)}:${Math.max(creator.id, others[0]!)}` : null;

  const made = await database.transaction(async (query) => {
    const [row] = await query<{ id: unknown }>(sql`
      insert into conversations (created_by_id, title, kind, direct_key, member_count)
      values (${creator.id}, ${title ?? null}, ${direct ? 'direct' : 'group'}, ${directKey}, ${members.size})
      on conflict (direct_key) where direct_key is not null do nothing
      returning id`);
    if (!row) return null;
    const id = toNumber(row.id);
    // Joining order is the order named, a microsecond apart: the creator leads the participant
    // list (after the caller) and the earliest-named member is the heir. A direct conversation has no roles.
    const roles = [...members.keys()].map((userId) => (!direct && userId === creator.id ? 'owner' : 'member'));
    await query(sql`
      insert into participants (conversation_id, user_id, role, joined_at, large)
      select ${id}, m.user_id, m.role, now() + (m.ord - 1) * interval '1 microsecond', ${members.size > INBOX_TRACKED_MEMBERS}
        from unnest(${intArray([...members.keys()])}::int4[], ${textArray(roles)}::text[]) with ordinality as m(user_id, role, ord)`);
    return id;
  });
  if (made !== null) {
    return { conversation: await getConversation(database, links, creator, made), created: true, addedUserIds: others };
  }
  // The pair's conversation exists (perhaps committed a moment ago by a racing request).
  const [existing] = await database.query<{ id: unknown }>(sql`select id from conversations where direct_key = ${directKey}`);
  if (!existing) throw new Error('direct conversation neither inserted nor found');
  return { conversation: await getConversation(database, links, creator, toNumber(existing.id)), created: false, addedUserIds: [] };
}
