// A byte stream compressed as a sequence of independent frames (zstd frames, gzip members):
// decoders read concatenated frames as one stream, so the frames compress in parallel on the
// thread pool while the main thread produces the next input. Frame boundaries depend only on
// the bytes (every FRAME_SIZE bytes), never on how the input arrived, so the output is the same
// on every machine and for every writer.

/** Uncompressed bytes per frame. Layer blob digests depend on it: changing it changes every layer. */
export const FRAME_SIZE = 4 << 20;

/** Frames compressing at once: enough to keep both cores busy while the next input is made. */
const IN_FLIGHT = 3;

/**
 * Frame-sized buffers handed back once compressed, so that a stream allocates a handful of
 * buffers instead of one per frame: every new buffer counts as external memory and drives V8
 * into full garbage collections.
 */
export class BatchPool {
  private readonly free: Buffer[] = [];
  private readonly own = new WeakMap<ArrayBufferLike, Buffer>();

  take(): Buffer {
    const reused = this.free.pop();
    if (reused) return reused;
    const batch = Buffer.allocUnsafe(FRAME_SIZE);
    this.own.set(batch.buffer, batch);
    return batch;
  }

  /** Returns a buffer take() gave (or a view of one); the caller must not touch it afterwards. */
  give(chunk: Buffer): void {
    const batch = this.own.get(chunk.buffer);
    if (batch && !this.free.includes(batch)) this.free.push(batch);
  }
}

/** A frame's bytes, in pieces. */
export type CompressFrame = (chunk: Buffer) => Promise<Buffer[]>;

/**
 * Compresses chunks in parallel and hands the frames to `writeOut` in the order the chunks came.
 * A chunk must stay untouched until its `release` runs (zlib reads it until its frame is done).
 */
export class FrameQueue {
  private readonly inFlight: { frame: Promise<Buffer[]>; release?: () => void }[] = [];
  private readonly compress: CompressFrame;
  private readonly writeOut: (frame: Buffer) => Promise<void>;

  constructor(compress: CompressFrame, writeOut: (frame: Buffer) => Promise<void>) {
    this.compress = compress;
    this.writeOut = writeOut;
  }

  async push(chunk: Buffer, release?: () => void): Promise<void> {
    const frame = this.compress(chunk);
    // A failure surfaces from push/finish; a frame still compressing then must not reject unhandled.
    frame.catch(() => undefined);
    this.inFlight.push({ frame, release });
    if (this.inFlight.length >= IN_FLIGHT) await this.writeOldest();
  }

  async finish(): Promise<void> {
    while (this.inFlight.length) await this.writeOldest();
  }

  private async writeOldest(): Promise<void> {
    const { frame, release } = this.inFlight.shift()!;
    const pieces = await frame;
    release?.();
    for (const piece of pieces) await this.writeOut(piece);
  }
}

/**
 * Cuts what is written to it into FRAME_SIZE pieces (the last one shorter) for a FrameQueue,
 * copying into pooled buffers, whatever the sizes of the writes.
 */
export class FramedWriter {
  private readonly pool = new BatchPool();
  private readonly queue: FrameQueue;
  private batch: Buffer | undefined;
  private used = 0;

  constructor(compress: CompressFrame, writeOut: (frame: Buffer) => Promise<void>) {
    this.queue = new FrameQueue(compress, writeOut);
  }

  async write(data: Buffer): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      this.batch ??= this.pool.take();
      const n = Math.min(data.length - offset, FRAME_SIZE - this.used);
      data.copy(this.batch, this.used, offset, offset + n);
      this.used += n;
      offset += n;
      if (this.used === FRAME_SIZE) await this.cut();
    }
  }

  async finish(): Promise<void> {
    if (this.used > 0) await this.cut();
    await this.queue.finish();
  }

  private async cut(): Promise<void> {
    const chunk = this.batch!.subarray(0, this.used);
    this.batch = undefined;
    this.used = 0;
    await this.queue.push(chunk, () => this.pool.give(chunk));
  }
}
