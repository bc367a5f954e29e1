// An open-loop HTTP/1.1 load generator: requests leave on a fixed schedule (`rate` per second,
// spread round-robin over `connections` keep-alive sockets), whether or not earlier answers have
// come back. A connection with an answer outstanding pipelines the next request behind it, so a
// slow answer delays what queues behind it, as it would delay real clients, and does not slow the
// sender (closed loops hide that: coordinated omission). Each latency is measured from the
// request's scheduled time, not from when it was written, so the generator's own lateness counts
// against the result too; how late it was is reported apart (sendLag) to tell the two apart.
// Plain sockets, parsing only status and Content-Length, so that it takes little of the cores it
// shares with the server under test.
import { connect, type Socket } from 'node:net';
import { percentile } from './support.ts';

export interface OpenLoopOptions {
  port: number;
  path: string;
  headers: Record<string, string>;
  /** Requests per second offered, in all. */
  rate: number;
  connections: number;
  /** How long requests are sent; then the run waits up to `drainMs` for the answers still due. */
  durationMs: number;
  drainMs?: number;
  expectStatus?: number;
}

export interface OpenLoopResult {
  scheduled: number;
  /** Good answers (the expected status, a Content-Length body). */
  completed: number;
  /** Other statuses, unparsable answers, requests lost with their connection. */
  errors: number;
  /** Requests without an answer when the drain time ran out. */
  unanswered: number;
  /**
   * Latency from each request's scheduled send time to the end of its answer, ms, one per
   * scheduled request: those without a good answer are Infinity, so a server that falls behind
   * shows it in the percentiles instead of dropping out of them.
   */
  latencies: Float64Array;
  /** How late the generator wrote requests after their scheduled time, ms (p99, max). */
  sendLag: { p99: number; max: number };
  /** From the first scheduled send to the last answer (or the end of the drain). */
  ms: number;
  /** Good answers per second over the sending period plus what the drain took. */
  perSecond: number;
  /** CPU the generator itself used (user + system), ms. */
  generatorCpuMs: number;
  bodyBytes: number;
}

interface Connection {
  socket: Socket;
  /** Indexes of the requests written and not yet answered, oldest first. */
  due: number[];
  head: number;
  buf: Buffer | undefined;
}

export async function openLoop(o: OpenLoopOptions): Promise<OpenLoopResult> {
  const request = Buffer.from(
    `GET ${o.path} HTTP/1.1\r\nHost: 127.0.0.1:${o.port}\r\n${Object.entries(o.headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')}\r\n`,
    'latin1',
  );
  const expect = o.expectStatus ?? 200;
  const total = Math.max(1, Math.floor((o.rate * o.durationMs) / 1000));
  const interval = 1000 / o.rate;
  const latencies = new Float64Array(total).fill(Infinity);
  const lags = new Float64Array(total);
  let completed = 0;
  let errors = 0;
  let bodyBytes = 0;
  let lastAnswer = 0;
  let stopping = false;
  const cpu0 = process.cpuUsage();

  let t0 = 0;
  let onAllAnswered: (() => void) | undefined;
  let outstanding = 0;
  const answered = () => {
    outstanding--;
    if (outstanding === 0 && onAllAnswered) onAllAnswered();
  };

  const open = (c: Connection) => {
    c.socket = connect({ host: '127.0.0.1', port: o.port, noDelay: true });
    c.socket.on('data', (chunk: Buffer) => onData(c, chunk));
    c.socket.once('error', () => undefined);
    c.socket.once('close', () => {
      if (stopping) return;
      // Whatever was written on it is lost: counted, and the connection made again.
      for (let i = c.head; i < c.due.length; i++) {
        errors++;
        answered();
      }
      c.due = [];
      c.head = 0;
      c.buf = undefined;
      open(c);
    });
  };

  const onData = (c: Connection, chunk: Buffer) => {
    let buf = c.buf ? Buffer.concat([c.buf, chunk]) : chunk;
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) break;
      const header = buf.toString('latin1', 0, end);
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(header);
      if (!length) {
        // Not what this generator reads (chunked, or no length): the connection is dropped.
        c.buf = undefined;
        c.socket.destroy();
        return;
      }
      const size = end + 4 + Number(length[1]);
      if (buf.length < size) break;
      const now = performance.now();
      const index = c.due[c.head++]!;
      if (c.head > 1024) {
        c.due = c.due.slice(c.head);
        c.head = 0;
      }
      if (Number(header.slice(9, 12)) === expect) {
        latencies[index] = now - (t0 + index * interval);
        completed++;
        bodyBytes = size - end - 4;
      } else errors++;
      lastAnswer = now;
      answered();
      buf = buf.subarray(size);
    }
    c.buf = buf.length ? buf : undefined;
  };

  const conns: Connection[] = Array.from({ length: o.connections }, () => ({ socket: undefined as unknown as Socket, due: [], head: 0, buf: undefined }));
  for (const c of conns) open(c);
  await Promise.all(conns.map((c) => new Promise<void>((r) => c.socket.once('connect', () => r()))));

  t0 = performance.now() + 1;
  let next = 0;
  await new Promise<void>((done) => {
    const tick = () => {
      const now = performance.now();
      while (next < total && t0 + next * interval <= now) {
        const scheduled = t0 + next * interval;
        lags[next] = now - scheduled;
        const c = conns[next % conns.length]!;
        c.due.push(next);
        outstanding++;
        c.socket.write(request);
        next++;
      }
      if (next < total) setTimeout(tick, Math.max(0, t0 + next * interval - performance.now()));
      else done();
    };
    setTimeout(tick, 1);
  });
  const sentUntil = performance.now();
  if (outstanding > 0) {
    await new Promise<void>((r) => {
      onAllAnswered = r;
      setTimeout(r, o.drainMs ?? 2000);
    });
  }
  stopping = true;
  const unanswered = outstanding;
  for (const c of conns) c.socket.destroy();
  const cpu = process.cpuUsage(cpu0);
  const end = Math.max(sentUntil, lastAnswer);
  return {
    scheduled: total,
    completed,
    errors,
    unanswered,
    latencies,
    sendLag: { p99: percentile(lags, 0.99), max: percentile(lags, 1) },
    ms: end - t0,
    perSecond: completed / ((end - t0) / 1000),
    generatorCpuMs: (cpu.user + cpu.system) / 1000,
    bodyBytes,
  };
}
