// Safe extraction of one layer blob into an overlayfs-ready lower dir of the host store.
//
// Archives from outside are hostile. The blob digest is computed over the compressed bytes as
// they stream in and the diff_id over the tar, and everything is written into
// `${target}.tmp-<pid>-<rand>`, renamed to `target` only when every entry and both digests
// checked out: a refused, failed or killed extraction never leaves a (partial) target, and
// sweepStaleTemps removes what a killed process left.
//
// Nothing is ever written through a symlink: the tree is fresh, and an in-memory map of every
// path this extraction created is the authority on what each parent is. A parent that is not a
// directory made here (a symlink, a file, a whiteout name) is a refusal, new files are opened
// with O_CREAT|O_EXCL|O_NOFOLLOW, and hard links may only point at regular files this layer
// already extracted.
//
// OCI whiteouts become what overlayfs reads in a lower dir: `.wh.NAME` a char 0/0 device NAME
// (all of them hard links to one node, made with a single mknod), `.wh..wh..opq` the xattr
// trusted.overlay.opaque=y on its directory. Extended attributes (one setfattr process for the
// layer), then directories' owners, modes and mtimes (deepest first), are applied after all
// contents, so read-only directories still get their files.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  renameSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { getSystemErrorMap } from 'node:util';
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { digestOfHash, isDigest, type Digest } from '../format/digest.ts';
import { padding, type TarEntry } from '../format/tar/header.ts';
import { readTar, TarFormatError } from '../format/tar/read.ts';
import { findProgram } from '../common/run.ts';
import { MissingToolError } from '../common/errors.ts';
import { sweepDeadPidEntries } from '../common/pids.ts';
import {
  ArchiveLimitError,
  DigestMismatchError,
  ExtractIOError,
  LayerExtractError,
  MalformedArchiveError,
  resolveExtractPolicy,
  UnsafeArchiveError,
  type ExtractPolicy,
  type ResolvedPolicy,
} from './extract-policy.ts';
import { classifyWhiteout, hardlinkTarget, pathProblem, symlinkProblem, xattrProblem } from './safe-path.ts';
import { restoreXattrs, SetXattrError, xattrDump } from './set-xattrs.ts';

export * from './extract-policy.ts';

export interface ExtractOptions {
  /** The layer's media type (OCI or Docker; plain tar, gzip or zstd). */
  mediaType: string;
  /** Digest of the compressed blob (the manifest's layer descriptor). */
  expectedDigest: Digest;
  /** Size of the compressed blob, when known: more bytes than this are refused at once. */
  expectedSize?: number;
  /** Digest of the uncompressed tar (the config's rootfs.diff_ids entry), when known. */
  expectedDiffId?: Digest;
  /** The layer directory to create; it must not exist. Its parent is created if missing. */
  target: string;
  policy?: ExtractPolicy;
  /** syncfs the target's filesystem before the rename, so a power loss cannot leave a target with lost data. Default true. */
  durable?: boolean;
}

export interface ExtractResult {
  /** Digest of the uncompressed tar. */
  diffId: Digest;
  /** Digest of the compressed blob. */
  digest: Digest;
  /** Archive entries, whiteouts included. */
  entries: number;
  /** Size of the uncompressed tar. */
  bytes: number;
  /** Size of the compressed blob. */
  blobBytes: number;
}

const TEMP_INFIX = '.tmp-';
const TEMP_RE = /\.tmp-(\d+)-[0-9a-f]{12}$/;

/** Where an extraction into `target` works before the rename. */
function tempPathFor(target: string): string {
  return `${target}${TEMP_INFIX}${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * Removes the temporary directories that killed extractions left in `parentDir` (those whose
 * process no longer runs). Returns their paths. Call it when the store opens.
 */
export async function sweepStaleTemps(parentDir: string): Promise<string[]> {
  return sweepDeadPidEntries(parentDir, (name) => {
    const m = TEMP_RE.exec(name);
    return m ? Number(m[1]) : undefined;
  });
}

type Compression = 'gzip' | 'zstd' | 'none';

function compressionOf(mediaType: string): Compression | undefined {
  const oci = /^application\/vnd\.oci\.image\.layer\.(?:nondistributable\.)?v1\.tar(?:\+(gzip|zstd))?$/.exec(mediaType);
  if (oci) return (oci[1] as Compression | undefined) ?? 'none';
  if (/^application\/vnd\.docker\.image\.rootfs\.(?:foreign\.)?diff\.tar\.gzip$/.test(mediaType)) return 'gzip';
  return undefined;
}

function decompressor(compression: Compression): Transform {
  // 256 KiB output chunks and a 4 MiB buffer ahead of the reader: the default 16 KiB chunks
  // make decompression a thread-pool round trip per 16 KiB, 2-4x slower.
  const options = { chunkSize: 256 << 10, readableHighWaterMark: 4 << 20 };
  return compression === 'zstd' ? zlib.createZstdDecompress(options) : zlib.createGunzip(options);
}

const ROOT_NAME = './';
const displayName = (path: string) => (path === '' ? ROOT_NAME : path);

/** Bytes readTar consumes for an entry's data (only regular files carry data in a layer). */
const dataSize = (entry: TarEntry) => (entry.type === 'file' ? entry.size : 0);

/**
 * The uncompressed tar on its way to readTar: hashed (diff_id), counted against the size limit,
 * and the last few MiB kept, so that what lies between the last entry and the end-of-archive
 * marker can be checked and a header readTar refuses can be named.
 */
class TarTap {
  readonly hash = createHash('sha256');
  bytes = 0;
  /** The entry being read, for errors. */
  current: string | undefined;
  private readonly recent: { start: number; buf: Buffer }[] = [];
  private recentBytes = 0;
  /** Set once readTar has found the end: everything from here on must be zeros. */
  private end: number | undefined;
  private readonly limit: number;
  private readonly fail: (entry: string | undefined, reason: string) => never;

  constructor(limit: number, fail: (entry: string | undefined, reason: string) => never) {
    this.limit = limit;
    this.fail = fail;
  }

  async *tap(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const whole of source) {
      const start = this.bytes;
      // Up to the limit, then stop at the next read: the entry that crosses it is the one named.
      const over = start + whole.length > this.limit;
      const chunk = over ? whole.subarray(0, this.limit - start) : whole;
      this.bytes += chunk.length;
      this.hash.update(chunk);
      if (this.end !== undefined) {
        if (!isZeros(chunk)) this.fail(undefined, `has data after the end-of-archive marker (at byte ${start + nonZeroAt(chunk)})`);
      } else {
        this.recent.push({ start, buf: chunk });
        this.recentBytes += chunk.length;
        // Keep the newest chunk and at least 2 MiB before it.
        while (this.recent.length > 1 && this.recentBytes - this.recent[0]!.buf.length - chunk.length >= 2 << 20) this.recentBytes -= this.recent.shift()!.buf.length;
        if (chunk.length) yield chunk;
      }
      if (over) this.fail(this.current, `makes the uncompressed layer larger than ${this.limit} bytes`);
    }
  }

  /** Bytes [from, to) of the stream if still held. */
  bytesAt(from: number, to: number): Buffer | undefined {
    const first = this.recent[0];
    if (!first || from < first.start) return undefined;
    const parts: Buffer[] = [];
    for (const { start, buf } of this.recent) {
      const s = Math.max(from - start, 0);
      const e = Math.min(to - start, buf.length);
      if (e > s) parts.push(buf.subarray(s, e));
    }
    return Buffer.concat(parts);
  }

  /** readTar stopped at the end marker; the archive's last entry ended at `lastEnd`. */
  ended(lastEnd: number): void {
    const rest = this.bytesAt(lastEnd, this.bytes);
    if (rest === undefined) this.fail(undefined, `has more than 2 MiB of data that is not an entry before its end-of-archive marker (from byte ${lastEnd})`);
    if (!isZeros(rest)) this.fail(undefined, `has data that is not an entry before or after its end-of-archive marker (at byte ${lastEnd + nonZeroAt(rest)})`);
    this.end = lastEnd;
    this.recent.length = 0;
    this.current = undefined;
  }
}

function isZeros(buf: Buffer): boolean {
  return nonZeroAt(buf) === buf.length;
}

const ZEROS = Buffer.alloc(64 << 10);

/** Offset of the first non-zero byte (buf.length if none), compared 64 KiB at a time. */
function nonZeroAt(buf: Buffer): number {
  for (let at = 0; at < buf.length; at += ZEROS.length) {
    const piece = buf.subarray(at, at + ZEROS.length);
    if (piece.equals(ZEROS.subarray(0, piece.length))) continue;
    for (let i = 0; i < piece.length; i++) if (piece[i] !== 0) return at + i;
  }
  return buf.length;
}

/** The name field of the raw header at `offset`, if the tap still holds it. */
function headerName(tap: TarTap, offset: number): string | undefined {
  const block = tap.bytesAt(offset, offset + 512);
  if (!block || block.length < 100) return undefined;
  const field = (o: number, l: number) => {
    const raw = block.subarray(o, Math.min(o + l, block.length));
    const nul = raw.indexOf(0);
    return (nul === -1 ? raw : raw.subarray(0, nul)).toString('utf8');
  };
  let name = field(0, 100);
  if (block.length >= 500 && block.subarray(257, 263).toString('latin1') === 'ustar\0') {
    const prefix = field(345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  return name || undefined;
}

type Kind = 'dir' | 'file' | 'symlink' | 'fifo' | 'char' | 'block' | 'whiteout';

interface DirState {
  mode: number;
  uid: number;
  gid: number;
  /** Unset for directories the archive only implies (parents without their own entry). */
  mtime?: number;
  opaque: boolean;
}

interface SpecialNode {
  type: 'fifo' | 'char' | 'block';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  devmajor: number;
  devminor: number;
}

const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const MAX_ID = 0xfffffffe;
/** 2^34 seconds: year 2514, past what filesystems store. */
const MAX_MTIME = 2 ** 34;

/** The state of one extraction: what exists in the temp tree, and what is applied at the end. */
class LayerWriter {
  readonly root: string;
  private readonly policy: ResolvedPolicy;
  private readonly tap: TarTap;
  private readonly reject: (entry: string | undefined, reason: string, type?: typeof LayerExtractError) => never;
  /** Every path created, by kind: the only authority on what a parent is. */
  private readonly nodes = new Map<string, Kind>([['', 'dir']]);
  private readonly dirs = new Map<string, DirState>();
  private readonly specials = new Map<string, SpecialNode>();
  private readonly xattrs = new Map<string, ReadonlyMap<string, Buffer>>();
  /**
   * The whiteout inodes made (usually one: every whiteout is a link to it), with their names and
   * the latest mtime of their entries, which the shared inode gets at the end.
   */
  private readonly whiteoutInodes: { paths: string[]; mtime: number }[] = [];
  /** The inode new whiteouts link to, while one of its names is still a whiteout. */
  private whiteoutInode: { paths: string[]; mtime: number; holder: string } | undefined;
  private declaredBytes = 0;
  entries = 0;
  /** End of the last entry's data and padding in the tar stream. */
  lastEnd = 0;
  fd: number | undefined;

  /** Who owns what this process creates in the tree, and its umask. */
  private readonly owner: { uid: number; gid: number; umask: number };

  constructor(root: string, policy: ResolvedPolicy, tap: TarTap, reject: LayerWriter['reject'], owner: LayerWriter['owner']) {
    this.root = root;
    this.owner = owner;
    this.dirs.set('', this.impliedDir(false));
    this.policy = policy;
    this.tap = tap;
    this.reject = reject;
  }

  /** A directory the archive implies without an entry: 0755, owned by the extracting user (as tar makes them). */
  private impliedDir(opaque: boolean): DirState {
    return { mode: 0o755, uid: this.owner.uid, gid: this.owner.gid, opaque };
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`;
  }

  async add(entry: TarEntry, offset: number, body: () => AsyncGenerator<Buffer>): Promise<void> {
    const path = entry.path;
    const name = displayName(path);
    this.tap.current = name;
    this.lastEnd = offset + 512 + dataSize(entry) + padding(dataSize(entry));
    if (++this.entries > this.policy.maxEntries) this.reject(name, `is beyond the limit of ${this.policy.maxEntries} entries`, ArchiveLimitError);
    if (entry.uid > MAX_ID || entry.gid > MAX_ID) this.reject(name, `has an invalid owner ${entry.uid}:${entry.gid}`, MalformedArchiveError);
    if (entry.mtime > MAX_MTIME) this.reject(name, `has an invalid mtime ${entry.mtime}`, MalformedArchiveError);

    if (path === '') {
      if (entry.type !== 'dir') this.reject(name, `is the layer's root but a ${entry.type}, not a directory`);
      this.checkXattrs(name, entry);
      this.dirs.set('', { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime, opaque: this.dirs.get('')!.opaque });
      this.setXattrs('', entry);
      return;
    }
    const problem = pathProblem(path, this.policy);
    if (problem) this.reject(name, problem, problem.includes('longer than') ? ArchiveLimitError : UnsafeArchiveError);
    const slash = path.lastIndexOf('/');
    const parent = slash === -1 ? '' : path.slice(0, slash);
    const base = path.slice(slash + 1);

    const whiteout = classifyWhiteout(base);
    if (whiteout.kind === 'invalid') this.reject(name, whiteout.problem);
    if (whiteout.kind !== 'none') {
      if (entry.type !== 'file') this.reject(name, `is a whiteout name on a ${entry.type}; whiteouts are regular files`);
      this.ensureParents(path, name);
      if (whiteout.kind === 'opaque') this.dirs.get(parent)!.opaque = true;
      else this.whiteout(parent ? `${parent}/${whiteout.name}` : whiteout.name, entry.mtime);
      return;
    }
    if ((entry.type === 'char' || entry.type === 'block') && this.policy.allowDevices !== 'all') {
      const isWhiteout = entry.type === 'char' && entry.devmajor === 0 && entry.devminor === 0;
      if (!isWhiteout) this.reject(name, `is a ${entry.type} device ${entry.devmajor}:${entry.devminor}; the policy allows no device nodes (allowDevices: 'all' does)`);
      if (this.policy.allowDevices === 'none') this.reject(name, `is a char 0:0 device (an overlayfs whiteout); the policy allows no device nodes`);
      this.ensureParents(path, name);
      this.whiteout(path, entry.mtime);
      return;
    }
    if (entry.type !== 'dir' && entry.mode & 0o6000 && !this.policy.allowSetuid) {
      this.reject(name, `is ${entry.mode & 0o4000 ? 'setuid' : 'setgid'} (mode ${entry.mode.toString(8)}); the policy forbids setuid and setgid files`);
    }
    if (entry.type === 'file') {
      if (entry.size > this.policy.maxFileBytes) this.reject(name, `is ${entry.size} bytes, over the limit of ${this.policy.maxFileBytes} per file`, ArchiveLimitError);
      this.declaredBytes += entry.size;
      if (this.declaredBytes > this.policy.maxTotalBytes) this.reject(name, `makes the layer's files larger than ${this.policy.maxTotalBytes} bytes in all`, ArchiveLimitError);
    }
    this.checkXattrs(name, entry);
    this.ensureParents(path, name);

    const kind: Kind = entry.type === 'link' ? 'file' : entry.type;
    const existing = this.nodes.get(path);
    let opaque = false;
    if (existing === 'whiteout') {
      // A whiteout and an entry of the same name in one layer: the entry, hiding what is below
      // (for a directory: an opaque one).
      this.removeWhiteout(path);
      opaque = kind === 'dir';
    } else if (existing !== undefined) {
      if (existing !== kind) this.reject(name, `appears twice: first as a ${existing}, then as a ${kind}`);
      if (kind !== 'dir') {
        // The same non-directory twice: the last one wins, as in tar.
        if (this.specials.delete(path)) this.nodes.delete(path);
        else this.unlink(path);
      }
    }

    switch (entry.type) {
      case 'dir': {
        const prev = this.dirs.get(path);
        if (!prev) {
          mkdirSync(this.abs(path), 0o700);
          this.nodes.set(path, 'dir');
        }
        this.dirs.set(path, { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime, opaque: opaque || (prev?.opaque ?? false) });
        break;
      }
      case 'file':
        await this.writeFile(path, entry, body);
        break;
      case 'link': {
        const t = hardlinkTarget(entry.linkname ?? '', this.policy);
        if ('problem' in t) this.reject(name, t.problem);
        if (t.target === path) this.reject(name, 'is a hard link to itself');
        const targetKind = this.nodes.get(t.target);
        if (targetKind !== 'file') {
          const what = targetKind === undefined ? 'an entry this layer has not extracted (yet)' : targetKind === 'dir' ? 'a directory' : `a ${targetKind}`;
          this.reject(name, `is a hard link to ${JSON.stringify(t.target)}, ${what}; hard links may only point at regular files earlier in the same layer`);
        }
        linkSync(this.abs(t.target), this.abs(path));
        this.nodes.set(path, 'file');
        break;
      }
      case 'symlink': {
        const problem = symlinkProblem(entry.linkname ?? '', this.policy);
        if (problem) this.reject(name, problem, problem.includes('longer than') ? ArchiveLimitError : UnsafeArchiveError);
        const abs = this.abs(path);
        symlinkSync(entry.linkname!, abs);
        if (entry.uid !== this.owner.uid || entry.gid !== this.owner.gid) lchownSync(abs, entry.uid, entry.gid);
        lutimesSync(abs, entry.mtime, entry.mtime);
        this.nodes.set(path, 'symlink');
        break;
      }
      case 'fifo':
      case 'char':
      case 'block':
        // Made together at the end (one mkfifo process, mknod for devices).
        this.specials.set(path, { type: entry.type, mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime, devmajor: entry.devmajor ?? 0, devminor: entry.devminor ?? 0 });
        this.nodes.set(path, entry.type);
        break;
    }
    this.setXattrs(path, entry);
  }

  private async writeFile(path: string, entry: TarEntry, body: () => AsyncGenerator<Buffer>): Promise<void> {
    // Created with its mode (only the umask and the special bits need a chmod) and owned by the
    // extracting process (only other owners need a chown): two system calls less per file.
    const fd = openSync(this.abs(path), CREATE_FLAGS, entry.mode & 0o777);
    this.fd = fd;
    this.nodes.set(path, 'file');
    for await (const chunk of body()) {
      let done = 0;
      while (done < chunk.length) done += writeSync(fd, chunk, done, chunk.length - done);
    }
    // Owner before mode: chown clears the setuid and setgid bits.
    if (entry.uid !== this.owner.uid || entry.gid !== this.owner.gid) fchownSync(fd, entry.uid, entry.gid);
    if (entry.mode & (0o7000 | this.owner.umask)) fchmodSync(fd, entry.mode);
    futimesSync(fd, entry.mtime, entry.mtime);
    this.fd = undefined;
    closeSync(fd);
  }

  private checkXattrs(name: string, entry: TarEntry): void {
    if (!entry.xattrs) return;
    for (const [key, value] of entry.xattrs) {
      const problem = xattrProblem(key, value);
      if (problem) this.reject(name, problem, problem.includes('bytes') ? ArchiveLimitError : UnsafeArchiveError);
      if (key === 'security.capability' && !this.policy.allowCapabilities) this.reject(name, 'has file capabilities (security.capability); the policy forbids them');
    }
  }

  private setXattrs(path: string, entry: TarEntry): void {
    if (entry.xattrs?.size) this.xattrs.set(path, entry.xattrs);
    else this.xattrs.delete(path);
  }

  /** Makes the missing parents of `path`; refuses parents that are not directories made here. */
  private ensureParents(path: string, name: string): void {
    let at = path.indexOf('/');
    while (at !== -1) {
      const rel = path.slice(0, at);
      const kind = this.nodes.get(rel);
      if (kind === undefined || kind === 'whiteout') {
        const component = rel.slice(rel.lastIndexOf('/') + 1);
        if (component.startsWith('.wh.')) this.reject(name, `lies under a whiteout name (${JSON.stringify(rel)})`);
        if (kind === 'whiteout') this.removeWhiteout(rel);
        mkdirSync(this.abs(rel), 0o700);
        this.nodes.set(rel, 'dir');
        // An implied parent; over a whiteout of the same name it replaces what is below.
        this.dirs.set(rel, this.impliedDir(kind === 'whiteout'));
      } else if (kind === 'symlink') {
        this.reject(name, `would be written through the symlink ${JSON.stringify(rel)} (symlinks are never followed)`);
      } else if (kind !== 'dir') {
        this.reject(name, `lies under ${JSON.stringify(rel)}, which is a ${kind}, not a directory`);
      }
      at = path.indexOf('/', at + 1);
    }
  }

  /** NAME is deleted from the layers below: a char 0/0 device, as overlayfs keeps whiteouts. */
  private whiteout(path: string, mtime: number): void {
    const existing = this.nodes.get(path);
    if (existing === 'dir') {
      // `.wh.NAME` next to a directory NAME of this layer: NAME replaces what is below.
      this.dirs.get(path)!.opaque = true;
      return;
    }
    if (existing !== undefined) return; // already whited out, or an entry of this layer hides it
    const abs = this.abs(path);
    let inode = this.whiteoutInode;
    if (inode !== undefined) {
      linkSync(this.abs(inode.holder), abs);
      inode.paths.push(path);
      inode.mtime = Math.max(inode.mtime, mtime);
    } else {
      const mknod = findProgram('mknod');
      if (!mknod) throw new MissingToolError('mknod', 'coreutils');
      execFileSync(mknod, ['-m', '000', '--', abs, 'c', '0', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
      inode = { paths: [path], mtime, holder: path };
      this.whiteoutInodes.push(inode);
      this.whiteoutInode = inode;
    }
    this.nodes.set(path, 'whiteout');
  }

  private removeWhiteout(path: string): void {
    this.unlink(path);
    if (this.whiteoutInode?.holder === path) this.whiteoutInode = undefined;
  }

  private unlink(path: string): void {
    unlinkSync(this.abs(path));
    this.nodes.delete(path);
    this.xattrs.delete(path);
  }

  /** After the last entry: special files, xattrs, then directories deepest first. */
  finish(): void {
    this.tap.current = undefined;
    this.makeSpecials();
    for (const inode of this.whiteoutInodes) {
      // A name the inode still has (a removed whiteout's name never becomes a whiteout again).
      const name = inode.paths.find((p) => this.nodes.get(p) === 'whiteout');
      if (name !== undefined) lutimesSync(this.abs(name), inode.mtime, inode.mtime);
    }
    const opaque: [string, ReadonlyMap<string, Buffer>][] = [];
    for (const [path, dir] of this.dirs) {
      if (dir.opaque) opaque.push([path, new Map([...(this.xattrs.get(path) ?? []), ['trusted.overlay.opaque', Buffer.from('y')]])]);
    }
    const all = new Map(this.xattrs);
    for (const [path, xattrs] of opaque) all.set(path, xattrs);
    restoreXattrs(this.root, xattrDump(all));
    const depth = (p: string) => (p === '' ? 0 : p.split('/').length);
    const dirs = [...this.dirs].map(([path, dir]) => ({ path, dir, depth: depth(path) })).sort((a, b) => b.depth - a.depth);
    for (const { path, dir } of dirs) {
      this.tap.current = displayName(path);
      const abs = this.abs(path);
      lchownSync(abs, dir.uid, dir.gid);
      chmodSync(abs, dir.mode);
      if (dir.mtime !== undefined) lutimesSync(abs, dir.mtime, dir.mtime);
    }
    this.tap.current = undefined;
  }

  private makeSpecials(): void {
    if (this.specials.size === 0) return;
    const fifos = [...this.specials].filter(([, s]) => s.type === 'fifo').map(([p]) => this.abs(p));
    if (fifos.length) {
      const mkfifo = findProgram('mkfifo');
      if (!mkfifo) throw new MissingToolError('mkfifo', 'coreutils');
      for (let i = 0; i < fifos.length; i += 500) execFileSync(mkfifo, ['-m', '600', '--', ...fifos.slice(i, i + 500)], { stdio: ['ignore', 'ignore', 'pipe'] });
    }
    for (const [path, node] of this.specials) {
      this.tap.current = displayName(path);
      const abs = this.abs(path);
      if (node.type !== 'fifo') {
        const mknod = findProgram('mknod');
        if (!mknod) throw new MissingToolError('mknod', 'coreutils');
        execFileSync(mknod, ['-m', '600', '--', abs, node.type === 'char' ? 'c' : 'b', String(node.devmajor), String(node.devminor)], { stdio: ['ignore', 'ignore', 'pipe'] });
      }
      lchownSync(abs, node.uid, node.gid);
      chmodSync(abs, node.mode);
      lutimesSync(abs, node.mtime, node.mtime);
    }
  }
}

/**
 * Extracts one layer blob (the compressed stream, as it arrives) into `opts.target`, verifying
 * its digest and diff_id and refusing anything unsafe; see the file comment. On any failure the
 * target does not exist and the temporary directory is gone; the error is a LayerExtractError
 * (UnsafeArchiveError, ArchiveLimitError, MalformedArchiveError, DigestMismatchError,
 * ExtractIOError) naming the layer and the entry at fault, or the source's own error.
 */
export async function extractLayer(source: AsyncIterable<Buffer | Uint8Array>, opts: ExtractOptions): Promise<ExtractResult> {
  const layer = opts.expectedDigest;
  if (!isDigest(layer)) throw new TypeError(`extractLayer: expectedDigest ${JSON.stringify(layer)} is not a sha256 digest`);
  if (opts.expectedDiffId !== undefined && !isDigest(opts.expectedDiffId)) throw new TypeError(`extractLayer: expectedDiffId ${JSON.stringify(opts.expectedDiffId)} is not a sha256 digest`);
  if (typeof (source as Partial<AsyncIterable<unknown>>)?.[Symbol.asyncIterator] !== 'function') throw new TypeError('extractLayer: the source must be an async iterable of buffers (a stream)');
  const policy = resolveExtractPolicy(opts.policy);
  const compression = compressionOf(opts.mediaType);
  if (!compression) throw new MalformedArchiveError(layer, undefined, `has the media type ${JSON.stringify(opts.mediaType)}, not a layer this host reads (tar, tar+gzip, tar+zstd)`);
  const target = resolve(opts.target);
  if (lstatSync(target, { throwIfNoEntry: false })) throw new LayerExtractError(layer, undefined, `cannot be extracted to ${target}: it exists`);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  mkdirSync(tmp, 0o700);
  try {
    return await extractInto(tmp, target, source, opts, policy, compression);
  } catch (err) {
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch {
      // Left for sweepStaleTemps; the extraction's own error is the one to report.
    }
    throw err;
  }
}

async function extractInto(tmp: string, target: string, source: AsyncIterable<Buffer | Uint8Array>, opts: ExtractOptions, policy: ResolvedPolicy, compression: Compression): Promise<ExtractResult> {
  const layer = opts.expectedDigest;
  // An owner of our own (whatever the parent's set-group-ID bit or the mount's grpid option,
  // new files then belong to this process), and the umask, from the mode mkdir gives a probe.
  const owner = { uid: process.geteuid!(), gid: process.getegid!(), umask: 0o022 };
  lchownSync(tmp, owner.uid, owner.gid);
  chmodSync(tmp, 0o700);
  const probe = join(tmp, 'umask-probe');
  mkdirSync(probe, 0o777);
  owner.umask = 0o777 & ~lstatSync(probe).mode;
  rmdirSync(probe);

  const reject = (entry: string | undefined, reason: string, type: typeof LayerExtractError = UnsafeArchiveError): never => {
    throw new type(layer, entry, reason);
  };
  const tap = new TarTap(policy.maxTotalBytes, (entry, reason) => reject(entry, reason, /larger than/.test(reason) ? ArchiveLimitError : MalformedArchiveError));
  const writer = new LayerWriter(tmp, policy, tap, reject, owner);
  const blobHash = createHash('sha256');
  let blobBytes = 0;
  let decoderFailed: Error | undefined;
  let sourceFailed: unknown;

  async function* compressed(): AsyncGenerator<Buffer> {
    const it = source[Symbol.asyncIterator]();
    try {
      yield* hashed(it);
    } finally {
      await it.return?.();
    }
  }

  async function* hashed(it: AsyncIterator<Buffer | Uint8Array>): AsyncGenerator<Buffer> {
    for (;;) {
      let next: IteratorResult<Buffer | Uint8Array>;
      try {
        next = await it.next();
      } catch (err) {
        sourceFailed = err;
        throw err;
      }
      if (next.done) break;
      const chunk = next.value;
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      blobBytes += buf.length;
      if (opts.expectedSize !== undefined && blobBytes > opts.expectedSize) reject(undefined, `blob is larger than its descriptor's ${opts.expectedSize} bytes`, LayerExtractError);
      blobHash.update(buf);
      yield buf;
    }
  }

  const consume = async (tarStream: AsyncIterable<Buffer>): Promise<void> => {
    const tapped = tap.tap(tarStream);
    for await (const { entry, offset, body } of readTar(tapped)) {
      await writer.add(entry, offset, body);
    }
    tap.ended(writer.lastEnd);
    // The rest of the stream (zero padding to a record size) belongs to the diff_id too.
    for (;;) if ((await tapped.next()).done) break;
  };

  try {
    try {
      if (compression === 'none') {
        const blob = compressed();
        try {
          await consume(blob);
        } finally {
          // Stops the source (a file or an HTTP body) when consume stopped early.
          await blob.return(undefined).catch(() => undefined);
        }
      } else {
        const decoder = decompressor(compression);
        decoder.once('error', (err: Error) => (decoderFailed ??= err));
        await (pipeline as (...streams: unknown[]) => Promise<void>)(compressed, decoder, consume);
      }
    } catch (err) {
      throw describeFailure(err);
    }
    const digest = digestOfHash(blobHash);
    const diffId = digestOfHash(tap.hash);
    if (opts.expectedSize !== undefined && blobBytes !== opts.expectedSize) throw new LayerExtractError(layer, undefined, `blob is ${blobBytes} bytes, its descriptor says ${opts.expectedSize}`);
    if (digest !== layer) throw new DigestMismatchError(layer, 'digest', layer, digest);
    if (opts.expectedDiffId && diffId !== opts.expectedDiffId) throw new DigestMismatchError(layer, 'diff_id', opts.expectedDiffId, diffId);
    try {
      writer.finish();
      if (opts.durable ?? true) syncFilesystem(tmp);
    } catch (err) {
      throw describeFailure(err);
    }
    if (lstatSync(target, { throwIfNoEntry: false })) throw new LayerExtractError(layer, undefined, `cannot be extracted to ${target}: it appeared while extracting`);
    renameSync(tmp, target);
    return { diffId, digest, entries: writer.entries, bytes: tap.bytes, blobBytes };
  } finally {
    if (writer.fd !== undefined) {
      try {
        closeSync(writer.fd);
      } catch {
        /* already closed */
      }
    }
  }

  /** The entry a TarFormatError is about: the one whose data is cut short, or the bad header's name. */
  function formatErrorEntry(err: TarFormatError): string {
    const at = /at byte (\d+)/.exec(err.message);
    const byte = at ? Number(at[1]) : undefined;
    if (/truncated/.test(err.message) && byte !== undefined && byte < writer.lastEnd && tap.current) return tap.current;
    const header = byte !== undefined && !/truncated/.test(err.message) ? byte : writer.lastEnd;
    return headerName(tap, header) ?? (tap.current ? `(the header after ${tap.current})` : '(the first header)');
  }

  /** The error to throw for a failure while streaming or finishing. */
  function describeFailure(err: unknown): unknown {
    if (err instanceof LayerExtractError || err instanceof MissingToolError) return err;
    if (sourceFailed !== undefined) return sourceFailed;
    if (err instanceof SetXattrError) return new ExtractIOError(layer, err.path === undefined ? undefined : displayName(err.path.replace(/^\.\/?/, '')), errnoName(err.message), err.message, { cause: err });
    if (err instanceof TarFormatError) return new MalformedArchiveError(layer, formatErrorEntry(err), `is malformed: ${err.message}`, { cause: err });
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) {
      return new ExtractIOError(layer, tap.current, code, `could not be written: ${(err as Error).message}`, { cause: err });
    }
    // What remains while the decoder failed is the decoder's error (zlib's Z_*/ZSTD_* codes).
    if (decoderFailed) return new MalformedArchiveError(layer, tap.current, `cannot be decompressed (${compression}): ${decoderFailed.message}`, { cause: decoderFailed });
    return err;
  }
}

/** The errno name for a strerror text in a message (setfattr reports only the text). */
function errnoName(message: string): string {
  for (const [, [name, text]] of getSystemErrorMap()) if (message.includes(text)) return name;
  return 'EIO';
}

/** syncfs(2) on the filesystem holding `path` (coreutils sync -f): one process per layer. */
function syncFilesystem(path: string): void {
  const sync = findProgram('sync');
  if (!sync) throw new MissingToolError('sync', 'coreutils');
  execFileSync(sync, ['-f', path], { stdio: 'ignore' });
}
