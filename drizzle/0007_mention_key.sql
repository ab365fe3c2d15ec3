-- A mention's uniqueness moves to a column of its own: the notification flush rewrites
-- message_id on every "new messages" row with each message, and as an indexed column (in this
-- partial index) it made each of those updates non-HOT. Replicas of the previous version
-- name the old key in their flush's ON CONFLICT and fail it until they are replaced.
DROP INDEX "notifications_mention_key";--> statement-breakpoint
ALTER TABLE "notifications" ADD COLUMN "mention_message_id" bigint;--> statement-breakpoint
UPDATE "notifications" SET "mention_message_id" = "message_id" WHERE "kind" = 'mention';--> statement-breakpoint
CREATE UNIQUE INDEX "notifications_mention_key" ON "notifications" USING btree ("user_id","mention_message_id") WHERE "notifications"."kind" = 'mention';
