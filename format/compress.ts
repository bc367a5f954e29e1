// Layer compression with fixed settings, so the same tar always gives the same blob.
import zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import type { Compression } from './oci.ts';

const ZSTD_LEVEL = 3;
const GZIP_LEVEL = 6;

const zstdOptions = {
  // One output buffer per frame: the default 16 KiB means a thread-pool round trip per 16 KiB.
  chunkSize: 8 << 20,
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
export function zstdFrame(chunk: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => zlib.zstdCompress(chunk, zstdOptions, (err, out) => (err ? reject(err) : resolve(out))));
}

/** gzip stays one stream, for the old clients it exists for. Node writes no name and a zero mtime. */
export function createGzipCompressor(): Transform {
  return zlib.createGzip({ level: GZIP_LEVEL });
}

export function createDecompressor(mediaTypeOrCompression: string): Transform | undefined {
  if (mediaTypeOrCompression.endsWith('zstd')) return zlib.createZstdDecompress();
  if (mediaTypeOrCompression.endsWith('gzip')) return zlib.createGunzip();
  return undefined;
}
