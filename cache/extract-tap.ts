// The two streams of a layer extraction, checked while they pass: the compressed blob (its size
// against the descriptor's) and the uncompressed tar (its size against the policy, and what lies
// between its last entry and the end, which readTar does not look at). Their digests are the
// decoding thread's (extract-decoder.ts). Nothing here writes; a stream that breaks a rule throws
// a LayerExtractError.
import type { Digest } from '../format/digest.ts';
import { refusal } from './extract-policy.ts';

/**
 * The compressed blob on its way to the decompressor: counted, and refused as soon as it is longer than its descriptor says. An error of the source itself is
 * kept in `sourceFailed`, so that it is reported as it is, not as what it made the consumers do.
 */
export class BlobTap {
  bytes = 0;
  sourceFailed: unknown;
  private readonly layer: Digest;
  private readonly expectedSize: number | undefined;

  constructor(layer: Digest, expectedSize: number | undefined) {
    this.layer = layer;
    this.expectedSize = expectedSize;
  }

  /** The source's chunks as Buffers; stops (returns) the source when the consumer stops early. */
  async *tap(source: AsyncIterable<Buffer | Uint8Array>): AsyncGenerator<Buffer> {
    const it = source[Symbol.asyncIterator]();
    try {
      for (;;) {
        let next: IteratorResult<Buffer | Uint8Array>;
        try {
          next = await it.next();
        } catch (err) {
          this.sourceFailed = err;
          throw err;
        }
        if (next.done) break;
        const chunk = next.value;
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        this.bytes += buf.length;
        if (this.expectedSize !== undefined && this.bytes > this.expectedSize) throw refusal(this.layer, 'blob-size', undefined, `blob is larger than its descriptor's ${this.expectedSize} bytes`);
        yield buf;
      }
    } finally {
      await it.return?.();
    }
  }
}

/**
 * The uncompressed tar on its way to readTar: counted against the size limit,
 * and the last few MiB kept, so that what lies between the last entry and the end-of-archive
 * marker can be checked and a header readTar refuses can be named.
 */
export class TarTap {
  bytes = 0;
  /** The entry being read or written, for errors (the layer writer sets it). */
  current: string | undefined;
  private readonly recent: { start: number; buf: Buffer }[] = [];
  private recentBytes = 0;
  /** Set once readTar has found the end: everything from here on must be zeros. */
  private end: number | undefined;
  private readonly layer: Digest;
  private readonly limit: number;

  constructor(layer: Digest, limit: number) {
    this.layer = layer;
    this.limit = limit;
  }

  async *tap(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const whole of source) {
      const start = this.bytes;
      // Up to the limit, then stop at the next read: the entry that crosses it is the one named.
      const over = start + whole.length > this.limit;
      const chunk = over ? whole.subarray(0, this.limit - start) : whole;
      this.bytes += chunk.length;
      if (this.end !== undefined) {
        if (!isZeros(chunk)) throw refusal(this.layer, 'data-after-end', undefined, `has data after the end-of-archive marker (at byte ${start + nonZeroAt(chunk)})`);
      } else {
        this.recent.push({ start, buf: chunk });
        this.recentBytes += chunk.length;
        // Keep the newest chunk and at least 2 MiB before it.
        while (this.recent.length > 1 && this.recentBytes - this.recent[0]!.buf.length - chunk.length >= 2 << 20) this.recentBytes -= this.recent.shift()!.buf.length;
        if (chunk.length) yield chunk;
      }
      if (over) throw refusal(this.layer, 'stream-too-large', this.current, `makes the uncompressed layer larger than ${this.limit} bytes`);
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
    if (rest === undefined) throw refusal(this.layer, 'unchecked-data-before-end', undefined, `has more than 2 MiB of data that is not an entry before its end-of-archive marker (from byte ${lastEnd})`);
    if (!isZeros(rest)) throw refusal(this.layer, 'data-before-end', undefined, `has data that is not an entry before or after its end-of-archive marker (at byte ${lastEnd + nonZeroAt(rest)})`);
    this.end = lastEnd;
    this.recent.length = 0;
    this.current = undefined;
  }

  /** The name field of the raw header at `offset`, if still held. */
  headerName(offset: number): string | undefined {
    const block = this.bytesAt(offset, offset + 512);
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
