/** What clients see: API.md's shapes, plus fields it allows adding. */
export interface AttachmentView {
  id: number;
  file: string;
  uploaded_at: string;
  filename: string;
  content_type: string;
  size: number;
}

export interface MessageView {
  id: number;
  conversation_id: number;
  sender: string;
  sender_id: number;
  content: string;
  timestamp: string;
  is_edited: boolean;
  is_deleted: boolean;
  edited_at: string | null;
  client_id: string | null;
  seq: number;
  attachments: AttachmentView[];
}

interface EventBase {
  seq: number;
  conversation_id: number;
}

/** A conversation event: numbered by `seq`, stored in the event log, published after commit. */
export type ConversationEvent =
  | (EventBase & { type: 'chat.message'; message: MessageView })
  | (EventBase & {
      type: 'message.edited';
      message: { id: number; content: string; is_edited: true; edited_at: string | null };
    })
  | (EventBase & { type: 'message.deleted'; message_id: number })
  | (EventBase & { type: 'attachment.added'; message_id: number; attachment: AttachmentView });
