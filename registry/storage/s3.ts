// The S3 storage driver (@aws-sdk/client-s3; AWS S3, Ceph RGW, MinIO). A storage path maps to
// the object key `prefix + path` without its leading slash; a directory is any key prefix with
// objects below it (there are no directory objects).
//
// - putContent with ifNotExists is a PutObject with `If-None-Match: *` (412: someone else won).
//   RGW ignores that header on CompleteMultipartUpload and CopyObject, so create-only commits
//   must be small putContent calls, never writer commits or moves.
// - writer buffers up to one part; content that fits in one part is a single PutObject at
//   commit, larger content a multipart upload (parts uploaded while writing, two at a time).
//   Nothing is visible before CompleteMultipartUpload; cancel and every failure abort the
//   upload (best effort: when the abort itself cannot reach the server, abortStaleUploads
//   removes the orphan later).
// - move is CopyObject (UploadPartCopy in parts above 5 GiB, CopyObject's limit) then
//   DeleteObject; delete of a directory lists the prefix and deletes in batches of 1000.
// - Errors: a missing object is PathNotFoundError; anything else is an S3StorageError (a
//   StorageUnavailableError, the driver contract's) whose message names the operation, the key
//   and the S3 code (or the network error code).
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type ListObjectsV2CommandOutput,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Readable } from 'node:stream';
import {
  checkDirPath,
  checkPath,
  InvalidOffsetError,
  PathNotFoundError,
  StorageUnavailableError,
  type FileInfo,
  type FileWriter,
  type StorageDriver,
} from './driver.ts';
import { relayGet } from './s3-relay.ts';
import { Serial } from './serial.ts';

const MiB = 1024 * 1024;
/** Reads of this many bytes or more (or of a whole object) are relayed (s3-relay.ts). */
const RELAY_MIN = MiB;
const GiB = 1024 * MiB;
const MIN_PART = 5 * MiB;
const MAX_PARTS = 10_000;
const MAX_COPY = 5 * GiB;

export interface S3DriverOptions {
  bucket: string;
  /** Key prefix for everything the driver stores ("registry" or "registry/"). */
  prefix?: string;
  /** Default: the SDK's chain (AWS_REGION, profile); 'us-east-1' when an endpoint is given. */
  region?: string;
  /** Default: the SDK's chain (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, profile), else AWS. */
  endpoint?: string;
  /** Path-style URLs (http://host/bucket/key): needed for RGW and MinIO on a bare host. */
  forcePathStyle?: boolean;
  /** Default: the SDK's chain (environment, shared profiles, SSO, web identity, IMDS). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** redirectURL returns presigned URLs (else undefined). */
  presignRedirects?: boolean;
  /** Multipart part size in bytes for writers (default 16 MiB, at least 5 MiB). */
  partSize?: number;
  /** Attempts per request including the first (SDK default 3). */
  maxAttempts?: number;
  /** Milliseconds to establish a connection (default 10 s). */
  connectionTimeout?: number;
  /** Milliseconds a socket may stay idle during a request (default 120 s). */
  socketTimeout?: number;
  /** Objects larger than this are moved with UploadPartCopy (default and maximum 5 GiB). */
  multipartCopyThreshold?: number;
  /** Part size for UploadPartCopy (default 1 GiB, at least 5 MiB). */
  multipartCopyPartSize?: number;
}

/** An S3 failure other than a missing object: to the registry, storage that cannot be used now. */
export class S3StorageError extends StorageUnavailableError {
  readonly operation: string;
  readonly key: string;
  /** The S3 error code (NoSuchBucket, AccessDenied, ...) or the network error code (ECONNREFUSED). */
  declare readonly code: string;
  readonly status: number | undefined;
  constructor(operation: string, key: string, err: unknown) {
    const e = err as { name?: string; Code?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const code = e?.Code ?? (e?.name && e.name !== 'Error' ? e.name : undefined) ?? e?.code ?? 'UnknownError';
    const status = e?.$metadata?.httpStatusCode;
    // RGW's error bodies carry no Message: the SDK then says 'UnknownError', which adds nothing.
    const detail = e?.message && e.message !== code && e.message !== 'UnknownError' ? `: ${e.message}` : '';
    super(`s3 ${operation} ${key}: ${code}${status ? ` (HTTP ${status})` : ''}${detail}`, { code, cause: err });
    this.name = 'S3StorageError';
    this.operation = operation;
    this.key = key;
    this.status = status;
  }
}

function status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function errName(err: unknown): string | undefined {
  return (err as { name?: string; Code?: string } | undefined)?.Code ?? (err as { name?: string } | undefined)?.name;
}

/** Whether an SDK error says the object (not the bucket, not an upload) is not there. */
function isMissingObject(err: unknown): boolean {
  const name = errName(err);
  if (name === 'NoSuchKey' || name === 'NotFound') return true;
  return status(err) === 404 && name !== 'NoSuchBucket' && name !== 'NoSuchUpload';
}

export class S3Driver implements StorageDriver {
  readonly name = 's3';
  readonly bucket: string;
  /** Normalised key prefix: '' or 'some/prefix/'. */
  readonly prefix: string;
  readonly client: S3Client;
  readonly partSize: number;
  private readonly presign: boolean;
  private readonly copyThreshold: number;
  private readonly copyPartSize: number;
  private readonly connectionTimeout: number;
  private readonly socketTimeout: number;
  /** Whether bodies can be relayed (plain HTTP endpoint); undefined until the first read. */
  private relayable: boolean | undefined;

  constructor(opts: S3DriverOptions) {
    if (!opts.bucket) throw new Error('s3: bucket is required');
    this.bucket = opts.bucket;
    const p = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.prefix = p ? `${p}/` : '';
    this.partSize = opts.partSize ?? 16 * MiB;
    if (!Number.isSafeInteger(this.partSize) || this.partSize < MIN_PART || this.partSize > MAX_COPY) {
      throw new Error(`s3: partSize must be between 5 MiB and 5 GiB, got ${opts.partSize}`);
    }
    this.copyThreshold = Math.min(opts.multipartCopyThreshold ?? MAX_COPY, MAX_COPY);
    this.copyPartSize = Math.max(opts.multipartCopyPartSize ?? GiB, MIN_PART);
    this.presign = opts.presignRedirects ?? false;
    this.connectionTimeout = opts.connectionTimeout ?? 10_000;
    this.socketTimeout = opts.socketTimeout ?? 120_000;
    const config: S3ClientConfig = {
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: this.connectionTimeout,
        socketTimeout: this.socketTimeout,
      },
    };
    if (opts.region) config.region = opts.region;
    else if (opts.endpoint && !process.env.AWS_REGION && !process.env.AWS_DEFAULT_REGION) config.region = 'us-east-1';
    if (opts.endpoint) config.endpoint = opts.endpoint;
    if (opts.forcePathStyle !== undefined) config.forcePathStyle = opts.forcePathStyle;
    if (opts.credentials) config.credentials = opts.credentials;
    if (opts.maxAttempts !== undefined) config.maxAttempts = opts.maxAttempts;
    this.client = new S3Client(config);
  }

  /** The object key of a storage path. */
  key(path: string): string {
    return this.prefix + checkPath(path).slice(1);
  }

  /** The key prefix of a directory ('' + prefix for the root). */
  private dirPrefix(path: string): string {
    checkDirPath(path);
    return path === '/' ? this.prefix : `${this.prefix}${path.slice(1)}/`;
  }

  private pathOf(key: string): string {
    return `/${key.slice(this.prefix.length)}`;
  }

  /**
   * The pages of a ListObjectsV2 listing of `Prefix`, one request each, followed to the end (or
   * as far as the caller reads). `Delimiter`/`MaxKeys` as ListObjectsV2 takes them.
   */
  private async *listPages(Prefix: string, opts: { Delimiter?: string; MaxKeys?: number } = {}): AsyncGenerator<ListObjectsV2CommandOutput> {
    let ContinuationToken: string | undefined;
    do {
      const out = await this.send('ListObjectsV2', Prefix, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix, ...opts, ContinuationToken })),
      );
      yield out;
      ContinuationToken = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  /** Sends a command, turning failures into S3StorageError (and 404s into PathNotFoundError when `path` is given). */
  private async send<T>(operation: string, key: string, fn: () => Promise<T>, path?: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (path !== undefined && isMissingObject(err)) throw new PathNotFoundError(path);
      throw new S3StorageError(operation, key, err);
    }
  }

  async getContent(path: string): Promise<Buffer> {
    const Key = this.key(path);
    return this.send(
      'GetObject',
      Key,
      async () => {
        const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
        if (!out.Body) return Buffer.alloc(0);
        const bytes = await out.Body.transformToByteArray();
        return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      },
      path,
    );
  }

  async putContent(path: string, content: Buffer, opts: { ifNotExists?: boolean } = {}): Promise<boolean> {
    const Key = this.key(path);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body: content,
            ContentLength: content.length,
            ...(opts.ifNotExists ? { IfNoneMatch: '*' } : {}),
          }),
        );
        return true;
      } catch (err) {
        if (opts.ifNotExists && status(err) === 412) return false;
        // AWS answers 409 ConditionalRequestConflict while a competing conditional write is in
        // flight: ask again, and the answer becomes 200 or 412.
        if (opts.ifNotExists && status(err) === 409 && attempt < 5) {
          await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
          continue;
        }
        throw new S3StorageError('PutObject', Key, err);
      }
    }
  }

  private async head(path: string, Key: string): Promise<{ size: number; modTime: Date }> {
    const out = await this.send('HeadObject', Key, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key })), path);
    return { size: out.ContentLength ?? 0, modTime: out.LastModified ?? new Date(0) };
  }

  async reader(path: string, offset = 0, length?: number): Promise<Readable> {
    const Key = this.key(path);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidOffsetError(path, offset);
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) throw new RangeError(`invalid length ${length} for ${path}`);
    if (length === 0) {
      const { size } = await this.head(path, Key);
      if (offset > size) throw new InvalidOffsetError(path, offset);
      return Readable.from([]);
    }
    const Range = offset === 0 && length === undefined ? undefined : `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
    // Small reads stay on the SDK's kept-alive connections: a relay opens a connection each time.
    const relayed = length === undefined || length >= RELAY_MIN ? await this.relay(Key, Range) : undefined;
    if (relayed) return relayed;
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range }));
      return (out.Body as Readable | undefined) ?? Readable.from([]);
    } catch (err) {
      if (isMissingObject(err)) throw new PathNotFoundError(path);
      if (status(err) === 416) {
        // Not satisfiable: at the very end (an empty read) or past it.
        const { size } = await this.head(path, Key);
        if (offset === size) return Readable.from([]);
        throw new InvalidOffsetError(path, offset);
      }
      throw new S3StorageError('GetObject', Key, err);
    }
  }

  /**
   * The object's body on a socket of its own (s3-relay.ts), when the endpoint speaks plain HTTP
   * and answers 200/206 with a length; undefined sends the caller to the SDK, which also gives
   * every error its proper form.
   */
  private async relay(Key: string, range: string | undefined): Promise<Readable | undefined> {
    if (this.relayable === false) return undefined;
    let url: URL;
    try {
      url = new URL(await getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key }), { expiresIn: 15 * 60 }));
    } catch {
      return undefined;
    }
    this.relayable = url.protocol === 'http:';
    if (!this.relayable) return undefined;
    return relayGet(url, { range, connectTimeoutMs: this.connectionTimeout, idleTimeoutMs: this.socketTimeout }).catch(() => undefined);
  }

  async writer(path: string): Promise<FileWriter> {
    return new S3Writer(this, this.key(path));
  }

  async stat(path: string): Promise<FileInfo> {
    if (path !== '/') {
      const Key = this.key(path);
      try {
        const { size, modTime } = await this.head(path, Key);
        return { path, size, modTime, isDir: false };
      } catch (err) {
        if (!(err instanceof PathNotFoundError)) throw err;
      }
    }
    const Prefix = this.dirPrefix(path);
    const { value: out } = await this.listPages(Prefix, { MaxKeys: 1 }).next();
    const first = out?.Contents?.[0];
    if (!first && path !== '/') throw new PathNotFoundError(path);
    return { path, size: 0, modTime: first?.LastModified ?? new Date(0), isDir: true };
  }

  async list(path: string): Promise<string[]> {
    const Prefix = this.dirPrefix(path);
    const children: string[] = [];
    for await (const out of this.listPages(Prefix, { Delimiter: '/' })) {
      for (const c of out.Contents ?? []) if (c.Key && c.Key !== Prefix) children.push(this.pathOf(c.Key));
      for (const cp of out.CommonPrefixes ?? []) if (cp.Prefix) children.push(this.pathOf(cp.Prefix.slice(0, -1)));
    }
    if (children.length === 0 && path !== '/') throw new PathNotFoundError(path);
    return [...new Set(children)].sort();
  }

  async move(source: string, dest: string): Promise<void> {
    const src = this.key(source);
    const dst = this.key(dest);
    const { size } = await this.head(source, src);
    if (src === dst) return;
    const CopySource = `${encodeURIComponent(this.bucket)}/${src.split('/').map(encodeURIComponent).join('/')}`;
    if (size > this.copyThreshold) {
      await this.multipartCopy(CopySource, src, dst, size);
    } else {
      await this.send('CopyObject', `${src} -> ${dst}`, () => this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: dst, CopySource })), source);
    }
    await this.send('DeleteObject', src, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: src })));
  }

  private async multipartCopy(CopySource: string, src: string, dst: string, size: number): Promise<void> {
    const partSize = Math.max(this.copyPartSize, Math.ceil(size / MAX_PARTS));
    const created = await this.send('CreateMultipartUpload', dst, () => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: dst })));
    const UploadId = created.UploadId;
    if (!UploadId) throw new S3StorageError('CreateMultipartUpload', dst, new Error('no UploadId in the answer'));
    try {
      const count = Math.ceil(size / partSize);
      const parts: CompletedPart[] = new Array(count);
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < count; i = next++) {
          const start = i * partSize;
          const end = Math.min(size, start + partSize) - 1;
          const out = await this.send('UploadPartCopy', `${src} -> ${dst}`, () =>
            this.client.send(
              new UploadPartCopyCommand({ Bucket: this.bucket, Key: dst, UploadId, PartNumber: i + 1, CopySource, CopySourceRange: `bytes=${start}-${end}` }),
            ),
          );
          parts[i] = { PartNumber: i + 1, ETag: out.CopyPartResult?.ETag };
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      await this.send('CompleteMultipartUpload', dst, () =>
        this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: dst, UploadId, MultipartUpload: { Parts: parts } })),
      );
    } catch (err) {
      await this.abortUpload(dst, UploadId).catch(() => {});
      throw err;
    }
  }

  /** @internal */
  async abortUpload(Key: string, UploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId }));
    } catch (err) {
      if (errName(err) === 'NoSuchUpload' || status(err) === 404) return;
      throw new S3StorageError('AbortMultipartUpload', Key, err);
    }
  }

  async delete(path: string): Promise<void> {
    const Key = this.key(path);
    let found = false;
    try {
      await this.head(path, Key);
      await this.send('DeleteObject', Key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })));
      found = true;
    } catch (err) {
      if (!(err instanceof PathNotFoundError)) throw err;
    }
    const Prefix = this.dirPrefix(path);
    for await (const out of this.listPages(Prefix, { MaxKeys: 1000 })) {
      const keys = (out.Contents ?? []).flatMap((c) => (c.Key ? [{ Key: c.Key }] : []));
      if (keys.length) {
        found = true;
        const res = await this.send('DeleteObjects', Prefix, () =>
          this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys, Quiet: true } })),
        );
        const failed = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
        if (failed.length) {
          const f = failed[0];
          throw new S3StorageError('DeleteObjects', f?.Key ?? Prefix, { Code: f?.Code, message: `${failed.length} of ${keys.length} keys failed: ${f?.Message ?? ''}` });
        }
      }
    }
    if (!found) throw new PathNotFoundError(path);
  }

  async redirectURL(path: string, opts: { method: 'GET' | 'HEAD'; expiresIn?: number }): Promise<string | undefined> {
    const Key = this.key(path);
    if (!this.presign) return undefined;
    const command = opts.method === 'HEAD' ? new HeadObjectCommand({ Bucket: this.bucket, Key }) : new GetObjectCommand({ Bucket: this.bucket, Key });
    return this.send('presign', Key, () => getSignedUrl(this.client, command, { expiresIn: opts.expiresIn ?? 20 * 60 }));
  }

  async walk(path: string, fn: (info: FileInfo) => Promise<void> | void): Promise<void> {
    const Prefix = this.dirPrefix(path);
    let any = false;
    for await (const out of this.listPages(Prefix)) {
      for (const c of out.Contents ?? []) {
        if (!c.Key || c.Key.endsWith('/')) continue;
        any = true;
        await fn({ path: this.pathOf(c.Key), size: c.Size ?? 0, modTime: c.LastModified ?? new Date(0), isDir: false });
      }
    }
    if (!any && path !== '/') throw new PathNotFoundError(path);
  }

  async abortStaleUploads(olderThan: Date): Promise<number> {
    let n = 0;
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    for (;;) {
      const out = await this.send('ListMultipartUploads', this.prefix, () =>
        this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix || undefined, KeyMarker, UploadIdMarker })),
      );
      for (const u of out.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Initiated || u.Initiated >= olderThan) continue;
        await this.abortUpload(u.Key, u.UploadId);
        n++;
      }
      if (!out.IsTruncated) return n;
      KeyMarker = out.NextKeyMarker;
      UploadIdMarker = out.NextUploadIdMarker;
      if (!KeyMarker && !UploadIdMarker) return n;
    }
  }

  /** Fails unless the bucket exists and is reachable with these credentials (for start-up checks). */
  async checkBucket(): Promise<void> {
    await this.send('HeadBucket', this.bucket, () => this.client.send(new HeadBucketCommand({ Bucket: this.bucket })));
  }

  /** Closes the client's sockets. */
  destroy(): void {
    this.client.destroy();
  }
}

class S3Writer implements FileWriter {
  private readonly driver: S3Driver;
  private readonly key: string;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private written = 0;
  private uploadId: string | undefined;
  private readonly parts: CompletedPart[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private failure: unknown;
  private state: 'open' | 'committed' | 'cancelled' | 'failed' = 'open';
  private readonly serialized = new Serial();

  constructor(driver: S3Driver, key: string) {
    this.driver = driver;
    this.key = key;
  }

  get size(): number {
    return this.written;
  }

  private get client(): S3Client {
    return this.driver.client;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.serialized.run(fn);
  }

  private checkOpen(): void {
    if (this.state !== 'open') throw new Error(`s3 writer for ${this.key} is ${this.state}`);
  }

  write(data: Buffer | readonly Buffer[]): Promise<void> {
    return this.serial(async () => {
      this.checkOpen();
      // Copied (into one buffer): the caller may reuse its buffers once write() resolves.
      const chunk = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
      if (chunk.length === 0) return;
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.written += chunk.length;
      try {
        // Strictly more than a part: content of exactly one part stays a single PutObject.
        while (this.buffered > this.driver.partSize) await this.uploadPart(this.takePart(this.driver.partSize));
      } catch (err) {
        throw await this.fail(err);
      }
    });
  }

  private takePart(size: number): Buffer {
    const first = this.chunks[0];
    let part: Buffer;
    if (first && first.length >= size) {
      part = first.subarray(0, size);
      if (first.length === size) this.chunks.shift();
      else this.chunks[0] = first.subarray(size);
    } else {
      const all = Buffer.concat(this.chunks, this.buffered);
      part = all.subarray(0, size);
      this.chunks = all.length > size ? [all.subarray(size)] : [];
    }
    this.buffered -= part.length;
    return part;
  }

  /** Starts uploading a part; waits while two are in flight. */
  private async uploadPart(body: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    const Bucket = this.driver.bucket;
    const Key = this.key;
    if (!this.uploadId) {
      const out = await this.send('CreateMultipartUpload', () => this.client.send(new CreateMultipartUploadCommand({ Bucket, Key })));
      if (!out.UploadId) throw new S3StorageError('CreateMultipartUpload', Key, new Error('no UploadId in the answer'));
      this.uploadId = out.UploadId;
    }
    const UploadId = this.uploadId;
    const PartNumber = this.parts.length + 1;
    if (PartNumber > MAX_PARTS) throw new S3StorageError('UploadPart', Key, new Error(`more than ${MAX_PARTS} parts: raise partSize`));
    const slot: CompletedPart = { PartNumber };
    this.parts.push(slot);
    const p = this.send('UploadPart', () =>
      this.client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body: body, ContentLength: body.length })),
    ).then(
      (out) => {
        slot.ETag = out.ETag;
      },
      (err: unknown) => {
        this.failure ??= err;
      },
    );
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
    while (this.inflight.size >= 2) await Promise.race(this.inflight);
    if (this.failure) throw this.failure;
  }

  private async send<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new S3StorageError(operation, this.key, err);
    }
  }

  /** Marks the writer failed, aborts the upload (best effort), and returns the error to throw. */
  private async fail(err: unknown): Promise<unknown> {
    this.state = 'failed';
    await this.discard();
    return err;
  }

  private async discard(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    this.chunks = [];
    this.buffered = 0;
    const id = this.uploadId;
    this.uploadId = undefined;
    if (id) await this.driver.abortUpload(this.key, id).catch(() => {});
  }

  commit(): Promise<void> {
    return this.serial(async () => {
      this.checkOpen();
      const Bucket = this.driver.bucket;
      const Key = this.key;
      try {
        if (!this.uploadId) {
          const body = Buffer.concat(this.chunks, this.buffered);
          await this.send('PutObject', () => this.client.send(new PutObjectCommand({ Bucket, Key, Body: body, ContentLength: body.length })));
        } else {
          if (this.buffered > 0) await this.uploadPart(this.takePart(this.buffered));
          await Promise.all([...this.inflight]);
          if (this.failure) throw this.failure;
          const UploadId = this.uploadId;
          await this.send('CompleteMultipartUpload', () =>
            this.client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: this.parts } })),
          );
          this.uploadId = undefined;
        }
        this.chunks = [];
        this.buffered = 0;
        this.state = 'committed';
      } catch (err) {
        throw await this.fail(err);
      }
    });
  }

  /** Never throws: an upload whose abort cannot reach the server is left to abortStaleUploads. */
  cancel(): Promise<void> {
    return this.serial(async () => {
      if (this.state !== 'open') return;
      this.state = 'cancelled';
      await this.discard();
    });
  }
}
