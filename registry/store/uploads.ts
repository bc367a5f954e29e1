// Blob uploads whose state lives in storage, so any registry instance can continue a chunked
// upload another one started. Each PATCH appends one chunk object and then rewrites the small
// state object (chunks of one upload arrive one at a time by protocol); completion verifies
// the digest while moving (one chunk) or concatenating (several) into the blob store.
import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { digestOfHash, type Digest } from '../../format/digest.ts';
import { OciError } from '../errors.ts';
import { isNotFound, type StorageDriver } from '../storage/driver.ts';
import type { BlobStore } from './blobs.ts';
import { paths } from './paths.ts';

export interface UploadState {
  id: string;
  repo: string;
  startedAt: string;
  size: number;
  chunks: number;
  /** sha256 of the content when it is exactly one chunk, so completion need not read it back. */
  singleChunkDigest?: Digest;
}

const WRITE_BATCH = 1 << 20;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class UploadStore {
  readonly driver: StorageDriver;
  readonly blobs: BlobStore;
  /** Largest blob accepted, in bytes. */
  readonly maxBlobSize: number;
  constructor(driver: StorageDriver, blobs: BlobStore, maxBlobSize = 64 * 2 ** 30) {
    this.driver = driver;
    this.blobs = blobs;
    this.maxBlobSize = maxBlobSize;
  }

  async start(repo: string): Promise<UploadState> {
    const state: UploadState = { id: randomUUID(), repo, startedAt: new Date().toISOString(), size: 0, chunks: 0 };
    await this.saveState(state);
    return state;
  }

  async state(repo: string, id: string): Promise<UploadState> {
    if (!UUID.test(id)) throw new OciError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown', { id });
    try {
      const state = JSON.parse((await this.driver.getContent(paths.uploadState(repo, id))).toString('utf8')) as UploadState;
      if (state.repo !== repo) throw new OciError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown', { id });
      return state;
    } catch (err) {
      // A state a crash cut short (it is written without fsync) is as good as none.
      if (isNotFound(err) || err instanceof SyntaxError) throw new OciError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown', { id });
      throw err;
    }
  }

  /**
   * Not durable: a crash may lose the state or leave an older one (the client then starts the
   * upload again, or a chunk is written again); chunks themselves are durable when the state
   * names them, so completion never moves lost content into the blob store.
   */
  private async saveState(state: UploadState): Promise<void> {
    await this.driver.putContent(paths.uploadState(state.repo, state.id), Buffer.from(JSON.stringify(state)), { durable: false });
  }

  /**
   * Appends a chunk. `start` is the Content-Range start the client claims (undefined for a
   * streamed PATCH without one); a gap or overlap is RANGE_INVALID (416). `length` is what the
   * client said the chunk is (`claimed`): a body of another length is SIZE_INVALID, or
   * RANGE_INVALID when the length came from a Content-Range (`lengthFrom`).
   */
  async append(state: UploadState, body: AsyncIterable<Buffer> | Readable, claimed: { start?: number; length?: number; lengthFrom?: 'content-range' } = {}): Promise<UploadState> {
    const { start, length: declaredLength } = claimed;
    if (start !== undefined && start !== state.size) {
      throw new OciError('RANGE_INVALID', `chunk starts at ${start} but the upload has ${state.size} bytes`, { offset: state.size });
    }
    // A body longer than said is refused as soon as it is, not once it is all in.
    const lengthMismatch = (actual: string) =>
      claimed.lengthFrom === 'content-range'
        ? new OciError('RANGE_INVALID', `chunk has ${actual} bytes, Content-Range said ${declaredLength}`, { offset: state.size })
        : new OciError('SIZE_INVALID', `chunk has ${actual} bytes, Content-Length said ${declaredLength}`);
    const writer = await this.driver.writer(paths.uploadChunk(state.repo, state.id, state.chunks));
    const hash = state.chunks === 0 ? createHash('sha256') : undefined;
    let written = 0;
    // Request bodies arrive in 16-64 KiB pieces: writing them in 1 MiB batches saves a storage
    // round trip (a thread-pool write, an S3 part buffer copy) per piece. A batch is handed over
    // as its pieces (one writev on fs; concatenating them into a fresh 1 MiB buffer cost a new
    // mapping and page faults each time, ~20% of a push's CPU). One batch is written while the
    // next one is read from the socket: at most two are held.
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let writing: Promise<void> = Promise.resolve();
    const flush = async () => {
      if (!pendingBytes) return;
      const batch = pending;
      pending = [];
      pendingBytes = 0;
      await writing; // in order, one at a time; a failed write stops the upload here
      writing = writer.write(batch);
      // Observed now (a failure while the next batch is read is not an unhandled rejection) and
      // thrown where it is awaited.
      writing.catch(() => undefined);
    };
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        written += chunk.length;
        if (declaredLength !== undefined && written > declaredLength) throw lengthMismatch(`more than ${declaredLength}`);
        if (state.size + written > this.maxBlobSize) throw new OciError('SIZE_INVALID', `blob exceeds the limit of ${this.maxBlobSize} bytes`);
        hash?.update(chunk);
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= WRITE_BATCH) await flush();
      }
      await flush();
      await writing;
      if (declaredLength !== undefined && written !== declaredLength) throw lengthMismatch(String(written));
      if (written === 0) {
        await writer.cancel();
        return state;
      }
      await writer.commit();
    } catch (err) {
      await writing.catch(() => undefined); // no write may land after the cancel
      await writer.cancel().catch(() => undefined);
      throw err;
    }
    const next: UploadState = { ...state, size: state.size + written, chunks: state.chunks + 1 };
    if (hash) next.singleChunkDigest = digestOfHash(hash);
    else delete next.singleChunkDigest;
    await this.saveState(next);
    return next;
  }

  /** Verifies the content against `digest`, stores the blob, links it to the repository. */
  async complete(state: UploadState, digest: Digest, expectedSize?: number): Promise<{ digest: Digest; size: number }> {
    if (expectedSize !== undefined && expectedSize !== state.size) {
      throw new OciError('SIZE_INVALID', `upload has ${state.size} bytes, expected ${expectedSize}`);
    }
    const existing = await this.blobs.statGlobal(digest);
    if (existing) {
      // Same digest already stored: verify this upload's content anyway, so a wrong digest is
      // never accepted on the strength of an existing blob.
      const actual = state.chunks === 1 && state.singleChunkDigest ? state.singleChunkDigest : await this.digestOfChunks(state);
      if (actual !== digest) throw new OciError('DIGEST_INVALID', 'provided digest did not match uploaded content', { digest, actual });
    } else if (state.chunks === 1 && state.singleChunkDigest) {
      if (state.singleChunkDigest !== digest) {
        throw new OciError('DIGEST_INVALID', 'provided digest did not match uploaded content', { digest, actual: state.singleChunkDigest });
      }
      await this.driver.move(paths.uploadChunk(state.repo, state.id, 0), paths.blobData(digest));
    } else {
      const writer = await this.driver.writer(paths.blobData(digest));
      const hash = createHash('sha256');
      try {
        for (let n = 0; n < state.chunks; n++) {
          for await (const chunk of await this.driver.reader(paths.uploadChunk(state.repo, state.id, n))) {
            hash.update(chunk as Buffer);
            await writer.write(chunk as Buffer);
          }
        }
        const actual = digestOfHash(hash);
        if (actual !== digest) throw new OciError('DIGEST_INVALID', 'provided digest did not match uploaded content', { digest, actual });
        await writer.commit();
      } catch (err) {
        await writer.cancel().catch(() => undefined);
        throw err;
      }
    }
    await this.blobs.link(state.repo, digest);
    await this.cancel(state).catch(() => undefined);
    return { digest, size: state.size };
  }

  private async digestOfChunks(state: UploadState): Promise<Digest> {
    const hash = createHash('sha256');
    for (let n = 0; n < state.chunks; n++) {
      for await (const chunk of await this.driver.reader(paths.uploadChunk(state.repo, state.id, n))) hash.update(chunk as Buffer);
    }
    return digestOfHash(hash);
  }

  async cancel(state: UploadState): Promise<void> {
    try {
      await this.driver.delete(paths.upload(state.repo, state.id));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
