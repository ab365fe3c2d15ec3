/**
 * Which recipient has seen which message of a run: one bit per (message, member slot). A
 * conversation may have thousands of members (the crowd workload), so a fixed-width mask per
 * message (the 32-bit one before) would alias slot 32 onto slot 0 and count real first
 * deliveries as duplicates.
 */
export class DeliverySet {
  private readonly bits: Uint8Array;

  /** `messages` of the run, each for recipients in slots 0 to `slots` - 1. */
  constructor(
    readonly messages: number,
    readonly slots: number,
  ) {
    if (!Number.isInteger(messages) || messages < 0 || !Number.isInteger(slots) || slots < 1) {
      throw new RangeError(`DeliverySet: ${messages} messages, ${slots} slots`);
    }
    this.bits = new Uint8Array(Math.ceil((messages * slots) / 8));
  }

  /** Whether `message` is one of the run's and `slot` one of its recipients' positions. */
  holds(message: number, slot: number): boolean {
    return Number.isInteger(message) && message >= 0 && message < this.messages && Number.isInteger(slot) && slot >= 0 && slot < this.slots;
  }

  /** Marks a delivery; false when it was marked already (a duplicate). Only for `holds` pairs. */
  mark(message: number, slot: number): boolean {
    const bit = message * this.slots + slot;
    const byte = bit >>> 3;
    const mask = 1 << (bit & 7);
    if (this.bits[byte]! & mask) return false;
    this.bits[byte]! |= mask;
    return true;
  }
}

/** The slot count a run's set needs: one past the highest member position among the senders' conversations. */
export const slotsOf = (members: readonly { slot: number; conversation: { members: readonly unknown[] } }[]): number =>
  members.reduce((most, m) => Math.max(most, m.slot + 1, m.conversation.members.length), 1);
