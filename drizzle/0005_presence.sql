ALTER TABLE "users" ADD COLUMN "last_seen_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "mentions" text[];--> statement-breakpoint
CREATE UNIQUE INDEX "notifications_mention_key" ON "notifications" USING btree ("user_id","message_id") WHERE "notifications"."kind" = 'mention';