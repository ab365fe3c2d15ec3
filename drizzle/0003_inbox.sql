DROP INDEX "participants_user_idx";--> statement-breakpoint
ALTER TABLE "conversation_events" ALTER COLUMN "message_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "conversations" ADD COLUMN "title" text;--> statement-breakpoint
ALTER TABLE "conversations" ADD COLUMN "kind" text DEFAULT 'group' NOT NULL;--> statement-breakpoint
ALTER TABLE "conversations" ADD COLUMN "direct_key" text;--> statement-breakpoint
ALTER TABLE "conversations" ADD COLUMN "member_count" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "conversations" ADD COLUMN "message_count" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "participants" ADD COLUMN "role" text DEFAULT 'member' NOT NULL;--> statement-breakpoint
ALTER TABLE "participants" ADD COLUMN "last_read_seq" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "participants" ADD COLUMN "read_count" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "participants" ADD COLUMN "activity_at" timestamp with time zone DEFAULT now() NOT NULL;--> statement-breakpoint
ALTER TABLE "participants" ADD COLUMN "large" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "conversation_events" ADD COLUMN "user_id" integer;--> statement-breakpoint
ALTER TABLE "conversation_events" ADD COLUMN "payload" text;--> statement-breakpoint
ALTER TABLE "conversation_events" ADD COLUMN "message_count" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "conversations_direct_key" ON "conversations" USING btree ("direct_key") WHERE "conversations"."direct_key" is not null;--> statement-breakpoint
CREATE INDEX "participants_inbox_idx" ON "participants" USING btree ("user_id","activity_at","conversation_id");--> statement-breakpoint
CREATE INDEX "participants_large_idx" ON "participants" USING btree ("user_id") WHERE "participants"."large";--> statement-breakpoint
CREATE INDEX "participants_joined_idx" ON "participants" USING btree ("conversation_id","joined_at","user_id");--> statement-breakpoint
CREATE INDEX "messages_deleted_idx" ON "messages" USING btree ("conversation_id","seq") WHERE "messages"."is_deleted";--> statement-breakpoint
ALTER TABLE "conversations" ADD CONSTRAINT "conversations_kind_check" CHECK ("conversations"."kind" in ('direct', 'group'));--> statement-breakpoint
ALTER TABLE "participants" ADD CONSTRAINT "participants_role_check" CHECK ("participants"."role" in ('owner', 'admin', 'member'));--> statement-breakpoint
-- Backfill (hand-written): creators own their conversations, counts start from the stored rows,
-- and existing history counts as read (no member wakes up to every old message as unread).
UPDATE "participants" p SET "role" = 'owner' FROM "conversations" c WHERE c."id" = p."conversation_id" AND c."created_by_id" = p."user_id";--> statement-breakpoint
UPDATE "conversations" c SET "member_count" = (SELECT count(*) FROM "participants" p WHERE p."conversation_id" = c."id"),
  "message_count" = (SELECT count(*) FROM "messages" m WHERE m."conversation_id" = c."id");--> statement-breakpoint
UPDATE "conversation_events" e SET "message_count" = r."n" FROM (
  SELECT "conversation_id", "seq", count(*) FILTER (WHERE "kind" = 1) OVER (PARTITION BY "conversation_id" ORDER BY "seq") AS "n"
    FROM "conversation_events") r
 WHERE r."conversation_id" = e."conversation_id" AND r."seq" = e."seq";--> statement-breakpoint
UPDATE "participants" p SET "last_read_seq" = c."last_seq", "read_count" = c."message_count" FROM "conversations" c WHERE c."id" = p."conversation_id";
--> statement-breakpoint
-- Inbox order: each membership starts at its conversation's activity; conversations above 100 members
-- (INBOX_TRACKED_MEMBERS) are read live instead (src/conversations/inbox-order.ts).
UPDATE "participants" p SET "activity_at" = coalesce(c."last_message_at", c."created_at"), "large" = c."member_count" > 100 FROM "conversations" c WHERE c."id" = p."conversation_id";
