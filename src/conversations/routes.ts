import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ConversationParams, errors } from '../http/schemas.js';
import { CreateConversation } from '../contract/conversations.js';
import { createConversation, getConversation, listConversations } from './service.js';

export const conversationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/conversations/',
    {
      schema: {
        tags: ['conversations'],
        querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }) }),
        response: { 200: Type.Array(Type.Ref('Conversation')), ...errors(400, 401) },
      },
    },
    async (request) => listConversations(app.database, request.user, request.query.limit),
  );

  app.post(
    '/conversations/',
    {
      config: { writeRateLimit: 'conversation' },
      schema: {
        tags: ['conversations'],
        body: CreateConversation,
        response: { 201: Type.Ref('Conversation'), ...errors(400, 401, 429) },
      },
    },
    async (request, reply) => {
      const { conversation, addedUserIds } = await createConversation(
        app.database,
        request.user,
        request.body.participants,
        app.config.MAX_PARTICIPANTS,
      );
      // The conversation exists either way; a failed notice is logged, not the caller's failure.
      await app.notifications
        .conversationCreated(conversation.id, request.user, addedUserIds, conversation.participants)
        .catch((error: unknown) => request.log.warn({ err: error }, 'added-to-conversation notifications failed'));
      return reply.code(201).send(conversation);
    },
  );

  app.get(
    '/conversations/:id/',
    { schema: { tags: ['conversations'], params: ConversationParams, response: { 200: Type.Ref('Conversation'), ...errors(400, 401, 404) } } },
    async (request) => getConversation(app.database, request.user, request.params.id),
  );
};
