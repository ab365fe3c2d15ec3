import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';

const MiB = 1024 * 1024;
/** `host:port` (a bracketed IPv6 address as host) list, commas with optional spaces. */
const SENTINEL_ADDRESS = '(\\[[0-9A-Fa-f:.]+\\]|[^\\s,:\\[\\]]+):\\d{1,5}';
const SENTINEL_LIST = `^\\s*${SENTINEL_ADDRESS}(\\s*,\\s*${SENTINEL_ADDRESS})*\\s*$`;
const Bool = (fallback: boolean, description: string) =>
  Type.Boolean({ default: fallback, description });
const Int = (fallback: number, minimum: number, maximum: number, description: string) =>
  Type.Integer({ default: fallback, minimum, maximum, description });

/**
 * The operator's contract: every environment variable the service reads. This schema is the
 * only description of the configuration; the `Config` type is derived from it and the README
 * table is checked against it by a test.
 */
export const ConfigSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], {
    default: 'development',
    description: 'production makes JWT_SECRET mandatory',
  }),
  PORT: Int(3000, 0, 65535, 'HTTP port'),
  HOST: Type.String({ default: '0.0.0.0', minLength: 1, description: 'listen address' }),
  PUBLIC_URL: Type.Optional(
    Type.String({ pattern: '^https?://[^\\s/]+', description: 'absolute base URL for links (default http://localhost:PORT)' }),
  ),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
    { default: 'info', description: 'pino log level' },
  ),
  DATA_DIR: Type.String({ default: '.data', minLength: 1, description: 'embedded database and local files' }),
  DATABASE_URL: Type.Optional(
    Type.String({ pattern: '^postgres(ql)?://', description: 'PostgreSQL; unset: embedded PGlite in DATA_DIR' }),
  ),
  DATABASE_POOL_SIZE: Int(10, 1, 500, 'PostgreSQL connections per replica (3 more carry the send batches)'),
  DATABASE_STATEMENT_TIMEOUT_MS: Int(15_000, 0, 3_600_000, 'statement_timeout of every PostgreSQL session; 0 = none'),
  DATABASE_LOCK_TIMEOUT_MS: Int(5_000, 0, 3_600_000, 'lock_timeout: longest wait for a row lock; 0 = none'),
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: Int(30_000, 0, 3_600_000, 'idle_in_transaction_session_timeout; 0 = none'),
  DATABASE_CONNECT_TIMEOUT_MS: Int(5_000, 100, 600_000, 'longest wait for a PostgreSQL connection to open'),
  DATABASE_RESPONSE_TIMEOUT_MS: Int(
    20_000, 0, 3_600_000,
    'longest silence of a PostgreSQL connection with a request outstanding before it is dropped (a stalled network); above DATABASE_STATEMENT_TIMEOUT_MS; 0 = none',
  ),
  MIGRATE_ON_START: Bool(true, 'apply migrations at start (under an advisory lock)'),
  REDIS_URL: Type.Optional(
    Type.String({ pattern: '^rediss?://', description: 'Redis; unset: in-process bus, one node only' }),
  ),
  REDIS_CLUSTER: Bool(false, 'REDIS_URL is a Redis Cluster node: use sharded pub/sub'),
  REDIS_SENTINELS: Type.Optional(
    Type.String({
      pattern: SENTINEL_LIST,
      description: 'comma-separated host:port of Redis Sentinels: follow the primary they name (with REDIS_SENTINEL_NAME)',
    }),
  ),
  REDIS_SENTINEL_NAME: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]+$', description: 'the master name the Sentinels monitor' })),
  REDIS_COMMAND_TIMEOUT_MS: Int(5_000, 100, 600_000, 'longest wait for a Redis reply; connections are pinged this often and one that misses a ping reconnects'),
  S3_BUCKET: Type.Optional(Type.String({ minLength: 3, description: 'bucket; unset: files on local disk' })),
  S3_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://', description: 'S3-compatible endpoint' })),
  S3_REGION: Type.String({ default: 'us-east-1', minLength: 1, description: 'S3 region' }),
  S3_ACCESS_KEY_ID: Type.Optional(Type.String({ minLength: 1, description: 'S3 credentials' })),
  S3_SECRET_ACCESS_KEY: Type.Optional(Type.String({ minLength: 1, description: 'S3 credentials' })),
  S3_FORCE_PATH_STYLE: Bool(false, 'path-style bucket URLs (MinIO, Ceph)'),
  S3_SERVE_MODE: Type.Union([Type.Literal('proxy'), Type.Literal('redirect')], {
    default: 'proxy',
    description: 'stream attachments through the service, or redirect to a presigned URL',
  }),
  JWT_SECRET: Type.Optional(
    Type.String({ minLength: 16, description: 'HS256 key; required in production' }),
  ),
  JWT_EXPIRES_IN_SECONDS: Int(7 * 24 * 3600, 60, 365 * 24 * 3600, 'token lifetime'),
  MAX_MESSAGE_LENGTH: Int(4000, 1, 100_000, 'characters per message'),
  MAX_PARTICIPANTS: Int(10_000, 2, 100_000, 'members per conversation'),
  MAX_ATTACHMENT_BYTES: Int(25 * MiB, 1, 5 * 1024 * MiB, 'bytes per attachment'),
  ATTACHMENT_URL_TTL_SECONDS: Int(3600, 10, 7 * 24 * 3600, 'lifetime of signed attachment links'),
  BODY_LIMIT_BYTES: Int(MiB, 1024, 64 * MiB, 'JSON request bodies'),
  MESSAGE_RATE_LIMIT: Int(120, 0, 1_000_000, 'messages per user per minute across replicas; 0 = off'),
  AUTH_RATE_LIMIT: Int(20, 0, 1_000_000, 'login/register attempts per IP per minute; 0 = off'),
  EDIT_RATE_LIMIT: Int(60, 0, 1_000_000, 'message edits and deletes per user per minute across replicas; 0 = off'),
  CONVERSATION_RATE_LIMIT: Int(10, 0, 1_000_000, 'conversations created per user per minute across replicas; 0 = off'),
  MEMBER_RATE_LIMIT: Int(60, 0, 1_000_000, 'membership changes, role changes and renames per user per minute across replicas; 0 = off'),
  UPLOAD_RATE_LIMIT: Int(20, 0, 1_000_000, 'attachment uploads per user per minute across replicas; 0 = off'),
  TOKEN_RATE_LIMIT: Int(60, 0, 1_000_000, 'socket tickets, password changes and account deletions per user per minute; 0 = off'),
  MAX_UPLOADS_PER_USER: Int(2, 0, 1000, 'concurrent uploads per user on one replica (each buffers up to 15 MiB); 0 = off'),
  MAX_UPLOADS: Int(8, 0, 10_000, 'concurrent uploads per replica; 0 = off'),
  MAX_SOCKETS_PER_USER: Int(20, 0, 100_000, 'open sockets per user across replicas; 0 = off'),
  RECEIPTS_MAX_MEMBERS: Int(100, 0, 1_000_000, 'read receipts (read.updated) only in conversations of up to this many members; 0 = none'),
  MAX_REPLAY_EVENTS: Int(10_000, 1, 10_000_000, 'a chat socket resuming with ?last_seq= further behind than this is closed with 4409 (reload over REST)'),
  PRESENCE_MAX_MEMBERS: Int(100, 0, 1_000_000, 'live presence events only in conversations of up to this many members; 0 = none'),
  PRESENCE_TIMEOUT_SECONDS: Int(30, 1, 3600, 'a user whose replica died without a word is offline within this'),
  PRESENCE_GRACE_MS: Int(2_000, 0, 600_000, 'a user whose last socket closed stays online this long (a reconnect within it changes nothing); below PRESENCE_TIMEOUT_SECONDS'),
  NOTIFY_MAX_MEMBERS: Int(100, 0, 1_000_000, 'past this many members a new message notifies only the members it mentions'),
  USER_SEARCH_MIN_PREFIX: Int(1, 0, 32, 'shortest ?search= prefix for the user search; 0 allows listing without one'),
  TRUST_PROXY: Type.Optional(
    Type.String({
      pattern: '^(\\d{1,2}|[0-9A-Fa-f.:/]+(\\s*,\\s*[0-9A-Fa-f.:/]+)*)$',
      description: 'whose X-Forwarded-For to believe: a hop count or comma-separated addresses/CIDRs; unset: nobody',
    }),
  ),
  API_DOCS: Bool(true, 'serve /docs and /openapi.json'),
  WS_MAX_PAYLOAD_BYTES: Int(64 * 1024, 1024, 16 * MiB, 'largest client frame; larger closes the socket with 1009'),
  WS_MAX_BUFFERED_BYTES: Int(MiB, 16 * 1024, 256 * MiB, 'unsent bytes per socket before it is closed as a slow consumer'),
  WS_HEARTBEAT_MS: Int(30_000, 1000, 600_000, 'ping interval; a socket silent for two intervals is dropped'),
  CORS_ORIGIN: Type.Optional(Type.String({ description: 'comma-separated allowed origins; unset: same origin only' })),
  READINESS_DATABASE_GRACE_MS: Int(10_000, 0, 600_000, 'how long PostgreSQL may not answer before /readyz fails (a shared blip takes no pod out)'),
  SHUTDOWN_TIMEOUT_MS: Int(10_000, 100, 600_000, 'longest graceful drain on SIGTERM'),
  SHUTDOWN_DELAY_MS: Int(0, 0, 600_000, 'on SIGTERM, fail readiness this long before refusing connections (0 behind a Kubernetes preStop sleep)'),
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(
    Type.String({ pattern: '^https?://', description: 'OpenTelemetry collector (OTLP/HTTP); traces go to <url>/v1/traces. Unset (and no OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): tracing off' }),
  ),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Type.Optional(
    Type.String({ pattern: '^https?://', description: 'full URL traces are posted to (overrides OTEL_EXPORTER_OTLP_ENDPOINT for traces)' }),
  ),
  OTEL_SERVICE_NAME: Type.String({ default: 'chat-service', minLength: 1, description: 'service.name of the spans (OTEL_RESOURCE_ATTRIBUTES adds more)' }),
  OTEL_TRACES_SAMPLER: Type.Union(
    [
      Type.Literal('parentbased_always_on'),
      Type.Literal('parentbased_always_off'),
      Type.Literal('parentbased_traceidratio'),
      Type.Literal('always_on'),
      Type.Literal('always_off'),
      Type.Literal('traceidratio'),
    ],
    { default: 'parentbased_always_on', description: 'which traces are recorded (the standard sampler names)' },
  ),
  OTEL_TRACES_SAMPLER_ARG: Type.Number({ default: 1, minimum: 0, maximum: 1, description: 'ratio kept by the traceidratio samplers' }),
});

export type RawConfig = Static<typeof ConfigSchema>;

/** Resolved configuration: what the rest of the service reads. */
export type Config = RawConfig & {
  PUBLIC_URL: string;
  /** Set when REDIS_SENTINELS is: the primary is the one they name. */
  redisSentinels: SentinelAddress[] | undefined;
  JWT_SECRET: string;
  DATA_DIR: string;
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Names the schema knows: deployment manifests are checked against this list. */
export const configNames = (): string[] => Object.keys(ConfigSchema.properties);

/**
 * Validates the environment. Throws `ConfigError` naming every bad variable. Empty strings
 * count as unset, so `FOO=` in a compose file does not smuggle in an invalid value.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const raw: Record<string, string> = {};
  for (const name of configNames()) {
    const value = env[name];
    if (value !== undefined && value !== '') raw[name] = value;
  }
  const converted = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, raw));
  if (!Value.Check(ConfigSchema, converted)) {
    const problems = new Map<string, string>();
    for (const error of Value.Errors(ConfigSchema, converted)) {
      const name = error.instancePath.slice(1);
      if (!problems.has(name)) problems.set(name, `${name}: ${describe(error.schemaPath, error.message)} (got ${JSON.stringify(raw[name])})`);
    }
    throw new ConfigError(`invalid configuration:\n  ${[...problems.values()].join('\n  ')}`);
  }
  const config = converted as RawConfig;
  if (config.REDIS_CLUSTER && !config.REDIS_URL) throw new ConfigError('REDIS_CLUSTER: needs REDIS_URL');
  const sentinels = checkSentinels(config);
  if (
    config.DATABASE_RESPONSE_TIMEOUT_MS > 0 &&
    config.DATABASE_STATEMENT_TIMEOUT_MS > 0 &&
    config.DATABASE_RESPONSE_TIMEOUT_MS <= config.DATABASE_STATEMENT_TIMEOUT_MS
  ) {
    throw new ConfigError(
      `DATABASE_RESPONSE_TIMEOUT_MS: must be above DATABASE_STATEMENT_TIMEOUT_MS (${config.DATABASE_STATEMENT_TIMEOUT_MS}), ` +
        `or a statement still running would lose its connection (got ${config.DATABASE_RESPONSE_TIMEOUT_MS})`,
    );
  }
  if (config.PRESENCE_GRACE_MS >= config.PRESENCE_TIMEOUT_SECONDS * 1000) {
    throw new ConfigError(
      `PRESENCE_GRACE_MS: must be below PRESENCE_TIMEOUT_SECONDS (${config.PRESENCE_TIMEOUT_SECONDS} s), ` +
        `or a closed socket would outlast the timeout (got ${config.PRESENCE_GRACE_MS})`,
    );
  }
  if (config.NODE_ENV === 'production' && !config.JWT_SECRET) {
    throw new ConfigError('JWT_SECRET: required when NODE_ENV=production (at least 16 characters)');
  }
  const dataDir = resolve(config.DATA_DIR);
  return {
    ...config,
    // With Sentinel the URL only carries credentials, TLS and the database number: its host is
    // ignored (ioredis asks the Sentinels where the primary is), so the master name stands in.
    REDIS_URL: config.REDIS_URL ?? (sentinels ? `redis://${config.REDIS_SENTINEL_NAME!}` : undefined),
    redisSentinels: sentinels,
    DATA_DIR: dataDir,
    PUBLIC_URL: (config.PUBLIC_URL ?? `http://localhost:${config.PORT}`).replace(/\/+$/, ''),
    JWT_SECRET: config.JWT_SECRET ?? developmentSecret(dataDir),
  };
}

/** A Sentinel address as ioredis takes it. */
export interface SentinelAddress {
  host: string;
  port: number;
}

/** The addresses of a valid REDIS_SENTINELS value (`host:port, [::1]:port`). */
export function sentinelAddresses(value: string): SentinelAddress[] {
  return value
    .split(',')
    .map((entry) => entry.trim())
    .map((entry) => {
      const colon = entry.lastIndexOf(':');
      return { host: entry.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(entry.slice(colon + 1)) };
    });
}

/** REDIS_SENTINELS and REDIS_SENTINEL_NAME come together, name real ports, and exclude a cluster. */
function checkSentinels(config: RawConfig): SentinelAddress[] | undefined {
  const { REDIS_SENTINELS: list, REDIS_SENTINEL_NAME: name } = config;
  if (list === undefined && name === undefined) return undefined;
  if (list === undefined) throw new ConfigError('REDIS_SENTINEL_NAME: needs REDIS_SENTINELS (the Sentinels to ask for that primary)');
  if (name === undefined) throw new ConfigError('REDIS_SENTINELS: needs REDIS_SENTINEL_NAME (the master name the Sentinels monitor)');
  if (config.REDIS_CLUSTER) throw new ConfigError('REDIS_SENTINELS: not with REDIS_CLUSTER (a cluster fails over by itself)');
  const addresses = sentinelAddresses(list);
  const bad = addresses.find((address) => !(address.port >= 1 && address.port <= 65535));
  if (bad) throw new ConfigError(`REDIS_SENTINELS: port ${bad.port} of ${bad.host} is not 1-65535 (got ${JSON.stringify(list)})`);
  return addresses;
}

function describe(schemaPath: string, message: string): string {
  const name = schemaPath.split('/')[2];
  const property = name ? ConfigSchema.properties[name as keyof typeof ConfigSchema.properties] : undefined;
  return property && 'anyOf' in property
    ? `must be one of ${(property.anyOf as { const: string }[]).map((option) => option.const).join(', ')}`
    : message;
}

/** Outside production a missing secret is generated once and kept, so tokens survive restarts. */
function developmentSecret(dataDir: string): string {
  const file = join(dataDir, 'jwt-secret');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    mkdirSync(dataDir, { recursive: true });
    const secret = randomBytes(32).toString('base64url');
    try {
      writeFileSync(file, secret, { mode: 0o600, flag: 'wx' });
      return secret;
    } catch {
      // Another process on the same data dir won the race: use its secret.
      return readFileSync(file, 'utf8').trim();
    }
  }
}

/** True when the secret was generated (start-up logs a warning then). */
export const usesGeneratedSecret = (env: Record<string, string | undefined> = process.env): boolean =>
  !env.JWT_SECRET;
