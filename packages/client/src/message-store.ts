import type { ConversationEvent, MessageView, ReplyPreviewView } from './generated/contract.js';
import { mentionedMembers } from './mentions.js';
import { applyReaction } from './reactions.js';

/** API.md: a reply preview holds the first 200 characters of the message it answers. */
const PREVIEW_CHARS = 200;

/**
 * The loaded messages of one conversation, kept current from its events: new messages,
 * edits, deletes, attachments and reactions, and the reply previews of messages that answer
 * an edited or deleted one (a deleted original shows no text). Pages read over REST are
 * added with `add`; a message already held stays as it is, since the events since it was
 * added have kept it current.
 */
export class MessageStore {
  private readonly byId = new Map<number, MessageView>();
  /** The caller's own reactions, by message: a reaction lists only its first ten users. */
  private readonly mine = new Map<number, Set<string>>();

  constructor(
    private readonly userId: number,
    private readonly username: string,
    /**
     * The conversation's members now: an edit event carries no `mentions`, so an edited
     * message's are found in its new text among them. Without it they stay as they were.
     */
    private readonly members?: () => Iterable<{ username: string }>,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  get(id: number): MessageView | undefined {
    return this.byId.get(id);
  }

  /** Every message held, in id order. */
  list(): MessageView[] {
    return [...this.byId.values()].sort((a, b) => a.id - b.id);
  }

  /** Whether the caller reacted to the message with `emoji` (as far as the messages and events said). */
  reactedByMe(messageId: number, emoji: string): boolean {
    return this.mine.get(messageId)?.has(emoji) ?? false;
  }

  /** Adds a page read over REST; returns the messages as held (new ones, and the ones already there). */
  add(messages: readonly MessageView[]): MessageView[] {
    return messages.map((message) => {
      const held = this.byId.get(message.id);
      if (held) return held;
      this.byId.set(message.id, message);
      const mine = new Set(message.reactions.filter((reaction) => reaction.users.includes(this.username)).map((reaction) => reaction.emoji));
      if (mine.size > 0) this.mine.set(message.id, mine);
      return message;
    });
  }

  /** Forgets every message (a reload from REST replaces them). */
  clear(): void {
    this.byId.clear();
    this.mine.clear();
  }

  /** Applies one conversation event; returns the messages it changed, as they are now. */
  apply(event: ConversationEvent): MessageView[] {
    switch (event.type) {
      case 'chat.message': {
        const held = this.byId.get(event.message.id);
        // A resend answered with the original: what is held has its reactions since.
        if (held) return [];
        this.byId.set(event.message.id, event.message);
        return [event.message];
      }
      case 'message.edited': {
        const content = event.message.content;
        const changed = this.change(event.message.id, (message) => ({
          ...message,
          content,
          is_edited: true,
          edited_at: event.message.edited_at,
          mentions: this.members ? mentionedMembers(content, this.members()) : message.mentions,
        }));
        return [...changed, ...this.changePreviews(event.message.id, (preview) => ({ ...preview, content: content.slice(0, PREVIEW_CHARS) }))];
      }
      case 'message.deleted': {
        this.mine.delete(event.message_id);
        const changed = this.change(event.message_id, (message) => ({ ...message, content: '', is_deleted: true, attachments: [], reactions: [], mentions: [] }));
        return [...changed, ...this.changePreviews(event.message_id, (preview) => ({ ...preview, content: '', is_deleted: true }))];
      }
      case 'attachment.added':
        return this.change(event.message_id, (message) =>
          message.attachments.some((attachment) => attachment.id === event.attachment.id) ? message : { ...message, attachments: [...message.attachments, event.attachment] },
        );
      case 'reaction.added':
      case 'reaction.removed': {
        if (event.user_id === this.userId) {
          const mine = this.mine.get(event.message_id) ?? new Set<string>();
          if (event.type === 'reaction.added') mine.add(event.emoji);
          else mine.delete(event.emoji);
          this.mine.set(event.message_id, mine);
        }
        return this.change(event.message_id, (message) => ({ ...message, reactions: applyReaction(message.reactions, event) }));
      }
      default:
        return [];
    }
  }

  private change(id: number, update: (message: MessageView) => MessageView): MessageView[] {
    const held = this.byId.get(id);
    if (!held) return [];
    const next = update(held);
    if (next === held) return [];
    this.byId.set(id, next);
    return [next];
  }

  private changePreviews(originalId: number, update: (preview: ReplyPreviewView) => ReplyPreviewView): MessageView[] {
    const changed: MessageView[] = [];
    for (const [id, message] of this.byId) {
      if (message.reply_to?.id !== originalId) continue;
      const next = { ...message, reply_to: update(message.reply_to) };
      this.byId.set(id, next);
      changed.push(next);
    }
    return changed;
  }
}
