import type { SocketSlots } from './socket-slots.js';

/** One process only: the embedded default. */
export function createMemorySocketSlots(): SocketSlots {
  const slots = new Map<number, Set<string>>();
  return {
    async acquire(userId, socketId, limit) {
      if (limit === 0) return true;
      let held = slots.get(userId);
      if (!held) slots.set(userId, (held = new Set()));
      if (held.size >= limit) return false;
      held.add(socketId);
      return true;
    },
    release(userId, socketId) {
      const held = slots.get(userId);
      if (!held) return;
      held.delete(socketId);
      if (held.size === 0) slots.delete(userId);
    },
    async close() {
      slots.clear();
    },
  };
}
