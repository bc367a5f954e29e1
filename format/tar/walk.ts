// Turns a directory tree into the sorted, normalized entry list of one layer.
// Two kinds of tree: a plain root filesystem (the bootstrap layer), and an overlayfs upper
// directory, whose deletions (char 0/0 devices) and opaque directories (trusted.overlay.opaque)
// become OCI whiteouts (.wh.<name>, .wh..wh..opq).
import { existsSync, lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { readXattrs } from './xattrs.ts';
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

export async function walkLayer(root: string, opts: WalkOptions): Promise<LayerEntry[]> {
  // getfattr runs in its own process while this one lists and stats the tree; the attributes
  // are attached afterwards (the walk and the getfattr scan cost about the same).
  const xattrsRead = readXattrs(root);
  xattrsRead.catch(() => undefined);
  const entries: LayerEntry[] = [];
  /** Absolute path of each entry ('' for whiteouts), for attaching attributes. */
  const sources: string[] = [];
  const firstLinkByInode = new Map<string, string>();
  const push = (entry: LayerEntry, abs: string) => {
    entries.push(entry);
    sources.push(abs);
  };

  const visit = (dirRel: string): void => {
    const dirAbs = dirRel ? join(root, dirRel) : root;
    const names = readdirSync(dirAbs).sort(byteOrder);
    for (const name of names) {
      const rel = dirRel ? `${dirRel}/${name}` : name;
      const abs = join(root, rel);
      const st = lstatSync(abs);
      const fmt = st.mode & S_IFMT;
      if (opts.kind === 'upper' && fmt === S_IFCHR && st.rdev === 0) {
        push(whiteoutEntry(dirRel ? `${dirRel}/${WHITEOUT_PREFIX}${name}` : `${WHITEOUT_PREFIX}${name}`, st, opts.epoch), '');
        continue;
      }
      if (name.startsWith(WHITEOUT_PREFIX)) {
        throw new Error(`${abs}: a file named ${name} cannot be stored in a layer (it would read as an OCI whiteout)`);
      }
      const entry = baseEntry(rel, st, opts.epoch);
      switch (fmt) {
        case S_IFDIR:
          entry.type = 'dir';
          push(entry, abs);
          visit(rel);
          continue;
        case S_IFREG: {
          if (st.nlink > 1) {
            const key = `${st.dev}:${st.ino}`;
            const first = firstLinkByInode.get(key);
            if (first !== undefined) {
              entry.type = 'link';
              entry.linkname = first;
              entry.size = 0;
              push(entry, abs);
              continue;
            }
            firstLinkByInode.set(key, rel);
          }
          entry.type = 'file';
          entry.size = st.size;
          entry.source = abs;
          push(entry, abs);
          continue;
        }
        case S_IFLNK:
          entry.type = 'symlink';
          entry.linkname = readlinkSync(abs, 'utf8');
          push(entry, abs);
          continue;
        case S_IFCHR:
        case S_IFBLK:
          entry.type = fmt === S_IFCHR ? 'char' : 'block';
          entry.devmajor = Math.floor(st.rdev / 256) & 0xfff; // glibc major/minor for small numbers
          entry.devminor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
          push(entry, abs);
          continue;
        case S_IFIFO:
          entry.type = 'fifo';
          push(entry, abs);
          continue;
        default:
          // Sockets have no meaning in a template; they are runtime state.
          continue;
      }
    }
  };
  visit('');

  const xattrs = await xattrsRead;
  if (xattrs.size === 0) return entries;
  const out: LayerEntry[] = [];
  for (const [i, entry] of entries.entries()) {
    const fileXattrs = sources[i] ? xattrs.get(sources[i]!) : undefined;
    const kept = contentXattrs(fileXattrs);
    if (kept) entry.xattrs = kept;
    out.push(entry);
    // An opaque directory hides what lower layers have below it: its marker comes right after it.
    const opaque =
      entry.type === 'dir' &&
      opts.kind === 'upper' &&
      fileXattrs?.get('trusted.overlay.opaque')?.toString() === 'y' &&
      (opts.lowers === undefined || opts.lowers.some((lower) => existsSync(join(lower, entry.path))));
    if (opaque) out.push(whiteoutEntry(`${entry.path}/${OPAQUE_WHITEOUT}`, lstatSync(sources[i]!), opts.epoch));
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
