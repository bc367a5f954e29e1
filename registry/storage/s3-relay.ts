// Object bodies from a plain-HTTP S3 endpoint (RGW or MinIO inside a site) read off their own
// socket into pooled buffers, so that a proxied blob GET can hand each piece straight to the
// client's socket.
//
// Through the AWS SDK, every 64 KiB the socket gives is a fresh buffer, parsed by the HTTP
// client and pushed through two streams into the response: relaying a 57.5 MB template cost the
// registry ~0.5 s of CPU (Distribution, which splices socket to socket: 0.10 s), a third of it
// in garbage collection. Here the request is the SDK's own presigned GET (the SDK signs it, as
// for redirects), written on a socket opened with `onread`, which reads into buffers this module
// gives it: the response head is parsed here, and each body piece is either written to the
// client (sendTo; the buffer comes back when the socket has taken it) or copied out to a
// stream reader (anything else that reads a blob).
import { connect, type Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { givePiece, takePiece } from './buffer-pool.ts';

/** Body pieces a relay has written to the client and not yet had back. */
const IN_FLIGHT = 4;
const MAX_HEAD = 64 << 10;

export interface RelayOptions {
  /** The Range header to send, if any (unsigned: it is not part of the presigned URL). */
  range?: string;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
}

/**
 * GETs `url` (http:) on a connection of its own. Once the head has arrived, resolves with the
 * body as a relay, or with undefined for a status other than 200/206; rejects if the connection
 * fails, or the answer has no Content-Length (a chunked body is not relayed). Either way the
 * caller asks the SDK instead, which gives errors their usual form.
 */
export function relayGet(url: URL, opts: RelayOptions): Promise<RelayBody | undefined> {
  return new Promise((resolve, reject) => {
    const relay = new RelayBody();
    relay.start(url, opts, resolve, reject);
  });
}

export class RelayBody extends Readable {
  constructor() {
    // Pieces are 256 KiB: a smaller mark would pause the socket after each.
    super({ highWaterMark: 1 << 20 });
  }

  private socket!: Socket;
  private phase: 'head' | 'body' | 'over' = 'head';
  private head: Buffer[] = [];
  private headBytes = 0;
  private remaining = 0;
  /** Body bytes that came with the head, before anyone asked for them (copies). */
  private early: Buffer[] = [];
  private mode: 'waiting' | 'stream' | 'send' = 'waiting';
  private res: ServerResponse | undefined;
  private done: ((err?: Error) => void) | undefined;
  private inFlight = 0;
  private paused = false;
  private settle: ((body: RelayBody | undefined) => void) | undefined;
  private fail: ((err: Error) => void) | undefined;

  start(url: URL, opts: RelayOptions, resolve: (body: RelayBody | undefined) => void, reject: (err: Error) => void): void {
    this.settle = resolve;
    this.fail = reject;
    const request =
      `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n` + (opts.range ? `Range: ${opts.range}\r\n` : '') + '\r\n';
    this.socket = connect({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || 80),
      noDelay: true,
      timeout: opts.connectTimeoutMs,
      onread: { buffer: takePiece, callback: (n, buffer) => this.onRead(n, buffer as Buffer) },
    });
    this.socket.once('connect', () => this.socket.setTimeout(opts.idleTimeoutMs));
    this.socket.on('timeout', () => this.socket.destroy(new Error(`S3 GET ${url.host}${url.pathname}: no answer for ${opts.idleTimeoutMs} ms`)));
    this.socket.on('error', (err) => this.broken(err));
    this.socket.on('end', () => this.broken(new Error('S3 closed the connection before the body was whole')));
    this.socket.on('close', () => this.broken(new Error('S3 connection closed before the body was whole')));
    this.socket.write(request);
  }

  /** The socket read `n` bytes into `buffer`; false pauses the socket. */
  private onRead(n: number, buffer: Buffer): boolean {
    if (this.phase === 'head') {
      this.head.push(Buffer.from(buffer.subarray(0, n)));
      this.headBytes += n;
      givePiece(buffer);
      return this.parseHead();
    }
    if (this.phase !== 'body') {
      givePiece(buffer);
      return false;
    }
    const piece = buffer.subarray(0, Math.min(n, this.remaining));
    this.remaining -= piece.length;
    // Whole: the end of the connection that follows is no longer a failure.
    if (this.remaining === 0) this.phase = 'over';
    if (this.mode === 'send') return this.sendPiece(piece, buffer);
    // Copied out: a stream reader may keep what it is given.
    const copy = Buffer.from(piece);
    givePiece(buffer);
    if (this.mode === 'waiting') {
      this.early.push(copy);
      return false;
    }
    const more = this.push(copy);
    if (this.remaining === 0) this.finishStream();
    return more && this.remaining > 0;
  }

  private parseHead(): boolean {
    const all = Buffer.concat(this.head);
    const end = all.indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.headBytes > MAX_HEAD) this.socket.destroy(new Error('S3 answered with an oversized head'));
      return true;
    }
    const lines = all.toString('latin1', 0, end).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    this.head = [];
    const length = Number(headers.get('content-length'));
    if (status !== 200 && status !== 206) {
      this.phase = 'over';
      const settle = this.settle;
      this.settle = undefined;
      this.fail = undefined;
      this.socket.destroy();
      settle?.(undefined);
      return false;
    }
    if (!Number.isSafeInteger(length) || length < 0 || /chunked/i.test(headers.get('transfer-encoding') ?? '')) {
      this.socket.destroy(new Error('S3 answered without a Content-Length'));
      return false;
    }
    this.phase = 'body';
    this.remaining = length;
    const rest = all.subarray(end + 4, end + 4 + length);
    if (rest.length) this.early.push(rest);
    this.remaining -= rest.length;
    if (this.remaining === 0) this.phase = 'over';
    const settle = this.settle;
    this.settle = undefined;
    this.fail = undefined;
    settle?.(this);
    return false; // until a consumer comes
  }

  // --- as a stream ------------------------------------------------------------------------------

  override _read(): void {
    if (this.mode === 'waiting') {
      this.mode = 'stream';
      for (const piece of this.early.splice(0)) this.push(piece);
      if (this.remaining === 0) return this.finishStream();
    }
    this.socket.resume();
  }

  private finishStream(): void {
    this.phase = 'over';
    this.push(null);
    this.socket.destroy();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.phase = 'over';
    this.socket?.destroy();
    callback(err);
  }

  // --- sent straight to a response ---------------------------------------------------------------

  /** The driver reader's sendTo. */
  sendTo(res: ServerResponse, done: (err?: Error) => void): void {
    this.mode = 'send';
    this.res = res;
    this.done = done;
    res.once('close', () => {
      if (this.done) this.endSend(new Error('response closed before the body was sent'));
    });
    for (const piece of this.early.splice(0)) this.sendPiece(piece);
    if (this.remaining === 0 && this.inFlight === 0) return this.endSend();
    this.paused = this.inFlight >= IN_FLIGHT;
    if (!this.paused) this.socket.resume();
  }

  /** Writes one piece; `buffer` (pooled) comes back once the socket has it. False pauses the socket. */
  private sendPiece(piece: Buffer, buffer?: Buffer): boolean {
    const res = this.res!;
    if (!this.done) {
      if (buffer) givePiece(buffer);
      return false;
    }
    this.inFlight++;
    res.write(piece, (err) => {
      this.inFlight--;
      if (buffer) givePiece(buffer);
      if (err) return this.endSend(err);
      if (this.remaining === 0 && this.inFlight === 0) return this.endSend();
      if (this.paused && this.inFlight < IN_FLIGHT) {
        this.paused = false;
        this.socket.resume();
      }
    });
    this.paused = this.inFlight >= IN_FLIGHT;
    return !this.paused;
  }

  private endSend(err?: Error): void {
    const done = this.done;
    if (!done) return;
    this.done = undefined;
    this.phase = 'over';
    this.socket.destroy();
    if (err) this.res?.destroy(err);
    else this.res?.end();
    done(err);
  }

  /** The connection failed or ended: before the head, the GET fails; in the body, the reader does. */
  private broken(err: Error): void {
    if (this.fail) {
      const fail = this.fail;
      this.fail = undefined;
      this.settle = undefined;
      this.phase = 'over';
      return fail(err);
    }
    if (this.phase === 'over') return;
    this.phase = 'over';
    if (this.mode === 'send') return this.endSend(err);
    this.destroy(err);
  }
}
