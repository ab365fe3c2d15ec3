import { type SQL, type SQLWrapper, sql } from 'drizzle-orm';

/**
 * The usernames (as registered) of the conversation's members among `names` (the
 * space-separated lowercased candidates of mentions.ts), in name order; null when there are
 * none, or no candidates at all (the lookup is then skipped). One index probe per candidate
 * (`users_username_lower_key`), then the membership's primary key.
 */
export const mentionsSql = (conversationId: SQLWrapper, names: SQLWrapper): SQL => sql`
  case when ${names} is null then null else (
    select array_agg(u.username order by lower(u.username))
      from (select distinct name from unnest(string_to_array(${names}, ' ')) as x(name)) c
      -- Subqueries with a limit are not flattened into joins: each stays a lookup by its key,
      -- whatever a generic plan (db/client.ts: indexOnly) assumed about the tables' sizes.
      cross join lateral (select u.id, u.username from users u where lower(u.username) = c.name limit 1) u
     where (select true from participants mp where mp.conversation_id = ${conversationId} and mp.user_id = u.id limit 1)) end`;
