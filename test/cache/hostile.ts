// The hostile layer corpus: tarballs built with format/tar/header.ts's encodeHeader, plus
// hand-made bytes where a well-formed encoder cannot produce them (bad checksums, malformed
// fields, unknown types, NUL bytes, stray data), each compressed with zstd and gzip. One case
// per way extraction must refuse a layer, and valid edge cases with the exact listing an
// extraction must produce. Cases that try to escape aim at a sentinel directory next to the
// target (`../sentinel`, `../escape` is a symlink to it, and its absolute path).
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import type { ExtractPolicy, LayerExtractErrorKind } from '../../cache/extract.ts';
import { BLOCK, encodeHeader, END_OF_ARCHIVE, padding, type EntryType, type TarEntry } from '../../format/tar/header.ts';

export const T0 = 1_700_000_000;

export type Compression = 'zstd' | 'gzip' | 'none';

export const MEDIA_TYPE: Record<Compression, string> = {
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  none: 'application/vnd.oci.image.layer.v1.tar',
};

export function compress(tar: Buffer, compression: Compression): Buffer {
  if (compression === 'zstd') return zlib.zstdCompressSync(tar);
  if (compression === 'gzip') return zlib.gzipSync(tar);
  return tar;
}

export const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}` as const;

// --- building archives --------------------------------------------------------------------

/** An entry with its data; a Buffer part is copied into the archive as is. */
export type Part = (TarEntry & { data?: Buffer }) | Buffer;

export function entry(path: string, type: EntryType, extra: Partial<TarEntry> & { data?: Buffer | string } = {}): TarEntry & { data?: Buffer } {
  const data = typeof extra.data === 'string' ? Buffer.from(extra.data) : extra.data;
  const mode = extra.mode ?? (type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644);
  return { uid: 0, gid: 0, mtime: T0, ...extra, path, type, mode, size: type === 'file' ? (data?.length ?? 0) : 0, data };
}
export const file = (path: string, data: Buffer | string = '', extra: Partial<TarEntry> = {}) => entry(path, 'file', { ...extra, data });
export const dir = (path: string, extra: Partial<TarEntry> = {}) => entry(path, 'dir', extra);
export const symlink = (path: string, linkname: string, extra: Partial<TarEntry> = {}) => entry(path, 'symlink', { ...extra, linkname });
export const hardlink = (path: string, linkname: string, extra: Partial<TarEntry> = {}) => entry(path, 'link', { ...extra, linkname });
export const fifo = (path: string, extra: Partial<TarEntry> = {}) => entry(path, 'fifo', { mode: 0o600, ...extra });
export const device = (path: string, type: 'char' | 'block', devmajor: number, devminor: number, extra: Partial<TarEntry> = {}) =>
  entry(path, type, { mode: 0o600, ...extra, devmajor, devminor });

function encodePart(part: Part): Buffer {
  if (Buffer.isBuffer(part)) return part;
  const { data, ...header } = part;
  const body = data ?? Buffer.alloc(0);
  return Buffer.concat([encodeHeader(header), body, Buffer.alloc(padding(body.length))]);
}

/** The archive of `parts`, with its end-of-archive marker. */
export const archive = (...parts: Part[]) => Buffer.concat([...parts.map(encodePart), END_OF_ARCHIVE]);
/** The archive of `parts` without an end-of-archive marker. */
export const unterminated = (...parts: Part[]) => Buffer.concat(parts.map(encodePart));

/** Recomputes a ustar header block's checksum after its bytes were changed by hand. */
export function fixChecksum(block: Buffer): Buffer {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i]!;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return block;
}

/** A single ustar header block (no pax) for `e`, then `patch` applied and the checksum fixed. */
export function rawHeader(e: TarEntry, patch: (block: Buffer) => void): Buffer {
  const block = Buffer.from(encodeHeader(e));
  if (block.length !== BLOCK) throw new Error(`rawHeader: ${e.path} needs a pax header`);
  patch(block);
  return fixChecksum(block);
}

/** A pax extended header ('x', or 'g' for global) carrying raw records. */
export function paxHeader(records: [string, Buffer | string][], typeflag: 'x' | 'g' = 'x'): Buffer {
  const body = Buffer.concat(
    records.map(([key, value]) => {
      const rec = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
      let len = rec.length + 1;
      while (String(len).length + rec.length !== len) len = String(len).length + rec.length;
      return Buffer.concat([Buffer.from(String(len)), rec]);
    }),
  );
  const head = rawHeader({ path: 'PaxHeaders/x', type: 'file', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: T0 }, (b) => b.write(typeflag, 156, 'latin1'));
  return Buffer.concat([head, body, Buffer.alloc(padding(body.length))]);
}

// --- the hostile corpus -------------------------------------------------------------------

export type ErrorClass = 'UnsafeArchiveError' | 'ArchiveLimitError' | 'MalformedArchiveError' | 'DigestMismatchError' | 'LayerExtractError';

export interface HostileCase {
  name: string;
  tar: Buffer;
  error: ErrorClass;
  /**
   * The error's kind (LayerExtractError.kind): what extraction decided is wrong. Several for
   * damaged compression, where the decoder or the tar reader may see the damage first.
   */
  kind: LayerExtractErrorKind | LayerExtractErrorKind[];
  /** The entry the error must name; undefined: the whole layer (digests, stray data). */
  entry: string | undefined;
  /** Matches the error's reason. */
  reason: RegExp;
  policy?: ExtractPolicy;
  /** Only these compressions (default zstd and gzip). */
  compressions?: Compression[];
  /** Replaces the compressed blob (corrupt or truncated compression); its digest is the expected one. */
  blob?: (compressed: Buffer) => Buffer;
  mediaType?: string;
  /** Expected digests that do not match. */
  wrongDigest?: boolean;
  wrongDiffId?: boolean;
  /** An expectedSize smaller than the blob. */
  shortSize?: boolean;
}

const CAP_NET_RAW = Buffer.from('0100000200200000000000000000000000000000', 'hex');

/** Every way a layer must be refused. `sentinel` is the absolute path of the sentinel dir. */
export function hostileCases(sentinel: string): HostileCase[] {
  const pwned = 'owned\n';
  const cases: HostileCase[] = [
    // Paths
    { name: 'absolute path', tar: archive(file(`${sentinel}/pwned`, pwned)), error: 'UnsafeArchiveError', kind: 'path-absolute', entry: `${sentinel}/pwned`, reason: /absolute/ },
    { name: '".." component', tar: archive(file('../sentinel/pwned', pwned)), error: 'UnsafeArchiveError', kind: 'path-dot-dot', entry: '../sentinel/pwned', reason: /"\.\."/ },
    { name: '".." in the middle', tar: archive(dir('a'), file('a/../../sentinel/pwned', pwned)), error: 'UnsafeArchiveError', kind: 'path-dot-dot', entry: 'a/../../sentinel/pwned', reason: /"\.\."/ },
    { name: '".." through the escape symlink', tar: archive(file('../escape/pwned', pwned)), error: 'UnsafeArchiveError', kind: 'path-dot-dot', entry: '../escape/pwned', reason: /"\.\."/ },
    { name: 'a trailing ".."', tar: archive(dir('a/..')), error: 'UnsafeArchiveError', kind: 'path-dot-dot', entry: 'a/..', reason: /"\.\."/ },
    { name: 'empty component', tar: archive(file('a//b', 'x')), error: 'UnsafeArchiveError', kind: 'path-empty-component', entry: 'a//b', reason: /empty path component/ },
    { name: '"." component in the middle', tar: archive(file('a/./b', 'x')), error: 'UnsafeArchiveError', kind: 'path-dot-component', entry: 'a/./b', reason: /"\." path component/ },
    // encodeHeader puts a name with a NUL into a pax record; the ustar field has "a_b".
    { name: 'NUL byte in a (pax) path', tar: archive(file('a\0b', 'x')), error: 'MalformedArchiveError', kind: 'nul-in-name', entry: 'a_b', reason: /NUL/ },
    { name: 'NUL byte in a symlink target', tar: archive(symlink('l', 'x\0y')), error: 'UnsafeArchiveError', kind: 'symlink-nul-byte', entry: 'l', reason: /NUL/ },
    { name: 'symlink with an empty target', tar: archive(symlink('l', '')), error: 'UnsafeArchiveError', kind: 'symlink-empty-target', entry: 'l', reason: /empty target/ },
    { name: 'root entry that is a symlink', tar: archive(symlink('.', sentinel)), error: 'UnsafeArchiveError', kind: 'root-not-directory', entry: './', reason: /root/ },
    // Writes through symlinks
    { name: 'write through an absolute symlink', tar: archive(symlink('link', sentinel), file('link/pwned', pwned)), error: 'UnsafeArchiveError', kind: 'through-symlink', entry: 'link/pwned', reason: /through the symlink "link"/ },
    { name: 'write through a relative symlink', tar: archive(symlink('link', '../sentinel'), file('link/pwned', pwned)), error: 'UnsafeArchiveError', kind: 'through-symlink', entry: 'link/pwned', reason: /through the symlink/ },
    { name: 'directory through a symlink', tar: archive(symlink('link', sentinel), dir('link/sub')), error: 'UnsafeArchiveError', kind: 'through-symlink', entry: 'link/sub', reason: /through the symlink/ },
    { name: 'symlink to "." then a path through it', tar: archive(symlink('a', '.'), file('a/a/pwned', pwned)), error: 'UnsafeArchiveError', kind: 'through-symlink', entry: 'a/a/pwned', reason: /through the symlink "a"/ },
    { name: 'deep path through a symlink', tar: archive(dir('a'), symlink('a/link', '../../sentinel'), file('a/link/b/c', pwned)), error: 'UnsafeArchiveError', kind: 'through-symlink', entry: 'a/link/b/c', reason: /through the symlink "a\/link"/ },
    { name: 'hard link created under a symlink', tar: archive(file('f', 'x'), symlink('link', sentinel), hardlink('link/pwned', 'f')), error: 'UnsafeArchiveError', kind: 'through-symlink', entry: 'link/pwned', reason: /through the symlink/ },
    { name: 'symlink then a directory of the same name', tar: archive(symlink('link', sentinel), dir('link')), error: 'UnsafeArchiveError', kind: 'type-conflict', entry: 'link', reason: /twice: first as a symlink, then as a dir/ },
    { name: 'symlink then a file of the same name', tar: archive(symlink('link', `${sentinel}/keep`), file('link', pwned)), error: 'UnsafeArchiveError', kind: 'type-conflict', entry: 'link', reason: /twice: first as a symlink, then as a file/ },
    { name: 'whiteout through a symlink', tar: archive(symlink('link', sentinel), file('link/.wh.keep')), error: 'UnsafeArchiveError', kind: 'through-symlink', entry: 'link/.wh.keep', reason: /through the symlink/ },
    { name: 'opaque marker through a symlink', tar: archive(symlink('link', sentinel), file('link/.wh..wh..opq')), error: 'UnsafeArchiveError', kind: 'through-symlink', entry: 'link/.wh..wh..opq', reason: /through the symlink/ },
    // Hard links
    { name: 'hard link to an absolute path', tar: archive(hardlink('h', `${sentinel}/keep`)), error: 'UnsafeArchiveError', kind: 'hardlink-absolute', entry: 'h', reason: /absolute/ },
    { name: 'hard link with ".."', tar: archive(hardlink('h', '../sentinel/keep')), error: 'UnsafeArchiveError', kind: 'hardlink-path-dot-dot', entry: 'h', reason: /"\.\."/ },
    { name: 'hard link to a symlink', tar: archive(symlink('link', `${sentinel}/keep`), hardlink('h', 'link')), error: 'UnsafeArchiveError', kind: 'hardlink-target-not-file', entry: 'h', reason: /a symlink/ },
    { name: 'hard link to a directory', tar: archive(dir('d'), hardlink('h', 'd')), error: 'UnsafeArchiveError', kind: 'hardlink-target-not-file', entry: 'h', reason: /a directory/ },
    { name: 'hard link to a later entry', tar: archive(hardlink('h', 'later'), file('later', 'x')), error: 'UnsafeArchiveError', kind: 'hardlink-target-missing', entry: 'h', reason: /not extracted/ },
    { name: 'hard link to a missing file', tar: archive(file('f'), hardlink('h', 'missing')), error: 'UnsafeArchiveError', kind: 'hardlink-target-missing', entry: 'h', reason: /not extracted/ },
    { name: 'hard link through a symlink', tar: archive(symlink('link', sentinel), hardlink('h', 'link/keep')), error: 'UnsafeArchiveError', kind: 'hardlink-target-missing', entry: 'h', reason: /not extracted/ },
    { name: 'hard link to itself', tar: archive(file('h', 'x'), hardlink('h', 'h')), error: 'UnsafeArchiveError', kind: 'hardlink-to-self', entry: 'h', reason: /itself/ },
    { name: 'hard link to the root', tar: archive(hardlink('h', './')), error: 'UnsafeArchiveError', kind: 'hardlink-no-target', entry: 'h', reason: /without a target/ },
    { name: 'hard link to a whiteout', tar: archive(file('.wh.gone'), hardlink('h', 'gone')), error: 'UnsafeArchiveError', kind: 'hardlink-target-not-file', entry: 'h', reason: /a whiteout/ },
    { name: 'hard link to a fifo', tar: archive(fifo('p'), hardlink('h', 'p')), error: 'UnsafeArchiveError', kind: 'hardlink-target-not-file', entry: 'h', reason: /a fifo/ },
    { name: 'hard link with an empty component', tar: archive(dir('a'), file('a/f'), hardlink('h', 'a//f')), error: 'UnsafeArchiveError', kind: 'hardlink-path-empty-component', entry: 'h', reason: /empty path component/ },
    { name: 'hard link with a "." component', tar: archive(dir('a'), file('a/f'), hardlink('h', 'a/./f')), error: 'UnsafeArchiveError', kind: 'hardlink-path-dot-component', entry: 'h', reason: /"\." path component/ },
    { name: 'hard link with a NUL byte in its target', tar: archive(file('f'), hardlink('h', 'f\0x')), error: 'UnsafeArchiveError', kind: 'hardlink-path-nul-byte', entry: 'h', reason: /NUL/ },
    // Unsafe, not a limit: a hard link's target is refused as unsafe whatever is wrong with it.
    { name: 'hard link target over maxPathLength', tar: archive(hardlink('h', `${'d/'.repeat(2100)}f`)), error: 'UnsafeArchiveError', kind: 'hardlink-path-too-long', entry: 'h', reason: /longer than 4096 bytes/ },
    { name: 'hard link target component over 255 bytes', tar: archive(hardlink('h', 'n'.repeat(256))), error: 'UnsafeArchiveError', kind: 'hardlink-path-component-too-long', entry: 'h', reason: /component longer than 255/ },
    // Devices
    { name: 'char device', tar: archive(dir('dev'), device('dev/null', 'char', 1, 3)), error: 'UnsafeArchiveError', kind: 'device', entry: 'dev/null', reason: /char device 1:3/ },
    { name: 'block device', tar: archive(device('sda', 'block', 8, 0)), error: 'UnsafeArchiveError', kind: 'device', entry: 'sda', reason: /block device 8:0/ },
    { name: 'char 0:1 is not a whiteout', tar: archive(device('x', 'char', 0, 1)), error: 'UnsafeArchiveError', kind: 'device', entry: 'x', reason: /char device 0:1/ },
    { name: "char 0:0 with allowDevices 'none'", tar: archive(device('x', 'char', 0, 0)), policy: { allowDevices: 'none' }, error: 'UnsafeArchiveError', kind: 'device-whiteout', entry: 'x', reason: /no device nodes/ },
    { name: "block 0:0 with allowDevices 'whiteouts-only'", tar: archive(device('x', 'block', 0, 0)), error: 'UnsafeArchiveError', kind: 'device', entry: 'x', reason: /block device 0:0/ },
    // Privileges by policy
    { name: 'setuid file with allowSetuid false', tar: archive(file('passwd', 'ELF', { mode: 0o4755 })), policy: { allowSetuid: false }, error: 'UnsafeArchiveError', kind: 'setuid', entry: 'passwd', reason: /setuid/ },
    { name: 'setgid file with allowSetuid false', tar: archive(file('chage', 'ELF', { mode: 0o2755, gid: 42 })), policy: { allowSetuid: false }, error: 'UnsafeArchiveError', kind: 'setuid', entry: 'chage', reason: /setgid/ },
    { name: 'setuid hard link with allowSetuid false', tar: archive(file('f', 'x'), hardlink('h', 'f', { mode: 0o4755 })), policy: { allowSetuid: false }, error: 'UnsafeArchiveError', kind: 'setuid', entry: 'h', reason: /setuid/ },
    { name: 'file capability with allowCapabilities false', tar: archive(file('ping', 'ELF', { xattrs: new Map([['security.capability', CAP_NET_RAW]]) })), policy: { allowCapabilities: false }, error: 'UnsafeArchiveError', kind: 'capability', entry: 'ping', reason: /capabilities/ },
    // Extended attributes
    { name: 'trusted.overlay.opaque from the archive', tar: archive(dir('d', { xattrs: new Map([['trusted.overlay.opaque', Buffer.from('y')]]) })), error: 'UnsafeArchiveError', kind: 'xattr-overlay', entry: 'd', reason: /trusted\.overlay\.opaque/ },
    { name: 'trusted.overlay.redirect from the archive', tar: archive(dir('d', { xattrs: new Map([['trusted.overlay.redirect', Buffer.from(sentinel)]]) })), error: 'UnsafeArchiveError', kind: 'xattr-overlay', entry: 'd', reason: /overlayfs attribute/ },
    { name: 'trusted.overlay.metacopy on a file', tar: archive(file('f', '', { xattrs: new Map([['trusted.overlay.metacopy', Buffer.alloc(0)]]) })), error: 'UnsafeArchiveError', kind: 'xattr-overlay', entry: 'f', reason: /overlayfs attribute/ },
    { name: 'user.overlay.* (userxattr overlays)', tar: archive(dir('d', { xattrs: new Map([['user.overlay.opaque', Buffer.from('y')]]) })), error: 'UnsafeArchiveError', kind: 'xattr-overlay', entry: 'd', reason: /overlayfs attribute/ },
    { name: 'unknown xattr namespace', tar: archive(file('f', '', { xattrs: new Map([['foo.bar', Buffer.from('1')]]) })), error: 'UnsafeArchiveError', kind: 'xattr-name-not-allowed', entry: 'f', reason: /outside what a layer may carry/ },
    { name: 'system.* other than POSIX ACLs', tar: archive(file('f', '', { xattrs: new Map([['system.nfs4_acl', Buffer.from('1')]]) })), error: 'UnsafeArchiveError', kind: 'xattr-name-not-allowed', entry: 'f', reason: /outside what a layer may carry/ },
    { name: 'xattr name with a newline', tar: archive(file('f', '', { xattrs: new Map([['user.a\n# file: /etc/passwd', Buffer.from('1')]]) })), error: 'UnsafeArchiveError', kind: 'xattr-name-not-allowed', entry: 'f', reason: /outside what a layer may carry/ },
    { name: 'oversized xattr value', tar: archive(file('f', '', { xattrs: new Map([['user.big', Buffer.alloc(70_000, 1)]]) })), error: 'ArchiveLimitError', kind: 'xattr-value-too-large', entry: 'f', reason: /70000 bytes/ },
    { name: 'xattr name over 255 bytes', tar: archive(file('f', '', { xattrs: new Map([[`user.${'a'.repeat(260)}`, Buffer.from('1')]]) })), error: 'ArchiveLimitError', kind: 'xattr-name-too-long', entry: 'f', reason: /name longer than 255 bytes/ },
    // The kind decides the class, not the text: a name with "bytes" in it is no limit.
    { name: 'unknown xattr namespace with "bytes" in the name', tar: archive(file('f', '', { xattrs: new Map([['foo.bytes', Buffer.from('1')]]) })), error: 'UnsafeArchiveError', kind: 'xattr-name-not-allowed', entry: 'f', reason: /outside what a layer may carry/ },
    { name: 'overlay xattr with "bytes" in the name', tar: archive(file('f', '', { xattrs: new Map([['trusted.overlay.bytes', Buffer.from('1')]]) })), error: 'UnsafeArchiveError', kind: 'xattr-overlay', entry: 'f', reason: /overlayfs attribute/ },
    // Whiteouts
    { name: 'whiteout for ".."', tar: archive(file('.wh...')), error: 'UnsafeArchiveError', kind: 'whiteout-dot', entry: '.wh...', reason: /whiteout for "\.\."/ },
    { name: 'whiteout for "."', tar: archive(dir('a'), file('a/.wh..')), error: 'UnsafeArchiveError', kind: 'whiteout-dot', entry: 'a/.wh..', reason: /whiteout for "\."/ },
    { name: 'whiteout without a name', tar: archive(file('.wh.')), error: 'UnsafeArchiveError', kind: 'whiteout-no-name', entry: '.wh.', reason: /without a name/ },
    { name: 'AUFS metadata', tar: archive(file('.wh..wh.plnk')), error: 'UnsafeArchiveError', kind: 'whiteout-aufs-metadata', entry: '.wh..wh.plnk', reason: /AUFS/ },
    { name: 'whiteout with ".." in its path', tar: archive(file('../.wh.sentinel')), error: 'UnsafeArchiveError', kind: 'path-dot-dot', entry: '../.wh.sentinel', reason: /"\.\."/ },
    { name: 'absolute whiteout', tar: archive(file(`${sentinel}/.wh.keep`)), error: 'UnsafeArchiveError', kind: 'path-absolute', entry: `${sentinel}/.wh.keep`, reason: /absolute/ },
    { name: 'entry under a whiteout name', tar: archive(file('.wh.x/y', 'x')), error: 'UnsafeArchiveError', kind: 'under-whiteout', entry: '.wh.x/y', reason: /whiteout name/ },
    { name: 'whiteout that is a symlink', tar: archive(symlink('.wh.x', sentinel)), error: 'UnsafeArchiveError', kind: 'whiteout-not-file', entry: '.wh.x', reason: /whiteout name on a symlink/ },
    { name: 'whiteout that is a directory', tar: archive(dir('.wh.x')), error: 'UnsafeArchiveError', kind: 'whiteout-not-file', entry: '.wh.x', reason: /whiteout name on a dir/ },
    { name: 'opaque marker that is a hard link', tar: archive(file('f'), hardlink('.wh..wh..opq', 'f')), error: 'UnsafeArchiveError', kind: 'whiteout-not-file', entry: '.wh..wh..opq', reason: /whiteout name on a link/ },
    { name: 'entry under a regular file', tar: archive(file('f', 'x'), file('f/g', 'x')), error: 'UnsafeArchiveError', kind: 'under-non-directory', entry: 'f/g', reason: /which is a file/ },
    // Conflicting types
    { name: 'file then directory', tar: archive(file('x', 'x'), dir('x')), error: 'UnsafeArchiveError', kind: 'type-conflict', entry: 'x', reason: /first as a file, then as a dir/ },
    { name: 'directory then file', tar: archive(dir('x'), file('x', 'x')), error: 'UnsafeArchiveError', kind: 'type-conflict', entry: 'x', reason: /first as a dir, then as a file/ },
    { name: 'file then symlink', tar: archive(file('x', 'x'), symlink('x', sentinel)), error: 'UnsafeArchiveError', kind: 'type-conflict', entry: 'x', reason: /first as a file, then as a symlink/ },
    { name: 'fifo then directory', tar: archive(fifo('x'), dir('x')), error: 'UnsafeArchiveError', kind: 'type-conflict', entry: 'x', reason: /first as a fifo, then as a dir/ },
    { name: 'implied directory then file', tar: archive(file('d/f', 'x'), file('d', 'x')), error: 'UnsafeArchiveError', kind: 'type-conflict', entry: 'd', reason: /first as a dir, then as a file/ },
    // Limits
    { name: 'too many entries', tar: archive(file('a'), file('b'), file('c'), file('d'), file('e')), policy: { maxEntries: 3 }, error: 'ArchiveLimitError', kind: 'too-many-entries', entry: 'd', reason: /limit of 3 entries/ },
    { name: 'file over maxFileBytes', tar: archive(file('small', 'x'), file('big', Buffer.alloc(2000, 7))), policy: { maxFileBytes: 1000 }, error: 'ArchiveLimitError', kind: 'file-too-large', entry: 'big', reason: /2000 bytes/ },
    { name: 'declared sizes over maxTotalBytes', tar: archive(file('f1', Buffer.alloc(1000)), file('f2', Buffer.alloc(4500))), policy: { maxTotalBytes: 5000 }, error: 'ArchiveLimitError', kind: 'files-too-large', entry: 'f2', reason: /larger than 5000 bytes in all/ },
    { name: 'tar stream over maxTotalBytes', tar: archive(file('f1', Buffer.alloc(2000)), file('f2', Buffer.alloc(2000))), policy: { maxTotalBytes: 5000 }, error: 'ArchiveLimitError', kind: 'stream-too-large', entry: 'f2', reason: /uncompressed layer larger than 5000/ },
    {
      name: 'zeros after the end (a decompression bomb)',
      tar: Buffer.concat([archive(file('f', 'x')), Buffer.alloc(8 << 20)]),
      policy: { maxTotalBytes: 4 << 20 },
      error: 'ArchiveLimitError',
      kind: 'stream-too-large',
      entry: undefined,
      reason: /larger than 4194304/,
    },
    {
      name: 'endless global pax headers',
      tar: Buffer.concat([archive(file('f', 'x')).subarray(0, 1024), ...Array.from({ length: 12 }, () => paxHeader([['comment', Buffer.alloc(500_000, 0x61)]], 'g'))]),
      policy: { maxTotalBytes: 4 << 20 },
      error: 'ArchiveLimitError',
      kind: 'stream-too-large',
      entry: 'f',
      reason: /larger than 4194304/,
    },
    { name: 'path over maxPathLength', tar: archive(file(`${'d/'.repeat(2100)}f`, 'x')), error: 'ArchiveLimitError', kind: 'path-too-long', entry: `${'d/'.repeat(2100)}f`, reason: /longer than 4096 bytes/ },
    { name: 'component over 255 bytes', tar: archive(file('n'.repeat(256), 'x')), error: 'ArchiveLimitError', kind: 'path-component-too-long', entry: 'n'.repeat(256), reason: /component longer than 255/ },
    { name: 'symlink target over 4095 bytes', tar: archive(symlink('l', 'x/'.repeat(2048))), error: 'ArchiveLimitError', kind: 'symlink-too-long', entry: 'l', reason: /longer than 4095/ },
    // Malformed archives
    { name: 'truncated in a file', tar: archive(file('a', 'x'), file('b', Buffer.alloc(5000, 1))).subarray(0, 512 * 3 + 1000), error: 'MalformedArchiveError', kind: 'truncated', entry: 'b', reason: /truncated/ },
    { name: 'truncated in a header', tar: archive(file('a', 'x'), file('second', 'y')).subarray(0, 1024 + 300), error: 'MalformedArchiveError', kind: 'truncated', entry: 'second', reason: /truncated/ },
    { name: 'no end-of-archive marker', tar: unterminated(file('a', 'x')), error: 'MalformedArchiveError', kind: 'no-end-marker', entry: '(the header after a)', reason: /end-of-archive marker/ },
    {
      name: 'bad header checksum',
      tar: archive(file('a', 'x'), (() => { const h = rawHeader(file('tampered'), () => undefined); h[150] = h[150]! ^ 1; return h; })()),
      error: 'MalformedArchiveError',
      kind: 'bad-checksum',
      entry: 'tampered',
      reason: /checksum/,
    },
    { name: 'malformed size field', tar: archive(rawHeader(file('badsize'), (b) => b.write('9z9z9z9z9z9\0', 124, 'latin1'))), error: 'MalformedArchiveError', kind: 'bad-number-field', entry: 'badsize', reason: /malformed size/ },
    { name: 'malformed mode field', tar: archive(file('a'), rawHeader(file('badmode'), (b) => b.write('0x777\0\0\0', 100, 'latin1'))), error: 'MalformedArchiveError', kind: 'bad-number-field', entry: 'badmode', reason: /malformed mode/ },
    { name: 'unknown entry type (GNU sparse)', tar: archive(rawHeader(file('sparse'), (b) => b.write('S', 156, 'latin1'))), error: 'MalformedArchiveError', kind: 'unsupported-entry-type', entry: 'sparse', reason: /unsupported tar entry type "S"/ },
    { name: 'unknown entry type (Z)', tar: archive(file('a'), rawHeader(file('zed'), (b) => b.write('Z', 156, 'latin1'))), error: 'MalformedArchiveError', kind: 'unsupported-entry-type', entry: 'zed', reason: /unsupported tar entry type "Z"/ },
    { name: 'oversized pax header', tar: archive(paxHeader([['comment', Buffer.alloc(1_100_000, 0x61)]]), file('f')), error: 'MalformedArchiveError', kind: 'oversized-meta-header', entry: 'PaxHeaders/x', reason: /oversized/ },
    { name: 'malformed pax record', tar: archive(Buffer.concat([rawHeader(file('PaxHeaders/bad', 'x'.repeat(10)), (b) => b.write('x', 156, 'latin1')), Buffer.from('99 path=a\n'), Buffer.alloc(502)]), file('f')), error: 'MalformedArchiveError', kind: 'bad-pax-record', entry: 'PaxHeaders/bad', reason: /pax record/ },
    { name: 'invalid owner (uid 2^32-1)', tar: archive(paxHeader([['uid', '4294967295']]), rawHeader(file('f'), () => undefined)), error: 'MalformedArchiveError', kind: 'invalid-owner', entry: 'f', reason: /invalid owner/ },
    { name: 'absurd mtime', tar: archive(paxHeader([['mtime', '99999999999999']]), rawHeader(file('f'), () => undefined)), error: 'MalformedArchiveError', kind: 'invalid-mtime', entry: 'f', reason: /invalid mtime/ },
    { name: 'data after the end-of-archive marker', tar: Buffer.concat([archive(file('a', 'x')), Buffer.alloc(512, 0x41)]), error: 'MalformedArchiveError', kind: 'data-before-end', entry: undefined, reason: /end-of-archive marker/ },
    { name: 'a lone zero block, then a hidden entry', tar: Buffer.concat([unterminated(file('a', 'x')), Buffer.alloc(512), archive(file('hidden', 'x'))]), error: 'MalformedArchiveError', kind: 'data-before-end', entry: undefined, reason: /end-of-archive marker/ },
    { name: 'a dangling pax header before the end', tar: Buffer.concat([unterminated(file('a', 'x')), paxHeader([['path', 'ghost']]), END_OF_ARCHIVE]), error: 'MalformedArchiveError', kind: 'data-before-end', entry: undefined, reason: /not an entry/ },
    {
      name: 'more than 2 MiB that is not an entry before the end',
      tar: Buffer.concat([unterminated(file('a', 'x')), ...Array.from({ length: 4 }, () => paxHeader([['comment', Buffer.alloc(900_000, 0x61)]], 'g')), END_OF_ARCHIVE]),
      error: 'MalformedArchiveError',
      kind: 'unchecked-data-before-end',
      entry: undefined,
      reason: /more than 2 MiB of data that is not an entry/,
    },
    { name: 'data long after the end-of-archive marker', tar: Buffer.concat([archive(file('a', 'x')), Buffer.alloc(1 << 20), Buffer.alloc(512, 0x41)]), error: 'MalformedArchiveError', kind: 'data-after-end', entry: undefined, reason: /data after the end-of-archive marker \(at byte \d+\)/ },
    // Compression
    {
      name: 'corrupt zstd',
      tar: archive(file('a', Buffer.alloc(300_000, 3)), file('b', 'x')),
      compressions: ['zstd'],
      blob: (z) => { const c = Buffer.from(z); c.fill(0xa5, 20, 40); return c; },
      error: 'MalformedArchiveError',
      // The damaged block decodes to a first header whose checksum is wrong.
      kind: ['corrupt-compression', 'bad-checksum'],
      entry: undefined,
      reason: /decompressed|malformed/,
    },
    { name: 'truncated zstd', tar: archive(file('a', Buffer.from(createHash('sha512').update('x').digest('hex').repeat(4000))), file('b', 'x')), compressions: ['zstd'], blob: (z) => z.subarray(0, z.length >> 1), error: 'MalformedArchiveError', kind: ['corrupt-compression', 'truncated'], entry: undefined, reason: /decompressed|malformed/ },
    { name: 'truncated gzip', tar: archive(file('a', Buffer.from(createHash('sha512').update('x').digest('hex').repeat(4000))), file('b', 'x')), compressions: ['gzip'], blob: (z) => z.subarray(0, z.length >> 1), error: 'MalformedArchiveError', kind: ['corrupt-compression', 'truncated'], entry: undefined, reason: /decompressed|malformed/ },
    { name: 'gzip that is not gzip', tar: archive(file('a', 'x')), compressions: ['gzip'], blob: () => Buffer.from('this is not a gzip stream at all, just text'), error: 'MalformedArchiveError', kind: 'corrupt-compression', entry: undefined, reason: /decompressed/ },
    { name: 'unsupported media type', tar: archive(file('a', 'x')), compressions: ['zstd'], mediaType: 'application/vnd.oci.image.layer.v1.tar+xz', error: 'MalformedArchiveError', kind: 'unsupported-media-type', entry: undefined, reason: /media type/ },
    // Digests
    { name: 'blob digest mismatch', tar: archive(file('a', 'x')), wrongDigest: true, error: 'DigestMismatchError', kind: 'digest-mismatch', entry: undefined, reason: /blob digest is sha256:[0-9a-f]{64}, expected/ },
    { name: 'diff_id mismatch', tar: archive(file('a', 'x')), wrongDiffId: true, error: 'DigestMismatchError', kind: 'diff-id-mismatch', entry: undefined, reason: /diff_id/ },
    { name: 'blob larger than its descriptor', tar: archive(file('a', Buffer.alloc(100_000, 9))), shortSize: true, error: 'LayerExtractError', kind: 'blob-size', entry: undefined, reason: /larger than its descriptor/ },
  ];
  return cases;
}

/** Entries whose position in the stream the error cannot know exactly: any entry, or none. */
export const LOOSE_ENTRY = new Set(['corrupt zstd', 'truncated zstd', 'truncated gzip', 'gzip that is not gzip']);

// --- valid edge cases ---------------------------------------------------------------------

export interface ValidCase {
  name: string;
  tar: Buffer;
  policy?: ExtractPolicy;
  /**
   * The listing the extracted layer must have (see test/cache/extract.test.ts listLayer), one
   * row per path below the root, then "./" for the root. `@*` matches any mtime.
   */
  listing: string[];
}

export const hex = (s: string | Buffer) => Buffer.from(s).toString('hex');
const short = (data: string | Buffer) => createHash('sha256').update(data).digest('hex').slice(0, 16);
/** A listing row for a regular file. */
export const fileRow = (path: string, mode: string, owner: string, data: string | Buffer, rest = '') =>
  `${path} file ${mode} ${owner} ${Buffer.byteLength(data)} ${short(data)}${rest}`;

/** A POSIX access ACL (user::rwx, user:1000:r--, group::r-x, mask::r-x, other::r--) in the kernel's xattr format. */
export const ACL = Buffer.from(
  [
    '02000000',
    '0100' + '0700' + 'ffffffff', // USER_OBJ rwx
    '0200' + '0400' + 'e8030000', // USER 1000 r--
    '0400' + '0500' + 'ffffffff', // GROUP_OBJ r-x
    '1000' + '0500' + 'ffffffff', // MASK r-x
    '2000' + '0400' + 'ffffffff', // OTHER r--
  ].join(''),
  'hex',
);
export { CAP_NET_RAW };

export function validCases(sentinel: string): ValidCase[] {
  const longDir = `${'long-directory-name-'.repeat(6)}x`; // 121 bytes
  const longName = `${'n'.repeat(250)}.txt`; // 254 bytes
  const longTarget = `../${'t'.repeat(200)}/${'u'.repeat(200)}`;
  const big = Buffer.alloc((1 << 20) + 1, 0x5a);
  big.write('start', 0);
  big.write('end', big.length - 3);
  const t = (n: number) => T0 + n;
  return [
    {
      name: 'long names via pax',
      tar: archive(dir(longDir), dir(`${longDir}/${longDir}`), file(`${longDir}/${longDir}/${longName}`, 'long\n', { mtime: t(1) }), symlink('long-link', longTarget)),
      listing: [
        `long-link symlink 0777 0:0 -> ${longTarget} @${T0}`,
        `${longDir} dir 0755 0:0 @${T0}`,
        `${longDir}/${longDir} dir 0755 0:0 @${T0}`,
        fileRow(`${longDir}/${longDir}/${longName}`, '0644', '0:0', 'long\n', ` @${t(1)}`),
        './ dir 0755 0:0 @*',
      ],
    },
    {
      name: 'non-ASCII names',
      tar: archive(dir('données'), file('données/naïve 文件.txt', 'unicode\n'), symlink('données/ссылка', 'naïve 文件.txt'), file('données/tab\there', 't')),
      listing: [
        `données dir 0755 0:0 @${T0}`,
        fileRow('données/naïve 文件.txt', '0644', '0:0', 'unicode\n', ` @${T0}`),
        fileRow('données/tab\there', '0644', '0:0', 't', ` @${T0}`),
        `données/ссылка symlink 0777 0:0 -> naïve 文件.txt @${T0}`,
        './ dir 0755 0:0 @*',
      ],
    },
    {
      name: 'setuid and setgid files (and a setgid directory)',
      tar: archive(
        dir('usr'),
        dir('usr/bin'),
        file('usr/bin/passwd', 'passwd-binary', { mode: 0o4755 }),
        // Owned by a group: chown must come before chmod, or the setgid bit is lost.
        file('usr/bin/chage', 'chage-binary', { mode: 0o2755, gid: 42 }),
        file('usr/bin/su', 'su-binary', { mode: 0o4750, uid: 0, gid: 1000 }),
        dir('var'),
        dir('var/mail', { mode: 0o2775, gid: 8 }),
      ),
      listing: [
        `usr dir 0755 0:0 @${T0}`,
        `usr/bin dir 0755 0:0 @${T0}`,
        fileRow('usr/bin/chage', '2755', '0:42', 'chage-binary', ` @${T0}`),
        fileRow('usr/bin/passwd', '4755', '0:0', 'passwd-binary', ` @${T0}`),
        fileRow('usr/bin/su', '4750', '0:1000', 'su-binary', ` @${T0}`),
        `var dir 0755 0:0 @${T0}`,
        `var/mail dir 2775 0:8 @${T0}`,
        './ dir 0755 0:0 @*',
      ],
    },
    {
      name: 'capability, ACL and other xattrs',
      tar: archive(
        file('ping', 'ping-binary', { mode: 0o755, xattrs: new Map([['security.capability', CAP_NET_RAW]]) }),
        file('acl', 'acl', { mode: 0o754, xattrs: new Map([['system.posix_acl_access', ACL]]) }),
        file('user-attrs', 'u', { xattrs: new Map([['user.binary', Buffer.from([0, 255, 10, 61, 0])], ['user.empty', Buffer.alloc(0)], ['user.text', Buffer.from('hello world')]]) }),
        dir('d', { xattrs: new Map([['user.dir', Buffer.from('on a dir')]]) }),
        symlink('l', 'ping', { xattrs: new Map([['trusted.link', Buffer.from('on a symlink')]]) }),
        file('odd name\nwith newline\\and backslash', 'x', { xattrs: new Map([['user.x', Buffer.from('1')]]) }),
      ),
      listing: [
        fileRow('acl', '0754', '0:0', 'acl', ` @${T0} xattrs system.posix_acl_access=${ACL.toString('hex')}`),
        `d dir 0755 0:0 @${T0} xattrs user.dir=${hex('on a dir')}`,
        `l symlink 0777 0:0 -> ping @${T0} xattrs trusted.link=${hex('on a symlink')}`,
        fileRow('odd name\nwith newline\\and backslash', '0644', '0:0', 'x', ` @${T0} xattrs user.x=${hex('1')}`),
        fileRow('ping', '0755', '0:0', 'ping-binary', ` @${T0} xattrs security.capability=${CAP_NET_RAW.toString('hex')}`),
        fileRow('user-attrs', '0644', '0:0', 'u', ` @${T0} xattrs user.binary=00ff0a3d00,user.empty=,user.text=${hex('hello world')}`),
        './ dir 0755 0:0 @*',
      ],
    },
    {
      name: 'whiteouts',
      tar: archive(dir('etc'), file('etc/.wh.motd'), file('.wh.gone'), file('etc/kept', 'k')),
      listing: [
        'etc dir 0755 0:0 @' + T0,
        'etc/kept file 0644 0:0 1 ' + short('k') + ` @${T0}`,
        `etc/motd char 0000 0:0 0:0 @${T0}`,
        `gone char 0000 0:0 0:0 @${T0}`,
        './ dir 0755 0:0 @*',
      ],
    },
    {
      name: 'opaque directory',
      tar: archive(dir('etc'), dir('etc/apt', { mode: 0o750 }), file('etc/apt/.wh..wh..opq'), file('etc/apt/sources.list', 'deb x\n'), dir('top'), file('.wh..wh..opq')),
      listing: [
        `etc dir 0755 0:0 @${T0}`,
        `etc/apt dir 0750 0:0 @${T0} xattrs trusted.overlay.opaque=79`,
        fileRow('etc/apt/sources.list', '0644', '0:0', 'deb x\n', ` @${T0}`),
        `top dir 0755 0:0 @${T0}`,
        './ dir 0755 0:0 @* xattrs trusted.overlay.opaque=79',
      ],
    },
    {
      name: 'hard links to an earlier file',
      tar: archive(dir('bin'), file('bin/a', 'shared', { mode: 0o755 }), hardlink('bin/b', 'bin/a', { mode: 0o755 }), hardlink('c', './bin/a')),
      listing: [
        `bin dir 0755 0:0 @${T0}`,
        fileRow('bin/a', '0755', '0:0', 'shared', ` @${T0} links 3`),
        fileRow('bin/b', '0755', '0:0', 'shared', ` @${T0} links 3`),
        fileRow('c', '0755', '0:0', 'shared', ` @${T0} links 3`),
        './ dir 0755 0:0 @*',
      ],
    },
    {
      name: 'symlinks out of the layer, not followed',
      tar: archive(dir('etc'), symlink('etc/shadow', `${sentinel}/keep`), symlink('escape', sentinel), symlink('up', '../..'), file('etc/after', 'a')),
      listing: [
        `escape symlink 0777 0:0 -> ${sentinel} @${T0}`,
        `etc dir 0755 0:0 @${T0}`,
        fileRow('etc/after', '0644', '0:0', 'a', ` @${T0}`),
        `etc/shadow symlink 0777 0:0 -> ${sentinel}/keep @${T0}`,
        `up symlink 0777 0:0 -> ../.. @${T0}`,
        './ dir 0755 0:0 @*',
      ],
    },
    { name: 'empty layer', tar: archive(), listing: ['./ dir 0755 0:0 @*'] },
    { name: 'root entry only', tar: archive(dir('.', { mode: 0o700, mtime: t(5) })), listing: [`./ dir 0700 0:0 @${t(5)}`] },
    {
      name: 'read-only directories get their files',
      tar: archive(dir('ro', { mode: 0o555, mtime: t(2) }), file('ro/f', 'f', { mode: 0o444 }), dir('ro/sub', { mode: 0o500, mtime: t(3) }), file('ro/sub/g', 'g', { mode: 0o400 })),
      listing: [
        `ro dir 0555 0:0 @${t(2)}`,
        fileRow('ro/f', '0444', '0:0', 'f', ` @${T0}`),
        `ro/sub dir 0500 0:0 @${t(3)}`,
        fileRow('ro/sub/g', '0400', '0:0', 'g', ` @${T0}`),
        './ dir 0755 0:0 @*',
      ],
    },
    {
      name: 'fifo',
      tar: archive(dir('run'), fifo('run/initctl', { mode: 0o600, mtime: t(1) }), fifo('run/other', { mode: 0o644, uid: 7, gid: 8 })),
      listing: [`run dir 0755 0:0 @${T0}`, `run/initctl fifo 0600 0:0 @${t(1)}`, `run/other fifo 0644 7:8 @${T0}`, './ dir 0755 0:0 @*'],
    },
    {
      name: 'implied parent directories',
      tar: archive(file('a/b/c/file', 'deep')),
      listing: ['a dir 0755 0:0 @*', 'a/b dir 0755 0:0 @*', 'a/b/c dir 0755 0:0 @*', fileRow('a/b/c/file', '0644', '0:0', 'deep', ` @${T0}`), './ dir 0755 0:0 @*'],
    },
    {
      name: 'directory entry after its contents',
      tar: archive(file('p/c', 'c'), dir('p', { mode: 0o700, uid: 5, gid: 6, mtime: t(9) })),
      listing: [`p dir 0700 5:6 @${t(9)}`, fileRow('p/c', '0644', '0:0', 'c', ` @${T0}`), './ dir 0755 0:0 @*'],
    },
    {
      name: 'whiteout and a directory of the same name',
      tar: archive(file('.wh.cfg'), dir('cfg'), file('cfg/x', 'x'), dir('other'), file('.wh.other'), file('.wh.under'), file('under/y', 'y')),
      listing: [
        `cfg dir 0755 0:0 @${T0} xattrs trusted.overlay.opaque=79`,
        fileRow('cfg/x', '0644', '0:0', 'x', ` @${T0}`),
        `other dir 0755 0:0 @${T0} xattrs trusted.overlay.opaque=79`,
        'under dir 0755 0:0 @* xattrs trusted.overlay.opaque=79',
        fileRow('under/y', '0644', '0:0', 'y', ` @${T0}`),
        './ dir 0755 0:0 @*',
      ],
    },
    {
      name: 'the same path twice, same type',
      tar: archive(dir('d', { mode: 0o700 }), file('f', 'one'), dir('d', { mode: 0o751, mtime: t(4) }), file('f', 'two', { mode: 0o600 }), symlink('s', 'a'), symlink('s', 'b'), file('.wh.w'), file('.wh.w')),
      listing: [
        `d dir 0751 0:0 @${t(4)}`,
        fileRow('f', '0600', '0:0', 'two', ` @${T0}`),
        `s symlink 0777 0:0 -> b @${T0}`,
        `w char 0000 0:0 0:0 @${T0}`,
        './ dir 0755 0:0 @*',
      ],
    },
    {
      name: "devices with allowDevices 'all'",
      policy: { allowDevices: 'all' },
      tar: archive(dir('dev'), device('dev/null', 'char', 1, 3, { mode: 0o666 }), device('dev/sda', 'block', 8, 0, { mode: 0o660, gid: 6 })),
      listing: [`dev dir 0755 0:0 @${T0}`, `dev/null char 0666 0:0 1:3 @${T0}`, `dev/sda block 0660 0:6 8:0 @${T0}`, './ dir 0755 0:0 @*'],
    },
    {
      name: 'char 0:0 entry (overlayfs whiteout form)',
      tar: archive(device('gone', 'char', 0, 0)),
      listing: [`gone char 0000 0:0 0:0 @${T0}`, './ dir 0755 0:0 @*'],
    },
    {
      name: 'large ids, old and large mtimes',
      tar: archive(file('big-ids', 'x', { uid: 3_000_000_000, gid: 2_500_000 }), file('epoch', 'e', { mtime: 0 }), file('future', 'f', { mtime: 4_102_444_800 })),
      listing: [fileRow('big-ids', '0644', '3000000000:2500000', 'x', ` @${T0}`), fileRow('epoch', '0644', '0:0', 'e', ' @0'), fileRow('future', '0644', '0:0', 'f', ' @4102444800'), './ dir 0755 0:0 @*'],
    },
    {
      name: 'sticky directory, empty and large files',
      tar: archive(dir('tmp', { mode: 0o1777 }), file('empty'), file('big', big)),
      listing: [fileRow('big', '0644', '0:0', big, ` @${T0}`), fileRow('empty', '0644', '0:0', '', ` @${T0}`), `tmp dir 1777 0:0 @${T0}`, './ dir 0755 0:0 @*'],
    },
    {
      name: 'GNU tar record padding after the end marker',
      tar: (() => {
        const a = archive(file('f', 'x'));
        return Buffer.concat([a, Buffer.alloc(10240 - a.length)]);
      })(),
      listing: [fileRow('f', '0644', '0:0', 'x', ` @${T0}`), './ dir 0755 0:0 @*'],
    },
  ];
}
