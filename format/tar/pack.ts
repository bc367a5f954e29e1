// Writes a layer: the tar stream of a sorted entry list, hashed uncompressed (diff_id) and
// compressed (blob digest) in one pass. Entries are batched into large buffers with file data
// read straight into them, so there is no stream object or allocation per file; compression
// runs on the thread pool while the main thread reads and hashes the next batch, and the
// batches are reused once compressed.
import { createHash } from 'node:crypto';
import { closeSync, createWriteStream, openSync, readSync } from 'node:fs';
import { once } from 'node:events';
import { createGzipCompressor, zstdFrame } from '../compress.ts';
import { digestOfHash, type Digest } from '../digest.ts';
import { layerMediaType, type Compression } from '../oci.ts';
import { BLOCK, encodeHeader, END_OF_ARCHIVE, padding } from './header.ts';
import type { LayerEntry } from './walk.ts';

const BATCH_SIZE = 4 << 20;

export interface PackedLayer {
  mediaType: string;
  /** Digest of the compressed blob. */
  digest: Digest;
  /** Digest of the uncompressed tar (the config's rootfs.diff_ids). */
  diffId: Digest;
  /** Size of the compressed blob in bytes. */
  size: number;
  /** Size of the uncompressed tar in bytes. */
  tarSize: number;
}

/**
 * Batch buffers handed back once their bytes are hashed and compressed, so that packing a
 * layer allocates a handful of buffers instead of one per 4 MiB: every new buffer counts as
 * external memory and drives V8 into full garbage collections (about one per 8 MiB of buffers).
 */
export class BatchPool {
  private readonly free: Buffer[] = [];
  private readonly own = new WeakMap<ArrayBufferLike, Buffer>();

  take(): Buffer {
    const reused = this.free.pop();
    if (reused) return reused;
    const batch = Buffer.allocUnsafe(BATCH_SIZE);
    this.own.set(batch.buffer, batch);
    return batch;
  }

  /** Returns a chunk tarChunks yielded; the caller must not touch it afterwards. */
  give(chunk: Buffer): void {
    const batch = this.own.get(chunk.buffer);
    if (batch && !this.free.includes(batch)) this.free.push(batch);
  }
}

/**
 * Yields the archive as buffers of about BATCH_SIZE bytes. With a pool, batches come from it
 * and a yielded chunk stays valid until the caller gives it back; without one, each batch is new.
 */
export function* tarChunks(entries: readonly LayerEntry[], pool?: BatchPool): Generator<Buffer> {
  const take = () => (pool ? pool.take() : Buffer.allocUnsafe(BATCH_SIZE));
  let batch = take();
  let used = 0;
  const flush = function* (): Generator<Buffer> {
    if (used > 0) yield batch.subarray(0, used);
    batch = take();
    used = 0;
  };
  const append = function* (data: Buffer): Generator<Buffer> {
    if (used + data.length > BATCH_SIZE) yield* flush();
    if (data.length > BATCH_SIZE) {
      yield data;
      return;
    }
    data.copy(batch, used);
    used += data.length;
  };
  for (const entry of entries) {
    yield* append(encodeHeader(entry));
    if (entry.type !== 'file' || entry.size === 0) continue;
    if (!entry.source) throw new Error(`${entry.path}: file entry without a source`);
    const fd = openSync(entry.source, 'r');
    try {
      let remaining = entry.size;
      while (remaining > 0) {
        if (used === BATCH_SIZE) yield* flush();
        const want = Math.min(remaining, BATCH_SIZE - used);
        const got = readSync(fd, batch, used, want, null);
        if (got === 0) throw new Error(`${entry.source}: file shrank while packing (expected ${entry.size} bytes)`);
        used += got;
        remaining -= got;
      }
    } finally {
      closeSync(fd);
    }
    const pad = padding(entry.size);
    if (pad) {
      // Zeros written in place (the same bytes as appending Buffer.alloc(pad)).
      if (used + pad > BATCH_SIZE) yield* flush();
      batch.fill(0, used, used + pad);
      used += pad;
    }
  }
  yield* append(END_OF_ARCHIVE);
  yield* flush();
}

/** How many chunks compress at once: enough to keep both cores busy while the next is read. */
const ZSTD_IN_FLIGHT = 3;

/** Packs entries into a compressed layer blob at `outFile`. */
export async function packLayer(entries: readonly LayerEntry[], outFile: string, compression: Compression): Promise<PackedLayer> {
  const tarHash = createHash('sha256');
  const blobHash = createHash('sha256');
  const file = createWriteStream(outFile);
  const fileFailed = new Promise<never>((_, reject) => file.once('error', reject));
  fileFailed.catch(() => undefined);
  let size = 0;
  let tarSize = 0;
  const writeOut = async (data: Buffer): Promise<void> => {
    blobHash.update(data);
    size += data.length;
    if (!file.write(data)) await Promise.race([once(file, 'drain'), fileFailed]);
  };
  try {
    if (compression === 'zstd') {
      // A chunk's batch goes back to the pool once its frame is done: it has been hashed, and
      // zlib reads its input only until the compression callback.
      const pool = new BatchPool();
      const inFlight: { chunk: Buffer; frame: Promise<Buffer> }[] = [];
      const writeOldest = async (): Promise<void> => {
        const { chunk, frame } = inFlight.shift()!;
        const compressed = await frame;
        pool.give(chunk);
        await writeOut(compressed);
      };
      try {
        for (const chunk of tarChunks(entries, pool)) {
          tarHash.update(chunk);
          tarSize += chunk.length;
          inFlight.push({ chunk, frame: zstdFrame(chunk) });
          if (inFlight.length >= ZSTD_IN_FLIGHT) await writeOldest();
        }
        while (inFlight.length) await writeOldest();
      } finally {
        // After a failure, frames still compressing must not reject unhandled.
        for (const { frame } of inFlight) frame.catch(() => undefined);
      }
    } else {
      const gzip = createGzipCompressor();
      const gzipFailed = new Promise<never>((_, reject) => gzip.once('error', reject));
      gzipFailed.catch(() => undefined);
      const drained = (async () => {
        for await (const out of gzip) await writeOut(out as Buffer);
      })();
      for (const chunk of tarChunks(entries)) {
        tarHash.update(chunk);
        tarSize += chunk.length;
        if (!gzip.write(chunk)) await Promise.race([once(gzip, 'drain'), gzipFailed]);
      }
      gzip.end();
      await drained;
    }
    file.end();
    await Promise.race([once(file, 'close'), fileFailed]);
  } catch (err) {
    file.destroy();
    throw err;
  }
  if (tarSize % BLOCK !== 0) throw new Error('internal error: tar size is not a whole number of blocks');
  return { mediaType: layerMediaType(compression), digest: digestOfHash(blobHash), diffId: digestOfHash(tarHash), size, tarSize };
}
