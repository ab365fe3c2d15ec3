/**
 * Finding the read-write server among a multi-host `DATABASE_URL`
 * (`postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write`), as libpq does it.
 *
 * postgres.js parses such URLs but gets two things wrong for a failover (3.4.x):
 * - its `read-write` check looks only at `default_transaction_read_only`, which is `off` on
 *   a hot standby, so a standby is accepted as read-write (libpq also requires
 *   `in_hot_standby = off`), and every write on that connection fails with 25006;
 * - each pooled connection steps to the next host on every reconnect, so a connection that
 *   is closed (idle timeout, lifetime, a terminated backend) comes back on the standby even
 *   when the primary is up; and with no acceptable host at all, a connection attempt cycles
 *   through the hosts without end and the statement waiting for it is never answered.
 *
 * So with several hosts and `read-write` (or `primary`), the pool is handed a URL with one
 * host and a `socket` factory that connects to the host this module located: each host is
 * probed (in parallel; the first acceptable one in URL order wins, as in libpq), the answer
 * is kept until a connection to it fails or a statement answers 25006, and sockets to any
 * other host are then destroyed so the pool reconnects to the new read-write server. With no
 * acceptable host, the socket fails at once with `NO_READ_WRITE_HOST` (an `unavailable`
 * error, so a 503) instead of the statement waiting.
 */
import { Socket } from 'node:net';
import postgres from 'postgres';
import { NO_READ_WRITE_HOST } from './errors.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** What the pool connects with: a URL naming one host, and for a multi-host URL the host chooser. */
export interface PostgresTarget {
  /** The URL to hand to postgres.js (one host, no `target_session_attrs` when `socket` is set). */
  readonly url: string;
  /** For postgres.js's `socket` option; absent for a single host or no read-write requirement. */
  readonly socket?: () => Promise<Socket>;
  /** A statement failed read-only (25006): find the read-write server again. */
  readOnlyAnswered(): void;
  /** Every host of the URL, in order (for messages). */
  readonly hosts: readonly HostPort[];
}

/** How long a "no host is read-write" answer stands before the next connection probes again. */
const NO_HOST_RECHECK_MS = 100;

interface UrlParts {
  readonly prefix: string;
  readonly userinfo: string;
  readonly hosts: HostPort[];
  readonly rest: string;
}

/** Splits `scheme://userinfo@h1:p1,h2:p2/db?query` as postgres.js does (hosts are not valid for `new URL`). */
function splitUrl(url: string): UrlParts | undefined {
  const schemeEnd = url.indexOf('://');
  if (schemeEnd < 0) return undefined;
  const afterScheme = url.slice(schemeEnd + 3);
  const authority = afterScheme.split(/[?/]/)[0] ?? '';
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at + 1) : '';
  const hostList = authority.slice(at + 1);
  const hosts = hostList.split(',').map((entry) => {
    const colon = entry.lastIndexOf(':');
    return colon > 0 ? { host: entry.slice(0, colon), port: Number(entry.slice(colon + 1)) } : { host: entry, port: 5432 };
  });
  return { prefix: url.slice(0, schemeEnd + 3), userinfo, hosts, rest: afterScheme.slice(authority.length) };
}

/** `rest` (`/db?query`) without `target_session_attrs`. */
function withoutTargetAttrs(rest: string): string {
  const question = rest.indexOf('?');
  if (question < 0) return rest;
  const params = new URLSearchParams(rest.slice(question + 1));
  params.delete('target_session_attrs');
  const query = params.toString();
  return rest.slice(0, question) + (query ? `?${query}` : '');
}

const targetAttrs = (rest: string): string | null => {
  const question = rest.indexOf('?');
  return question < 0 ? null : new URLSearchParams(rest.slice(question + 1)).get('target_session_attrs');
};

const hostUrl = (parts: UrlParts, { host, port }: HostPort): string =>
  `${parts.prefix}${parts.userinfo}${host.includes(':') ? `[${host}]` : host}:${port}${withoutTargetAttrs(parts.rest)}`;

export function postgresTarget(url: string, connectMs: number): PostgresTarget {
  const parts = splitUrl(url);
  const attrs = parts ? targetAttrs(parts.rest) : null;
  if (!parts || parts.hosts.length < 2 || (attrs !== 'read-write' && attrs !== 'primary')) {
    return { url, readOnlyAnswered: () => {}, hosts: parts?.hosts ?? [] };
  }
  const locator = new ReadWriteLocator(parts, attrs, connectMs);
  // The first host names the server in postgres.js's error messages; `socket` decides where it goes.
  const first = parts.hosts[0] as HostPort;
  return { url: hostUrl(parts, first), socket: () => locator.socket(), readOnlyAnswered: () => locator.forget(), hosts: parts.hosts };
}

class ReadWriteLocator {
  /** The located server, or undefined when none is known (probe on the next connection). */
  private current: HostPort | undefined;
  private probing: Promise<HostPort | undefined> | undefined;
  private noHostUntil = 0;
  private readonly open = new Set<Socket>();

  constructor(
    private readonly parts: UrlParts,
    private readonly attrs: 'read-write' | 'primary',
    private readonly connectMs: number,
  ) {}

  async socket(): Promise<Socket> {
    const target = this.current ?? (await this.locate());
    if (!target) return failedSocket(this.parts.hosts);
    const socket = new PoolSocket().connect({ host: target.host, port: target.port });
    // postgres.js reads these for TLS (servername) and its error messages.
    Object.assign(socket, { host: target.host, port: target.port });
    this.open.add(socket);
    let reached = false;
    socket.once('connect', () => (reached = true));
    // The located server refused or stopped answering (postgres.js's connect timeout destroys
    // the socket without an error): the next connection looks again.
    const lost = (): void => {
      if (this.current === target) this.current = undefined;
    };
    socket.once('error', lost);
    socket.once('close', () => {
      this.open.delete(socket);
      if (!reached) lost();
    });
    return socket;
  }

  /** A statement answered read-only: the server we use is not (or no longer) read-write. */
  forget(): void {
    this.current = undefined;
    this.noHostUntil = 0;
    // Probe now, so connections to a host that is no longer read-write are closed promptly.
    void this.locate();
  }

  private locate(): Promise<HostPort | undefined> {
    if (this.probing) return this.probing;
    if (Date.now() < this.noHostUntil) return Promise.resolve(undefined);
    const probing = this.probeAll().then((found) => {
      this.probing = undefined;
      this.current = found;
      if (!found) this.noHostUntil = Date.now() + NO_HOST_RECHECK_MS;
      // Connections opened before the switch (or to a server since fenced read-only) would
      // answer every write with 25006 for as long as they live: close them now.
      for (const socket of this.open) {
        if (!found || !sameHost(socket, found)) socket.destroy();
      }
      return found;
    });
    this.probing = probing;
    return probing;
  }

  private async probeAll(): Promise<HostPort | undefined> {
    const answers = await Promise.all(this.parts.hosts.map((host) => this.acceptable(host)));
    return this.parts.hosts.find((_host, index) => answers[index]);
  }

  /** libpq's rule: `primary` is not in hot standby; `read-write` also needs `default_transaction_read_only` off. */
  private async acceptable(host: HostPort): Promise<boolean> {
    const probe = postgres(hostUrl(this.parts, host), {
      max: 1,
      connect_timeout: Math.max(this.connectMs / 1000, 0.1),
      fetch_types: false,
      onnotice: () => {},
      connection: { application_name: 'chat-service-probe' },
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      const deadline = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error('probe timed out')), this.connectMs);
      });
      const [row] = await Promise.race([
        probe<{ standby: boolean; read_only: string }[]>`select pg_is_in_recovery() as standby, current_setting('default_transaction_read_only') as read_only`,
        deadline,
      ]);
      if (!row || row.standby) return false;
      return this.attrs === 'primary' || row.read_only !== 'on';
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
      void probe.end({ timeout: 0 }).catch(() => {});
    }
  }
}

/**
 * A socket that tells postgres.js it died only when postgres.js has no write pending: 'error'
 * and 'close' are held (together, in order: postgres.js answers every statement sent on the
 * connection when it sees them) until postgres.js writes again (released from inside that
 * write) or two turns of the event loop pass without a write. It was the workaround for the
 * driver's armed-flush fault, which the patch (patches/postgres+3.4.9.patch) now fixes; it
 * stays because without it a statement sent as a terminated backend's close arrived was
 * left unanswered (test/database-read-write-host.test.ts, 3 runs of 15 with both cores busy,
 * against none of that kind with it). That second fault is not located in the driver yet.
 */
class PoolSocket extends Socket {
  private held: [string | symbol, unknown[]][] | undefined;

  private released = false;

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (this.released || (event !== 'error' && event !== 'close')) return super.emit(event, ...args);
    if (!this.held) {
      this.held = [];
      setImmediate(() => setImmediate(() => this.release()));
    }
    this.held.push([event, args]);
    return true;
  }

  constructor() {
    super();
    // Socket.write's overloads, kept: only postgres.js writes here.
    const write = Socket.prototype.write as (...args: unknown[]) => boolean;
    this.write = ((...args: unknown[]): boolean => {
      if (!this.held) return write.apply(this, args);
      this.release();
      return false;
    }) as Socket['write'];
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    const held = this.held ?? [];
    this.held = undefined;
    for (const [event, args] of held) super.emit(event, ...args);
  }
}

const sameHost = (socket: Socket, { host, port }: HostPort): boolean => {
  const target = socket as Socket & Partial<HostPort>;
  return target.host === host && target.port === port;
};

/** A socket that fails at once, so the statement waiting for a connection is answered (503) rather than held. */
function failedSocket(hosts: readonly HostPort[]): Socket {
  const socket = new PoolSocket();
  const error = Object.assign(new Error(`no read-write PostgreSQL server among ${hosts.map((h) => `${h.host}:${h.port}`).join(', ')}`), {
    code: NO_READ_WRITE_HOST,
  });
  setImmediate(() => socket.destroy(error));
  return socket;
}
