// The embedded default storage driver: a directory tree under `root`.
//
// Every change is atomic. New content is written to a temp file, fsynced, and renamed into
// place (rename replaces atomically); a create-only putContent links the temp file to the
// target instead, so exactly one of several concurrent writers wins (link fails with EEXIST
// for the others). Temp files live in one directory at the root whose name is outside the path
// grammar (`.~tmp`), so they never show in list or walk, and a writer that is cancelled or dies
// leaves nothing under the tree (not even an empty parent directory: parents are created at
// commit). Deleting a directory first renames it into the temp dir (it disappears at once) and
// then removes it. Empty parent directories are pruned after delete and move, so a directory
// exists exactly while something is below it, as on S3; writers that race with the pruning
// retry their rename.
//
// Metadata calls (open, mkdir, rename, link, unlink, rmdir, stat) are synchronous: on a local
// disk each is a few microseconds, where a thread-pool round trip and its promise cost more than
// the call. fsync and the writes of streamed content stay on the thread pool, and the fsyncs one
// change needs (the directories it appeared in) run side by side; a writer flushes in the
// background as it goes. putContent with `durable: false` (upload state) skips fsync.
// Measured pushing a 57.5 MB template with skopeo: 134 fsyncs, 227 ms of the push's 0.8 s, when
// every step fsynced in turn.
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  fdatasync,
  fstatSync,
  fsync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  statSync,
  unlinkSync,
  write,
  writeFileSync,
  writev,
  type Stats,
} from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import {
  checkDirPath,
  checkPath,
  InvalidOffsetError,
  isPathComponent,
  PathNotFoundError,
  StorageUnavailableError,
  type FileInfo,
  type FileWriter,
  type SendTo,
  type StorageDriver,
  type WriteOptions,
} from './driver.ts';
import { sendFileRange } from './send-file.ts';
import { Serial } from './serial.ts';

export interface FsDriverOptions {
  /** Directory holding the store; created if missing. */
  root: string;
}

const TMP_DIR = '.~tmp';

/**
 * Whose temp files are whose: a tag of this host and pid namespace, so that a process can tell
 * its own kind's files from those of other machines sharing the directory (where pids mean
 * nothing). Temp names are `<tag>.<pid>.<ms>-<random>[.del]`; names before the tag were
 * `<ms>-<random>[.del]`.
 */
const OWNER_TAG = (() => {
  let ns = '';
  try {
    ns = readlinkSync('/proc/self/ns/pid');
  } catch {
    // no /proc: the host alone
  }
  return createHash('sha256').update(`${hostname()}\0${ns}`).digest('hex').slice(0, 8);
})();
const TEMP_NAME = /^(?:([0-9a-f]{8})\.(\d+)\.)?\d+-[0-9a-f]{16}(?:\.del)?$/;

function tempName(suffix = ''): string {
  return `${OWNER_TAG}.${process.pid}.${Date.now()}-${randomBytes(8).toString('hex')}${suffix}`;
}

/** Whether a temp file's name says its process is gone: made here, by a pid that no longer runs. */
function ownerIsGone(name: string): boolean {
  const m = TEMP_NAME.exec(name);
  if (!m || m[1] !== OWNER_TAG) return false;
  const pid = Number(m[2]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return errno(err) === 'ESRCH'; // EPERM: it runs, as someone else
  }
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

const notFoundCodes = new Set(['ENOENT', 'ENOTDIR']);
/** The disk failing (EIO, a stale or lost network mount), full, read-only, or refusing access. */
const unavailableCodes = new Set(['EIO', 'ESTALE', 'ENOTCONN', 'ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EMFILE', 'ENFILE']);

/** Whether a file system error says the path is not there. */
function isMissing(err: unknown): boolean {
  return notFoundCodes.has(errno(err) ?? '');
}

/**
 * The driver contract's form of a file system error at storage path `path`: a missing path
 * is PathNotFoundError (unless `missing` is false: where the path was just there, or was
 * being created), a disk that fails or refuses is StorageUnavailableError, anything else is
 * left as it is.
 */
function fsError(err: unknown, path: string, missing = true): unknown {
  const code = errno(err);
  if (missing && notFoundCodes.has(code ?? '')) return new PathNotFoundError(path);
  if (code && unavailableCodes.has(code)) return new StorageUnavailableError(`storage unavailable: ${path}: ${code}`, { code, cause: err });
  return err;
}

/** Runs a synchronous file system call on behalf of storage path `path`, its errors as fsError has them. */
function onPath<T>(path: string, fn: () => T, missing = true): T {
  try {
    return fn();
  } catch (err) {
    throw fsError(err, path, missing);
  }
}

export class FsDriver implements StorageDriver {
  readonly name = 'filesystem';
  readonly root: string;
  private readonly tmp: string;
  private ready = false;

  /** Small objects (links, manifests) as last read, revalidated with a stat on every read. */
  private readonly small = new SmallFileCache();

  constructor(opts: FsDriverOptions) {
    this.root = resolve(opts.root);
    this.tmp = join(this.root, TMP_DIR);
  }

  private init(): void {
    if (this.ready) return;
    mkdirSync(this.tmp, { recursive: true });
    this.ready = true;
  }

  /**
   * The file system path of a storage path. The path grammar (checkPath: components of
   * [A-Za-z0-9._-], none '.' or '..') makes root + path the resolved path, under the root.
   */
  private full(path: string, dir = false): string {
    (dir ? checkDirPath : checkPath)(path);
    return path === '/' ? this.root : this.root + path;
  }

  private tempFile(): { path: string; fd: number } {
    this.init();
    const path = join(this.tmp, tempName());
    return { path, fd: openSync(path, 'wx', 0o644) };
  }

  /** Creates the parents of `file`; returns the directories whose entries changed (to fsync). */
  private makeParents(file: string): string[] {
    const parent = dirname(file);
    const made = mkdirSync(parent, { recursive: true });
    const changed = [parent];
    if (!made) return changed;
    // Directories from `made` down to `parent` are new: their entries live in their parents.
    for (let d = parent; ; d = dirname(d)) {
      changed.push(dirname(d));
      if (d === made || d.length <= this.root.length) break;
    }
    return changed;
  }

  /**
   * Runs a rename/link into `dest`, recreating parents if a concurrent prune removed them.
   * Returns the directories whose entries changed.
   */
  private place(dest: string, op: () => void): string[] {
    for (let attempt = 0; ; attempt++) {
      try {
        const changed = this.makeParents(dest);
        op();
        return changed;
      } catch (err) {
        // A concurrent prune can remove a parent between mkdir and rename, or in the middle of
        // a recursive mkdir (which then reports ENOTDIR): create the parents again.
        const code = errno(err);
        if ((code !== 'ENOENT' && code !== 'ENOTDIR') || attempt >= 20) throw err;
      }
    }
  }

  /** Removes empty directories from dirname(file) up to (not including) the root. */
  private prune(file: string): void {
    for (let d = dirname(file); d.length > this.root.length && d.startsWith(this.root + sep); d = dirname(d)) {
      try {
        rmdirSync(d);
      } catch {
        return; // not empty (or already gone): stop
      }
    }
  }

  // getContent and stat are synchronous. They serve the small objects of every manifest and
  // blob request (links, manifests, configs: bytes to a few MiB, page-cache hits on a local
  // disk): a synchronous read is four syscalls, microseconds, where fs/promises costs four
  // thread-pool round trips and their promises (measured: ~27% of a manifest GET's CPU); an
  // unchanged small object costs one stat (SmallFileCache). Blob bodies and writes stay
  // asynchronous.
  async getContent(path: string): Promise<Buffer> {
    const p = this.full(path);
    const content = onPath(path, () => this.small.read(p));
    if (!content) throw new PathNotFoundError(path); // a directory is not content
    return content;
  }

  async putContent(path: string, content: Buffer, opts: WriteOptions & { ifNotExists?: boolean } = {}): Promise<boolean> {
    const p = this.full(path);
    try {
      return await this.putFile(p, content, opts);
    } catch (err) {
      throw fsError(err, path, false);
    }
  }

  private async putFile(p: string, content: Buffer, opts: WriteOptions & { ifNotExists?: boolean }): Promise<boolean> {
    // Create-only onto something already there: refused before a temp file is written and
    // fsynced (the exclusive link below still decides any race).
    if (opts.ifNotExists && existsQuietly(p)) return false;
    const durable = opts.durable !== false;
    const tmp = this.tempFile();
    let placed = false;
    try {
      try {
        writeFileSync(tmp.fd, content);
        if (durable) await fsyncFd(tmp.fd);
      } finally {
        closeSync(tmp.fd);
      }
      let changed: string[];
      if (opts.ifNotExists) {
        try {
          changed = this.place(p, () => linkSync(tmp.path, p));
        } catch (err) {
          if (errno(err) === 'EEXIST') return false;
          throw err;
        }
      } else {
        changed = this.place(p, () => renameSync(tmp.path, p));
        placed = true;
      }
      if (durable) await fsyncDirs(changed);
      return true;
    } finally {
      // A link leaves the temp name behind; a failure leaves the temp file.
      if (!placed) removeQuietly(tmp.path);
    }
  }

  async reader(path: string, offset = 0, length?: number): Promise<Readable> {
    const p = this.full(path);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidOffsetError(path, offset);
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) throw new RangeError(`invalid length ${length} for ${path}`);
    const fd = onPath(path, () => openSync(p, 'r'));
    try {
      const st = onPath(path, () => fstatSync(fd), false);
      if (st.isDirectory()) throw new PathNotFoundError(path);
      if (offset > st.size) throw new InvalidOffsetError(path, offset);
      const end = length === undefined ? st.size : Math.min(st.size, offset + length);
      if (end <= offset) {
        closeSync(fd);
        return Readable.from([]);
      }
      // As a stream: 64 KiB reads. Each read gets a fresh buffer, and from 128 KiB up (glibc's mmap
      // threshold) every one is a new mapping: page faults, then unmapping in GC. Measured
      // serving a 57.5 MB template to skopeo: 64 KiB 138-142 ms of CPU per pull, 128 KiB
      // 190-233, 1 MiB 207-235, 16 KiB 292-317. The HTTP layer sends blob bodies with
      // sendTo instead (send-file.ts).
      const stream = createReadStream('', { fd, start: offset, end: end - 1, autoClose: true, highWaterMark: 64 << 10 });
      const sendTo: SendTo = (res, done) =>
        sendFileRange(res, { fd, start: offset, end }, (err) => {
          stream.destroy(); // closes the file
          done(err);
        });
      return Object.assign(stream, { sendTo });
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  async writer(path: string): Promise<FileWriter> {
    const p = this.full(path);
    const tmp = onPath(path, () => this.tempFile(), false);
    return new FsWriter(this, path, p, tmp.path, tmp.fd);
  }

  /** @internal the writer's commit: rename into place; returns the directories that changed. */
  commitTemp(tmpPath: string, dest: string): string[] {
    return this.place(dest, () => renameSync(tmpPath, dest));
  }

  async stat(path: string): Promise<FileInfo> {
    const p = this.full(path, true);
    const st = onPath(path, () => statSync(p));
    const isDir = st.isDirectory();
    return { path, size: isDir ? 0 : st.size, modTime: st.mtime, isDir };
  }

  async list(path: string): Promise<string[]> {
    const p = this.full(path, true);
    let names: string[];
    try {
      names = await readdir(p);
    } catch (err) {
      if (path === '/' && isMissing(err)) return [];
      throw fsError(err, path);
    }
    const base = path === '/' ? '' : path;
    return names
      .filter(isPathComponent)
      .sort()
      .map((n) => `${base}/${n}`);
  }

  async move(source: string, dest: string): Promise<void> {
    const s = this.full(source);
    const d = this.full(dest);
    const st = onPath(source, () => statSync(s));
    if (st.isDirectory()) throw new PathNotFoundError(source);
    if (s === d) return;
    const changed = onPath(
      dest,
      () =>
        this.place(d, () => {
          try {
            renameSync(s, d);
          } catch (err) {
            // ENOENT from a vanished source is not a pruned destination parent.
            if (errno(err) === 'ENOENT' && !existsQuietly(s)) throw new PathNotFoundError(source);
            throw err;
          }
        }),
      false,
    );
    // The source's directory is not fsynced: if a crash undoes the removal there, the content
    // is in both places, and sources are scratch (an upload) or the trash.
    await fsyncDirs(changed).catch((err: unknown) => {
      throw fsError(err, dest, false);
    });
    this.prune(s);
  }

  async delete(path: string): Promise<void> {
    const p = this.full(path);
    const st = onPath(path, () => statSync(p));
    if (st.isDirectory()) {
      // Disappear at once, then remove at leisure.
      const trash = onPath(
        path,
        () => {
          this.init();
          const name = join(this.tmp, tempName('.del'));
          renameSync(p, name);
          return name;
        },
      );
      await fsyncDirs([dirname(p)]).catch(() => {});
      // On the thread pool: an upload's directory can hold gigabytes.
      await rm(trash, { recursive: true, force: true });
    } else {
      onPath(path, () => unlinkSync(p));
      await fsyncDirs([dirname(p)]).catch(() => {});
    }
    this.prune(p);
  }

  async redirectURL(path: string): Promise<string | undefined> {
    checkPath(path);
    return undefined;
  }

  async walk(path: string, fn: (info: FileInfo) => Promise<void> | void): Promise<void> {
    const p = this.full(path, true);
    const base = path === '/' ? '' : path;
    const visit = async (dir: string, prefix: string, top: boolean): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        // Missing below the top: removed while walking; the root of an empty store is empty.
        if (isMissing(err) && (!top || path === '/')) return;
        throw fsError(err, prefix || '/');
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) {
        if (!isPathComponent(e.name)) continue;
        const child = `${prefix}/${e.name}`;
        const full = join(dir, e.name);
        if (e.isDirectory()) {
          await visit(full, child, false);
        } else if (e.isFile()) {
          let st;
          try {
            st = await stat(full);
          } catch (err) {
            if (isMissing(err)) continue; // deleted meanwhile
            throw fsError(err, child);
          }
          await fn({ path: child, size: st.size, modTime: st.mtime, isDir: false });
        }
      }
    };
    await visit(p, base, true);
  }

  /**
   * Removes this driver's temp files (writes and deletes that never finished) not touched since
   * `olderThan`, and at once those whose process on this host is gone. Other names are left.
   */
  async abortStaleUploads(olderThan: Date): Promise<number> {
    let names: string[];
    try {
      this.init();
      names = await readdir(this.tmp);
    } catch (err) {
      throw fsError(err, '/', false);
    }
    let n = 0;
    for (const name of names) {
      if (!TEMP_NAME.test(name)) continue;
      const full = join(this.tmp, name);
      try {
        if (!ownerIsGone(name) && (await stat(full)).mtime >= olderThan) continue;
        await rm(full, { recursive: true, force: true });
        n++;
      } catch (err) {
        if (!isMissing(err)) throw fsError(err, `/${TMP_DIR}/${name}`, false);
      }
    }
    return n;
  }
}

/** How much a writer writes before it starts flushing to disk in the background. */
const BACKGROUND_FLUSH = 8 << 20;

class FsWriter implements FileWriter {
  private readonly driver: FsDriver;
  /** The storage path (for errors) and the file it becomes. */
  private readonly path: string;
  private readonly dest: string;
  private readonly tmpPath: string;
  private readonly fd: number;
  private written = 0;
  private state: 'open' | 'committed' | 'cancelled' | 'failed' = 'open';
  private readonly serialized = new Serial();
  /**
   * An fdatasync started in the background every BACKGROUND_FLUSH bytes, so that the disk
   * works while the socket is read and the final fsync has little left.
   */
  private flushing: Promise<void> | undefined;
  private unflushed = 0;

  constructor(driver: FsDriver, path: string, dest: string, tmpPath: string, fd: number) {
    this.driver = driver;
    this.path = path;
    this.dest = dest;
    this.tmpPath = tmpPath;
    this.fd = fd;
  }

  get size(): number {
    return this.written;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.serialized.run(fn);
  }

  private checkOpen(): void {
    if (this.state !== 'open') throw new Error(`writer for ${this.dest} is ${this.state}`);
  }

  write(data: Buffer | readonly Buffer[]): Promise<void> {
    return this.serial(async () => {
      this.checkOpen();
      try {
        // One writev for several buffers; a short write goes on from where it stopped.
        let pending = (Array.isArray(data) ? data : [data]).filter((b) => b.length > 0);
        const total = pending.reduce((n, b) => n + b.length, 0);
        while (pending.length) {
          const bytesWritten = pending.length === 1 ? await writeFd(this.fd, pending[0]!) : await writevFd(this.fd, pending);
          pending = skipBytes(pending, bytesWritten);
        }
        this.written += total;
        this.unflushed += total;
        if (this.unflushed >= BACKGROUND_FLUSH && !this.flushing) {
          this.unflushed = 0;
          // Observed here, awaited (and its error thrown) at commit.
          const flushing = datasyncFd(this.fd);
          flushing.then(
            () => {
              if (this.flushing === flushing) this.flushing = undefined;
            },
            () => undefined,
          );
          this.flushing = flushing;
        }
      } catch (err) {
        await this.discard('failed');
        throw fsError(err, this.path, false);
      }
    });
  }

  commit(): Promise<void> {
    return this.serial(async () => {
      this.checkOpen();
      try {
        await this.flushing;
        await fsyncFd(this.fd);
        this.state = 'committed';
        closeSync(this.fd);
        await fsyncDirs(this.driver.commitTemp(this.tmpPath, this.dest));
      } catch (err) {
        await this.discard('failed');
        throw fsError(err, this.path, false);
      }
    });
  }

  cancel(): Promise<void> {
    return this.serial(async () => {
      if (this.state !== 'open') return;
      await this.discard('cancelled');
    });
  }

  private async discard(state: 'cancelled' | 'failed'): Promise<void> {
    const wasOpen = this.state === 'open';
    this.state = state;
    await this.flushing?.catch(() => undefined);
    if (wasOpen) {
      try {
        closeSync(this.fd);
      } catch {
        /* already closed */
      }
    }
    removeQuietly(this.tmpPath);
  }
}

const fsyncFd = promisify(fsync);
const datasyncFd = promisify(fdatasync);
const writeFd = (fd: number, buffer: Buffer): Promise<number> =>
  new Promise((resolveWrite, reject) => write(fd, buffer, 0, buffer.length, null, (err, n) => (err ? reject(err) : resolveWrite(n))));
const writevFd = (fd: number, buffers: Buffer[]): Promise<number> =>
  new Promise((resolveWrite, reject) => writev(fd, buffers, null, (err, n) => (err ? reject(err) : resolveWrite(n))));

/** fsyncs directories side by side (each holds an entry that changed). */
async function fsyncDirs(dirs: readonly string[]): Promise<void> {
  await Promise.all(
    [...new Set(dirs)].map(async (dir) => {
      const fd = openSync(dir, 'r');
      try {
        await fsyncFd(fd);
      } finally {
        closeSync(fd);
      }
    }),
  );
}

function existsQuietly(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

function removeQuietly(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    /* gone already */
  }
}

/**
 * The content of small files as last read, keyed by path and valid while a stat shows the same
 * file: one syscall instead of open, fstat, read and close. This driver never writes a file in
 * place (a new file is renamed or linked over the old one), so a change always brings a new inode,
 * which other processes writing the same tree see too; mtime, ctime and size catch anyone else's
 * in-place write. Bounded in bytes; the oldest entries go first.
 */
class SmallFileCache {
  private readonly entries = new Map<string, { ino: number; size: number; mtimeMs: number; ctimeMs: number; content: Buffer }>();
  private bytes = 0;
  static readonly MAX_FILE = 16 << 10;
  static readonly MAX_BYTES = 4 << 20;

  /** The file's content; undefined for a directory. */
  read(path: string): Buffer | undefined {
    const st = statSync(path);
    const hit = this.entries.get(path);
    if (hit && hit.ino === st.ino && hit.size === st.size && hit.mtimeMs === st.mtimeMs && hit.ctimeMs === st.ctimeMs) return hit.content;
    if (st.isDirectory()) return undefined;
    const content = readFileSync(path);
    if (hit) this.forget(path, hit.content.length);
    // Remembered only if the file did not change while it was read.
    if (content.length === st.size && content.length <= SmallFileCache.MAX_FILE) this.remember(path, st, content);
    return content;
  }

  private remember(path: string, st: Stats, content: Buffer): void {
    this.entries.set(path, { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, content });
    this.bytes += content.length;
    for (const [key, entry] of this.entries) {
      if (this.bytes <= SmallFileCache.MAX_BYTES) break;
      this.forget(key, entry.content.length);
    }
  }

  private forget(path: string, length: number): void {
    this.entries.delete(path);
    this.bytes -= length;
  }
}

/** What is left of `buffers` after the first `n` bytes. */
function skipBytes(buffers: readonly Buffer[], n: number): Buffer[] {
  const rest: Buffer[] = [];
  for (const b of buffers) {
    if (n >= b.length) {
      n -= b.length;
      continue;
    }
    rest.push(n ? b.subarray(n) : b);
    n = 0;
  }
  return rest;
}
