// Host-local exclusive locks between vztpl processes (concurrent pulls of one layer, creates of
// one CTID, prunes, edits of a users file). Node has no flock(2); a lock is a file naming its
// owner (pid, boot and process start time), which is exact on one host where mtime-based locks
// (proper-lockfile) must guess staleness during long work.
//
// - The owner is written before the lock exists: a temporary file is hard-linked to the lock path,
//   which fails with EEXIST when the lock is taken. A lock file is never seen without its owner.
// - A lock whose owner is gone (kill -9, a reboot, a pid reused by another program) is taken over.
//   Take-overs of one lock are serialized by a short-lived guard file, so two waiters cannot both
//   remove it, one of them removing the other's fresh lock.
// - A process asking again for a lock it holds fails at once, naming the lock: waiting would be
//   waiting for itself.
// - Waits are bounded: past the deadline the error names the lock and its owner.
// The file operations are synchronous: each is one quick syscall on a local file, and the
// `create` path saves the thread-pool round trips and the fs/promises module load.
import { fs } from './builtins.ts';
import { dirname, resolve } from 'node:path';
import { ExitCode, VztplError } from './errors.ts';
import { ownerAlive, processIdentity } from './pids.ts';

export interface Lock {
  release(): void;
}

/** How long a lock is waited for unless the caller says otherwise: VZTPL_LOCK_WAIT seconds, or a minute. */
export function defaultLockWaitMs(): number {
  const seconds = Number(process.env.VZTPL_LOCK_WAIT);
  return process.env.VZTPL_LOCK_WAIT && Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 60_000;
}
/** A lock file older than this whose owner cannot be read was left by a crashed writer. */
const UNREADABLE_GRACE_MS = 2_000;

/** Locks this process holds, by absolute path. */
const held = new Set<string>();
let tmpSequence = 0;

export type LockErrorKind = 'held-by-self' | 'timeout';

/** A lock that cannot be taken: `kind` says why, `path` and `owner` which one and whose. */
export class LockError extends VztplError {
  readonly kind: LockErrorKind;
  readonly path: string;
  readonly owner: string | undefined;
  constructor(kind: LockErrorKind, path: string, owner: string | undefined) {
    const who = owner ? `process ${owner.split(' ')[0]}` : 'another process';
    super(
      kind === 'held-by-self'
        ? `lock ${path} is already held by this process (${process.pid}); taking it again would wait forever`
        : `lock ${path} is held by ${who}, which is still running; try again when it is done`,
      kind === 'held-by-self' ? ExitCode.failure : ExitCode.conflict,
    );
    this.kind = kind;
    this.path = path;
    this.owner = owner;
  }
}

/** The pid in the name of a lock's temporary file (`NAME.PID.N.tmp`), for sweeping a dead one's. */
export function lockTempOwner(name: string): number | undefined {
  return Number(/\.(\d+)\.\d+\.tmp$/.exec(name)?.[1]) || undefined;
}

/** Creates `path` holding `content`, or returns false when it exists. */
function createWithContent(path: string, content: string): boolean {
  const tmp = `${path}.${process.pid}.${++tmpSequence}.tmp`;
  fs.writeFileSync(tmp, content, { mode: 0o644 });
  try {
    fs.linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function tryAcquire(path: string): Lock | undefined {
  if (!createWithContent(path, `${processIdentity()}\n`)) return undefined;
  held.add(path);
  return {
    release: () => {
      held.delete(path);
      fs.rmSync(path, { force: true });
    },
  };
}

/** The owner line of a lock file, '' when it is unreadable or empty, undefined when it is gone. */
function readOwner(path: string): { owner: string; ageMs: number } | undefined {
  try {
    const owner = fs.readFileSync(path, 'utf8').trim();
    const ageMs = Date.now() - fs.statSync(path).mtimeMs;
    return { owner, ageMs };
  } catch {
    return undefined;
  }
}

/** Whether the lock's owner is proven gone: a dead process, or no owner long after creation. */
function isStale(info: { owner: string; ageMs: number }): boolean {
  if (!info.owner) return info.ageMs > UNREADABLE_GRACE_MS;
  const alive = ownerAlive(info.owner);
  return alive === undefined ? info.ageMs > UNREADABLE_GRACE_MS : !alive;
}

/** Removes the lock at `path` if it still has the stale owner `owner`; one take-over at a time. */
function takeOver(path: string, owner: string): void {
  const guard = `${path}.takeover`;
  if (!createWithContent(guard, `${processIdentity()}\n`)) {
    // Another waiter is taking it over; a guard left by a process that died there is removed.
    const g = readOwner(guard);
    if (g && isStale(g)) fs.rmSync(guard, { force: true });
    return;
  }
  try {
    if (readOwner(path)?.owner === owner) fs.rmSync(path, { force: true });
  } finally {
    fs.rmSync(guard, { force: true });
  }
}

/**
 * Waits until the lock is ours. `ready` is polled while waiting: when it returns true (another
 * process finished the work), undefined is returned without taking the lock.
 */
export async function acquire(
  path: string,
  opts: { ready?: () => Promise<boolean>; signal?: AbortSignal; pollMs?: number; timeoutMs?: number } = {},
): Promise<Lock | undefined> {
  const absolute = resolve(path);
  if (held.has(absolute)) throw new LockError('held-by-self', absolute, processIdentity());
  fs.mkdirSync(dirname(absolute), { recursive: true });
  const deadline = Date.now() + (opts.timeoutMs ?? defaultLockWaitMs());
  for (;;) {
    opts.signal?.throwIfAborted();
    const lock = tryAcquire(absolute);
    if (lock) return lock;
    if (opts.ready && (await opts.ready())) return undefined;
    const info = readOwner(absolute);
    if (info && info.owner === processIdentity()) throw new LockError('held-by-self', absolute, info.owner);
    if (info && isStale(info)) {
      takeOver(absolute, info.owner);
      continue;
    }
    if (Date.now() >= deadline) throw new LockError('timeout', absolute, info?.owner);
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 50));
  }
}

/** Waits until the lock is ours (at most timeoutMs, defaultLockWaitMs() unless given). */
export async function lockExclusive(path: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Lock> {
  return (await acquire(path, opts))!;
}

/** Runs fn holding the lock at `path`. */
export async function withLock<T>(path: string, fn: () => Promise<T>, opts: { timeoutMs?: number } = {}): Promise<T> {
  const lock = await lockExclusive(path, opts);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
