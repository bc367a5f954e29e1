// Turns a directory tree into the sorted, normalized entry list of one layer.
// Two kinds of tree: a plain root filesystem (the bootstrap layer), and an overlayfs upper
// directory, whose deletions (char 0/0 devices) and opaque directories (trusted.overlay.opaque)
// become OCI whiteouts (.wh.<name>, .wh..wh..opq).
import { existsSync, lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { readXattrs, type XattrIndex } from './xattrs.ts';
import type { TarEntry } from './header.ts';
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX } from '../oci.ts';

export interface LayerEntry extends TarEntry {
  /** Absolute path of the file whose bytes follow the header (regular files only). */
  source?: string;
}

export interface WalkOptions {
  /** 'upper': an overlayfs upper dir, whose whiteouts and opaque dirs are converted. */
  kind: 'rootfs' | 'upper';
  /** SOURCE_DATE_EPOCH: later mtimes are clamped to it. */
  epoch: number;
  /**
   * For an upper dir, the trees below it: an opaque marker is only written for a directory
   * some lower layer has (overlayfs marks new directories opaque too, where it hides nothing).
   */
  lowers?: readonly string[];
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

/** xattrs that describe the overlay itself, never content. */
function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}

/** Compares as bytes (not UTF-16 code units), so the order is the same on every machine. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** How many entries the walk lists between looks at whether getfattr has answered. */
const SLICE = 256;

/** The whole entry list of a tree (see layerEntries). */
export async function walkLayer(root: string, opts: WalkOptions): Promise<LayerEntry[]> {
  const entries: LayerEntry[] = [];
  for await (const batch of layerEntries(root, opts)) entries.push(...batch);
  return entries;
}

/**
 * The entries of a tree in archive order, in batches, for a packer to consume while the walk
 * goes on. getfattr scans the tree in its own process meanwhile; the walk keeps listing until
 * it has answered, and from then on each batch is handed over as soon as it is listed.
 */
export async function* layerEntries(root: string, opts: WalkOptions): AsyncGenerator<LayerEntry[]> {
  let xattrs: XattrIndex | undefined;
  const xattrsRead = readXattrs(root).then((index) => (xattrs = index));
  xattrsRead.catch(() => undefined);
  let pending: Walked[] = [];
  for (const walked of walkTree(root, opts)) {
    pending.push(walked);
    if (pending.length < SLICE) continue;
    // A turn of the event loop lets getfattr's output in without waiting for it.
    if (!xattrs) await new Promise((resolve) => setImmediate(resolve));
    if (!xattrs) continue;
    yield withAttributes(pending, xattrs, opts);
    pending = [];
  }
  yield withAttributes(pending, await xattrsRead, opts);
}

/** layerEntries, or undefined when the tree has no entry at all (there is no layer to pack). */
export async function nonEmptyLayerEntries(root: string, opts: WalkOptions): Promise<AsyncIterable<LayerEntry[]> | undefined> {
  const walk = layerEntries(root, opts);
  // Only the last batch can be empty, so an empty first batch is an empty tree.
  const first = await walk.next();
  if (first.done || first.value.length === 0) {
    await walk.return(undefined);
    return undefined;
  }
  return (async function* () {
    yield first.value;
    yield* walk;
  })();
}

interface Walked {
  entry: LayerEntry;
  /** Absolute path, for its attributes ('' for whiteouts). */
  abs: string;
}

/** Lists and stats the tree in sorted order; attributes come later (withAttributes). */
function* walkTree(root: string, opts: WalkOptions): Generator<Walked> {
  const firstLinkByInode = new Map<string, string>();
  function* visit(dirRel: string): Generator<Walked> {
    const dirAbs = dirRel ? join(root, dirRel) : root;
    const names = readdirSync(dirAbs).sort(byteOrder);
    for (const name of names) {
      const rel = dirRel ? `${dirRel}/${name}` : name;
      const abs = join(root, rel);
      const st = lstatSync(abs);
      const fmt = st.mode & S_IFMT;
      if (opts.kind === 'upper' && fmt === S_IFCHR && st.rdev === 0) {
        yield { entry: whiteoutEntry(dirRel ? `${dirRel}/${WHITEOUT_PREFIX}${name}` : `${WHITEOUT_PREFIX}${name}`, st, opts.epoch), abs: '' };
        continue;
      }
      if (name.startsWith(WHITEOUT_PREFIX)) {
        throw new Error(`${abs}: a file named ${name} cannot be stored in a layer (it would read as an OCI whiteout)`);
      }
      const entry = baseEntry(rel, st, opts.epoch);
      switch (fmt) {
        case S_IFDIR:
          entry.type = 'dir';
          yield { entry, abs };
          yield* visit(rel);
          continue;
        case S_IFREG: {
          if (st.nlink > 1) {
            const key = `${st.dev}:${st.ino}`;
            const first = firstLinkByInode.get(key);
            if (first !== undefined) {
              entry.type = 'link';
              entry.linkname = first;
              entry.size = 0;
              yield { entry, abs };
              continue;
            }
            firstLinkByInode.set(key, rel);
          }
          entry.type = 'file';
          entry.size = st.size;
          entry.source = abs;
          yield { entry, abs };
          continue;
        }
        case S_IFLNK:
          entry.type = 'symlink';
          entry.linkname = readlinkSync(abs, 'utf8');
          yield { entry, abs };
          continue;
        case S_IFCHR:
        case S_IFBLK:
          entry.type = fmt === S_IFCHR ? 'char' : 'block';
          entry.devmajor = Math.floor(st.rdev / 256) & 0xfff; // glibc major/minor for small numbers
          entry.devminor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
          yield { entry, abs };
          continue;
        case S_IFIFO:
          entry.type = 'fifo';
          yield { entry, abs };
          continue;
        default:
          // Sockets have no meaning in a template; they are runtime state.
          continue;
      }
    }
  }
  yield* visit('');
}

/** Attaches content xattrs, and puts an opaque directory's marker right after it. */
function withAttributes(walked: readonly Walked[], xattrs: XattrIndex, opts: WalkOptions): LayerEntry[] {
  const out: LayerEntry[] = [];
  for (const { entry, abs } of walked) {
    const fileXattrs = abs && xattrs.size ? xattrs.get(abs) : undefined;
    const kept = contentXattrs(fileXattrs);
    if (kept) entry.xattrs = kept;
    out.push(entry);
    // An opaque directory hides what lower layers have below it.
    const opaque =
      entry.type === 'dir' &&
      opts.kind === 'upper' &&
      fileXattrs?.get('trusted.overlay.opaque')?.toString() === 'y' &&
      (opts.lowers === undefined || opts.lowers.some((lower) => existsSync(join(lower, entry.path))));
    if (opaque) out.push(whiteoutEntry(`${entry.path}/${OPAQUE_WHITEOUT}`, lstatSync(abs), opts.epoch));
  }
  return out;
}

function baseEntry(path: string, st: Stats, epoch: number): LayerEntry {
  return {
    path,
    type: 'file',
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    size: 0,
    mtime: Math.min(Math.floor(st.mtimeMs / 1000), epoch),
  };
}

function whiteoutEntry(path: string, st: Stats, epoch: number): LayerEntry {
  return { path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: Math.min(Math.floor(st.mtimeMs / 1000), epoch) };
}

function contentXattrs(all: ReadonlyMap<string, Buffer> | undefined): Map<string, Buffer> | undefined {
  if (!all) return undefined;
  let kept: Map<string, Buffer> | undefined;
  for (const [name, value] of all) {
    if (isOverlayXattr(name)) continue;
    (kept ??= new Map()).set(name, value);
  }
  return kept;
}
