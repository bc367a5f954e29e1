// A strict streaming tar reader (ustar, pax, GNU long names), the counterpart of header.ts.
// Archives from outside are hostile: every header's checksum is verified, numbers are parsed
// strictly, unknown entry types and truncation are errors, and pax data is bounded. Extended
// attribute values stay raw bytes (tar-stream decodes pax values as UTF-8, which corrupts
// binary values such as security.capability).
import type { EntryType, TarEntry } from './header.ts';
import { BLOCK, padding } from './header.ts';

/** What is wrong with a tar stream. */
export type TarFormatErrorKind =
  /** The stream ends inside a header, a pax or long-name record, or an entry's data. */
  | 'truncated'
  /** The stream ends cleanly between entries, without the end-of-archive marker. */
  | 'no-end-marker'
  | 'bad-checksum'
  /** A numeric header field (mode, uid, size, ...) is malformed, negative or too large. */
  | 'bad-number-field'
  /** A pax record, or a pax value that must be a number, is malformed. */
  | 'bad-pax-record'
  /** A pax or long-name header larger than the reader holds in memory. */
  | 'oversized-meta-header'
  | 'unsupported-entry-type'
  | 'nul-in-name';

export class TarFormatError extends Error {
  readonly kind: TarFormatErrorKind;
  /**
   * The byte of the stream the error is about, which the message ends with ("at byte N"): for
   * 'truncated', where the stream ends; otherwise the offset of the header at fault.
   * Undefined for errors in a header field or pax record, and for 'no-end-marker'.
   */
  readonly offset: number | undefined;
  constructor(kind: TarFormatErrorKind, description: string, offset?: number) {
    super(offset === undefined ? description : `${description} at byte ${offset}`);
    this.name = 'TarFormatError';
    this.kind = kind;
    this.offset = offset;
  }
}

const MAX_META_SIZE = 1 << 20;

const TYPES: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

/** Pulls exact byte counts out of a chunked stream. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private readonly source: AsyncIterator<Buffer | Uint8Array | string>;
  /** Bytes consumed so far: the offset of the next byte, for error messages. */
  offset = 0;

  constructor(source: AsyncIterable<Buffer | Uint8Array | string>) {
    this.source = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.done) {
      const next = await this.source.next();
      if (next.done) {
        this.done = true;
        break;
      }
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      if (chunk.length) {
        this.chunks.push(chunk);
        this.buffered += chunk.length;
      }
    }
    return this.buffered >= n;
  }

  /** Exactly n bytes, or null at a clean end of stream (no bytes left). */
  async read(n: number): Promise<Buffer | null> {
    if (!(await this.fill(n))) {
      if (this.buffered === 0) return null;
      throw new TarFormatError('truncated', 'archive truncated', this.offset + this.buffered);
    }
    const out = this.take(n);
    return out;
  }

  private take(n: number): Buffer {
    let out: Buffer;
    if (this.chunks[0]!.length >= n) {
      out = this.chunks[0]!.subarray(0, n);
      this.chunks[0] = this.chunks[0]!.subarray(n);
      if (this.chunks[0].length === 0) this.chunks.shift();
    } else {
      out = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const c = this.chunks[0]!;
        const use = Math.min(c.length, n - got);
        c.copy(out, got, 0, use);
        got += use;
        if (use === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(use);
      }
    }
    this.buffered -= n;
    this.offset += n;
    return out;
  }

  /** Yields the next n bytes in pieces, without holding them all. */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let remaining = n;
    while (remaining > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) throw new TarFormatError('truncated', 'archive truncated', this.offset);
      const take = Math.min(remaining, this.chunks[0]!.length);
      remaining -= take;
      yield this.take(take);
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.stream(n)) {
      /* discard */
    }
  }
}

function field(block: Buffer, offset: number, length: number): Buffer {
  const raw = block.subarray(offset, offset + length);
  const nul = raw.indexOf(0);
  return nul === -1 ? raw : raw.subarray(0, nul);
}

function parseNumber(block: Buffer, offset: number, length: number, name: string): number {
  const raw = block.subarray(offset, offset + length);
  if (raw[0]! & 0x80) {
    // GNU base-256: big-endian two's complement, first byte's top bit is the marker.
    if (raw[0] === 0xff) throw new TarFormatError('bad-number-field', `negative ${name} in tar header`);
    let value = raw[0]! & 0x7f;
    for (let i = 1; i < raw.length; i++) value = value * 256 + raw[i]!;
    if (!Number.isSafeInteger(value)) throw new TarFormatError('bad-number-field', `${name} too large in tar header`);
    return value;
  }
  const text = raw.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError('bad-number-field', `malformed ${name} field "${text}" in tar header`);
  return parseInt(text, 8);
}

function verifyChecksum(block: Buffer): boolean {
  const stored = parseNumber(block, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

interface Pax {
  strings: Map<string, string>;
  xattrs: Map<string, Buffer>;
}

function parsePax(buf: Buffer): Pax {
  const pax: Pax = { strings: new Map(), xattrs: new Map() };
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] === 0) break;
    const space = buf.indexOf(0x20, pos);
    if (space === -1) throw new TarFormatError('bad-pax-record', 'malformed pax record');
    const len = Number(buf.subarray(pos, space).toString('latin1'));
    if (!Number.isInteger(len) || len <= space - pos + 1 || pos + len > buf.length || buf[pos + len - 1] !== 0x0a) throw new TarFormatError('bad-pax-record', 'malformed pax record length');
    const record = buf.subarray(space + 1, pos + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq === -1) throw new TarFormatError('bad-pax-record', 'malformed pax record (no "=")');
    const key = record.subarray(0, eq).toString('utf8');
    const value = record.subarray(eq + 1);
    if (key.startsWith('SCHILY.xattr.')) pax.xattrs.set(key.slice('SCHILY.xattr.'.length), Buffer.from(value));
    else pax.strings.set(key, value.toString('utf8'));
    pos += len;
  }
  return pax;
}

function paxNumber(pax: Pax | undefined, key: string): number | undefined {
  const v = pax?.strings.get(key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new TarFormatError('bad-pax-record', `malformed pax ${key} "${v}"`);
  return key === 'mtime' ? Math.floor(n) : n;
}

export interface ReadEntry {
  entry: TarEntry;
  /** Offset of the entry's header in the (uncompressed) archive. */
  offset: number;
  /** The entry's data; read it fully or not at all before asking for the next entry. */
  body(): AsyncGenerator<Buffer>;
}

/** Entries of a tar stream; path names come without leading "./" and trailing "/". */
export async function* readTar(source: AsyncIterable<Buffer | Uint8Array | string>): AsyncGenerator<ReadEntry> {
  const reader = new ByteReader(source);
  let globalPax: Pax | undefined;
  let localPax: Pax | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const offset = reader.offset;
    const block = await reader.read(BLOCK);
    if (!block) throw new TarFormatError('no-end-marker', 'archive ends without its end-of-archive marker');
    if (block.every((b) => b === 0)) return;
    if (!verifyChecksum(block)) throw new TarFormatError('bad-checksum', 'bad header checksum', offset);
    const typeflag = String.fromCharCode(block[156]!);
    const size = paxNumber(localPax, 'size') ?? parseNumber(block, 124, 12, 'size');
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > MAX_META_SIZE) throw new TarFormatError('oversized-meta-header', `oversized ${typeflag} header (${size} bytes)`, offset);
      const data = (await reader.read(size + padding(size))) ?? Buffer.alloc(0);
      const body = data.subarray(0, size);
      if (typeflag === 'x') localPax = parsePax(body);
      else if (typeflag === 'g') globalPax = parsePax(body);
      else if (typeflag === 'L') longName = field(body, 0, body.length).toString('utf8');
      else longLink = field(body, 0, body.length).toString('utf8');
      continue;
    }
    const type = TYPES[typeflag];
    if (!type) throw new TarFormatError('unsupported-entry-type', `unsupported tar entry type "${typeflag.replace(/[^\x20-\x7e]/g, '?')}"`, offset);
    const pax = mergePax(globalPax, localPax);
    const magic = block.subarray(257, 263).toString('latin1');
    let name = field(block, 0, 100).toString('utf8');
    if (magic === 'ustar\0') {
      const prefix = field(block, 345, 155).toString('utf8');
      if (prefix) name = `${prefix}/${name}`;
    }
    name = pax?.strings.get('path') ?? longName ?? name;
    const linkname = pax?.strings.get('linkpath') ?? longLink ?? field(block, 157, 100).toString('utf8');
    const entry: TarEntry = {
      path: normalizeName(name, offset),
      type,
      mode: parseNumber(block, 100, 8, 'mode') & 0o7777,
      uid: paxNumber(pax, 'uid') ?? parseNumber(block, 108, 8, 'uid'),
      gid: paxNumber(pax, 'gid') ?? parseNumber(block, 116, 8, 'gid'),
      size: type === 'file' ? size : 0,
      mtime: paxNumber(pax, 'mtime') ?? parseNumber(block, 136, 12, 'mtime'),
    };
    if (type === 'link' || type === 'symlink') entry.linkname = linkname;
    if (type === 'char' || type === 'block') {
      entry.devmajor = parseNumber(block, 329, 8, 'devmajor');
      entry.devminor = parseNumber(block, 337, 8, 'devminor');
    }
    if (pax?.xattrs.size) entry.xattrs = pax.xattrs;
    localPax = undefined;
    longName = undefined;
    longLink = undefined;
    // Only regular files carry data; a size on other types is skipped (hard links: 0 by spec).
    const dataSize = type === 'file' ? size : typeflag === '1' || typeflag === '2' || typeflag === '5' ? 0 : size;
    let consumed = dataSize === 0;
    yield {
      entry,
      offset,
      body: async function* () {
        if (consumed) return;
        consumed = true;
        yield* reader.stream(dataSize);
      },
    };
    if (!consumed) await reader.skip(dataSize);
    await reader.skip(padding(dataSize));
  }
}

function mergePax(global: Pax | undefined, local: Pax | undefined): Pax | undefined {
  if (!global) return local;
  if (!local) return global;
  return { strings: new Map([...global.strings, ...local.strings]), xattrs: new Map([...global.xattrs, ...local.xattrs]) };
}

/** "./a/b/" -> "a/b"; the root itself becomes "". Safety checks are the extractor's job. */
function normalizeName(name: string, offset: number): string {
  if (name.includes('\0')) throw new TarFormatError('nul-in-name', 'entry name with a NUL byte', offset);
  let n = name;
  while (n.startsWith('./')) n = n.slice(2);
  if (n === '.') n = '';
  return n.replace(/\/+$/, '');
}
