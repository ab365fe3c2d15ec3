import { sql } from 'drizzle-orm';
import type { Query } from '../db/client.js';
import { intArray, textArray, toNumber } from '../db/sql.js';
import { invalid } from '../domain/errors.js';
import type { UserReference } from '../contract/members.js';

/**
 * The users named by id or by username (case-insensitively), in one statement: id → username,
 * `extraIds` first (when they exist), then in the order first named, duplicates ignored. An
 * unknown or deleted user is bad input naming it (400), before anything is written.
 */
export async function resolveUsers(query: Query, references: readonly UserReference[], extraIds: readonly number[] = []): Promise<Map<number, string>> {
  const ids = [...new Set([...extraIds, ...references.filter((r): r is number => typeof r === 'number')])];
  const names = [...new Set(references.filter((r): r is string => typeof r === 'string').map((n) => n.toLowerCase()))];
  const found = await query<{ id: unknown; username: string }>(sql`
    select id, username from users
     where deleted_at is null and (id = any(${intArray(ids)}::int4[]) or lower(username) = any(${textArray(names)}::text[]))`);
  const byId = new Map(found.map((u) => [toNumber(u.id), u.username]));
  const byName = new Map(found.map((u) => [u.username.toLowerCase(), toNumber(u.id)]));
  const missing = references.find((r) => (typeof r === 'number' ? !byId.has(r) : !byName.has(r.toLowerCase())));
  if (missing !== undefined) throw invalid(`participants: unknown user ${JSON.stringify(missing)}`);
  const resolved = new Map<number, string>();
  for (const id of extraIds) {
    const username = byId.get(id);
    if (username !== undefined) resolved.set(id, username);
  }
  for (const reference of references) {
    const id = typeof reference === 'number' ? reference : byName.get(reference.toLowerCase())!;
    if (!resolved.has(id)) resolved.set(id, byId.get(id)!);
  }
  return resolved;
}
