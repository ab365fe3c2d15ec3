/**
 * TEMPORARY: the inbox's wire shapes (API.md version 2) until wip/members and wip/read commit
 * their schemas in src/contract/; then this file only re-exports those.
 */
import type { ChatServerEvent, ConversationEvent } from '../contract/events.js';
import type { ConversationView } from '../contract/conversations.js';
import type { MessageView } from '../contract/messages.js';

export type Role = 'owner' | 'admin' | 'member';
export interface UserRef {
  id: number;
  username: string;
}
export interface MemberView {
  id: number;
  username: string;
  role: Role;
  last_read_seq: number;
  joined_at: string;
}
export interface MemberAddedEvent {
  type: 'member.added';
  seq: number;
  conversation_id: number;
  users: UserRef[];
  by: UserRef;
}
export interface MemberRemovedEvent {
  type: 'member.removed';
  seq: number;
  conversation_id: number;
  user: UserRef;
  by: UserRef;
}
export interface MemberRoleEvent {
  type: 'member.role';
  seq: number;
  conversation_id: number;
  user: UserRef;
  role: Role;
}
export interface ConversationUpdatedEvent {
  type: 'conversation.updated';
  seq: number;
  conversation_id: number;
  conversation: { id: number; title: string | null };
}
export interface ReadUpdatedEvent {
  type: 'read.updated';
  conversation_id: number;
  user: string;
  user_id: number;
  last_read_seq: number;
}
export interface ReadStateView {
  last_read_seq: number;
  unread_count: number;
}
export type InboxConversationView = ConversationView & {
  title: string | null;
  kind: 'direct' | 'group';
  member_count: number;
  last_message: MessageView | null;
  last_read_seq: number;
  unread_count: number;
};

/** Every event with a `seq`, messages and membership alike. */
export type SeqEvent = ConversationEvent | MemberAddedEvent | MemberRemovedEvent | MemberRoleEvent | ConversationUpdatedEvent;
/** Everything `/ws/chat/{id}/` sends. */
export type ChatSocketServerEvent = ChatServerEvent | MemberAddedEvent | MemberRemovedEvent | MemberRoleEvent | ConversationUpdatedEvent | ReadUpdatedEvent;
