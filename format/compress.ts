// Layer compression with fixed settings, so the same tar always gives the same blob.
import zlib from 'node:zlib';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Transform } from 'node:stream';
import { FramedWriter, type CompressFrame } from './frames.ts';
import type { Compression } from './oci.ts';

const ZSTD_LEVEL = 3;
const GZIP_LEVEL = 6;

const zstdOptions = {
  // Output buffer size. The default 16 KiB means a thread-pool round trip per 16 KiB; a 4 MiB
  // chunk of a layer compresses to ~1.5 MiB, so 2 MiB is one round trip for most frames, without
  // allocating 8 MiB per frame (buffers count as external memory and trigger full GCs). The
  // output bytes do not depend on it.
  chunkSize: 2 << 20,
  params: {
    [zlib.constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL,
    [zlib.constants.ZSTD_c_checksumFlag]: 1,
  },
};

/**
 * Compresses one chunk of a layer as an independent zstd frame on the thread pool. A layer is
 * a sequence of such frames (valid zstd: decoders read concatenated frames), so chunks compress
 * in parallel, and since chunk boundaries depend only on the content the output is the same on
 * every machine. (Node 24's streaming zstd with ZSTD_c_nbWorkers > 0 ends its stream before the
 * worker threads flush, so built-in multithreading is not usable.)
 */
export function zstdFrame(chunk: Buffer): Promise<Buffer[]> {
  return wholeFrame(zlib.createZstdCompress(zstdOptions), chunk);
}

/**
 * One compressor run over a whole chunk, as zlib.zstdCompress and zlib.gzip run it (end(chunk)
 * on a new stream: the same bytes), but the frame comes back as zlib's output buffers: the
 * one-call helpers copy them into a new buffer, a copy and an allocation per frame.
 */
function wholeFrame(compressor: Transform, chunk: Buffer): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const pieces: Buffer[] = [];
    compressor.on('data', (piece: Buffer) => pieces.push(piece));
    compressor.once('error', reject);
    compressor.once('end', () => resolve(pieces));
    compressor.end(chunk);
  });
}

/** gzip layers stay one stream, for the old clients they exist for. Node writes no name and a zero mtime. */
export function createGzipCompressor(): Transform {
  return zlib.createGzip({ level: GZIP_LEVEL });
}

// One thread-pool round trip for most members, as for zstd frames (the default 16 KiB output
// buffer means one per 16 KiB); the output bytes do not depend on it.
const gzipMemberOptions = { level: GZIP_LEVEL, chunkSize: 4 << 20 };

/**
 * Compresses one chunk as a complete gzip member on the thread pool. A file of concatenated
 * members is one valid gzip stream to gunzip, zcat and tar -xz (RFC 1952), so an exported
 * tarball compresses on every core.
 */
export function gzipMember(chunk: Buffer): Promise<Buffer[]> {
  return wholeFrame(zlib.createGzip(gzipMemberOptions), chunk);
}

export function createDecompressor(mediaTypeOrCompression: string): Transform | undefined {
  if (mediaTypeOrCompression.endsWith('zstd')) return zlib.createZstdDecompress();
  if (mediaTypeOrCompression.endsWith('gzip')) return zlib.createGunzip();
  return undefined;
}

export type ArchiveFormat = 'gzip' | 'xz' | 'zstd' | 'none';

/** The format a file name asks for: .tar.gz/.tgz, .tar.xz, .tar.zst, .tar. */
export function formatFromName(file: string): ArchiveFormat | undefined {
  if (/\.(tar\.gz|tgz)$/.test(file)) return 'gzip';
  if (/\.tar\.xz$/.test(file)) return 'xz';
  if (/\.tar\.zst$/.test(file)) return 'zstd';
  if (/\.tar$/.test(file)) return 'none';
  return undefined;
}

export interface CompressedSink {
  write(chunk: Buffer): Promise<void>;
  /** Flushes and closes; resolves when every byte is on disk. */
  close(): Promise<void>;
  abort(): void;
}

const FRAMED: Partial<Record<ArchiveFormat, CompressFrame>> = { zstd: zstdFrame, gzip: gzipMember };

/**
 * A file that compresses what is written to it: zstd frames and gzip members compressed in
 * parallel (boundaries every FRAME_SIZE bytes, so the same bytes in give the same file), xz
 * with the xz program (multithreaded; Node has no xz).
 */
export async function compressedFileSink(file: string, format: ArchiveFormat): Promise<CompressedSink> {
  const out = createWriteStream(file);
  const failed = new Promise<never>((_, reject) => out.once('error', reject));
  failed.catch(() => undefined);
  const writeOut = async (data: Buffer) => {
    if (!out.write(data)) await Promise.race([once(out, 'drain'), failed]);
  };
  const closeOut = async () => {
    out.end();
    await Promise.race([once(out, 'close'), failed]);
  };
  if (format === 'none') return { write: writeOut, close: closeOut, abort: () => out.destroy() };
  const frame = FRAMED[format];
  if (frame) {
    const frames = new FramedWriter(frame, writeOut);
    return {
      write: (chunk) => frames.write(chunk),
      async close() {
        await frames.finish();
        await closeOut();
      },
      abort: () => out.destroy(),
    };
  }
  const { execa } = await import('execa');
  const { requirePrograms } = await import('../common/run.ts');
  requirePrograms({ xz: 'xz-utils' });
  const child = execa('xz', ['-T2', '-6', '-c'], { stdin: 'pipe', stdout: 'pipe', buffer: false });
  child.catch(() => undefined);
  const compressor = child.duplex() as unknown as Transform;
  compressor.pipe(out);
  const compressorFailed = new Promise<never>((_, reject) => compressor.once('error', reject));
  compressorFailed.catch(() => undefined);
  return {
    async write(chunk) {
      if (!compressor.write(chunk)) await Promise.race([once(compressor, 'drain'), compressorFailed, failed]);
    },
    async close() {
      compressor.end();
      await Promise.race([once(out, 'close'), failed, compressorFailed]);
    },
    abort: () => {
      compressor.destroy();
      out.destroy();
    },
  };
}
