// Blob throughput under concurrent clients: `clients` keep-alive connections, each GETting every
// blob of a list in turn (each starting at another blob, so the large ones overlap), over and over
// until `durationMs` has passed; a blob under way then is finished and counted. Bodies are read
// into one reused buffer per client (a socket `onread` buffer) and only counted, so that the
// client costs the shared cores little more than the kernel's copy out of the socket.
import { connect } from 'node:net';

export interface BlobLoadOptions {
  port: number;
  /** Request paths and the body size each must have. */
  blobs: { path: string; size: number }[];
  clients: number;
  durationMs: number;
}

export interface BlobLoadResult {
  /** Body bytes of the blobs fetched whole. */
  bytes: number;
  blobs: number;
  /** Answers with another status or size, connections lost mid-blob. */
  errors: number;
  /** From the first request to the last blob's end. */
  ms: number;
  generatorCpuMs: number;
}

const READ_BUFFER = 256 << 10;
const MAX_HEAD = 16 << 10;

export async function blobLoad(o: BlobLoadOptions): Promise<BlobLoadResult> {
  const requests = o.blobs.map((b) => Buffer.from(`GET ${b.path} HTTP/1.1\r\nHost: 127.0.0.1:${o.port}\r\n\r\n`, 'latin1'));
  let bytes = 0;
  let blobs = 0;
  let errors = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + o.durationMs;
  let last = t0;

  const client = (first: number) =>
    new Promise<void>((done) => {
      let which = first % o.blobs.length;
      let head = '';
      let remaining = -1;
      let over = false;
      const finish = () => {
        if (over) return;
        over = true;
        socket.destroy();
        done();
      };
      const next = () => {
        if (performance.now() >= deadline) return finish();
        head = '';
        remaining = -1;
        socket.write(requests[which]!);
      };
      const bodyEnded = () => {
        bytes += o.blobs[which]!.size;
        blobs++;
        last = performance.now();
        which = (which + 1) % o.blobs.length;
        next();
      };
      const failed = () => {
        errors++;
        finish();
      };
      const socket = connect({
        host: '127.0.0.1',
        port: o.port,
        noDelay: true,
        onread: {
          buffer: Buffer.allocUnsafe(READ_BUFFER),
          callback(n: number, buf: Uint8Array): boolean {
            let at = 0;
            if (remaining < 0) {
              // Heads are small: a few KiB of the read is enough to find the end of one.
              const taken = Math.min(n, MAX_HEAD);
              head += Buffer.from(buf.buffer, buf.byteOffset, taken).toString('latin1');
              const end = head.indexOf('\r\n\r\n');
              if (end < 0) {
                if (head.length < MAX_HEAD) return true;
                failed();
                return false;
              }
              const length = /\r\ncontent-length:\s*(\d+)/i.exec(head.slice(0, end));
              if (head.slice(9, 12) !== '200' || !length || Number(length[1]) !== o.blobs[which]!.size) {
                failed();
                return false;
              }
              remaining = Number(length[1]);
              // What of this read came after the head is body.
              at = taken - (head.length - end - 4);
            }
            remaining -= n - at;
            if (remaining < 0) {
              failed(); // more than the body: not an answer this client understands
              return false;
            }
            if (remaining === 0) bodyEnded();
            return true;
          },
        },
      });
      socket.once('connect', next);
      socket.once('error', () => undefined);
      socket.once('close', () => {
        if (!over) failed();
      });
    });

  await Promise.all(Array.from({ length: o.clients }, (_, i) => client(i)));
  const cpu = process.cpuUsage(cpu0);
  return { bytes, blobs, errors, ms: last - t0, generatorCpuMs: (cpu.user + cpu.system) / 1000 };
}
