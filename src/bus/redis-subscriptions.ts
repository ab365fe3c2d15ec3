/** How the reconciler reaches the broker: the bus' current subscriber client. */
export interface SubscriptionLink {
  /**
   * SUBSCRIBE (`want`) or UNSUBSCRIBE `channel`. May throw synchronously (the client is down)
   * as well as reject.
   */
  send(channel: string, want: boolean): Promise<unknown>;
  /** Bumped whenever the subscriber client is replaced: a reply from an older one is moot. */
  generation(): number;
}

export interface BrokerSubscriptionsOptions {
  link: SubscriptionLink;
  /** Whether `channel` has local listeners now: what the broker side should match. */
  wanted(channel: string): boolean;
  isClosed(): boolean;
}

/**
 * The broker side of reference-counted subscriptions: one record per channel that has
 * listeners or that the broker may still hold.
 *
 * Guarantees:
 * - At most one broker command per channel is in flight. A channel's reconcile loop issues them
 *   one at a time until the broker matches `wanted`, which is what makes racing subscribe and
 *   unsubscribe calls end in the right state.
 * - A failed command (or one whose client was replaced meanwhile) leaves the channel `unknown`
 *   and stops its loop; the next `reconcile` or `resync` tries again.
 * - A channel nobody wants and the broker does not hold is forgotten once its loop is idle.
 */
export interface BrokerSubscriptions {
  /** Starts the channel's reconcile loop unless it runs already; resolves when it stops. */
  reconcile(channel: string): Promise<void>;
  /**
   * Reconciles until the broker holds `channel` while `attached()` (true), or until a loop
   * stops without that (false: read `lastError`). Returns false at once when closed.
   */
  hold(channel: string, attached: () => boolean): Promise<boolean>;
  /** Why the channel's last command failed; undefined after a success. */
  lastError(channel: string): unknown;
  /** Starts a loop on every idle channel the broker does not match (a restore). */
  resync(): void;
  /** Resolves once no loop runs, including loops started while waiting. */
  settled(): Promise<void>;
  /** The connection went away with its subscriptions: what it held is `unknown` now. */
  connectionLost(): void;
  /**
   * A new connection holds nothing: idle channels are `off`. Channels with a command in flight
   * are left alone: that command went out on the new connection (or ends `unknown`).
   */
  connectionReplaced(): void;
  /** Channels the broker is known to hold. */
  held(): string[];
  /** Wanted channels the broker is not known to hold, with why their last command failed. */
  missing(): { channel: string; lastError: unknown }[];
  /** Channels tracked (wanted, or possibly held). */
  size(): number;
  clear(): void;
}

/** `unknown`: a command failed, or its client went away; the next restore settles it. */
type BrokerState = 'off' | 'on' | 'unknown';

interface ChannelState {
  broker: BrokerState;
  busy: boolean;
  done: Promise<void>;
  lastError: unknown;
}

export function createBrokerSubscriptions({ link, wanted, isClosed }: BrokerSubscriptionsOptions): BrokerSubscriptions {
  const channels = new Map<string, ChannelState>();

  const stateOf = (channel: string): ChannelState => {
    let state = channels.get(channel);
    if (!state) {
      state = { broker: 'off', busy: false, done: Promise.resolve(), lastError: undefined };
      channels.set(channel, state);
    }
    return state;
  };

  const inSync = (channel: string, state: ChannelState): boolean => state.broker === (wanted(channel) ? 'on' : 'off');

  const prune = (channel: string, state: ChannelState): void => {
    if (!state.busy && !wanted(channel) && state.broker === 'off' && channels.get(channel) === state) {
      channels.delete(channel);
    }
  };

  const kick = (channel: string, state: ChannelState): Promise<void> => {
    if (!state.busy) {
      // Set before the loop starts because the loop may finish synchronously.
      state.busy = true;
      state.done = loop(channel, state);
    }
    return state.done;
  };

  const loop = async (channel: string, state: ChannelState): Promise<void> => {
    // `busy` is cleared in the same tick as the decision to stop, so a change made after that
    // starts a new loop instead of waiting on one that will not look again.
    while (!isClosed() && !inSync(channel, state)) {
      const want = wanted(channel);
      const sentOn = link.generation();
      try {
        await link.send(channel, want);
        state.broker = sentOn !== link.generation() ? 'unknown' : want ? 'on' : 'off';
        state.lastError = undefined;
      } catch (err) {
        state.broker = 'unknown';
        state.lastError = err;
        break;
      }
    }
    state.busy = false;
    prune(channel, state);
  };

  return {
    reconcile: (channel) => kick(channel, stateOf(channel)),

    async hold(channel, attached) {
      const state = stateOf(channel);
      for (;;) {
        await kick(channel, state);
        if (isClosed()) return false;
        if (state.broker === 'on' && attached()) return true;
        if (!state.busy) return false;
      }
    },

    lastError: (channel) => channels.get(channel)?.lastError,

    resync() {
      for (const [channel, state] of channels) {
        if (!state.busy && !inSync(channel, state)) void kick(channel, state);
      }
    },

    async settled() {
      for (;;) {
        const running = [...channels.values()].filter((state) => state.busy).map((state) => state.done);
        if (running.length === 0) return;
        await Promise.all(running);
      }
    },

    connectionLost() {
      for (const state of channels.values()) if (state.broker === 'on') state.broker = 'unknown';
    },

    connectionReplaced() {
      for (const [channel, state] of channels) {
        if (state.busy) continue;
        state.broker = 'off';
        prune(channel, state);
      }
    },

    held: () => [...channels].filter(([, state]) => state.broker === 'on').map(([channel]) => channel),

    missing: () =>
      [...channels]
        .filter(([channel, state]) => wanted(channel) && state.broker !== 'on')
        .map(([channel, state]) => ({ channel, lastError: state.lastError })),

    size: () => channels.size,
    clear: () => channels.clear(),
  };
}
