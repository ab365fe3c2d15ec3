import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ConversationParams, errors } from '../http/schemas.js';
import { ConversationListQuery, MarkRead, ReadState } from '../contract/conversations.js';
import { CreateConversation, UpdateConversation } from '../contract/members.js';
import { conversationPageLink, getConversation, listConversations } from './inbox.js';
import { createConversation } from './service.js';

export const conversationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/conversations/',
    {
      schema: {
        tags: ['conversations'],
        querystring: ConversationListQuery,
        response: { 200: Type.Array(Type.Ref('Conversation')), ...errors(400, 401) },
      },
    },
    async (request, reply) => {
      const page = await listConversations(app.database, app.links, request.user, request.query);
      if (page.next) reply.header('link', conversationPageLink(app.config.PUBLIC_URL, request.query.limit, page.next));
      return page.conversations;
    },
  );

  app.post(
    '/conversations/',
    {
      config: { writeRateLimit: 'conversation' },
      schema: {
        tags: ['conversations'],
        description: 'A new group each time; with `direct: true`, the caller\'s one direct conversation with the other participant (201 created now, 200 existing).',
        body: CreateConversation,
        response: { 201: Type.Ref('Conversation'), 200: Type.Ref('Conversation'), ...errors(400, 401, 429) },
      },
    },
    async (request, reply) => {
      const { conversation, created, addedUserIds } = await createConversation(
        app.database,
        app.links,
        request.user,
        request.body,
        app.config.MAX_PARTICIPANTS,
      );
      // The conversation exists either way; a failed notice is logged, not the caller's failure.
      await app.notifications
        .conversationCreated(conversation.id, request.user, addedUserIds, conversation.participants)
        .catch((error: unknown) => request.log.warn({ err: error }, 'added-to-conversation notifications failed'));
      return reply.code(created ? 201 : 200).send(conversation);
    },
  );

  app.get(
    '/conversations/:id/',
    { schema: { tags: ['conversations'], params: ConversationParams, response: { 200: Type.Ref('Conversation'), ...errors(400, 401, 404) } } },
    async (request) => getConversation(app.database, app.links, request.user, request.params.id),
  );

  app.post(
    '/conversations/:id/read/',
    {
      schema: {
        tags: ['conversations'],
        params: ConversationParams,
        body: MarkRead,
        response: { 200: ReadState, ...errors(400, 401, 404) },
      },
    },
    async (request) => app.reads.read(request.user, request.params.id, request.body.seq),
  );

  app.patch(
    '/conversations/:id/',
    {
      config: { writeRateLimit: 'member' },
      schema: {
        tags: ['conversations'],
        description: 'Renames a group: its owner and admins (403 otherwise); a direct conversation has no title (409).',
        params: ConversationParams,
        body: UpdateConversation,
        response: { 200: Type.Ref('Conversation'), ...errors(400, 401, 403, 404, 409, 429) },
      },
    },
    async (request) => {
      await app.membership.rename(request.user, request.params.id, request.body.title);
      return getConversation(app.database, app.links, request.user, request.params.id);
    },
  );
};
