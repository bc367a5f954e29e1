// The builds that share one cache share its downloaded packages (CACHE/packages/<family>) and
// package lists (CACHE/apt-lists). A package manager working directly in a shared directory is
// not safe while another build's does the same: apt takes fcntl locks there (archives/lock,
// lists/lock) and fails at once when another build's apt holds them ("Could not get lock ... It
// is held by process 0": the holder is in another build's pid namespace), and tools that write
// in place (mmdebstrap's sync-out, wget -O) let a reader see half a file.
//
// So each step works on a private copy of the shared directory in its own work dir: the shared
// files are hard-linked in (no copying, no downloading again), the tool downloads into the
// private directory (its partial/ and renames, as usual), and afterwards the new files are
// published into the shared directory by link(2) or by link and rename(2): they appear whole,
// and no build waits for another.
//
// Where a tool's own locks cannot be trusted and its cache cannot be made private cheaply (dnf:
// its lock files hold namespace pids, which another build's dnf reads as its own or as a host
// process's), holdSharedLock serializes the builds instead, only around what uses the cache.
import { copyFile, link, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultLockWaitMs, lockExclusive, type Lock } from '../common/lock.ts';

/** Which names of a shared directory are shared files (not locks, temporaries or subdirectories' names). */
export type NameFilter = (name: string) => boolean;

/** Debian packages as apt, mmdebstrap and debootstrap keep them. */
export const debFiles: NameFilter = (name) => name.endsWith('.deb') && !name.startsWith('.');
/** apt's list files (Release, Packages, Translation...), not its lock or the publishers' temporaries. */
export const aptListFiles: NameFilter = (name) => name !== 'lock' && !name.startsWith('.');

async function regularFiles(dir: string, keep: NameFilter): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  return entries.filter((e) => e.isFile() && keep(e.name)).map((e) => e.name);
}

/** Hard-links (copies, across filesystems) `src` to `dest`; false when `dest` exists. */
async function linkOrCopy(src: string, dest: string): Promise<boolean> {
  try {
    await link(src, dest);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EXDEV' && code !== 'EPERM') throw err;
  }
  // A copy under a temporary name, renamed into place: `dest` never holds part of a file.
  const tmp = `${dest}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await copyFile(src, tmp);
    await link(tmp, dest).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    return true;
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * A private working copy of a shared directory: `priv` (with an empty partial/) gets a hard
 * link of every shared file. Tools replace files by rename and remove them by unlink, which
 * leaves the shared ones alone.
 */
export async function seedPrivateDir(shared: string, priv: string, keep: NameFilter): Promise<void> {
  await mkdir(join(priv, 'partial'), { recursive: true });
  await mkdir(shared, { recursive: true });
  for (const name of await regularFiles(shared, keep)) {
    // A file unlinked meanwhile by nobody (the shared dirs only grow) or a concurrent oddity: skip it.
    await linkOrCopy(join(shared, name), join(priv, name)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
}

/**
 * Publishes the files of `priv` into `shared`, each appearing whole. 'add' links only names the
 * shared directory lacks (a .deb's name says its content); 'replace' also replaces shared files
 * that the private copy changed (apt's lists after an update), by rename.
 */
export async function publishPrivateDir(priv: string, shared: string, keep: NameFilter, mode: 'add' | 'replace'): Promise<void> {
  await mkdir(shared, { recursive: true });
  for (const name of await regularFiles(priv, keep)) {
    const src = join(priv, name);
    const dest = join(shared, name);
    if (mode === 'add') {
      await linkOrCopy(src, dest);
      continue;
    }
    const [a, b] = await Promise.all([stat(src), stat(dest).catch(() => undefined)]);
    if (b && a.ino === b.ino && a.dev === b.dev) continue;
    const tmp = join(shared, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      await linkOrCopy(src, tmp);
      await rename(tmp, dest);
    } finally {
      await rm(tmp, { force: true });
    }
  }
}

/**
 * How long a build waits for another's package step on a shared cache unless VZTPL_LOCK_WAIT
 * says otherwise: such a step downloads and installs, which takes minutes, not seconds.
 */
export const PACKAGE_LOCK_WAIT_MS = 30 * 60_000;

/** Runs fn with `work` (or, when absent, a temporary dir removed afterwards) as a private work dir. */
export async function withWorkDir<T>(work: string | undefined, fn: (dir: string) => Promise<T>): Promise<T> {
  if (work) return fn(work);
  const dir = await mkdtemp(join(tmpdir(), 'vztpl-packages-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Paths this process is waiting for or holds, chained: lock.ts refuses a lock its own process holds. */
const inProcess = new Map<string, Promise<void>>();

/**
 * An exclusive vztpl lock (common/lock.ts) between the builds that share a cache, and between
 * concurrent builds in this process. Bounded by `timeoutMs` (VZTPL_LOCK_WAIT, or the given
 * default); the timeout error names the lock and its holder.
 */
export async function holdSharedLock(path: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Lock> {
  const timeoutMs = process.env.VZTPL_LOCK_WAIT ? defaultLockWaitMs() : (opts.timeoutMs ?? defaultLockWaitMs());
  const before = inProcess.get(path) ?? Promise.resolve();
  let done!: () => void;
  const mine = new Promise<void>((resolve) => (done = resolve));
  const tail = before.then(() => mine);
  inProcess.set(path, tail);
  const leave = () => {
    done();
    if (inProcess.get(path) === tail) inProcess.delete(path);
  };
  try {
    await before;
    const lock = await lockExclusive(path, { signal: opts.signal, timeoutMs });
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        lock.release();
        leave();
      },
    };
  } catch (err) {
    leave();
    throw err;
  }
}
