/**
 * Bounds concurrent uploads on this replica, per user and in all: each S3 upload buffers
 * parts in memory (about 15 MiB), so a few dozen at once would exhaust a small pod.
 * A limit of 0 is no limit.
 */
export class UploadGate {
  private total = 0;
  private readonly perUser = new Map<number, number>();

  constructor(
    private readonly maxPerUser: number,
    private readonly maxTotal: number,
  ) {}

  /** A function that frees the place, or null when either bound is reached. */
  tryEnter(userId: number): (() => void) | null {
    const mine = this.perUser.get(userId) ?? 0;
    if ((this.maxPerUser > 0 && mine >= this.maxPerUser) || (this.maxTotal > 0 && this.total >= this.maxTotal)) return null;
    this.total += 1;
    this.perUser.set(userId, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      const left = (this.perUser.get(userId) ?? 1) - 1;
      if (left === 0) this.perUser.delete(userId);
      else this.perUser.set(userId, left);
    };
  }
}
