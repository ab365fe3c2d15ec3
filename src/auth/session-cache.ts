import { sql } from 'drizzle-orm';
import type { Bus } from '../bus/bus.js';
import type { DatabaseHandle } from '../db/client.js';
import { toNumber } from '../db/sql.js';
import type { Logger } from '../domain/logger.js';
import { sessionsChannel } from '../redis/names.js';

/** What a verified token says about its session. */
export interface TokenClaims {
  userId: number;
  username: string;
  /** Absent on tokens issued before tokens had ids: such a token is revoked with all the user's. */
  jti: string | undefined;
  /** When it was issued, ms since the epoch (`iat_ms`, or `iat` in seconds on older tokens). */
  issuedAtMs: number;
  /** Its `exp`, ms since the epoch: a revoked id need not be remembered past it. */
  expiresAtMs: number;
}

/** What this replica knows about one user's tokens. */
interface UserSessions {
  /** False when the user does not exist or was deleted: every token is refused. */
  exists: boolean;
  validAfterMs: number;
  revoked: Set<string>;
}

/** A socket that must close when its token is revoked. */
export interface SessionSocket {
  claims: TokenClaims;
  /** Closes it with 4401. */
  revoke(): void;
}

/** Users whose token state one replica keeps at most (the least recently loaded go first). */
const MAX_CACHED_USERS = 100_000;

/**
 * The replica-local view of which tokens still count: per user, "tokens issued after" and the
 * set of single revoked ids. A token check is answered from memory; the database is asked
 * once per user on a miss. Every change to a user's sessions is published on one bus channel
 * after commit; each replica (the changing one included) then forgets that user and re-checks
 * the user's sockets here, closing those whose token no longer counts. After a bus reset
 * (messages may have been lost) everything is forgotten and every socket is re-checked.
 *
 * Guarantee: a change committed and published is honoured by every replica whose bus
 * receives it, at once; a replica whose bus missed it honours it after the reset that follows.
 */
export class SessionCache {
  private readonly cache = new Map<number, UserSessions>();
  private readonly loading = new Map<number, Promise<UserSessions>>();
  private readonly sockets = new Map<number, Set<SessionSocket>>();
  private unsubscribe: (() => void) | undefined;
  private removeReset: (() => void) | undefined;

  constructor(
    private readonly database: DatabaseHandle,
    private readonly bus: Bus,
    private readonly logger: Logger,
  ) {}

  /** Subscribes to session changes; resolves once this replica hears every later one. */
  async start(): Promise<void> {
    this.unsubscribe = await this.bus.subscribe(sessionsChannel, (payload) => {
      const userId = Number((JSON.parse(payload) as { user_id?: unknown }).user_id);
      if (Number.isSafeInteger(userId)) this.forget(userId);
    });
    this.removeReset = this.bus.onReset(() => {
      this.cache.clear();
      this.loading.clear();
      for (const userId of this.sockets.keys()) this.recheck(userId);
    });
  }

  /** True when the token still counts: synchronous on a cache hit, one query on a miss. */
  isValid(claims: TokenClaims): boolean | Promise<boolean> {
    const known = this.cache.get(claims.userId);
    if (known) return counts(known, claims);
    return this.load(claims.userId).then((sessions) => counts(sessions, claims));
  }

  /** After a committed change to the user's sessions: every replica forgets and re-checks. */
  async changed(userId: number): Promise<void> {
    this.forget(userId);
    await this.bus.publish(sessionsChannel, JSON.stringify({ user_id: userId })).catch((error: unknown) => {
      // Committed either way; the other replicas learn it at their next bus reset.
      this.logger.warn({ err: error, userId }, 'session change not published');
    });
  }

  /** Watches a socket until the returned function is called. */
  watch(socket: SessionSocket): () => void {
    const { userId } = socket.claims;
    let set = this.sockets.get(userId);
    if (!set) this.sockets.set(userId, (set = new Set()));
    set.add(socket);
    return () => {
      set.delete(socket);
      if (set.size === 0 && this.sockets.get(userId) === set) this.sockets.delete(userId);
    };
  }

  close(): void {
    this.unsubscribe?.();
    this.removeReset?.();
    this.cache.clear();
    this.sockets.clear();
  }

  private forget(userId: number): void {
    this.cache.delete(userId);
    this.loading.delete(userId);
    this.recheck(userId);
  }

  private recheck(userId: number): void {
    const set = this.sockets.get(userId);
    if (!set || set.size === 0) return;
    this.load(userId).then(
      (sessions) => {
        for (const socket of [...set]) if (!counts(sessions, socket.claims)) socket.revoke();
      },
      (error: unknown) => this.logger.warn({ err: error, userId }, 'sockets not re-checked after a session change'),
    );
  }

  private load(userId: number): Promise<UserSessions> {
    const pending = this.loading.get(userId);
    if (pending) return pending;
    const promise = this.read(userId).then((sessions) => {
      // A change that arrived during the read dropped this promise: its answer may be stale.
      if (this.loading.get(userId) === promise) {
        this.loading.delete(userId);
        if (this.cache.size >= MAX_CACHED_USERS) this.cache.delete(this.cache.keys().next().value!);
        this.cache.set(userId, sessions);
      }
      return sessions;
    });
    this.loading.set(userId, promise);
    promise.catch(() => {
      if (this.loading.get(userId) === promise) this.loading.delete(userId);
    });
    return promise;
  }

  private async read(userId: number): Promise<UserSessions> {
    const [row] = await this.database.query<{ valid_after: unknown; deleted: boolean; revoked: string | null }>(sql`
      select u.tokens_valid_after_ms as valid_after, u.deleted_at is not null as deleted,
             (select string_agg(r.jti, ' ') from revoked_tokens r where r.user_id = u.id and r.expires_at > now()) as revoked
        from users u where u.id = ${userId}`);
    if (!row || row.deleted) return { exists: false, validAfterMs: 0, revoked: new Set() };
    return { exists: true, validAfterMs: toNumber(row.valid_after), revoked: new Set(row.revoked ? row.revoked.split(' ') : []) };
  }
}

const counts = (sessions: UserSessions, claims: TokenClaims): boolean =>
  sessions.exists &&
  // 0: never cut off, so a token with no issue time (iat) counts until one happens.
  (sessions.validAfterMs === 0 || claims.issuedAtMs > sessions.validAfterMs) &&
  // A token without an id cannot be revoked alone: its logout moved validAfter instead.
  (claims.jti === undefined || !sessions.revoked.has(claims.jti));
