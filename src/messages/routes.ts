import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { pageLinks } from './page-links.js';
import { listMessages } from './history.js';
import { messageVersions } from './versions.js';
import { findMessage } from './message-writes.js';
import { ConversationParams, errors, MessageParams, ReactionParams } from '../http/schemas.js';
import { EditMessage, MessagePageQuery, MessageVersion, SendMessage } from '../contract/messages.js';

export const messageRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/conversations/:id/messages/',
    {
      schema: {
        tags: ['messages'],
        params: ConversationParams,
        querystring: MessagePageQuery,
        response: { 200: Type.Array(Type.Ref('Message')), ...errors(400, 401, 404) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const page = await listMessages(app.database, app.links, request.user.id, id, request.query, app.metrics.timeStatement);
      const link = pageLinks(app.config.PUBLIC_URL, id, request.query, page);
      if (link) reply.header('link', link);
      return page.messages;
    },
  );

  app.post(
    '/conversations/:id/messages/',
    {
      config: { messageRateLimit: true },
      schema: {
        tags: ['messages'],
        params: ConversationParams,
        body: SendMessage,
        response: { 201: Type.Ref('Message'), 200: Type.Ref('Message'), ...errors(400, 401, 404, 409, 429) },
      },
    },
    async (request, reply) => {
      const { message, created } = await app.messages.send(
        request.user,
        request.params.id,
        request.body.content,
        request.body.client_id,
        request.body.reply_to,
      );
      // A retried client_id gets the first message back: 200, not a second 201.
      return reply.code(created ? 201 : 200).send(message);
    },
  );

  app.patch(
    '/conversations/:id/messages/:mid/',
    {
      config: { writeRateLimit: 'edit' },
      schema: {
        tags: ['messages'],
        params: MessageParams,
        body: EditMessage,
        response: { 200: Type.Ref('Message'), ...errors(400, 401, 403, 404, 409, 429) },
      },
    },
    async (request) => app.messages.edit(request.user, request.params.id, request.params.mid, request.body.content),
  );

  app.delete(
    '/conversations/:id/messages/:mid/',
    {
      config: { writeRateLimit: 'edit' },
      schema: { tags: ['messages'], params: MessageParams, response: { 204: Type.Null(), ...errors(401, 403, 404, 429) } },
    },
    async (request, reply) => {
      const removed = await app.messages.delete(request.user, request.params.id, request.params.mid);
      app.removeStoredFiles(removed);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/conversations/:id/messages/:mid/history/',
    {
      schema: {
        tags: ['messages'],
        summary: 'earlier versions of an edited message, oldest first ([] once deleted)',
        params: MessageParams,
        response: { 200: Type.Array(MessageVersion), ...errors(400, 401, 404) },
      },
    },
    async (request) => messageVersions(app.database, request.user.id, request.params.id, request.params.mid),
  );

  app.put(
    '/conversations/:id/messages/:mid/reactions/:emoji/',
    {
      config: { writeRateLimit: 'edit' },
      schema: {
        tags: ['messages'],
        summary: 'react with one emoji (idempotent); answers the message with its reactions',
        params: ReactionParams,
        response: { 200: Type.Ref('Message'), ...errors(400, 401, 404, 409, 429) },
      },
    },
    async (request) => {
      const { id, mid, emoji } = request.params;
      await app.messages.react(request.user, id, mid, emoji);
      // Read after the commit: the reactions as they are now, concurrent ones included.
      const message = await findMessage(app.database, app.links, id, mid);
      if (!message) throw new Error('reacted message vanished');
      return message;
    },
  );

  app.delete(
    '/conversations/:id/messages/:mid/reactions/:emoji/',
    {
      config: { writeRateLimit: 'edit' },
      schema: {
        tags: ['messages'],
        summary: 'take a reaction back (idempotent)',
        params: ReactionParams,
        response: { 204: Type.Null(), ...errors(400, 401, 404, 429) },
      },
    },
    async (request, reply) => {
      const { id, mid, emoji } = request.params;
      await app.messages.unreact(request.user, id, mid, emoji);
      return reply.code(204).send(null);
    },
  );
};
