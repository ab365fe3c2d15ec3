CREATE TABLE "search_progress" (
	"conversation_id" integer PRIMARY KEY NOT NULL,
	"indexed_seq" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
ALTER TABLE "search_progress" ADD CONSTRAINT "search_progress_conversation_id_conversations_id_fk" FOREIGN KEY ("conversation_id") REFERENCES "public"."conversations"("id") ON DELETE cascade ON UPDATE no action;