// Writes a layer: the tar stream of a sorted entry list, hashed uncompressed (diff_id) and
// compressed (blob digest) in one pass. Entries are batched into large buffers with file data
// read straight into them, so there is no stream object or allocation per file; compression
// runs on the thread pool while the main thread reads and hashes the next batch, and the
// batches are reused once compressed. The entries may arrive while the tree is still being
// walked (layerEntries), so packing starts at once.
import { createHash } from 'node:crypto';
import { closeSync, createWriteStream, openSync, readSync } from 'node:fs';
import { once } from 'node:events';
import { createGzipCompressor, zstdFrame } from '../compress.ts';
import { digestOfHash, type Digest } from '../digest.ts';
import { BatchPool, FRAME_SIZE, FrameQueue } from '../frames.ts';
import { layerMediaType, type Compression } from '../oci.ts';
import { BLOCK, encodeHeader, END_OF_ARCHIVE, padding } from './header.ts';
import type { LayerEntry } from './walk.ts';

const BATCH_SIZE = FRAME_SIZE;

/** A layer's entries: a whole list, or batches as a walk produces them (in archive order). */
export type LayerEntries = readonly LayerEntry[] | AsyncIterable<readonly LayerEntry[]>;

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
 * Lays entries out as a tar stream in buffers of BATCH_SIZE bytes (the last ones of a stream
 * shorter), reading file data straight into them. With a pool, batches come from it and a
 * yielded chunk stays valid until the caller gives it back; without one, each batch is new.
 */
export class TarBatcher {
  private readonly pool: BatchPool | undefined;
  private batch: Buffer;
  private used = 0;

  constructor(pool?: BatchPool) {
    this.pool = pool;
    this.batch = this.take();
  }

  /** The batches these entries fill; a partly filled batch waits for the next entries. */
  *add(entries: Iterable<LayerEntry>): Generator<Buffer> {
    for (const entry of entries) {
      yield* this.append(encodeHeader(entry));
      if (entry.type !== 'file' || entry.size === 0) continue;
      if (!entry.source) throw new Error(`${entry.path}: file entry without a source`);
      const fd = openSync(entry.source, 'r');
      try {
        let remaining = entry.size;
        while (remaining > 0) {
          if (this.used === BATCH_SIZE) yield* this.flush();
          const want = Math.min(remaining, BATCH_SIZE - this.used);
          const got = readSync(fd, this.batch, this.used, want, null);
          if (got === 0) throw new Error(`${entry.source}: file shrank while packing (expected ${entry.size} bytes)`);
          this.used += got;
          remaining -= got;
        }
      } finally {
        closeSync(fd);
      }
      const pad = padding(entry.size);
      if (pad) {
        // Zeros written in place (the same bytes as appending Buffer.alloc(pad)).
        if (this.used + pad > BATCH_SIZE) yield* this.flush();
        this.batch.fill(0, this.used, this.used + pad);
        this.used += pad;
      }
    }
  }

  /** The end-of-archive blocks and the last batch. */
  *end(): Generator<Buffer> {
    yield* this.append(END_OF_ARCHIVE);
    yield* this.flush();
  }

  private take(): Buffer {
    return this.pool ? this.pool.take() : Buffer.allocUnsafe(BATCH_SIZE);
  }

  private *flush(): Generator<Buffer> {
    if (this.used > 0) yield this.batch.subarray(0, this.used);
    this.batch = this.take();
    this.used = 0;
  }

  private *append(data: Buffer): Generator<Buffer> {
    if (this.used + data.length > BATCH_SIZE) yield* this.flush();
    if (data.length > BATCH_SIZE) {
      yield data;
      return;
    }
    data.copy(this.batch, this.used);
    this.used += data.length;
  }
}

/** The whole archive of an entry list as batches (see TarBatcher). */
export function* tarChunks(entries: readonly LayerEntry[], pool?: BatchPool): Generator<Buffer> {
  const batcher = new TarBatcher(pool);
  yield* batcher.add(entries);
  yield* batcher.end();
}

/** The tar stream of entries given whole or in batches, as TarBatcher lays it out. */
async function* layerChunks(entries: LayerEntries, pool?: BatchPool): AsyncGenerator<Buffer> {
  const batcher = new TarBatcher(pool);
  for await (const batch of isList(entries) ? [entries] : entries) yield* batcher.add(batch);
  yield* batcher.end();
}

function isList(entries: LayerEntries): entries is readonly LayerEntry[] {
  return Array.isArray(entries);
}

/** Packs entries into a compressed layer blob at `outFile`. */
export async function packLayer(entries: LayerEntries, outFile: string, compression: Compression): Promise<PackedLayer> {
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
      // A chunk's batch goes back to the pool once its frame is done: zlib reads its input only
      // until the compression callback. The chunk is handed to the pool thread before it is
      // hashed, so its compression starts first.
      const pool = new BatchPool();
      const frames = new FrameQueue(zstdFrame, writeOut);
      for await (const chunk of layerChunks(entries, pool)) {
        const done = frames.push(chunk, () => pool.give(chunk));
        tarHash.update(chunk);
        tarSize += chunk.length;
        await done;
      }
      await frames.finish();
    } else {
      const gzip = createGzipCompressor();
      const gzipFailed = new Promise<never>((_, reject) => gzip.once('error', reject));
      gzipFailed.catch(() => undefined);
      const drained = (async () => {
        for await (const out of gzip) await writeOut(out as Buffer);
      })();
      for await (const chunk of layerChunks(entries)) {
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
