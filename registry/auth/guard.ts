// What Basic credentials may cost the registry. A password check is scrypt: ~100 ms of a core
// and a libuv thread-pool thread, the pool that file I/O (manifests, the users file) also needs.
// So that guessing cannot starve other requests:
//
// - failed checks are limited per client address (IPv6: per /64) and per user name, as token
//   buckets: `failuresPerAddress` / `failuresPerUser` at once, regained steadily over `window`
//   seconds. Over either, the answer is 429 at once, with no check. A check counts as failed
//   from the moment it is queued (so a burst cannot queue more than the allowance) and is given
//   back when it succeeds. An address that logged in as a user recently is exempt from that
//   user's limit, so guessing one user's password from elsewhere does not lock out the user;
// - checks run `checkConcurrency` at a time (default 1, of the pool's 4 threads), at most
//   `checkQueue` of them wait; beyond, the answer is 503 at once;
// - successful checks are remembered for `cacheTtl` seconds under a keyed hash of user and
//   password (never the password), forgotten when the users file changes.
import { createHmac, randomBytes } from 'node:crypto';
import type { RegistryConfig } from '../config.ts';
import { verifyPassword } from './password.ts';
import { USER_NAME, type CompiledUser } from './users.ts';

export type AuthLimits = RegistryConfig['auth']['limits'];

export type CheckResult =
  | { ok: true; user: CompiledUser }
  /** Wrong password, unknown user or malformed credentials. */
  | { ok: false; kind: 'invalid' }
  /** Too many failed logins from this address or for this user: `retryAfter` seconds. */
  | { ok: false; kind: 'limited'; by: 'address' | 'user'; retryAfter: number }
  /** Too many checks waiting already. */
  | { ok: false; kind: 'busy'; retryAfter: number };

export interface GuardLog {
  warn: (obj: object, msg: string) => void;
}

/** How long an address that logged in as a user stays exempt from that user's failure limit. */
const TRUST_MS = 12 * 3600_000;
const MAX_KEYS = 50_000;

/**
 * Token buckets by key, each holding up to `capacity` attempts and regaining them over
 * `windowMs`. Only buckets below capacity are kept, at most MAX_KEYS of them.
 */
export class Buckets {
  private readonly entries = new Map<string, { tokens: number; at: number }>();
  private readonly capacity: number;
  private readonly rate: number;
  constructor(capacity: number, windowMs: number) {
    this.capacity = capacity;
    this.rate = capacity / windowMs;
  }

  private level(key: string, now: number): number {
    const e = this.entries.get(key);
    return e ? Math.min(this.capacity, e.tokens + (now - e.at) * this.rate) : this.capacity;
  }

  private store(key: string, tokens: number, now: number): void {
    this.entries.delete(key); // re-inserted last: the map stays in order of last use
    if (tokens >= this.capacity) return;
    this.entries.set(key, { tokens, at: now });
    if (this.entries.size > MAX_KEYS) this.sweep(now);
  }

  /** Drops full buckets, then the least recently used, down to 90% of MAX_KEYS (amortized). */
  private sweep(now: number): void {
    for (const key of [...this.entries.keys()]) if (this.level(key, now) >= this.capacity) this.entries.delete(key);
    for (const key of this.entries.keys()) {
      if (this.entries.size <= MAX_KEYS * 0.9) break;
      this.entries.delete(key);
    }
  }

  /** Milliseconds until `key` has an attempt left (0: now). */
  wait(key: string, now: number): number {
    const tokens = this.level(key, now);
    return tokens >= 1 ? 0 : Math.ceil((1 - tokens) / this.rate);
  }

  take(key: string, now: number): void {
    this.store(key, this.level(key, now) - 1, now);
  }

  give(key: string, now: number): void {
    this.store(key, this.level(key, now) + 1, now);
  }

  get size(): number {
    return this.entries.size;
  }
}

export type Queued<T> = { ok: true; value: T } | { ok: false; kind: 'full' };

/** Runs tasks `concurrency` at a time, with at most `maxWaiting` waiting; refuses beyond. */
export class CheckQueue {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly concurrency: number;
  private readonly maxWaiting: number;
  constructor(concurrency: number, maxWaiting: number) {
    this.concurrency = concurrency;
    this.maxWaiting = maxWaiting;
  }

  async run<T>(task: () => Promise<T>): Promise<Queued<T>> {
    if (this.active >= this.concurrency) {
      if (this.waiting.length >= this.maxWaiting) return { ok: false, kind: 'full' };
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.active++;
    try {
      return { ok: true, value: await task() };
    } finally {
      // The slot passes straight to the next waiter (active stays counted).
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  get pending(): number {
    return this.active + this.waiting.length;
  }
}

/** The key an address is limited under: IPv4 as is (also IPv4-mapped IPv6), IPv6 by its /64. */
export function addressKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!ip.includes(':')) return ip;
  const bare = ip.replace(/%.*$/, '').toLowerCase();
  const [head, tail] = bare.includes('::') ? (bare.split('::') as [string, string]) : [bare, undefined];
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g || '0', 16).toString(16))
    .join(':')}::/64`;
}

export class PasswordGuard {
  private readonly key = randomBytes(32);
  private readonly byAddress: Buckets;
  private readonly byUser: Buckets;
  private readonly queue: CheckQueue;
  /** Successful checks: keyed hash of user and password -> the stored hash it matched, expiry. */
  private readonly cache = new Map<string, { hash: string; expires: number }>();
  /** Keyed hash of user and address -> expiry: addresses exempt from the user's limit. */
  private readonly trusted = new Map<string, number>();

  private readonly limits: AuthLimits;
  private readonly now: () => number;

  constructor(limits: AuthLimits, now: () => number = Date.now) {
    this.limits = limits;
    this.now = now;
    this.byAddress = new Buckets(limits.failuresPerAddress, limits.window * 1000);
    this.byUser = new Buckets(limits.failuresPerUser, limits.window * 1000);
    this.queue = new CheckQueue(limits.checkConcurrency, limits.checkQueue);
  }

  private digest(...parts: string[]): string {
    return createHmac('sha256', this.key).update(parts.join('\0')).digest('base64');
  }

  /** The users file changed: remembered checks may no longer hold. */
  usersChanged(): void {
    this.cache.clear();
  }

  /** Checks `password` for the user `name` (looked up with `lookup`) from client address `ip`. */
  async check(name: string, password: string, ip: string, lookup: (name: string) => Promise<CompiledUser | undefined>, log: GuardLog): Promise<CheckResult> {
    const now = this.now();
    const address = addressKey(ip);
    const pair = this.digest('trust', name, address);
    const trusted = (this.trusted.get(pair) ?? 0) > now;
    // Limits first, before the cache too: over them, no guess is answered at all.
    const waitAddress = this.byAddress.wait(address, now);
    const waitUser = trusted ? 0 : this.byUser.wait(name, now);
    if (waitAddress || waitUser) return { ok: false, kind: 'limited', by: waitAddress ? 'address' : 'user', retryAfter: Math.max(1, Math.ceil(Math.max(waitAddress, waitUser) / 1000)) };
    // Counted as failed until it succeeds: concurrent guesses cannot exceed the allowance.
    this.byAddress.take(address, now);
    // No user can have a malformed name: no check, and no bucket keyed by arbitrary text.
    if (!USER_NAME.test(name)) return this.failed(name, ip, address, true, 'malformed user name', log);
    if (!trusted) this.byUser.take(name, now);
    const refund = () => {
      const t = this.now();
      this.byAddress.give(address, t);
      if (!trusted) this.byUser.give(name, t);
    };
    const user = await lookup(name);
    const remembered = this.digest('pwd', name, password);
    const hit = user ? this.cache.get(remembered) : undefined;
    let ok = !!hit && hit.hash === user!.password && hit.expires > now;
    if (!ok) {
      const checked = await this.queue.run(() => verifyPassword(password, user?.password));
      if (!checked.ok) {
        refund();
        return { ok: false, kind: 'busy', retryAfter: 1 };
      }
      ok = checked.value && !!user;
      if (ok && this.limits.cacheTtl > 0) {
        if (this.cache.size >= 1000) this.cache.clear();
        this.cache.set(remembered, { hash: user!.password, expires: this.now() + this.limits.cacheTtl * 1000 });
      }
    }
    if (!ok || !user) return this.failed(name, ip, address, trusted, user ? 'wrong password' : 'no such user', log);
    refund();
    this.trusted.delete(pair);
    this.trusted.set(pair, this.now() + TRUST_MS);
    if (this.trusted.size > MAX_KEYS) this.trusted.delete(this.trusted.keys().next().value!);
    return { ok: true, user };
  }

  private failed(name: string, ip: string, address: string, trusted: boolean, why: string, log: GuardLog): CheckResult {
    const now = this.now();
    const retryAfter = Math.ceil(Math.max(this.byAddress.wait(address, now), trusted ? 0 : this.byUser.wait(name, now)) / 1000);
    log.warn({ audit: 'login-failed', user: name.slice(0, 64), address: ip, why, ...(retryAfter ? { refusedFor: retryAfter } : {}) }, 'failed login');
    return { ok: false, kind: 'invalid' };
  }

  /** Checks running or waiting (for tests and metrics). */
  get pendingChecks(): number {
    return this.queue.pending;
  }
}
