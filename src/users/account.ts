import { sql } from 'drizzle-orm';
import { revokeAllTokens } from '../auth/revocation.js';
import type { DatabaseHandle } from '../db/client.js';
import { toNumber } from '../db/sql.js';
import type { AuthUser } from '../domain/auth-user.js';
import type { MessageWrites } from '../messages/message-writes.js';
import type { Membership } from '../conversations/members.js';

export interface AccountDeletion {
  database: DatabaseHandle;
  messages: MessageWrites;
  membership: Membership;
  /** Tells every replica the user's tokens changed (closes their sockets). */
  sessionsChanged(userId: number): Promise<void>;
}

/**
 * Deletes an account, in this order so that nothing of it stays readable or writable:
 * 1. the row is marked deleted and every token refused, on every replica: no new writes;
 * 2. each of its messages is erased as a deleted message is (a `message.deleted` event each,
 *    through the one write path, while it is still a participant);
 * 3. it leaves every conversation, a `member.removed` event in each (by the user, the owner's
 *    role passing on as when an owner leaves), and its notifications and revocation rows go.
 * The row stays (without a password) so the username is never given to anyone else.
 * Resolves to the storage keys of the attachments removed, for the caller to delete.
 */
export async function deleteAccount(parts: AccountDeletion, user: AuthUser): Promise<string[]> {
  const { database, messages } = parts;
  await database.transaction(async (query) => {
    await query(sql`update users set deleted_at = now(), password_hash = '' where id = ${user.id}`);
    await revokeAllTokens(query, user.id);
  });
  await parts.sessionsChanged(user.id);

  const keys: string[] = [];
  const owned = await database.query<{ id: unknown; conversation_id: unknown }>(sql`
    select m.id, m.conversation_id from messages m
     where m.sender_id = ${user.id} and not m.is_deleted
       and exists (select 1 from participants p where p.conversation_id = m.conversation_id and p.user_id = ${user.id})
     order by m.id`);
  for (const row of owned) keys.push(...(await messages.delete(user, toNumber(row.conversation_id), toNumber(row.id))));

  await parts.membership.leaveAll(user);

  await database.transaction(async (query) => {
    // Messages of conversations it had already left (none can be written now) go too, without events.
    const rest = await query<{ storage_key: string }>(sql`
      delete from attachments where uploader_id = ${user.id} returning storage_key`);
    keys.push(...rest.map((r) => r.storage_key));
    // Their earlier versions, words and reactions go with the text, as a delete takes them.
    await query(sql`
      with gone as (
        update messages set content = '', is_deleted = true, attachment_count = 0, reaction_count = 0
         where sender_id = ${user.id} and not is_deleted returning id),
      versions as (delete from message_versions where message_id in (select id from gone)),
      words as (delete from message_words where message_id in (select id from gone))
      delete from message_reactions where message_id in (select id from gone)`);
    // Every membership went with an event above; one added in a race with the deletion goes too.
    await query(sql`
      with gone as (delete from participants where user_id = ${user.id} returning conversation_id)
      update conversations c set member_count = c.member_count - 1 from gone where c.id = gone.conversation_id`);
    await query(sql`delete from notifications where user_id = ${user.id}`);
    await query(sql`delete from revoked_tokens where user_id = ${user.id}`);
  });
  return keys;
}
