import type { PresenceChange, PresenceStore } from './presence-store.js';

/** One process only: the embedded default. */
export function createMemoryPresenceStore(): PresenceStore {
  const online = new Set<number>();
  const listeners: ((change: PresenceChange) => void)[] = [];
  const emit = (change: PresenceChange) => {
    for (const listener of listeners) listener(change);
  };
  return {
    arrive(userId) {
      if (online.has(userId)) return;
      online.add(userId);
      emit({ userId, status: 'online' });
    },
    depart(userId) {
      if (!online.delete(userId)) return;
      emit({ userId, status: 'offline' });
    },
    async online(userIds) {
      return new Set(userIds.filter((id) => online.has(id)));
    },
    onChange: (listener) => void listeners.push(listener),
    async close() {
      online.clear();
    },
  };
}
