// Password guessing against the registry (issue 11, item 8): a token-holding client fetching a
// manifest, alone and while 16 connections send wrong passwords at 5 requests/s each.
//
// The registry runs from the sources (registry/server.ts, not dist/) in a process of its own on
// 127.0.0.1, auth on, fs storage, log at info to a file like vztpl serve. The token holder is
// `loadTest` (closed loop, keep-alive, plain sockets); the flood is paced keep-alive sockets from
// another loopback address (127.0.0.N: a new one each round by default, so that every flood
// round starts with the address's full allowance of password checks, the worst case), half
// GET /token, half GET /v2/, Basic with a wrong password for an existing user.
// Rounds alternate quiet and flood phases; p99 per phase, medians. Goal: flood p99 <= 2x quiet.
//
// Usage: node bench/auth-flood.ts [--rounds 3] [--seconds 10] [--clients 1] [--flooders 16]
//          [--rate 5] [--same-address] [--unguarded] [--no-results]
// --unguarded sets the limits out of the way (10,000 failures, 16 concurrent checks, unbounded
// queue): roughly the registry before the guard.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { RegistryClient } from '../client/registry-client.ts';
import { sha256 } from '../format/digest.ts';
import { MediaType } from '../format/oci.ts';
import { hashPassword } from '../registry/auth/password.ts';
import { serializeUsers } from '../registry/auth/users.ts';
import { loadAverage, machine, median, ratio, runBench, running, table } from './lib.ts';
import { env, freePort, gitRevision, loadTest, ms, percentile, REPO, report, say, tailFile } from './support.ts';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    clients: { type: 'string', default: '1' },
    flooders: { type: 'string', default: '16' },
    rate: { type: 'string', default: '5' },
    'same-address': { type: 'boolean', default: false },
    unguarded: { type: 'boolean', default: false },
    'bench-dir': { type: 'string', default: '/var/tmp/vztpl-bench' },
    'no-results': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write('Usage: node bench/auth-flood.ts [--rounds 3] [--seconds 10] [--clients 1] [--flooders 16] [--rate 5] [--same-address] [--unguarded] [--no-results]\n');
  process.exit(0);
}
const ROUNDS = Number(opt.rounds);
const PHASE_MS = Number(opt.seconds) * 1000;
const CLIENTS = Number(opt.clients);
const FLOODERS = Number(opt.flooders);
const RATE = Number(opt.rate);
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
const USERS = { reader: 'reader-password', admin: 'admin-password' };

let workDir: string | undefined;
let server: ChildProcess | undefined;

async function cleanup(): Promise<void> {
  if (server && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    server.kill('SIGKILL');
  }
  if (server) running.delete(server);
  if (workDir) await rm(workDir, { recursive: true, force: true });
}

/** The registry from the sources, in its own process, logging at info to `logFile`. */
async function startRegistry(dir: string, port: number, logFile: string): Promise<void> {
  const limits = opt.unguarded ? { failuresPerAddress: 10_000, failuresPerUser: 10_000, checkConcurrency: 16, checkQueue: 10_000 } : {};
  const script = `
const { buildServer } = await import(process.env.BENCH_SRC + '/registry/server.ts');
const { FsDriver } = await import(process.env.BENCH_SRC + '/registry/storage/fs.ts');
const { pino } = await import('pino');
const destination = pino.destination({ dest: process.env.BENCH_LOG, sync: false });
const { app } = await buildServer({ driver: new FsDriver({ root: process.env.BENCH_STORE }), loggerInstance: pino({ level: 'info' }, destination), auth: JSON.parse(process.env.BENCH_AUTH) });
await app.listen({ host: '127.0.0.1', port: Number(process.env.BENCH_PORT) });
process.once('SIGTERM', () => app.close().then(() => { destination.flushSync(); process.exit(0); }));`;
  const auth = { enabled: true, anonymousPull: false, tokenTtl: 3600, usersFile: join(dir, 'users.yaml'), limits };
  const out = openSync(join(dir, 'stderr.log'), 'a');
  server = spawn(process.execPath, ['--max-semi-space-size=4', '--input-type=module', '-e', script], {
    cwd: REPO,
    env: { ...env, BENCH_SRC: REPO, BENCH_LOG: logFile, BENCH_STORE: join(dir, 'store'), BENCH_PORT: String(port), BENCH_AUTH: JSON.stringify(auth) },
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  running.add(server);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`the registry exited during start-up:\n${tailFile(join(dir, 'stderr.log'))}`);
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`the registry did not answer:\n${tailFile(join(dir, 'stderr.log'))}`);
    await sleep(100);
  }
}

interface FloodResult {
  statuses: Record<number, number>;
  sent: number;
  /** Latency of the flood's own answers, ms. */
  latencies: number[];
}

/**
 * `clients` keep-alive connections from `localAddress`, each sending one request every
 * 1000/`rate` ms (the next one as soon as the answer is in when an answer takes longer), until
 * `signal` aborts. Wrong passwords, a different one each request.
 */
function flood(port: number, localAddress: string, clients: number, rate: number, signal: AbortSignal): Promise<FloodResult> {
  const result: FloodResult = { statuses: {}, sent: 0, latencies: [] };
  const interval = 1000 / rate;
  const one = (i: number) =>
    new Promise<void>((done) => {
      let sock: Socket;
      let buf: Buffer = Buffer.alloc(0);
      let sentAt = 0;
      let timer: NodeJS.Timeout | undefined;
      let n = 0;
      const finish = () => {
        clearTimeout(timer);
        sock.destroy();
        done();
      };
      const send = () => {
        if (signal.aborted) return finish();
        const path = i % 2 ? '/v2/' : '/token?service=vztpl&scope=repository:acme/app:pull';
        const auth = Buffer.from(`reader:wrong-${i}-${n++}`).toString('base64');
        sentAt = performance.now();
        result.sent++;
        sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Basic ${auth}\r\n\r\n`);
      };
      const open = () => {
        buf = Buffer.alloc(0);
        sock = connect({ host: '127.0.0.1', port, localAddress, noDelay: true });
        sock.once('connect', send);
        sock.once('error', () => undefined);
        sock.once('close', () => (signal.aborted ? finish() : setTimeout(open, interval)));
        sock.on('data', (chunk: Buffer) => {
          buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const header = buf.toString('latin1', 0, end);
          const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(header)?.[1] ?? 0);
          if (buf.length < end + 4 + length) return;
          buf = Buffer.alloc(0);
          const status = Number(header.slice(9, 12));
          result.statuses[status] = (result.statuses[status] ?? 0) + 1;
          const took = performance.now() - sentAt;
          result.latencies.push(took);
          timer = setTimeout(send, Math.max(0, interval - took));
        });
      };
      signal.addEventListener('abort', () => finish(), { once: true });
      setTimeout(open, (interval * i) / clients); // spread the connections over the interval
    });
  return Promise.all(Array.from({ length: clients }, (_, i) => one(i))).then(() => result);
}

interface Phase {
  p50: number;
  p99: number;
  max: number;
  perSecond: number;
  completed: number;
  errors: number;
  flood?: FloodResult;
}

async function phase(port: number, bearer: string, floodFrom: string | undefined): Promise<Phase> {
  const stop = new AbortController();
  const flooding = floodFrom ? flood(port, floodFrom, FLOODERS, RATE, stop.signal) : undefined;
  const load = await loadTest({ port, path: '/v2/acme/app/manifests/1.0.0', headers: { Authorization: bearer, Accept: ACCEPT }, clients: CLIENTS, requests: 2_000_000, maxMs: PHASE_MS });
  stop.abort();
  const f = await flooding;
  return { p50: percentile(load.latencies, 0.5), p99: percentile(load.latencies, 0.99), max: percentile(load.latencies, 1), perSecond: load.perSecond, completed: load.completed, errors: load.errors, flood: f };
}

function describe(p: Phase): string {
  const base = `p50 ${ms(p.p50, 2)}  p99 ${ms(p.p99, 2)}  max ${ms(p.max, 1)}  ${p.perSecond.toFixed(0)} req/s  ${p.errors} errors`;
  if (!p.flood) return base;
  const s = Object.entries(p.flood.statuses).map(([k, v]) => `${v}x${k}`).join(' ');
  return `${base}  | flood: ${p.flood.sent} sent, ${s}, answer p50 ${ms(percentile(p.flood.latencies, 0.5), 1)}`;
}

async function main(): Promise<void> {
  const m = machine();
  const revision = gitRevision();
  say(`vztpl registry: password flood vs a token holder, ${m.date}`);
  say(`machine: ${m.cores} cores (nproc), ${m.cpu}, kernel ${m.kernel}, node ${m.node}; load average before: ${m.load}; code ${revision}${opt.unguarded ? '; UNGUARDED' : ''}`);
  await mkdir(opt['bench-dir'], { recursive: true });
  workDir = await mkdtemp(join(opt['bench-dir'], 'auth-flood-'));
  const started = performance.now();
  const users = [
    { name: 'reader', password: await hashPassword(USERS.reader), scopes: [{ repositories: 'acme/**', actions: ['pull' as const] }] },
    { name: 'admin', password: await hashPassword(USERS.admin), scopes: [{ repositories: '**', actions: ['admin' as const] }] },
  ];
  await writeFile(join(workDir, 'users.yaml'), serializeUsers(users, 'users.yaml'), { mode: 0o600 });
  const port = await freePort();
  await startRegistry(workDir, port, join(workDir, 'registry.log'));
  const url = `http://127.0.0.1:${port}`;
  const admin = new RegistryClient(url, { credentials: { username: 'admin', password: USERS.admin } });
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  await admin.pushBlob('acme/app', sha256(config), config);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.manifest, config: { mediaType: MediaType.config, digest: sha256(config), size: config.length }, layers: [] }));
  await admin.putManifest('acme/app', '1.0.0', MediaType.manifest, manifest);
  const tokenRes = await fetch(`${url}/token?service=vztpl&scope=repository:acme/app:pull`, { headers: { authorization: `Basic ${Buffer.from(`reader:${USERS.reader}`).toString('base64')}` } });
  const bearer = `Bearer ${((await tokenRes.json()) as { token: string }).token}`;
  say(`registry on ${url}; ${CLIENTS} token-holding client(s) GET /v2/acme/app/manifests/1.0.0; flood: ${FLOODERS} connections x ${RATE}/s of wrong passwords`);
  await loadTest({ port, path: '/v2/acme/app/manifests/1.0.0', headers: { Authorization: bearer, Accept: ACCEPT }, clients: CLIENTS, requests: 2000, maxMs: 5000 });

  const quiet: Phase[] = [];
  const flooded: Phase[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    quiet.push(await phase(port, bearer, undefined));
    say(`round ${r}/${ROUNDS} quiet  ${describe(quiet.at(-1)!)}`);
    const from = opt['same-address'] ? '127.0.0.2' : `127.0.0.${1 + r}`;
    flooded.push(await phase(port, bearer, from));
    say(`round ${r}/${ROUNDS} flood  ${describe(flooded.at(-1)!)} (from ${from})`);
    await sleep(1000); // answers still on their way
  }
  await cleanup();
  const totalMs = performance.now() - started;
  const loadAfter = loadAverage();

  const q99 = median(quiet.map((p) => p.p99));
  const f99 = median(flooded.map((p) => p.p99));
  const list = (ps: Phase[], k: 'p50' | 'p99') => ps.map((p) => p[k].toFixed(2)).join(', ');
  const rows = [
    [`manifest GET with a token, quiet (median of ${ROUNDS})`, `p50 ${ms(median(quiet.map((p) => p.p50)), 2)}, p99 ${ms(q99, 2)}`, '', `p99 ${list(quiet, 'p99')} ms; max ${quiet.map((p) => p.max.toFixed(1)).join(', ')} ms; ${median(quiet.map((p) => p.perSecond)).toFixed(0)} req/s`],
    [
      `manifest GET with a token, during the flood (median of ${ROUNDS})`,
      `p50 ${ms(median(flooded.map((p) => p.p50)), 2)}, p99 ${ms(f99, 2)}`,
      '',
      `p99 ${list(flooded, 'p99')} ms; max ${flooded.map((p) => p.max.toFixed(1)).join(', ')} ms; ${median(flooded.map((p) => p.perSecond)).toFixed(0)} req/s`,
    ],
    ['p99 flood / quiet', ratio(f99, q99), `<= 2x: ${f99 <= 2 * q99 ? 'met' : 'NOT met'}`, `requests served flood / quiet ${ratio(median(flooded.map((p) => p.perSecond)), median(quiet.map((p) => p.perSecond)))}`],
    ...flooded.map((p, i) => [`flood round ${i + 1}: answers`, Object.entries(p.flood!.statuses).map(([k, v]) => `${v}x${k}`).join(' '), '', `${p.flood!.sent} sent; answer p50 ${ms(percentile(p.flood!.latencies, 0.5), 1)}`]),
  ];
  const summary = table(['measurement', 'result', 'goal', 'details'], rows);
  await report({
    heading: `${m.date}: password flood (bench/auth-flood.ts)`,
    machine: m,
    loadAfter,
    totalMs,
    summary,
    record: !opt['no-results'],
    about: () =>
      `Code: ${revision}. Options: --rounds ${ROUNDS} --seconds ${PHASE_MS / 1000} --clients ${CLIENTS} --flooders ${FLOODERS} --rate ${RATE}${opt['same-address'] ? ' --same-address' : ''}${opt.unguarded ? ' --unguarded' : ''}. ` +
      `Registry from the sources, in its own process, default auth.limits${opt.unguarded ? ' overridden (unguarded)' : ''}, fs storage, log at info to a file.`,
  });
}

runBench(main, cleanup);
