// Host-local exclusive locks between vztpl processes (concurrent pulls of one layer, creates of
// one CTID, edits of a users file). A lock is a file created with O_EXCL holding the owner's
// pid; a lock whose owner is dead (kill -9, crash) is taken over. Node has no flock(2), and a pid-based lock is exact
// on one host where mtime-based ones (proper-lockfile) must guess staleness during long work.
// The file operations are synchronous: each is one quick syscall on a local file, and the
// `create` path saves the thread-pool round trips and the fs/promises module load.
import { fs } from './builtins.ts';
import { dirname } from 'node:path';
import { pidAlive } from './pids.ts';

export interface Lock {
  release(): void;
}

function tryAcquire(path: string): Lock | undefined {
  try {
    const fd = fs.openSync(path, 'wx', 0o644);
    try {
      fs.writeSync(fd, `${process.pid}\n`);
    } finally {
      fs.closeSync(fd);
    }
    return { release: () => fs.rmSync(path, { force: true }) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return undefined;
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
  fs.mkdirSync(dirname(path), { recursive: true });
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  for (;;) {
    opts.signal?.throwIfAborted();
    if (Date.now() > deadline) throw new LockTimeoutError(path);
    const lock = tryAcquire(path);
    if (lock) return lock;
    if (opts.ready && (await opts.ready())) return undefined;
    const owner = lockOwner(path);
    if (Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) {
      // The owner died: remove its lock (only if it still is that owner's) and retry at once.
      if (lockOwner(path) === owner) fs.rmSync(path, { force: true });
      continue;
    }
    await new Promise((resolve) => setTimeout(resolve, opts.pollMs ?? 50));
  }
}

/** The pid in a lock file; NaN when it is gone or (being written) empty. */
function lockOwner(path: string): number {
  try {
    return Number(fs.readFileSync(path, 'utf8').trim() || NaN);
  } catch {
    return NaN;
  }
}

/** Waits until the lock is ours (at most timeoutMs, when given). */
export async function lockExclusive(path: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Lock> {
  return (await acquire(path, opts))!;
}

export class LockTimeoutError extends Error {
  constructor(path: string) {
    super(`${path} is held by a running process; try again when it is done`);
    this.name = 'LockTimeoutError';
  }
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
