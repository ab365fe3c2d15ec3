/** The world a workload runs in: users, conversations spanning replicas, open sockets. */
import { randomBytes } from 'node:crypto';
import { type Account, createConversation, mapLimit, register } from './api.js';
import { type ChatSocket, connectChat, type ServerEvent } from './socket.js';

export interface Conversation {
  id: number;
  /** Indexes into World.users. */
  members: number[];
}

export interface World {
  users: Account[];
  conversations: Conversation[];
}

export interface WorldShape {
  users: number;
  conversations: number;
  /** Conversation sizes cycle from kMin to kMax. */
  kMin: number;
  kMax: number;
}

/** Registers the users and creates the conversations, spreading the requests over `urls`. */
export async function createWorld(urls: string[], shape: WorldShape, concurrency = 8): Promise<World> {
  const tag = randomBytes(3).toString('hex');
  const users = await mapLimit([...Array(shape.users).keys()], concurrency, (i) => register(urls[i % urls.length]!, `b${tag}_${i}`));
  // Members of conversation c: users c, c+stride, c+2*stride...: distinct while kMax*stride <= users.
  const stride = Math.max(1, Math.floor(shape.users / shape.kMax));
  const conversations = await mapLimit([...Array(shape.conversations).keys()], concurrency, async (c) => {
    const k = shape.kMin + (c % (shape.kMax - shape.kMin + 1));
    const members = [...Array(k).keys()].map((j) => (c + j * stride) % shape.users);
    const owner = users[members[0]!]!;
    const id = await createConversation(urls[c % urls.length]!, owner.token, members.slice(1).map((m) => users[m]!.id));
    return { id, members };
  });
  return { users, conversations };
}

export interface Member {
  conversation: Conversation;
  /** Position in the conversation: member j is on replica j mod replicas. */
  slot: number;
  user: Account;
  socket: ChatSocket;
  /** Set once the socket has received an event, i.e. the server has joined it to the room. */
  joined: boolean;
}

/** Connects every member of every conversation; member j goes to replica j mod replicas. */
export async function connectMembers(world: World, urls: string[], onEvent: (member: Member, event: ServerEvent) => void, concurrency = 32): Promise<Member[]> {
  const plan = world.conversations.flatMap((conversation) => conversation.members.map((userIndex, slot) => ({ conversation, userIndex, slot })));
  return mapLimit(plan, concurrency, async ({ conversation, userIndex, slot }) => {
    const user = world.users[userIndex]!;
    const holder: { member?: Member } = {};
    const socket = await connectChat(urls[slot % urls.length]!, conversation.id, user.token, (event) => {
      if (holder.member) onEvent(holder.member, event);
    });
    holder.member = { conversation, slot, user, socket, joined: false };
    return holder.member;
  });
}

export const closeAll = (members: readonly Member[]): void => members.forEach((m) => m.socket.close());
