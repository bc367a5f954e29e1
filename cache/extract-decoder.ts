// Decoding layer blobs on a thread of their own: hashing the blob and the tar and decompressing
// take as long as writing the files, so the extracting thread only parses and writes while one
// worker (extract-decoder-worker.ts), shared by the extractions of the process, does the rest
// on the other core. Both directions are bounded per stream: the blob is sent while less than
// INPUT_LIMIT of it is undecoded, and the worker stops decompressing while more than
// OUTPUT_LIMIT of tar waits to be read (a zip bomb never fills memory).
import { Worker } from 'node:worker_threads';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Digest } from '../format/digest.ts';

export type Compression = 'gzip' | 'zstd' | 'none';

export type DecoderRequest =
  | { type: 'open'; id: number; compression: Compression; outputLimit: number }
  | { type: 'chunk'; id: number; buf: ArrayBuffer }
  | { type: 'end'; id: number }
  | { type: 'ack'; id: number; bytes: number }
  | { type: 'close'; id: number };
export type DecoderReply =
  | { type: 'data'; id: number; buf: ArrayBuffer }
  | { type: 'consumed'; id: number; bytes: number }
  | { type: 'done'; id: number; digest: string; diffId: string }
  | { type: 'error'; id: number; message: string; code: string | undefined };

/** The decompressor refused the blob (zlib's Z_* or ZSTD_* code in `code`). */
export class DecoderError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = 'DecoderError';
    this.code = code;
  }
}

export interface Decoded {
  digest: Digest;
  diffId: Digest;
}

const INPUT_LIMIT = 8 << 20;
const SEND_BATCH = 1 << 20;
const OUTPUT_LIMIT = 16 << 20;
/** The reader acknowledges what it took in batches of this size. */
const ACK_EVERY = 1 << 20;
const WORKER_URL = new URL(`./extract-decoder-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** The process's decoding thread: started on first use, keeping the process alive only while a stream is open. */
class DecoderThread {
  private readonly worker: Worker;
  private readonly streams = new Map<number, LayerDecoder>();
  private nextId = 1;

  constructor() {
    this.worker = new Worker(WORKER_URL);
    this.worker.on('message', (m: DecoderReply) => this.streams.get(m.id)?.onReply(m));
    this.worker.once('error', (err) => this.stopped(err));
    this.worker.once('exit', (code) => this.stopped(new Error(`the layer decoding thread stopped (exit code ${code})`)));
    // After the listeners: adding a 'message' listener refs the worker again.
    this.worker.unref();
  }

  private stopped(error: unknown): void {
    if (thread === this) thread = undefined;
    for (const stream of this.streams.values()) stream.fail(error);
    this.streams.clear();
  }

  open(stream: LayerDecoder, compression: Compression): number {
    const id = this.nextId++;
    this.streams.set(id, stream);
    this.worker.ref();
    this.send({ type: 'open', id, compression, outputLimit: OUTPUT_LIMIT });
    return id;
  }

  forget(id: number): void {
    if (!this.streams.delete(id)) return;
    this.send({ type: 'close', id });
    if (this.streams.size === 0) this.worker.unref();
  }

  send(m: DecoderRequest, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(m, transfer);
  }
}

let thread: DecoderThread | undefined;

function decoderThread(): DecoderThread {
  return (thread ??= new DecoderThread());
}

/** Starts the decoding thread ahead of need (its start overlaps the caller's network work). */
export function warmUpDecoder(): void {
  decoderThread();
}

/** One blob being decoded: feed it at construction, read the tar with `tar()`, then `close()`. */
export class LayerDecoder {
  private readonly thread: DecoderThread;
  private readonly id: number;
  private readonly received: Buffer[] = [];
  private failure: { error: unknown } | undefined;
  private result: Decoded | undefined;
  private inFlight = 0;
  private wakeReader: (() => void) | undefined;
  private wakeFeeder: (() => void) | undefined;
  private closed = false;

  /** Starts decoding `blob` (its chunks, as they arrive). */
  constructor(blob: AsyncIterable<Buffer>, compression: Compression) {
    this.thread = decoderThread();
    this.id = this.thread.open(this, compression);
    void this.feed(blob);
  }

  /** A reply of the thread about this stream. */
  onReply(m: DecoderReply): void {
    if (m.type === 'data') {
      this.received.push(Buffer.from(m.buf));
      this.wake();
    } else if (m.type === 'consumed') {
      this.inFlight -= m.bytes;
      this.wakeFeeder?.();
    } else if (m.type === 'done') {
      this.result = { digest: `sha256:${m.digest}` as Digest, diffId: `sha256:${m.diffId}` as Digest };
      this.wake();
    } else if (m.type === 'error') {
      this.fail(new DecoderError(m.message, m.code));
    }
  }

  fail(error: unknown): void {
    this.failure ??= { error };
    this.wake();
  }

  private wake(): void {
    this.wakeReader?.();
    this.wakeFeeder?.();
  }

  private get stopped(): boolean {
    return this.failure !== undefined || this.closed;
  }

  private async feed(blob: AsyncIterable<Buffer>): Promise<void> {
    const it = blob[Symbol.asyncIterator]();
    // The source's chunks, copied into batches of SEND_BATCH bytes: one message per batch, not
    // per network read. The copy is needed anyway, since a chunk may share its memory.
    let batch = new Uint8Array(SEND_BATCH);
    let used = 0;
    const send = async (buf: ArrayBuffer) => {
      this.thread.send({ type: 'chunk', id: this.id, buf }, [buf]);
      this.inFlight += buf.byteLength;
      while (this.inFlight > INPUT_LIMIT && !this.stopped) await new Promise<void>((r) => (this.wakeFeeder = r));
    };
    try {
      for (;;) {
        const next = await it.next();
        if (next.done) break;
        if (this.stopped) return;
        let chunk = next.value;
        while (chunk.length) {
          const take = Math.min(chunk.length, SEND_BATCH - used);
          batch.set(chunk.subarray(0, take), used);
          used += take;
          chunk = chunk.subarray(take);
          if (used === SEND_BATCH) {
            await send(batch.buffer);
            if (this.stopped) return;
            batch = new Uint8Array(SEND_BATCH);
            used = 0;
          }
        }
      }
      if (used) await send(batch.buffer.slice(0, used));
      if (!this.stopped) this.thread.send({ type: 'end', id: this.id });
    } catch (err) {
      this.fail(err);
    } finally {
      // Stops the source (an HTTP body, a file) when decoding stopped first.
      if (this.stopped) await it.return?.(undefined)?.catch(() => undefined);
    }
  }

  /** The tar stream. Throws the first failure: the blob's source, the decoder, or the thread. */
  async *tar(): AsyncGenerator<Buffer> {
    let unacked = 0;
    for (;;) {
      if (this.failure) throw this.failure.error;
      const buf = this.received.shift();
      if (buf) {
        unacked += buf.length;
        if (unacked >= ACK_EVERY) {
          this.thread.send({ type: 'ack', id: this.id, bytes: unacked });
          unacked = 0;
        }
        yield buf;
      } else if (this.result) {
        return;
      } else {
        await new Promise<void>((r) => (this.wakeReader = r));
      }
    }
  }

  /** The blob digest and the diff_id, once `tar()` has ended. */
  decoded(): Decoded {
    if (!this.result) throw new Error('LayerDecoder.decoded() before the tar stream ended');
    return this.result;
  }

  /** Ends this stream on the thread (and the feed); call it in every case. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.thread.forget(this.id);
    this.wake();
  }
}
