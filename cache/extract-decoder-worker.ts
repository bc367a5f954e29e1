// The decoding thread of layer extractions (see extract-decoder.ts): for each open stream, hashes
// the compressed blob as it arrives, decompresses it, hashes the tar, and hands the tar back in
// transferred buffers. Only node built-ins: the thread starts in a few milliseconds.
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import type { Compression, DecoderReply, DecoderRequest } from './extract-decoder.ts';

const port = parentPort!;

class Stream {
  private readonly blobHash: Hash = createHash('sha256');
  private readonly tarHash: Hash = createHash('sha256');
  /** Tar bytes handed over and not yet acknowledged by the reader. */
  private unacked = 0;
  /** Input bytes processed whose 'consumed' waits until the reader catches up. */
  private consumedHeld = 0;
  private readonly decoder: Transform | undefined;
  private readonly id: number;
  private readonly outputLimit: number;

  constructor(id: number, compression: Compression, outputLimit: number) {
    this.id = id;
    this.outputLimit = outputLimit;
    // 1 MiB output chunks: fewer thread-pool round trips and fewer messages to the reader.
    const options = { chunkSize: 1 << 20 };
    this.decoder = compression === 'zstd' ? zlib.createZstdDecompress(options) : compression === 'gzip' ? zlib.createGunzip(options) : undefined;
    if (this.decoder) {
      this.decoder.on('data', (out: Buffer) => this.emit(out));
      this.decoder.once('end', () => this.finish());
      this.decoder.once('error', (err: NodeJS.ErrnoException) => {
        streams.delete(id);
        this.reply({ type: 'error', id, message: err.message, code: err.code });
      });
    }
  }

  private reply(message: DecoderReply, transfer: ArrayBuffer[] = []): void {
    port.postMessage(message, transfer);
  }

  private emit(out: Buffer): void {
    this.unacked += out.length;
    if (this.unacked > this.outputLimit) this.decoder?.pause();
    // Hashed and handed over once the decoder has queued its next chunk on the thread pool, so
    // both run at once. The decoder writes that chunk into a new buffer, or behind this one in
    // the same buffer: a chunk that is a whole buffer of its own is handed over as it is, a
    // partial one is copied.
    queueMicrotask(() => {
      this.tarHash.update(out);
      const whole = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength;
      const buf = whole ? (out.buffer as ArrayBuffer) : (out.buffer.slice(out.byteOffset, out.byteOffset + out.length) as ArrayBuffer);
      this.reply({ type: 'data', id: this.id, buf }, [buf]);
    });
  }

  private consumed(bytes: number): void {
    this.consumedHeld += bytes;
    this.flushConsumed();
  }

  private flushConsumed(): void {
    if (this.unacked > this.outputLimit || this.consumedHeld === 0) return;
    this.reply({ type: 'consumed', id: this.id, bytes: this.consumedHeld });
    this.consumedHeld = 0;
  }

  private finish(): void {
    // Queued behind the last chunk's hash and hand-over ('end' may come in the same tick).
    queueMicrotask(() => {
      this.reply({ type: 'done', id: this.id, digest: this.blobHash.digest('hex'), diffId: this.tarHash.digest('hex') });
      streams.delete(this.id);
    });
  }

  chunk(buf: Buffer): void {
    this.blobHash.update(buf);
    if (this.decoder) this.decoder.write(buf, () => this.consumed(buf.length));
    else {
      // Uncompressed: the blob is the tar (a buffer of its own, handed back without a copy).
      this.emit(buf);
      this.consumed(buf.length);
    }
  }

  end(): void {
    if (this.decoder) this.decoder.end();
    else this.finish();
  }

  ack(bytes: number): void {
    this.unacked -= bytes;
    if (this.unacked > this.outputLimit) return;
    this.decoder?.resume();
    this.flushConsumed();
  }

  close(): void {
    this.decoder?.destroy();
  }
}

const streams = new Map<number, Stream>();

port.on('message', (m: DecoderRequest) => {
  if (m.type === 'open') {
    streams.set(m.id, new Stream(m.id, m.compression, m.outputLimit));
    return;
  }
  const stream = streams.get(m.id);
  if (!stream) return; // closed, or failed and forgotten
  if (m.type === 'chunk') stream.chunk(Buffer.from(m.buf));
  else if (m.type === 'end') stream.end();
  else if (m.type === 'ack') stream.ack(m.bytes);
  else {
    stream.close();
    streams.delete(m.id);
  }
});
