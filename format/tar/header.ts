// Pure tar header encoding (POSIX ustar + pax extended headers), with no I/O, so that layer
// packing is deterministic and cheap per entry. Reading tarballs uses tar-stream; writing uses
// this because the packer emits whole batches of entries without a stream object per file.

export type EntryType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarEntry {
  /** Path inside the archive: relative, '/'-separated, no trailing slash. */
  path: string;
  type: EntryType;
  /** Permission bits including setuid/setgid/sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Size of the data that follows; only regular files carry data. */
  size: number;
  /** Seconds since the epoch (integer). */
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes (for example security.capability), stored as SCHILY.xattr pax records. */
  xattrs?: ReadonlyMap<string, Buffer>;
}

export const BLOCK = 512;

const TYPEFLAG: Record<EntryType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

/** Bytes of padding after `size` bytes of data. */
export function padding(size: number): number {
  const rest = size % BLOCK;
  return rest === 0 ? 0 : BLOCK - rest;
}

function writeString(buf: Buffer, offset: number, length: number, value: string): void {
  buf.write(value, offset, length, 'utf8');
}

function writeOctal(buf: Buffer, offset: number, length: number, value: number): void {
  // length-1 digits, zero padded, then NUL.
  const digits = value.toString(8).padStart(length - 1, '0');
  buf.write(digits, offset, length - 1, 'ascii');
  buf[offset + length - 1] = 0;
}

function paxRecord(key: string, value: Buffer): Buffer {
  // "<len> <key>=<value>\n" where <len> counts the whole record, its own digits included.
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'ascii'), body]);
}

function ustarHeader(entry: TarEntry, name: string, linkname: string, typeflag: string, size: number): Buffer {
  const buf = Buffer.alloc(BLOCK);
  writeString(buf, 0, 100, name);
  writeOctal(buf, 100, 8, entry.mode & 0o7777);
  writeOctal(buf, 108, 8, Math.min(entry.uid, MAX_OCTAL_7));
  writeOctal(buf, 116, 8, Math.min(entry.gid, MAX_OCTAL_7));
  writeOctal(buf, 124, 12, Math.min(size, MAX_OCTAL_11));
  writeOctal(buf, 136, 12, Math.min(Math.max(0, entry.mtime), MAX_OCTAL_11));
  buf.fill(0x20, 148, 156); // checksum placeholder: spaces
  buf.write(typeflag, 156, 1, 'ascii');
  writeString(buf, 157, 100, linkname);
  buf.write('ustar\x0000', 257, 8, 'binary');
  writeOctal(buf, 329, 8, entry.devmajor ?? 0);
  writeOctal(buf, 337, 8, entry.devminor ?? 0);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += buf[i]!;
  buf.write(sum.toString(8).padStart(6, '0') + '\x00 ', 148, 8, 'binary');
  return buf;
}

/**
 * Encodes the header block(s) for one entry: a pax extended header first when a field does not
 * fit ustar (long or non-ASCII names, big ids or sizes, xattrs), then the ustar header.
 */
export function encodeHeader(entry: TarEntry): Buffer {
  const name = entry.type === 'dir' ? `${entry.path}/` : entry.path;
  const linkname = entry.linkname ?? '';
  const size = entry.type === 'file' ? entry.size : 0;
  const records: Buffer[] = [];
  const nameFits = Buffer.byteLength(name) <= 100 && /^[\x20-\x7e]*$/.test(name);
  const linkFits = Buffer.byteLength(linkname) <= 100 && /^[\x20-\x7e]*$/.test(linkname);
  if (!nameFits) records.push(paxRecord('path', Buffer.from(name, 'utf8')));
  if (!linkFits) records.push(paxRecord('linkpath', Buffer.from(linkname, 'utf8')));
  if (entry.uid > MAX_OCTAL_7) records.push(paxRecord('uid', Buffer.from(String(entry.uid))));
  if (entry.gid > MAX_OCTAL_7) records.push(paxRecord('gid', Buffer.from(String(entry.gid))));
  if (size > MAX_OCTAL_11) records.push(paxRecord('size', Buffer.from(String(size))));
  if (entry.xattrs) {
    for (const key of [...entry.xattrs.keys()].sort()) records.push(paxRecord(`SCHILY.xattr.${key}`, entry.xattrs.get(key)!));
  }
  const ustar = ustarHeader(entry, nameFits ? name : asciiPrefix(name), linkFits ? linkname : asciiPrefix(linkname), TYPEFLAG[entry.type], size);
  if (records.length === 0) return ustar;
  const pax = Buffer.concat(records);
  const paxEntry: TarEntry = { path: 'PaxHeader', type: 'file', mode: 0o644, uid: 0, gid: 0, size: pax.length, mtime: entry.mtime };
  const paxHeader = ustarHeader(paxEntry, asciiPrefix(`PaxHeaders/${entry.path}`), '', 'x', pax.length);
  return Buffer.concat([paxHeader, pax, Buffer.alloc(padding(pax.length)), ustar]);
}

/** A name that fits the 100-byte ustar field, for readers that ignore pax (the pax record wins). */
function asciiPrefix(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '_').slice(0, 99);
}

/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);
