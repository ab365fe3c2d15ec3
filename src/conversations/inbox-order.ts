import { sql } from 'drizzle-orm';
import type { Query } from '../db/client.js';

/**
 * Conversations of up to this many members keep each membership's `activity_at` current
 * (the notification flush writes it, coalesced): a member's inbox is then an index range of
 * `participants_inbox_idx`, whatever the number of their conversations. Above it one message
 * would rewrite thousands of rows, so those memberships are flagged `large` and the inbox
 * reads the conversation's own activity for them (a user is in few such conversations).
 * A constant, not configuration: the flags in the table are computed with it.
 */
export const INBOX_TRACKED_MEMBERS = 100;

/**
 * After a membership change took the conversation from `before` to `after` members (under
 * its row lock): crossing the threshold re-flags every membership, and one coming back under
 * it starts from the conversation's activity. Otherwise nothing is written.
 */
export async function retrackMemberships(query: Query, conversationId: number, before: number, after: number): Promise<void> {
  const wasLarge = before > INBOX_TRACKED_MEMBERS;
  const isLarge = after > INBOX_TRACKED_MEMBERS;
  if (wasLarge === isLarge) return;
  await query(sql`
    update participants p set large = ${isLarge},
           activity_at = greatest(p.activity_at, coalesce(c.last_message_at, c.created_at))
      from conversations c
     where c.id = p.conversation_id and p.conversation_id = ${conversationId} and p.large <> ${isLarge}`);
}
