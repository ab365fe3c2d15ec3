import postgres from 'postgres';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * Holds a row lock from a connection of the test's own (as another replica's transaction
 * would) until `release()`: `lock` runs the locking statement in that transaction. Resolves
 * once the lock is held; `done` settles when the holding transaction has ended.
 */
export async function holdRow(t: Teardown, url: string, lock: (tx: postgres.TransactionSql) => Promise<unknown>): Promise<{ release(): void; done: Promise<void> }> {
  const holder = postgres(url, { max: 1, onnotice: () => {} });
  t.teardown(() => holder.end({ timeout: 1 }));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let held!: () => void;
  const locked = new Promise<void>((resolve) => (held = resolve));
  const done = holder
    .begin(async (tx) => {
      await lock(tx);
      held();
      await released;
    })
    .then(() => undefined);
  await locked;
  return { release, done };
}

/** Holds a conversation row's lock (see holdRow). */
export const holdConversationRow = (t: Teardown, url: string, conversationId: number) =>
  holdRow(t, url, (tx) => tx`select id from conversations where id = ${conversationId} for update`);
