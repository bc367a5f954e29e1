// The layer writer: puts the entries of one layer archive, as readTar yields them, into a fresh
// directory, refusing every entry that is unsafe or over the policy's limits.
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
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import type { Digest } from '../format/digest.ts';
import { padding, type TarEntry } from '../format/tar/header.ts';
import { findProgram } from '../common/programs.ts';
import { MissingToolError } from '../common/errors.ts';
import { refusal, type RefusalKind, type ResolvedPolicy } from './extract-policy.ts';
import { classifyWhiteout, hardlinkTarget, pathProblem, symlinkProblem, xattrProblem } from './safe-path.ts';
import { restoreXattrs, xattrDump } from './set-xattrs.ts';

const ROOT_NAME = './';
/** An entry's name in errors: its path, './' for the root. */
export const displayName = (path: string) => (path === '' ? ROOT_NAME : path);

/** Bytes readTar consumes for an entry's data (only regular files carry data in a layer). */
const dataSize = (entry: TarEntry) => (entry.type === 'file' ? entry.size : 0);

/** Where the writer says which entry it is at, for the errors of others (the tar tap). */
export interface EntryCursor {
  current: string | undefined;
}

/** Who owns what this process creates in the tree, and its umask. */
export interface TreeOwner {
  uid: number;
  gid: number;
  umask: number;
}

type NodeKind = 'dir' | 'file' | 'symlink' | 'fifo' | 'char' | 'block' | 'whiteout';

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
export class LayerWriter {
  readonly root: string;
  private readonly layer: Digest;
  private readonly policy: ResolvedPolicy;
  private readonly cursor: EntryCursor;
  /** Every path created, by kind: the only authority on what a parent is. */
  private readonly nodes = new Map<string, NodeKind>([['', 'dir']]);
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
  /** The file being written, closed by closeOpenFile when the extraction fails. */
  private fd: number | undefined;
  private readonly owner: TreeOwner;

  constructor(layer: Digest, root: string, policy: ResolvedPolicy, cursor: EntryCursor, owner: TreeOwner) {
    this.layer = layer;
    this.root = root;
    this.owner = owner;
    this.dirs.set('', this.impliedDir(false));
    this.policy = policy;
    this.cursor = cursor;
  }

  private reject(kind: RefusalKind, entry: string, reason: string): never {
    throw refusal(this.layer, kind, entry, reason);
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
    this.cursor.current = name;
    this.lastEnd = offset + 512 + dataSize(entry) + padding(dataSize(entry));
    if (++this.entries > this.policy.maxEntries) this.reject('too-many-entries', name, `is beyond the limit of ${this.policy.maxEntries} entries`);
    if (entry.uid > MAX_ID || entry.gid > MAX_ID) this.reject('invalid-owner', name, `has an invalid owner ${entry.uid}:${entry.gid}`);
    if (entry.mtime > MAX_MTIME) this.reject('invalid-mtime', name, `has an invalid mtime ${entry.mtime}`);

    if (path === '') {
      if (entry.type !== 'dir') this.reject('root-not-directory', name, `is the layer's root but a ${entry.type}, not a directory`);
      this.checkXattrs(name, entry);
      this.dirs.set('', { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime, opaque: this.dirs.get('')!.opaque });
      this.setXattrs('', entry);
      return;
    }
    const problem = pathProblem(path, this.policy);
    if (problem) this.reject(problem.kind, name, problem.reason);
    const slash = path.lastIndexOf('/');
    const parent = slash === -1 ? '' : path.slice(0, slash);
    const base = path.slice(slash + 1);

    const whiteout = classifyWhiteout(base);
    if (whiteout.kind === 'invalid') this.reject(whiteout.problem.kind, name, whiteout.problem.reason);
    if (whiteout.kind !== 'none') {
      if (entry.type !== 'file') this.reject('whiteout-not-file', name, `is a whiteout name on a ${entry.type}; whiteouts are regular files`);
      this.ensureParents(path, name);
      if (whiteout.kind === 'opaque') this.dirs.get(parent)!.opaque = true;
      else this.whiteout(parent ? `${parent}/${whiteout.name}` : whiteout.name, entry.mtime);
      return;
    }
    if ((entry.type === 'char' || entry.type === 'block') && this.policy.allowDevices !== 'all') {
      const isWhiteout = entry.type === 'char' && entry.devmajor === 0 && entry.devminor === 0;
      if (!isWhiteout) this.reject('device', name, `is a ${entry.type} device ${entry.devmajor}:${entry.devminor}; the policy allows no device nodes (allowDevices: 'all' does)`);
      if (this.policy.allowDevices === 'none') this.reject('device-whiteout', name, `is a char 0:0 device (an overlayfs whiteout); the policy allows no device nodes`);
      this.ensureParents(path, name);
      this.whiteout(path, entry.mtime);
      return;
    }
    if (entry.type !== 'dir' && entry.mode & 0o6000 && !this.policy.allowSetuid) {
      this.reject('setuid', name, `is ${entry.mode & 0o4000 ? 'setuid' : 'setgid'} (mode ${entry.mode.toString(8)}); the policy forbids setuid and setgid files`);
    }
    if (entry.type === 'file') {
      if (entry.size > this.policy.maxFileBytes) this.reject('file-too-large', name, `is ${entry.size} bytes, over the limit of ${this.policy.maxFileBytes} per file`);
      this.declaredBytes += entry.size;
      if (this.declaredBytes > this.policy.maxTotalBytes) this.reject('files-too-large', name, `makes the layer's files larger than ${this.policy.maxTotalBytes} bytes in all`);
    }
    this.checkXattrs(name, entry);
    this.ensureParents(path, name);

    const kind: NodeKind = entry.type === 'link' ? 'file' : entry.type;
    const existing = this.nodes.get(path);
    let opaque = false;
    if (existing === 'whiteout') {
      // A whiteout and an entry of the same name in one layer: the entry, hiding what is below
      // (for a directory: an opaque one).
      this.removeWhiteout(path);
      opaque = kind === 'dir';
    } else if (existing !== undefined) {
      if (existing !== kind) this.reject('type-conflict', name, `appears twice: first as a ${existing}, then as a ${kind}`);
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
        if ('problem' in t) this.reject(t.problem.kind, name, t.problem.reason);
        if (t.target === path) this.reject('hardlink-to-self', name, 'is a hard link to itself');
        const targetKind = this.nodes.get(t.target);
        if (targetKind !== 'file') {
          const what = targetKind === undefined ? 'an entry this layer has not extracted (yet)' : targetKind === 'dir' ? 'a directory' : `a ${targetKind}`;
          this.reject(targetKind === undefined ? 'hardlink-target-missing' : 'hardlink-target-not-file', name, `is a hard link to ${JSON.stringify(t.target)}, ${what}; hard links may only point at regular files earlier in the same layer`);
        }
        linkSync(this.abs(t.target), this.abs(path));
        this.nodes.set(path, 'file');
        break;
      }
      case 'symlink': {
        const problem = symlinkProblem(entry.linkname ?? '', this.policy);
        if (problem) this.reject(problem.kind, name, problem.reason);
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
      if (problem) this.reject(problem.kind, name, problem.reason);
      if (key === 'security.capability' && !this.policy.allowCapabilities) this.reject('capability', name, 'has file capabilities (security.capability); the policy forbids them');
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
        if (component.startsWith('.wh.')) this.reject('under-whiteout', name, `lies under a whiteout name (${JSON.stringify(rel)})`);
        if (kind === 'whiteout') this.removeWhiteout(rel);
        mkdirSync(this.abs(rel), 0o700);
        this.nodes.set(rel, 'dir');
        // An implied parent; over a whiteout of the same name it replaces what is below.
        this.dirs.set(rel, this.impliedDir(kind === 'whiteout'));
      } else if (kind === 'symlink') {
        this.reject('through-symlink', name, `would be written through the symlink ${JSON.stringify(rel)} (symlinks are never followed)`);
      } else if (kind !== 'dir') {
        this.reject('under-non-directory', name, `lies under ${JSON.stringify(rel)}, which is a ${kind}, not a directory`);
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

  /** Closes the file being written, if any (after a failure in the middle of its data). */
  closeOpenFile(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
    this.fd = undefined;
  }

  /** After the last entry: special files, xattrs, then directories deepest first. */
  finish(): void {
    this.cursor.current = undefined;
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
      this.cursor.current = displayName(path);
      const abs = this.abs(path);
      lchownSync(abs, dir.uid, dir.gid);
      chmodSync(abs, dir.mode);
      if (dir.mtime !== undefined) lutimesSync(abs, dir.mtime, dir.mtime);
    }
    this.cursor.current = undefined;
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
      this.cursor.current = displayName(path);
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
