// Safe extraction of one layer blob into an overlayfs-ready lower dir of the host store.
//
// Archives from outside are hostile. The blob digest is computed over the compressed bytes as
// they stream in and the diff_id over the tar (extract-tap.ts), the entries are written by the
// layer writer (extract-writer.ts), and everything is written into
// `${target}.tmp-<pid>-<rand>`, renamed to `target` only when every entry and both digests
// checked out: a refused, failed or killed extraction never leaves a (partial) target, and
// sweepStaleTemps removes what a killed process left. What may be extracted, and the errors
// that say why not, are in extract-policy.ts.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { chmodSync, lchownSync, lstatSync, mkdirSync, renameSync, rmdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isDigest, type Digest } from '../format/digest.ts';
import { readTar, TarFormatError } from '../format/tar/read.ts';
import { findProgram } from '../common/programs.ts';
import { MissingToolError } from '../common/errors.ts';
import { sweepDeadPidEntries } from '../common/pids.ts';
import { DigestMismatchError, ExtractIOError, LayerExtractError, refusal, resolveExtractPolicy, type ExtractPolicy, type ResolvedPolicy } from './extract-policy.ts';
import { BlobTap, TarTap } from './extract-tap.ts';
import { DecoderError, LayerDecoder, type Compression } from './extract-decoder.ts';
import { displayName, LayerWriter } from './extract-writer.ts';
import { SetXattrError } from './set-xattrs.ts';

export * from './extract-policy.ts';

export interface ExtractOptions {
  /** The layer's media type (OCI or Docker; plain tar, gzip or zstd). */
  mediaType: string;
  /** Digest of the compressed blob (the manifest's layer descriptor). */
  expectedDigest: Digest;
  /** Size of the compressed blob, when known: more bytes than this are refused at once. */
  expectedSize?: number;
  /** Digest of the uncompressed tar (the config's rootfs.diff_ids entry), when known. */
  expectedDiffId?: Digest;
  /** The layer directory to create; it must not exist. Its parent is created if missing. */
  target: string;
  policy?: ExtractPolicy;
  /** syncfs the target's filesystem before the rename, so a power loss cannot leave a target with lost data. Default true. */
  durable?: boolean;
}

export interface ExtractResult {
  /** Digest of the uncompressed tar. */
  diffId: Digest;
  /** Digest of the compressed blob. */
  digest: Digest;
  /** Archive entries, whiteouts included. */
  entries: number;
  /** Size of the uncompressed tar. */
  bytes: number;
  /** Size of the compressed blob. */
  blobBytes: number;
}

const TEMP_INFIX = '.tmp-';
const TEMP_RE = /\.tmp-(\d+)-[0-9a-f]{12}$/;

/** Where an extraction into `target` works before the rename. */
function tempPathFor(target: string): string {
  return `${target}${TEMP_INFIX}${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * Removes the temporary directories that killed extractions left in `parentDir` (those whose
 * process no longer runs). Returns their paths. Call it when the store opens.
 */
export async function sweepStaleTemps(parentDir: string): Promise<string[]> {
  return sweepDeadPidEntries(parentDir, (name) => {
    const m = TEMP_RE.exec(name);
    return m ? Number(m[1]) : undefined;
  });
}

function compressionOf(mediaType: string): Compression | undefined {
  const oci = /^application\/vnd\.oci\.image\.layer\.(?:nondistributable\.)?v1\.tar(?:\+(gzip|zstd))?$/.exec(mediaType);
  if (oci) return (oci[1] as Compression | undefined) ?? 'none';
  if (/^application\/vnd\.docker\.image\.rootfs\.(?:foreign\.)?diff\.tar\.gzip$/.test(mediaType)) return 'gzip';
  return undefined;
}

/**
 * Extracts one layer blob (the compressed stream, as it arrives) into `opts.target`, verifying
 * its digest and diff_id and refusing anything unsafe; see the file comment. On any failure the
 * target does not exist and the temporary directory is gone; the error is a LayerExtractError
 * (UnsafeArchiveError, ArchiveLimitError, MalformedArchiveError, DigestMismatchError,
 * ExtractIOError) naming the layer and the entry at fault, its `kind` saying what is wrong, or
 * the source's own error.
 */
export async function extractLayer(source: AsyncIterable<Buffer | Uint8Array>, opts: ExtractOptions): Promise<ExtractResult> {
  const layer = opts.expectedDigest;
  if (!isDigest(layer)) throw new TypeError(`extractLayer: expectedDigest ${JSON.stringify(layer)} is not a sha256 digest`);
  if (opts.expectedDiffId !== undefined && !isDigest(opts.expectedDiffId)) throw new TypeError(`extractLayer: expectedDiffId ${JSON.stringify(opts.expectedDiffId)} is not a sha256 digest`);
  if (typeof (source as Partial<AsyncIterable<unknown>>)?.[Symbol.asyncIterator] !== 'function') throw new TypeError('extractLayer: the source must be an async iterable of buffers (a stream)');
  const policy = resolveExtractPolicy(opts.policy);
  const compression = compressionOf(opts.mediaType);
  if (!compression) throw refusal(layer, 'unsupported-media-type', undefined, `has the media type ${JSON.stringify(opts.mediaType)}, not a layer this host reads (tar, tar+gzip, tar+zstd)`);
  const target = resolve(opts.target);
  if (lstatSync(target, { throwIfNoEntry: false })) throw refusal(layer, 'target-exists', undefined, `cannot be extracted to ${target}: it exists`);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  mkdirSync(tmp, 0o700);
  try {
    return await extractInto(tmp, target, source, opts, policy, compression);
  } catch (err) {
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch {
      // Left for sweepStaleTemps; the extraction's own error is the one to report.
    }
    throw err;
  }
}

async function extractInto(tmp: string, target: string, source: AsyncIterable<Buffer | Uint8Array>, opts: ExtractOptions, policy: ResolvedPolicy, compression: Compression): Promise<ExtractResult> {
  const layer = opts.expectedDigest;
  // An owner of our own (whatever the parent's set-group-ID bit or the mount's grpid option,
  // new files then belong to this process), and the umask, from the mode mkdir gives a probe.
  const owner = { uid: process.geteuid!(), gid: process.getegid!(), umask: 0o022 };
  lchownSync(tmp, owner.uid, owner.gid);
  chmodSync(tmp, 0o700);
  const probe = join(tmp, 'umask-probe');
  mkdirSync(probe, 0o777);
  owner.umask = 0o777 & ~lstatSync(probe).mode;
  rmdirSync(probe);

  const blobTap = new BlobTap(layer, opts.expectedSize);
  const tarTap = new TarTap(layer, policy.maxTotalBytes);
  const writer = new LayerWriter(layer, tmp, policy, tarTap, owner);

  const consume = async (tarStream: AsyncIterable<Buffer>): Promise<void> => {
    const tapped = tarTap.tap(tarStream);
    for await (const { entry, offset, body } of readTar(tapped)) {
      await writer.add(entry, offset, body);
    }
    tarTap.ended(writer.lastEnd);
    // The rest of the stream (zero padding to a record size) belongs to the diff_id too.
    for (;;) if ((await tapped.next()).done) break;
  };

  const decoder = new LayerDecoder(blobTap.tap(source), compression);
  try {
    try {
      await consume(decoder.tar());
    } catch (err) {
      throw describeFailure(err);
    } finally {
      decoder.close();
    }
    const { digest, diffId } = decoder.decoded();
    if (opts.expectedSize !== undefined && blobTap.bytes !== opts.expectedSize) throw refusal(layer, 'blob-size', undefined, `blob is ${blobTap.bytes} bytes, its descriptor says ${opts.expectedSize}`);
    if (digest !== layer) throw new DigestMismatchError(layer, 'digest', layer, digest);
    if (opts.expectedDiffId && diffId !== opts.expectedDiffId) throw new DigestMismatchError(layer, 'diff_id', opts.expectedDiffId, diffId);
    try {
      writer.finish();
      if (opts.durable ?? true) await syncFilesystem(tmp);
    } catch (err) {
      throw describeFailure(err);
    }
    if (lstatSync(target, { throwIfNoEntry: false })) throw refusal(layer, 'target-exists', undefined, `cannot be extracted to ${target}: it appeared while extracting`);
    renameSync(tmp, target);
    return { diffId, digest, entries: writer.entries, bytes: tarTap.bytes, blobBytes: blobTap.bytes };
  } finally {
    writer.closeOpenFile();
  }

  /**
   * The entry a TarFormatError is about: the one whose data is cut short, else the name in the
   * bad header (at the error's offset; after the last entry when the error names no header).
   */
  function formatErrorEntry(err: TarFormatError): string {
    const truncated = err.kind === 'truncated';
    if (truncated && err.offset !== undefined && err.offset < writer.lastEnd && tarTap.current) return tarTap.current;
    const header = !truncated && err.offset !== undefined ? err.offset : writer.lastEnd;
    return tarTap.headerName(header) ?? (tarTap.current ? `(the header after ${tarTap.current})` : '(the first header)');
  }

  /** The error to throw for a failure while streaming or finishing. */
  function describeFailure(err: unknown): unknown {
    if (err instanceof LayerExtractError || err instanceof MissingToolError) return err;
    if (blobTap.sourceFailed !== undefined) return blobTap.sourceFailed;
    if (err instanceof SetXattrError) return new ExtractIOError(layer, err.path === undefined ? undefined : displayName(err.path.replace(/^\.\/?/, '')), err.code, err.message, { cause: err });
    if (err instanceof DecoderError) return refusal(layer, 'corrupt-compression', tarTap.current, `cannot be decompressed (${compression}): ${err.message}`, { cause: err });
    if (err instanceof TarFormatError) return refusal(layer, err.kind, formatErrorEntry(err), `is malformed: ${err.message}`, { cause: err });
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) {
      return new ExtractIOError(layer, tarTap.current, code, `could not be written: ${(err as Error).message}`, { cause: err });
    }
    return err;
  }
}

/**
 * syncfs(2) on the filesystem holding `path` (coreutils sync -f): one process per layer, waited
 * for without blocking the layers still extracting beside it.
 */
async function syncFilesystem(path: string): Promise<void> {
  const sync = findProgram('sync');
  if (!sync) throw new MissingToolError('sync', 'coreutils');
  await promisify(execFile)(sync, ['-f', path]);
}
