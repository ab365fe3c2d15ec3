import postgres from 'postgres';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * Holds a conversation row's lock from a connection of the test's own (as another replica's
 * transaction would) until `release()`; resolves once the lock is held. `done` settles when
 * the holding transaction has ended.
 */
export async function holdConversationRow(t: Teardown, url: string, conversationId: number): Promise<{ release(): void; done: Promise<void> }> {
  const holder = postgres(url, { max: 1, onnotice: () => {} });
  t.teardown(() => holder.end({ timeout: 1 }));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let held!: () => void;
  const locked = new Promise<void>((resolve) => (held = resolve));
  const done = holder
    .begin(async (tx) => {
      await tx`select id from conversations where id = ${conversationId} for update`;
      held();
      await released;
    })
    .then(() => undefined);
  await locked;
  return { release, done };
}
