// What the registry and create benchmarks share, on top of lib.ts: the templates they measure
// (built with the shared build cache), registries as processes (vztpl serve from dist/, CNCF
// Distribution), a bounded keep-alive load generator, percentiles, /proc facts (RSS, load,
// mounts), and appending a section to RESULTS.md.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync, closeSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { appendFile, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadAverage, runChecked, running, secs, type Machine, type ProcessRun } from './lib.ts';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const RESULTS = join(REPO, 'bench', 'RESULTS.md');
/** The compiled CLI: every whole-process measurement of vztpl runs this, not the TS sources. */
export const CLI = join(REPO, 'dist', 'cli', 'main.js');
export const env: NodeJS.ProcessEnv = { ...process.env, PATH: `/usr/local/bin:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };

export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

// --- statistics -------------------------------------------------------------------------------

/** The p-quantile (0..1) by the nearest-rank method: the smallest sample with at least p of them at or below it. */
export function percentile(xs: ArrayLike<number>, p: number): number {
  const n = xs.length;
  if (n === 0) return NaN;
  const s = Float64Array.from(xs as ArrayLike<number>).sort();
  return s[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))]!;
}

export function ms(x: number, digits = 1): string {
  return `${x.toFixed(digits)} ms`;
}

export function mbps(bytes: number, msTaken: number): number {
  return bytes / 1e6 / (msTaken / 1000);
}

// --- the machine ------------------------------------------------------------------------------

/** The code measured: HEAD, and whether the product sources differ from it. */
export function gitRevision(): string {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'builder', 'format', 'cli', 'common', 'registry', 'cache'], { cwd: REPO, encoding: 'utf8' }).trim();
    return dirty ? `${rev} (with uncommitted changes in the product sources)` : rev;
  } catch {
    return 'unknown';
  }
}

/** Sources newer than their compiled file in dist/ (then dist/ does not measure the sources). */
export function staleDist(): string[] {
  const stale: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(REPO, dir), { withFileTypes: true })) {
      const rel = join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const out = join(REPO, 'dist', rel.replace(/\.ts$/, '.js'));
        if (!existsSync(out) || statSync(out).mtimeMs < statSync(join(REPO, rel)).mtimeMs) stale.push(rel);
      }
    }
  };
  for (const d of ['cli', 'cache', 'format', 'registry', 'common', 'builder']) if (existsSync(join(REPO, d))) walk(d);
  return stale;
}

export function requireDist(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build it first (npx tsc -p .)`);
  const stale = staleDist();
  if (stale.length) say(`warning: dist/ is older than ${stale.length} source file(s) (${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ', ...' : ''}): run npx tsc -p . to measure the current code`);
}

/** Waits until the 1-minute load average is below `max` (polling), or gives up after `timeoutMin`. */
export async function waitForQuiet(max: number, pollS = 20, timeoutMin = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMin * 60_000;
  for (;;) {
    const one = Number(loadAverage().split(' ')[0]);
    if (one < max) return true;
    if (Date.now() > deadline) {
      say(`load average still ${loadAverage()} after ${timeoutMin} min: running anyway`);
      return false;
    }
    say(`waiting for a quiet machine: load average ${loadAverage()} (want the 1-minute one below ${max})`);
    await sleep(pollS * 1000);
  }
}

/** VmRSS and VmHWM (peak) of a process, in kB. */
export function memory(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Samples a process's VmRSS every `everyMs` until stopped; the peak and the samples, in kB. */
export function rssSampler(pid: number, everyMs = 50): { stop(): { peak: number; samples: number; hwm: number } } {
  let peak = 0;
  let samples = 0;
  const tick = () => {
    const m = memory(pid);
    if (m && m.rss > peak) peak = m.rss;
    samples++;
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return { peak, samples, hwm: memory(pid)?.hwm ?? NaN };
    },
  };
}

/** Mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const point = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (point === dir || point.startsWith(`${dir}/`)) out.push(point);
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Unmounts everything at or below `dir` (lazily if busy). */
export function unmountAll(dir: string): void {
  for (const point of mountsUnder(dir)) {
    try {
      execFileSync('umount', [point], { stdio: 'ignore' });
    } catch {
      try {
        execFileSync('umount', ['-l', point], { stdio: 'ignore' });
      } catch {
        say(`warning: could not unmount ${point}`);
      }
    }
  }
}

/**
 * A bench directory's end: unmounts everything under it, detaches what is still attached to the
 * loop image `image` (mount -o loop sets autoclear, but a crash between losetup and mount leaves
 * one), and removes the directory unless something stays mounted there (then a warning).
 */
export async function releaseBenchDir(dir: string, image?: string): Promise<void> {
  unmountAll(dir);
  if (image && existsSync(image)) {
    for (const line of execFileSync('losetup', ['-j', image], { encoding: 'utf8' }).split('\n').filter(Boolean)) execFileSync('losetup', ['-d', line.split(':')[0]!]);
  }
  const left = mountsUnder(dir);
  if (left.length) say(`warning: mounts left under ${dir}: ${left.join(', ')}`);
  else await rm(dir, { recursive: true, force: true });
}

// --- templates --------------------------------------------------------------------------------

export interface Layout {
  dir: string;
  name: string;
  version: string;
  manifestDigest: string;
  /** Config and layer blobs, as the manifest lists them. */
  blobs: { digest: string; size: number }[];
  /** Their total size: what a push or a pull of the template moves. */
  bytes: number;
}

export function readLayout(dir: string): Layout {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const desc = index.manifests[0];
  if (!desc) throw new Error(`${dir}: an empty OCI layout`);
  const manifest = JSON.parse(readFileSync(join(dir, 'blobs', 'sha256', desc.digest.slice(7)), 'utf8')) as {
    config: { digest: string; size: number };
    layers: { digest: string; size: number }[];
    annotations?: Record<string, string>;
  };
  const blobs = [manifest.config, ...manifest.layers].map((b) => ({ digest: b.digest, size: b.size }));
  return {
    dir,
    name: desc.annotations?.['org.opencontainers.image.title'] ?? manifest.annotations?.['org.opencontainers.image.title'] ?? 'template',
    version: desc.annotations?.['org.opencontainers.image.ref.name'] ?? manifest.annotations?.['org.opencontainers.image.version'] ?? '1.0.0',
    manifestDigest: desc.digest,
    blobs,
    bytes: blobs.reduce((n, b) => n + b.size, 0),
  };
}

/**
 * Builds a recipe of recipes/ with the CLI (dist/) and the given build cache into `out`. With the
 * shared test cache this is a warm rebuild (well under a second); a cold cache runs mmdebstrap.
 */
export async function buildTemplate(recipe: string, cacheDir: string, out: string): Promise<{ layout: Layout; run: ProcessRun; ranSteps: number }> {
  const run = await runChecked(`vztpl build ${recipe}`, process.execPath, [CLI, 'build', join(REPO, 'recipes', recipe), '--cache-dir', cacheDir, '-o', out, '--json'], { cwd: REPO, env });
  let ranSteps = 0;
  for (const { line } of run.lines) {
    if (!line.startsWith('{')) continue;
    try {
      const e = JSON.parse(line) as { event?: string; cached?: boolean };
      if (e.event === 'step-done' && !e.cached) ranSteps++;
    } catch {
      /* not an event */
    }
  }
  return { layout: readLayout(out), run, ranSteps };
}

// --- processes and servers --------------------------------------------------------------------

export async function freePort(): Promise<number> {
  return new Promise<number>((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const p = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(p));
    });
  });
}

export interface Server {
  /** 'vztpl' or 'distribution'. */
  kind: string;
  /** 127.0.0.1:PORT */
  host: string;
  url: string;
  port: number;
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

/** The servers still running, so that a failure or an interrupt can stop them. */
export const servers = new Set<Server>();

async function waitReady(url: string, child: ChildProcess, logFile: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${url}: the server exited during start-up (${child.exitCode ?? child.signalCode}):\n${tailFile(logFile)}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`${url}: no answer after ${timeoutMs / 1000} s:\n${tailFile(logFile)}`);
    await sleep(50);
  }
}

export function tailFile(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Starts a server process whose stdout and stderr go to `logFile`, and waits until GET /v2/ answers. */
async function startServer(kind: string, file: string, args: string[], childEnv: NodeJS.ProcessEnv, port: number, logFile: string): Promise<Server> {
  const fd = openSync(logFile, 'a');
  const child = spawn(file, args, { cwd: REPO, env: childEnv, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  running.add(child);
  child.once('error', () => undefined);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const host = `127.0.0.1:${port}`;
  let stopped = false;
  const server: Server = {
    kind,
    host,
    url: `http://${host}`,
    port,
    pid: child.pid!,
    logFile,
    async stop() {
      if (stopped) return;
      stopped = true;
      servers.delete(server);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      running.delete(child);
    },
  };
  servers.add(server);
  try {
    await waitReady(`${server.url}/v2/`, child, logFile);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

export interface S3Target {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
}

export type StorageTarget = { kind: 'fs'; dir: string } | ({ kind: 's3' } & S3Target);

/** vztpl serve from dist/, with its default settings (log level info: one line per request, to the log file). */
export async function startVztpl(storage: StorageTarget, logFile: string, opts: { redirect?: boolean } = {}): Promise<Server> {
  const port = await freePort();
  const args = [CLI, 'serve', '--listen', `127.0.0.1:${port}`];
  const childEnv = { ...env };
  if (storage.kind === 'fs') args.push('--storage', `fs:${storage.dir}`);
  else {
    args.push('--storage', `s3://${storage.bucket}`, '--s3-endpoint', storage.endpoint, '--s3-path-style', '--s3-region', 'us-east-1');
    if (opts.redirect) args.push('--s3-redirect');
    Object.assign(childEnv, { AWS_ACCESS_KEY_ID: storage.accessKeyId, AWS_SECRET_ACCESS_KEY: storage.secretAccessKey, AWS_REGION: 'us-east-1' });
  }
  return startServer('vztpl', process.execPath, args, childEnv, port, logFile);
}

/**
 * The floor of the latency test: a bare node:http server (no framework, no storage, no logs)
 * answering every request with `body` and `headers`, in a process of its own like the servers.
 */
export async function startFloorServer(body: Buffer, headers: Record<string, string>, logFile: string): Promise<Server> {
  const port = await freePort();
  const script = `
const body = Buffer.from(process.env.FLOOR_BODY, 'base64');
const headers = { ...JSON.parse(process.env.FLOOR_HEADERS), 'Content-Length': body.length };
require('node:http').createServer((req, res) => { res.writeHead(200, headers); res.end(body); }).listen(${port}, '127.0.0.1');`;
  return startServer('floor', process.execPath, ['-e', script], { ...env, FLOOR_BODY: body.toString('base64'), FLOOR_HEADERS: JSON.stringify(headers) }, port, logFile);
}

/** What the benchmarks use of test/services/rgw.ts: a throwaway Ceph RGW (memstore). */
export interface Rgw {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  startMs: number;
  /** Its daemons, whose CPU a benchmark may count with the registry's. */
  readonly pids: { mon: number; osd: number; rgw: number | undefined };
  stop(): Promise<void>;
}

/** Starts a throwaway RGW; imported by path at run time, so dist/ stays free of test code. */
export async function startRgw(): Promise<Rgw> {
  const { startRgw: start } = (await import(pathToFileURL(join(REPO, 'test', 'services', 'rgw.ts')).href)) as { startRgw: () => Promise<Rgw> };
  return start();
}

export const DISTRIBUTION = '/usr/bin/docker-registry';

/**
 * CNCF Distribution (Debian's docker-registry), configured like Debian's own config.yml (the
 * in-memory blob descriptor cache, deletes enabled) without its auth, on 127.0.0.1. Blob GETs are
 * served through the registry (redirect disabled) unless `redirect`, as vztpl serve does by default.
 */
export async function startDistribution(storage: StorageTarget, configFile: string, logFile: string, opts: { redirect?: boolean } = {}): Promise<Server> {
  const port = await freePort();
  const driver =
    storage.kind === 'fs'
      ? `  filesystem:\n    rootdirectory: ${storage.dir}\n`
      : `  s3:\n    accesskey: ${storage.accessKeyId}\n    secretkey: ${storage.secretAccessKey}\n    region: us-east-1\n` +
        `    regionendpoint: ${storage.endpoint}\n    bucket: ${storage.bucket}\n    secure: false\n    v4auth: true\n    forcepathstyle: true\n` +
        `  redirect:\n    disable: ${opts.redirect ? 'false' : 'true'}\n`;
  await writeFile(
    configFile,
    `version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
${driver}http:
  addr: 127.0.0.1:${port}
  secret: ${randomBytes(24).toString('hex')}
  headers:
    X-Content-Type-Options: [nosniff]
`,
  );
  // Its AWS session panics at start-up on AWS_CA_BUNDLE (see /work/shared/notes/ceph-rgw.md).
  const childEnv = { ...env };
  delete childEnv.AWS_CA_BUNDLE;
  return startServer('distribution', DISTRIBUTION, ['serve', configFile], childEnv, port, logFile);
}

export async function stopServers(): Promise<void> {
  await Promise.all([...servers].map((s) => s.stop().catch(() => undefined)));
}

/** A counter of the vztpl registry's /metrics, summed over the series whose labels include `labels`. */
export async function metric(server: Server, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

// --- load generator ---------------------------------------------------------------------------

export interface LoadOptions {
  port: number;
  path: string;
  headers: Record<string, string>;
  /** Concurrent clients, each with one keep-alive connection and one request in flight. */
  clients: number;
  /** Stop after this many requests in all... */
  requests: number;
  /** ...or after this many milliseconds, whichever comes first. */
  maxMs: number;
  expectStatus?: number;
}

export interface LoadResult {
  /** Latency of each completed request (write of the request to the end of the response), ms. */
  latencies: Float64Array;
  completed: number;
  /** Responses with another status, malformed responses, connections lost mid-request. */
  errors: number;
  ms: number;
  perSecond: number;
  /** Body bytes of the last good response. */
  bodyBytes: number;
}

/**
 * A closed-loop HTTP/1.1 load generator on plain sockets: `clients` keep-alive connections, each
 * sending the same GET as soon as its previous answer is complete, until `requests` have been
 * sent or `maxMs` has passed. It parses only what it needs (status, Content-Length or chunked),
 * so that it takes as little of the shared cores as possible from the server under test.
 */
export async function loadTest(o: LoadOptions): Promise<LoadResult> {
  const head = `GET ${o.path} HTTP/1.1\r\nHost: 127.0.0.1:${o.port}\r\n${Object.entries(o.headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  const request = Buffer.from(head, 'latin1');
  const latencies = new Float64Array(o.requests);
  const expect = o.expectStatus ?? 200;
  let issued = 0;
  let completed = 0;
  let errors = 0;
  let bodyBytes = 0;
  const t0 = performance.now();
  const deadline = t0 + o.maxMs;

  const client = () =>
    new Promise<void>((done) => {
      let sock: Socket;
      let buf: Buffer = Buffer.alloc(0);
      let sentAt = 0;
      let inFlight = false;
      let finished = false;
      const finish = () => {
        finished = true;
        sock.destroy();
        done();
      };
      const next = () => {
        if (issued >= o.requests || performance.now() > deadline) return finish();
        issued++;
        inFlight = true;
        sentAt = performance.now();
        sock.write(request);
      };
      const open = () => {
        buf = Buffer.alloc(0);
        sock = connect({ host: '127.0.0.1', port: o.port, noDelay: true });
        sock.once('connect', next);
        sock.on('data', onData);
        sock.once('error', () => undefined);
        sock.once('close', () => {
          if (finished) return;
          if (inFlight) errors++;
          inFlight = false;
          if (issued >= o.requests || performance.now() > deadline) return finish();
          open();
        });
      };
      const onData = (chunk: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const header = buf.toString('latin1', 0, end);
        let total: number;
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(header);
        if (length) total = end + 4 + Number(length[1]);
        else if (/\r\ntransfer-encoding:\s*chunked/i.test(header)) {
          // Complete at the last chunk (no trailers): "0\r\n\r\n", after "\r\n" unless the body is empty.
          const tail = buf.toString('latin1', Math.max(end + 4, buf.length - 7));
          if (!(tail.endsWith('\r\n0\r\n\r\n') || tail === '0\r\n\r\n')) return;
          total = buf.length;
        } else total = end + 4;
        if (buf.length < total) return;
        const latency = performance.now() - sentAt;
        inFlight = false;
        const status = Number(header.slice(9, 12));
        if (status === expect && buf.length === total) {
          if (completed < latencies.length) latencies[completed] = latency;
          completed++;
          bodyBytes = total - end - 4;
        } else errors++;
        buf = Buffer.alloc(0);
        if (/\r\nconnection:\s*close/i.test(header)) sock.end();
        else next();
      };
      open();
    });

  await Promise.all(Array.from({ length: o.clients }, client));
  const taken = performance.now() - t0;
  return { latencies: latencies.subarray(0, Math.min(completed, latencies.length)), completed, errors, ms: taken, perSecond: completed / (taken / 1000), bodyBytes };
}

// --- results ----------------------------------------------------------------------------------

/**
 * Prints a benchmark's summary table and, when `record`, appends it to RESULTS.md under
 * `heading`, after a line with the machine, the load before and after, and what `about` says
 * (the code, options and template of the run; asked only when recording).
 */
export async function report(o: { heading: string; machine: Machine; loadAfter: string; totalMs: number; summary: string; about: () => string; record: boolean }): Promise<void> {
  say('');
  say(o.summary);
  say(`total ${secs(o.totalMs, 0)}; load average after: ${o.loadAfter}`);
  if (!o.record) return;
  const m = o.machine;
  const facts = `Machine: ${m.cores} cores (nproc), ${m.cpu}, kernel ${m.kernel}, node ${m.node}. Load average before the run: ${m.load}; after: ${o.loadAfter}. ${o.about()}`;
  await appendSection(['', `## ${o.heading}`, '', facts, '', o.summary, ''].join('\n'));
}

/** Appends a section to RESULTS.md (creating the file with a title if needed). */
export async function appendSection(section: string): Promise<void> {
  if (!existsSync(RESULTS)) await writeFile(RESULTS, '# Benchmark results\n');
  const before = await readFile(RESULTS, 'utf8');
  await appendFile(RESULTS, `${before.endsWith('\n') ? '' : '\n'}${section}`);
  say(`appended to ${RESULTS}`);
}
