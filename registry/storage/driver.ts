// The storage driver interface: the few operations the registry needs from a store, modelled
// on CNCF Distribution's StorageDriver. Every driver (fs, s3) passes one shared test suite
// (test/registry/driver-suite.ts). Paths are '/'-separated, absolute within the store
// ("/docker/registry/v2/blobs/..."); drivers map them to files or object keys.
//
// stat, list and walk also take the root "/" (a store-wide walk or listing needs it; list('/')
// of an empty store is []); every other method refuses it (delete('/') would wipe the store).
// Names outside the path grammar (drivers' temp files) never show in listings. A directory
// exists exactly while something is below it, on every driver (S3 has no empty directories, so
// the fs driver prunes emptied ones). Only putContent with ifNotExists is create-only: a
// writer's commit and move always replace (RGW ignores If-None-Match on
// CompleteMultipartUpload and CopyObject), so create-only commits are small putContent calls.
//
// abortStaleUploads joined the interface (it began as an S3-only method): interrupted writes
// leave something behind on every driver (orphan multipart uploads, a crashed process's temp
// files), and garbage collection cleans both the same way, with its grace period.
//
// Errors are part of the contract: a missing path is PathNotFoundError (isNotFound), storage
// that cannot be used just now (unreachable, failing, refusing) StorageUnavailableError, a path
// outside the grammar InvalidPathError, a read past the end InvalidOffsetError.
//
// Correctness never depends on listing: the registry checks existence with stat/getContent
// and commits with create-only writes (putContent with ifNotExists), which S3 honours for
// plain PUTs (If-None-Match: *) and the fs driver with an exclusive link.
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

export interface FileInfo {
  path: string;
  size: number;
  modTime: Date;
  isDir: boolean;
}

export interface FileWriter {
  /** Bytes written so far. */
  readonly size: number;
  /**
   * Appends `data`: one buffer, or several written in order as one piece (the fs driver hands
   * them to writev, so a caller batching request pieces need not copy them into one buffer).
   */
  write(data: Buffer | readonly Buffer[]): Promise<void>;
  /** Makes the content visible at the path, whole; after this the writer is closed. */
  commit(): Promise<void>;
  /** Discards everything written; the path is left as it was. */
  cancel(): Promise<void>;
}

export interface WriteOptions {
  /**
   * false for scratch state a crash may lose (an upload's state: the client starts the upload
   * again): the fs driver then skips its fsyncs. S3 writes are durable either way.
   */
  durable?: boolean;
}

/**
 * Sends a reader's content as the body of a response whose head is written, and ends it; calls
 * `done` once, with the error if the body could not be sent whole (the response is then
 * destroyed). Readers may carry one (`sendTo`) when they can do better than a piped stream:
 * the fs driver reads its file with pooled buffers, the s3 driver relays the object's socket.
 * A reader is used one way or the other, not both.
 */
export type SendTo = (res: ServerResponse, done: (err?: Error) => void) => void;

/** The direct sender of a reader, when it has one. */
export function directSendOf(stream: Readable): SendTo | undefined {
  const sendTo = (stream as Readable & { sendTo?: SendTo }).sendTo;
  return typeof sendTo === 'function' ? sendTo.bind(stream) : undefined;
}

export interface StorageDriver {
  readonly name: string;
  /** Whole content of a small object. Throws PathNotFoundError. */
  getContent(path: string): Promise<Buffer>;
  /**
   * Stores a small object atomically. With ifNotExists, succeeds only if nothing is there yet
   * and returns false (leaving the existing content) otherwise.
   */
  putContent(path: string, content: Buffer, opts?: WriteOptions & { ifNotExists?: boolean }): Promise<boolean>;
  /** Reads from `offset`, `length` bytes or to the end. Throws PathNotFoundError, InvalidOffsetError. */
  reader(path: string, offset?: number, length?: number): Promise<Readable>;
  /** Streams a new object to `path`; nothing is visible there until commit. */
  writer(path: string): Promise<FileWriter>;
  /** Throws PathNotFoundError. A "directory" is any prefix with objects below it. */
  stat(path: string): Promise<FileInfo>;
  /** Direct children of a directory, as full paths, sorted. Throws PathNotFoundError. */
  list(path: string): Promise<string[]>;
  /** Moves an object, replacing the destination. */
  move(source: string, dest: string): Promise<void>;
  /** Deletes an object or a whole directory. Throws PathNotFoundError. */
  delete(path: string): Promise<void>;
  /** A URL a client may fetch the object from directly (presigned), or undefined. */
  redirectURL(path: string, opts: { method: 'GET' | 'HEAD'; expiresIn?: number }): Promise<string | undefined>;
  /** Calls fn for every object (not directory) under path, in no particular order. Throws PathNotFoundError. */
  walk(path: string, fn: (info: FileInfo) => Promise<void> | void): Promise<void>;
  /**
   * Removes what interrupted writes left behind before `olderThan`: multipart uploads that were
   * never completed nor aborted (S3 keeps and bills them; RGW leaves them when it dies
   * mid-upload), temp files of a crashed process (fs; those of a process known to be gone go
   * whatever their age). Returns how many were removed. Meant for garbage collection and each
   * registry's start, with a grace period longer than any upload.
   */
  abortStaleUploads(olderThan: Date): Promise<number>;
}

export class PathNotFoundError extends Error {
  readonly path: string;
  constructor(path: string) {
    super(`path not found: ${path}`);
    this.name = 'PathNotFoundError';
    this.path = path;
  }
}

/**
 * The storage cannot be used just now: unreachable (S3 endpoint down, connection refused or
 * timed out), or failing or refusing (a disk's EIO, a full or read-only file system, denied
 * access). Whatever the driver, the registry answers it 503 UNAVAILABLE, which tells clients to
 * retry. Drivers throw it, or a subclass with their own detail (S3StorageError).
 */
export class StorageUnavailableError extends Error {
  /** The driver's error code: an S3 code (NoSuchBucket, AccessDenied), an errno (EIO, ECONNREFUSED). */
  readonly code: string | undefined;
  constructor(message: string, opts: { code?: string; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'StorageUnavailableError';
    this.code = opts.code;
  }
}

/** Whether a driver call failed because nothing is at its path. */
export function isNotFound(err: unknown): boolean {
  return err instanceof PathNotFoundError;
}

/** Whether something (an object or a directory) is at `path`; other failures are thrown. */
export async function exists(driver: StorageDriver, path: string): Promise<boolean> {
  try {
    await driver.stat(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** The object at `path`, or undefined when nothing is there; other failures are thrown. */
export async function contentIfPresent(driver: StorageDriver, path: string): Promise<Buffer | undefined> {
  try {
    return await driver.getContent(path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export class InvalidOffsetError extends Error {
  constructor(path: string, offset: number) {
    super(`invalid offset ${offset} for ${path}`);
    this.name = 'InvalidOffsetError';
  }
}

export class InvalidPathError extends Error {
  constructor(path: string) {
    super(`invalid storage path: ${JSON.stringify(path)}`);
    this.name = 'InvalidPathError';
  }
}

/** '/'-separated components of [A-Za-z0-9._-], none of them '.' or '..'. */
const PATH_RE = /^(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9._-]+)+$/;

/** Storage paths are absolute, with plain components: no '..', no empty parts, no odd bytes. */
export function checkPath(path: string): string {
  if (!PATH_RE.test(path)) throw new InvalidPathError(path);
  return path;
}

/** Like checkPath, and also accepts the root "/" (stat, list and walk take a directory). */
export function checkDirPath(path: string): string {
  return path === '/' ? path : checkPath(path);
}

/** Whether a name is a valid path component: what drivers show in list and walk. */
export function isPathComponent(name: string): boolean {
  return /^[A-Za-z0-9._-]+$/.test(name) && name !== '.' && name !== '..';
}
