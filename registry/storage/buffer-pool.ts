// Buffers that blob bodies are sent through (send-file.ts, s3-relay.ts), taken and given back
// so that a body of any size costs no allocations: every fresh buffer is external memory that
// V8 answers with garbage collection (the proxied pull of a 57.5 MB template spent ~30% of its
// CPU in GC), and from 128 KiB up (glibc's mmap threshold) a new mapping each time.
export const PIECE = 256 << 10;

/** Free buffers kept for the next bodies (4 MiB). */
const POOL_MAX = 16;
const free: Buffer[] = [];

export function takePiece(): Buffer {
  return free.pop() ?? Buffer.allocUnsafeSlow(PIECE);
}

/** Gives a buffer back once nothing refers to it any more (the socket has taken its bytes). */
export function givePiece(buffer: Buffer): void {
  if (free.length < POOL_MAX && buffer.length === PIECE) free.push(buffer);
}
