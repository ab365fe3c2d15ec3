import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { createLinkSigner } from './attachments/links.js';
import { mediaRoutes } from './attachments/media-routes.js';
import { attachmentRoutes } from './attachments/routes.js';
import { authPlugin } from './auth/plugin.js';
import { authRoutes } from './auth/routes.js';
import type { Bus } from './bus/bus.js';
import { createBus } from './bus/factory.js';
import { createPublishRetry } from './bus/publish-retry.js';
import type { Config } from './config.js';
import { conversationRoutes } from './conversations/routes.js';
import { memberRoutes } from './conversations/member-routes.js';
import { createMembership, type Membership } from './conversations/members.js';
import { Member } from './contract/members.js';
import { Conversation } from './contract/conversations.js';
import { createDatabase, type DatabaseHandle } from './db/client.js';
import { createWritePath } from './messages/write-path.js';
import { createMessageWrites, type MessageWrites } from './messages/message-writes.js';
import { type AttachmentService, createAttachmentService } from './attachments/service.js';
import { healthRoutes } from './health/routes.js';
import { installErrorHandler } from './http/error-handler.js';
import { infrastructurePlugin } from './http/infrastructure.js';
import { ErrorResponse } from './contract/common.js';
import { validatorCompiler } from './http/validation.js';
import { messageRoutes } from './messages/routes.js';
import { searchRoutes } from './messages/search-routes.js';
import { metricsPlugin } from './metrics/plugin.js';
import { notificationRoutes } from './notifications/routes.js';
import { SearchIndexer } from './messages/search-indexer.js';
import { Notification } from './contract/notifications.js';
import { createNotificationService, type NotificationService } from './notifications/service.js';
import { createReadService, type ReadService } from './conversations/reads.js';
import { createRateLimiter } from './ratelimit/factory.js';
import type { RateLimiter } from './ratelimit/rate-limiter.js';
import { rateLimitPlugin } from './ratelimit/plugin.js';
import { failOpen } from './ratelimit/fail-open.js';
import { securityPlugin } from './http/security.js';
import { AccessLog } from './http/access-log.js';
import { asyncApiDocument } from './http/asyncapi.js';
import { webClientPlugin } from './http/web-client.js';
import { realtimePlugin } from './realtime/plugin.js';
import { Attachment, Message } from './contract/messages.js';
import { createSessionStores, type SessionStores } from './sessions/factory.js';
import { createStorage } from './storage/factory.js';
import { s3UrlOrigin } from './storage/storage-s3.js';
import type { Storage } from './storage/storage.js';
import { User } from './contract/users.js';
import { userRoutes } from './users/routes.js';
import { startTracing } from './tracing/switch.js';
import { Presence } from './contract/presence.js';
import { presenceRoutes } from './presence/routes.js';
import { createPresenceService, type PresenceService } from './presence/service.js';
import { createPresenceStore } from './sessions/presence-factory.js';
import type { PresenceStore } from './sessions/presence-store.js';

export interface AppOptions {
  config: Config;
  logger?: FastifyServerOptions['logger'];
  /** Parts handed in (tests share them between app instances); otherwise built from config. */
  database?: DatabaseHandle;
  bus?: Bus;
  storage?: Storage;
  rateLimiter?: RateLimiter;
  sessionStores?: SessionStores;
  presenceStore?: PresenceStore;
}

/**
 * Fastify's trustProxy from TRUST_PROXY: unset trusts nobody (the peer address is the client),
 * a number trusts that many hops, otherwise a list of addresses and CIDRs.
 */
export function trustProxyOption(value: string | undefined): ((address: string, hop: number) => boolean) | string[] | false {
  if (value === undefined) return false;
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    return (_address, hop) => hop < hops;
  }
  return value.split(',').map((part) => part.trim()).filter(Boolean);
}

declare module 'fastify' {
  interface FastifyInstance {
    notifications: NotificationService;
    messages: MessageWrites;
    attachments: AttachmentService;
    membership: Membership;
    reads: ReadService;
    presence: PresenceService;
    searchIndex: SearchIndexer;
  }
}

/** Request ids: the caller's `x-request-id` when it is sane, otherwise a fresh UUID. */
const requestId = (raw: unknown): string =>
  typeof raw === 'string' && /^[\w.:-]{1,64}$/.test(raw) ? raw : randomUUID();

/** Builds the service from options. No I/O at import; listening is the caller's business. */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config } = options;
  const app = Fastify({
    logger: options.logger ?? { level: config.LOG_LEVEL },
    bodyLimit: config.BODY_LIMIT_BYTES,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    logController: new AccessLog(),
    genReqId: (request) => requestId(request.headers['x-request-id']),
    requestIdHeader: false,
    trustProxy: trustProxyOption(config.TRUST_PROXY),
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler());
  // The API speaks JSON (and multipart for uploads): a text/plain body is an unsupported type (415).
  app.removeContentTypeParser('text/plain');
  // Off (no OTLP endpoint): undefined, and every part below is used as it is, unwrapped.
  const tracing = await startTracing(config, app.log);
  if (tracing) {
    tracing.traceRequests(app);
    // Registered first, so it runs after every other onClose hook: the spans of the drain are exported too.
    app.addHook('onClose', () => tracing.close());
  }
  installErrorHandler(app);
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    // Draining (SIGTERM): each response ends its keep-alive connection, so the server can close.
    if (app.lifecycle.draining) reply.header('connection', 'close');
    done(null, payload);
  });

  const owned: { close(): Promise<void> }[] = [];
  const own = <T extends { close(): Promise<void> }>(part: T): T => (owned.push(part), part);
  const baseDatabase =
    options.database ??
    own(
      createDatabase({
        url: config.DATABASE_URL,
        embeddedDir: join(config.DATA_DIR, 'pglite'),
        poolSize: config.DATABASE_POOL_SIZE,
        timeouts: {
          statementMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
          lockMs: config.DATABASE_LOCK_TIMEOUT_MS,
          idleInTransactionMs: config.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
          connectMs: config.DATABASE_CONNECT_TIMEOUT_MS,
          responseMs: config.DATABASE_RESPONSE_TIMEOUT_MS,
        },
      }),
    );
  const database = tracing ? tracing.database(baseDatabase) : baseDatabase;
  const redisKind = config.REDIS_URL ? (config.REDIS_CLUSTER ? 'redis-cluster' : 'redis') : 'memory';
  // Every Redis client of the process: the same server (or Sentinel's primary), the same timeout.
  const redis = {
    redisUrl: config.REDIS_URL,
    sentinel: config.redisSentinels && config.REDIS_SENTINEL_NAME ? { nodes: config.redisSentinels, name: config.REDIS_SENTINEL_NAME } : undefined,
    commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
  };
  const baseBus = options.bus ?? own(createBus({ kind: redisKind, ...redis, logger: app.log }));
  const bus = tracing ? tracing.bus(baseBus) : baseBus;
  const baseStorage =
    options.storage ??
    own(
      config.S3_BUCKET
        ? createStorage({
            kind: 's3',
            s3: {
              bucket: config.S3_BUCKET,
              endpoint: config.S3_ENDPOINT,
              region: config.S3_REGION,
              accessKeyId: config.S3_ACCESS_KEY_ID,
              secretAccessKey: config.S3_SECRET_ACCESS_KEY,
              forcePathStyle: config.S3_FORCE_PATH_STYLE,
            },
          })
        : createStorage({ kind: 'local', local: { dir: join(config.DATA_DIR, 'files') } }),
    );
  // Spans for the calls that leave the process: S3, and the Redis limiter.
  const storage = tracing && config.S3_BUCKET ? tracing.storage(baseStorage) : baseStorage;
  const baseRateLimiter = options.rateLimiter ?? own(createRateLimiter({ kind: redisKind, ...redis }));
  const rateLimiter = tracing && config.REDIS_URL ? tracing.rateLimiter(baseRateLimiter) : baseRateLimiter;
  const sessionStores = options.sessionStores ?? own(createSessionStores({ kind: redisKind, ...redis }));
  if (!config.REDIS_URL) app.log.info('REDIS_URL unset: in-process bus, this node cannot be scaled out');

  // Redirected attachments are fetched from the bucket itself: the CSP names its origin.
  const mediaOrigins =
    config.S3_BUCKET && config.S3_SERVE_MODE === 'redirect'
      ? [s3UrlOrigin({ bucket: config.S3_BUCKET, endpoint: config.S3_ENDPOINT, region: config.S3_REGION, forcePathStyle: config.S3_FORCE_PATH_STYLE })]
      : [];
  await app.register(securityPlugin, { corsOrigin: config.CORS_ORIGIN, publicUrl: config.PUBLIC_URL, mediaOrigins });
  await app.register(metricsPlugin, { databaseLoad: () => database.load, statementSpan: tracing?.statementSpan });
  await app.register(infrastructurePlugin, { config, database, bus, storage, owned });
  const limiter = failOpen(rateLimiter, { logger: app.log, onUnavailable: (scope) => app.metrics.rateLimiterUnavailable.inc({ scope }) });
  await app.register(rateLimitPlugin, { limiter });
  const links = createLinkSigner({ publicUrl: config.PUBLIC_URL, secret: config.JWT_SECRET, ttlSeconds: config.ATTACHMENT_URL_TTL_SECONDS });
  app.decorate('links', links);
  const publisher = createPublishRetry({
    bus,
    logger: app.log,
    onFailure: (kind) => app.metrics.publishFailures.inc({ kind }),
    onDropped: (kind) => app.metrics.publishDropped.inc({ kind }),
  });
  app.decorate('publisher', publisher);
  const writePath = createWritePath({ database, publisher, logger: app.log });
  const notifications = createNotificationService({
    database,
    publisher,
    logger: app.log,
    notifyMaxMembers: config.NOTIFY_MAX_MEMBERS,
    batcherObserver: {
      statement: app.metrics.timeStatement,
      flushed: (entries, seconds, failed) => {
        app.metrics.notificationFlushSize.observe(entries);
        app.metrics.notificationFlushDuration.observe({ outcome: failed ? 'failed' : 'written' }, seconds);
      },
    },
  });
  const searchIndex = new SearchIndexer(database, app.log, {
    statement: app.metrics.timeStatement,
    round: (_conversations, events, seconds, failed) => {
      app.metrics.searchIndexEvents.inc(events);
      app.metrics.searchIndexRounds.observe({ outcome: failed ? 'failed' : 'written' }, seconds);
      app.metrics.searchIndexBacklog.set(searchIndex.backlog);
    },
  });
  writePath.onCommitted((event, actor) => {
    app.metrics.eventsPublished.inc({ kind: event.type });
    notifications.onConversationEvent(event, actor);
    if (event.type === 'chat.message' || event.type === 'message.edited' || event.type === 'message.deleted') searchIndex.mark(event.conversation_id);
  });
  app.addHook('onReady', async () => searchIndex.start());
  app.decorate('searchIndex', searchIndex);
  app.decorate('writePath', writePath);
  const sendObserver = {
    statement: app.metrics.timeStatement,
    batch: (size: number) => app.metrics.sendBatchSize.observe(size),
    queued: (depth: number) => app.metrics.sendQueueDepth.set(depth),
    ...(tracing ? { context: tracing.sendContext } : {}),
  };
  app.decorate('messages', createMessageWrites({ writePath, database, links, maxMessageLength: config.MAX_MESSAGE_LENGTH, sendObserver }));
  app.decorate('attachments', createAttachmentService({ database, writePath, links }));
  app.decorate('notifications', notifications);
  app.decorate('membership', createMembership({ database, writePath, maxParticipants: config.MAX_PARTICIPANTS }));
  const reads = createReadService({
    database,
    bus,
    logger: app.log,
    receiptsMaxMembers: config.RECEIPTS_MAX_MEMBERS,
    notificationsRead: (userId, ids) => notifications.announceRead(userId, ids),
  });
  app.decorate('reads', reads);
  const presenceStore =
    options.presenceStore ??
    own(
      createPresenceStore({
        kind: redisKind,
        ...redis,
        timeoutMs: config.PRESENCE_TIMEOUT_SECONDS * 1000,
        observer: {
          commands: (kind, count) => app.metrics.presenceRedisCommands.inc({ kind }, count),
          failed: (error) => app.log.warn({ err: error }, 'presence: a Redis command failed; resyncing at the next lease tick'),
        },
      }),
    );
  const presence = createPresenceService({
    database,
    bus,
    store: presenceStore,
    logger: app.log,
    graceMs: config.PRESENCE_GRACE_MS,
    drainWithGrace: redisKind !== 'memory',
    maxMembers: config.PRESENCE_MAX_MEMBERS,
    observer: {
      changed: (status) => app.metrics.presenceChanges.inc({ status }),
      published: (count) => app.metrics.presenceRedisCommands.inc({ kind: 'publish' }, count),
    },
  });
  app.decorate('presence', presence);
  // Once sockets and requests are done (onClose), and before the bus and the database close
  // (this hook runs before the infrastructure's, registered earlier): sends still being
  // stored are published, then the notifications gathered meanwhile are written.
  app.addHook('onClose', async () => {
    await writePath.settle();
    reads.close();
    await presence.close();
    await notifications.close();
    await searchIndex.close();
    await publisher.flush();
    publisher.close();
  });

  for (const schema of [ErrorResponse, User, Attachment, Message, Conversation, Notification, Member, Presence]) app.addSchema(schema);
  if (config.API_DOCS) await registerApiDocs(app);

  await app.register(authPlugin, { secret: config.JWT_SECRET, expiresInSeconds: config.JWT_EXPIRES_IN_SECONDS, tickets: sessionStores.tickets });
  await app.register(healthRoutes);
  await app.register(mediaRoutes);
  await app.register(webClientPlugin);
  await app.register(realtimePlugin, { socketSlots: sessionStores.socketSlots, frameTracer: tracing?.frameTracer });
  await app.register(
    async (api) => {
      await api.register(authRoutes);
      await api.register(async (authenticated) => {
        authenticated.addHook('onRequest', authenticated.authenticate);
        await authenticated.register(userRoutes);
        await authenticated.register(conversationRoutes);
        await authenticated.register(memberRoutes);
        await authenticated.register(messageRoutes);
        await authenticated.register(searchRoutes);
        await authenticated.register(attachmentRoutes);
        await authenticated.register(notificationRoutes);
        await authenticated.register(presenceRoutes);
      });
    },
    { prefix: '/api' },
  );
  return app;
}

/** /docs, /openapi.json and /asyncapi.json (API_DOCS=false leaves them out). */
async function registerApiDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Chat service',
        version: '1',
        description: 'REST API of the chat service. Its two WebSockets (`/ws/chat/{id}/`, `/ws/notifications/`) are described by the AsyncAPI document [/asyncapi.json](/asyncapi.json).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  const asyncApi = JSON.stringify(asyncApiDocument(app.config.PUBLIC_URL));
  app.get('/asyncapi.json', { schema: { hide: true } }, async (_request, reply) => reply.type('application/json').send(asyncApi));
}
