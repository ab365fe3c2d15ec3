import { sql } from 'drizzle-orm';
import type { DatabaseHandle, Query } from '../db/client.js';
import type { TokenClaims } from './session-cache.js';

/**
 * Refuses every token of the user issued until now; resolves to the new cut-off (ms), which
 * a token issued next must be later than (`signToken`'s `afterMs`).
 */
export async function revokeAllTokens(database: DatabaseHandle | Query, userId: number): Promise<number> {
  const query: Query = typeof database === 'function' ? database : (statement) => database.query(statement);
  const now = Date.now();
  const [row] = await query<{ valid_after: unknown }>(sql`
    update users set tokens_valid_after_ms = greatest(tokens_valid_after_ms, ${now})
     where id = ${userId} returning tokens_valid_after_ms as valid_after`);
  // Single revocations older than the cut-off say nothing more.
  await query(sql`delete from revoked_tokens where user_id = ${userId}`);
  return row ? Number(row.valid_after) : now;
}

/** Refuses one token until its expiry. A token without an id can only go with all of them. */
export async function revokeToken(database: DatabaseHandle, claims: TokenClaims): Promise<void> {
  if (claims.jti === undefined) {
    await revokeAllTokens(database, claims.userId);
    return;
  }
  await database.transaction(async (query) => {
    await query(sql`delete from revoked_tokens where user_id = ${claims.userId} and expires_at <= now()`);
    await query(sql`
      insert into revoked_tokens (jti, user_id, expires_at)
      values (${claims.jti}, ${claims.userId}, ${new Date(claims.expiresAtMs).toISOString()}::timestamptz)
      on conflict (jti) do nothing`);
  });
}
