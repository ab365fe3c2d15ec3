/**
 * Membership wire shapes (API.md version 2, "Conversations: members, roles, direct
 * conversations, the inbox"): the create body with title and direct, the members list, adding
 * members, role changes and renames.
 */
import { type Static, Type } from 'typebox';
import { Id, Text, Timestamp } from './common.js';

export const MEMBER_ROLES = ['owner', 'admin', 'member'] as const;
export const MemberRole = Type.Union([Type.Literal('owner'), Type.Literal('admin'), Type.Literal('member')]);
export type MemberRole = (typeof MEMBER_ROLES)[number];

/** The roles a PATCH may give: ownership only passes by the owner leaving. */
export const AssignableRole = Type.Union([Type.Literal('admin'), Type.Literal('member')]);
export type AssignableRole = Static<typeof AssignableRole>;

export const TITLE_MAX_LENGTH = 100;
export const Title = Text({ minLength: 1, maxLength: TITLE_MAX_LENGTH, description: '1-100 characters, after trimming' });

/** A user id (as in the seed) or a username. */
export const UserReference = Type.Union([Id('user id'), Text({ minLength: 1, maxLength: 32 })]);
export type UserReference = Static<typeof UserReference>;

const UserReferences = (description: string) =>
  Type.Array(UserReference, { minItems: 1, maxItems: 10_000, description });

export const CreateConversation = Type.Object({
  participants: UserReferences('user ids or usernames; the caller is added'),
  title: Type.Optional(Title),
  direct: Type.Optional(
    Type.Boolean({ description: 'true: the caller\'s one direct conversation with the one other participant (201 new, 200 existing)' }),
  ),
});
export type CreateConversationRequest = Static<typeof CreateConversation>;

export const Member = Type.Object(
  {
    id: Id('user id'),
    username: Type.String(),
    role: MemberRole,
    last_read_seq: Type.Integer({ minimum: 0 }),
    joined_at: Timestamp,
  },
  { $id: 'Member' },
);
export type MemberView = Static<typeof Member>;

export const MEMBER_PAGE = { defaultLimit: 100, maxLimit: 1000 } as const;
export const MemberListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: MEMBER_PAGE.maxLimit, default: MEMBER_PAGE.defaultLimit }),
  after: Type.Optional(Id('only members with a larger user id')),
});
export type MemberListQuery = Static<typeof MemberListQuery>;

export const AddMembers = Type.Object({ participants: UserReferences('user ids or usernames to add; members already in are ignored') });
export type AddMembersRequest = Static<typeof AddMembers>;

export const ChangeRole = Type.Object({ role: AssignableRole });
export type ChangeRoleRequest = Static<typeof ChangeRole>;

export const UpdateConversation = Type.Object({ title: Title });
export type UpdateConversationRequest = Static<typeof UpdateConversation>;

export const MemberParams = Type.Object({ id: Id('conversation id'), user_id: Id('user id') });
