// Registry benchmark: vztpl serve against CNCF Distribution (Debian's docker-registry 2.8) on the
// same template, measured in one run:
//   1. push and pull throughput with skopeo, on fs storage and on Ceph RGW (S3), a fresh storage
//      (directory or bucket) and a fresh server process each round, the two registries alternated,
//      with the CPU time each server used, and skopeo copying oci: to oci: (no registry at all)
//      each round: the client's own floor; then every blob fetched at once by one curl to
//      /dev/null, which measures the registry without skopeo's own costs;
//   2. blob throughput at the server: 8 keep-alive clients fetching every layer over and over
//      (bench/blob-load.ts), MB/s and server CPU seconds per GB served, fs and RGW;
//   3. manifest GET latency at a fixed offered rate (2,000/s over 64 connections, open loop:
//      bench/open-loop.ts), vztpl serve beside a bare node:http server with the same answer (the
//      floor) and Distribution, and the vztpl server's RSS under that load (peak of VmRSS sampled
//      every 50 ms, and VmHWM).
// The registries run as processes on 127.0.0.1 with their log at level info, to a file.
// Usage: node bench/registry.ts [--rounds N] [--storage fs,rgw] [--only throughput,blobs,latency] [--no-results]
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { blobLoad } from './blob-load.ts';
import { loadAverage, machine, median, ratio, runChecked, running, secs, table, runBench } from './lib.ts';
import { openLoop, type OpenLoopResult } from './open-loop.ts';
import {
  REPO,
  report,
  buildTemplate,
  cpuSeconds,
  env,
  gitRevision,
  mbps,
  ms,
  percentile,
  readLayout,
  requireDist,
  rssSampler,
  say,
  startDistribution,
  startFloorServer,
  startRgw,
  type Rgw,
  startVztpl,
  stopServers,
  waitForQuiet,
  type Layout,
  type Server,
  type StorageTarget,
} from './support.ts';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    storage: { type: 'string', default: 'fs,rgw' },
    'blob-clients': { type: 'string', default: '8' },
    'blob-rounds': { type: 'string', default: '3' },
    'blob-seconds': { type: 'string', default: '5' },
    rate: { type: 'string', default: '2000' },
    connections: { type: 'string', default: '64' },
    'latency-rounds': { type: 'string', default: '3' },
    'latency-seconds': { type: 'string', default: '20' },
    'warmup-seconds': { type: 'string', default: '3' },
    'peer-latency-seconds': { type: 'string', default: '5' },
    only: { type: 'string', default: 'throughput,blobs,latency' },
    recipe: { type: 'string', default: 'debian-12-x86_64.yaml' },
    layout: { type: 'string' },
    'cache-dir': { type: 'string', default: '/var/tmp/vztpl-test/build-cache' },
    'bench-dir': { type: 'string', default: '/var/tmp/vztpl-bench' },
    's3-redirect': { type: 'boolean', default: false },
    'wait-load': { type: 'string' },
    'no-results': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write(
    'Usage: node bench/registry.ts [--rounds 3] [--storage fs,rgw] [--only throughput,blobs,latency]\n' +
      '         [--blob-clients 8] [--blob-rounds 3] [--blob-seconds 5]\n' +
      '         [--rate 2000] [--connections 64] [--latency-rounds 3] [--latency-seconds 20] [--warmup-seconds 3] [--peer-latency-seconds 5]\n' +
      '         [--recipe debian-12-x86_64.yaml | --layout OCI_DIR] [--cache-dir /var/tmp/vztpl-test/build-cache]\n' +
      '         [--bench-dir /var/tmp/vztpl-bench] [--s3-redirect] [--wait-load 1.0] [--no-results]\n',
  );
  process.exit(0);
}
const ROUNDS = Number(opt.rounds);
const BLOB_CLIENTS = Number(opt['blob-clients']);
const BLOB_ROUNDS = Number(opt['blob-rounds']);
const BLOB_MS = Number(opt['blob-seconds']) * 1000;
const RATE = Number(opt.rate);
const CONNECTIONS = Number(opt.connections);
const LAT_ROUNDS = Number(opt['latency-rounds']);
const LAT_MS = Number(opt['latency-seconds']) * 1000;
const WARMUP_MS = Number(opt['warmup-seconds']) * 1000;
/**
 * Distribution cannot answer the offered rate here: its rounds are short, so that a saturated
 * peer does not hold both shared cores for long (its backlog only grows with the duration).
 */
const PEER_LAT_MS = Math.min(LAT_MS, Number(opt['peer-latency-seconds']) * 1000);
const storages = opt.storage.split(',').filter(Boolean) as ('fs' | 'rgw')[];
const only = new Set(opt.only.split(','));
const runDir = join(opt['bench-dir'], `registry-${process.pid}`);
const REPOSITORY = 'x';
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json';

type Kind = 'vztpl' | 'distribution';
const NAMES: Record<Kind, string> = { vztpl: 'vztpl serve', distribution: 'Distribution' };

let rgw: Rgw | undefined;
let admin: S3Client | undefined;

let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  process.stderr.write('\ninterrupted: stopping the servers and cleaning up\n');
  for (const child of running) child.kill('SIGINT');
});

async function cleanup(): Promise<void> {
  await stopServers();
  admin?.destroy();
  await rgw?.stop().catch(() => undefined);
  rgw = undefined;
  await rm(runDir, { recursive: true, force: true });
}

// --- 1. throughput ----------------------------------------------------------------------------

interface Side {
  push: number[];
  pull: number[];
  /** Every blob fetched with one curl, all at once, to /dev/null: the registry without skopeo's costs. */
  blobs: number[];
  /** CPU seconds the server used for each push, pull and curl fetch. */
  pushCpu: number[];
  pullCpu: number[];
  blobsCpu: number[];
  /** Pulled manifests whose digest differs from the layout's (skopeo converted something). */
  changed: number;
}
interface Throughput {
  storages: Record<string, Record<Kind, Side>>;
  /** skopeo oci: -> oci: each round, ms. */
  floor: number[];
}

let storageCount = 0;
async function storageFor(kind: Kind, storage: 'fs' | 'rgw'): Promise<StorageTarget> {
  const n = ++storageCount;
  if (storage === 'fs') {
    const dir = join(runDir, `storage-${n}-${kind}`);
    await mkdir(dir, { recursive: true });
    return { kind: 'fs', dir };
  }
  if (!rgw || !admin) throw new Error('no RGW');
  const bucket = `bench-${kind}-${n}-${process.pid}`;
  await admin.send(new CreateBucketCommand({ Bucket: bucket }));
  return { kind: 's3', endpoint: rgw.endpoint, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey, bucket };
}

async function startKind(kind: Kind, target: StorageTarget, tag: string): Promise<Server> {
  const log = join(runDir, `${tag}.log`);
  return kind === 'vztpl' ? startVztpl(target, log, { redirect: opt['s3-redirect'] }) : startDistribution(target, join(runDir, `${tag}.yml`), log, { redirect: opt['s3-redirect'] });
}

async function skopeoPush(layout: Layout, server: Server) {
  return runChecked('skopeo copy (push)', 'skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout.dir}:${layout.version}`, `docker://${server.host}/${REPOSITORY}:${layout.version}`], { env });
}

async function skopeoPull(layout: Layout, server: Server, out: string) {
  return runChecked('skopeo copy (pull)', 'skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${server.host}/${REPOSITORY}:${layout.version}`, `oci:${out}:${layout.version}`], { env });
}

async function throughputRound(layout: Layout, kind: Kind, storage: 'fs' | 'rgw', side: Side, label: string): Promise<void> {
  const target = await storageFor(kind, storage);
  const tag = `${storage}-${kind}-${storageCount}`;
  const server = await startKind(kind, target, tag);
  const out = join(runDir, `pulled-${tag}`);
  try {
    const c0 = cpuSeconds(server.pid);
    const push = await skopeoPush(layout, server);
    const c1 = cpuSeconds(server.pid);
    const pull = await skopeoPull(layout, server, out);
    const c2 = cpuSeconds(server.pid);
    const blobs = await runChecked('curl (every blob at once)', 'curl', ['-sfL', '--parallel', '--parallel-max', '8', ...layout.blobs.flatMap((b) => ['-o', '/dev/null', `${server.url}/v2/${REPOSITORY}/blobs/${b.digest}`])], { env });
    const c3 = cpuSeconds(server.pid);
    side.pushCpu.push(c1 - c0);
    side.pullCpu.push(c2 - c1);
    side.blobsCpu.push(c3 - c2);
    side.blobs.push(blobs.ms);
    const same = readLayout(out).manifestDigest === layout.manifestDigest;
    if (!same) side.changed++;
    side.push.push(push.ms);
    side.pull.push(pull.ms);
    say(
      `${label}  ${NAMES[kind].padEnd(12)}  push ${secs(push.ms)} ${mbps(layout.bytes, push.ms).toFixed(0).padStart(4)} MB/s (server CPU ${(c1 - c0).toFixed(2)} s)   pull ${secs(pull.ms)} ${mbps(layout.bytes, pull.ms).toFixed(0).padStart(4)} MB/s (server CPU ${(c2 - c1).toFixed(2)} s)   curl ${secs(blobs.ms)} (server CPU ${(c3 - c2).toFixed(2)} s)${same ? '' : '  (pulled manifest differs)'}`,
    );
  } finally {
    await server.stop();
    await rm(out, { recursive: true, force: true });
    if (target.kind === 'fs') await rm(target.dir, { recursive: true, force: true });
  }
}

const emptySide = (): Side => ({ push: [], pull: [], blobs: [], pushCpu: [], pullCpu: [], blobsCpu: [], changed: 0 });

/** skopeo copy oci: -> oci:, no registry: what the client itself needs to read, write and verify the blobs. */
async function floorRound(layout: Layout): Promise<number> {
  const out = join(runDir, 'floor');
  try {
    return (await runChecked('skopeo copy (oci to oci)', 'skopeo', ['copy', '--quiet', `oci:${layout.dir}:${layout.version}`, `oci:${out}:${layout.version}`], { env })).ms;
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

async function throughput(layout: Layout): Promise<Throughput> {
  const floor: number[] = [];
  const result: Throughput = { storages: {}, floor };
  for (const storage of storages) {
    const sides: Record<Kind, Side> = { vztpl: emptySide(), distribution: emptySide() };
    result.storages[storage] = sides;
    say(`throughput on ${storage}: ${ROUNDS} rounds of skopeo push then pull (fresh storage and server each), alternating which registry goes first, after one untimed warm-up of each`);
    for (const kind of ['vztpl', 'distribution'] as const) await throughputRound(layout, kind, storage, emptySide(), `${storage.padEnd(3)} warm-up`);
    for (let r = 1; r <= ROUNDS; r++) {
      const order: Kind[] = r % 2 ? ['vztpl', 'distribution'] : ['distribution', 'vztpl'];
      for (const kind of order) await throughputRound(layout, kind, storage, sides[kind], `${storage.padEnd(3)} ${r}/${ROUNDS}    `);
      floor.push(await floorRound(layout));
      say(`${storage.padEnd(3)} ${r}/${ROUNDS}      skopeo oci: -> oci: (no registry)  ${secs(floor.at(-1)!)} ${mbps(layout.bytes, floor.at(-1)!).toFixed(0).padStart(4)} MB/s`);
    }
    for (const what of ['push', 'pull', 'blobs'] as const) {
      const a = median(sides.vztpl[what]);
      const b = median(sides.distribution[what]);
      say(`${storage} ${what}: vztpl ${mbps(layout.bytes, a).toFixed(0)} MB/s, Distribution ${mbps(layout.bytes, b).toFixed(0)} MB/s: vztpl/Distribution ${ratio(b, a)}`);
    }
  }
  return result;
}

// --- 2. blob throughput under concurrent clients ---------------------------------------------

interface BlobSide {
  /** MB/s and server CPU seconds per GB served, one each per round. */
  mbps: number[];
  cpuPerGB: number[];
  errors: number;
  /** The load generator's own CPU per GB (it shares the cores). */
  clientCpuPerGB: number[];
  /** RGW's (gateway and OSD) CPU per GB, when the storage is RGW. */
  storageCpuPerGB: number[];
}

/** CPU seconds the storage's own processes have used so far (0 on fs). */
function storageCpu(storage: 'fs' | 'rgw'): number {
  if (storage === 'fs' || !rgw) return 0;
  return cpuSeconds(rgw.pids.osd) + (rgw.pids.rgw ? cpuSeconds(rgw.pids.rgw) : 0);
}

/**
 * Both registries on the same storage kind, the template pushed to each with skopeo, then
 * BLOB_ROUNDS alternated rounds of BLOB_CLIENTS clients fetching every layer blob over and over
 * for BLOB_MS each, after one warm-up of each (page cache, RGW's memory).
 */
async function blobThroughput(layout: Layout): Promise<Record<string, Record<Kind, BlobSide>>> {
  const result: Record<string, Record<Kind, BlobSide>> = {};
  const layers = layout.blobs.slice(1).map((b) => ({ path: `/v2/${REPOSITORY}/blobs/${b.digest}`, size: b.size }));
  for (const storage of storages) {
    say(`blobs on ${storage}: ${BLOB_CLIENTS} keep-alive clients each GETting the ${layers.length} layers in turn for ${BLOB_MS / 1000} s, ${BLOB_ROUNDS} rounds alternated`);
    const live = {} as Record<Kind, { server: Server; target: StorageTarget }>;
    const sides = {} as Record<Kind, BlobSide>;
    try {
      for (const kind of ['vztpl', 'distribution'] as const) {
        const target = await storageFor(kind, storage);
        const server = await startKind(kind, target, `blobs-${storage}-${kind}`);
        live[kind] = { server, target };
        await skopeoPush(layout, server);
        sides[kind] = { mbps: [], cpuPerGB: [], errors: 0, clientCpuPerGB: [], storageCpuPerGB: [] };
      }
      const run = async (kind: Kind, ms: number) => {
        const { server } = live[kind];
        const c0 = cpuSeconds(server.pid);
        const s0 = storageCpu(storage);
        const x = await blobLoad({ port: server.port, blobs: layers, clients: BLOB_CLIENTS, durationMs: ms });
        return { x, cpu: cpuSeconds(server.pid) - c0, storageCpu: storageCpu(storage) - s0 };
      };
      for (const kind of ['vztpl', 'distribution'] as const) await run(kind, 1000);
      for (let r = 1; r <= BLOB_ROUNDS; r++) {
        const order: Kind[] = r % 2 ? ['vztpl', 'distribution'] : ['distribution', 'vztpl'];
        for (const kind of order) {
          const { x, cpu, storageCpu: sc } = await run(kind, BLOB_MS);
          const side = sides[kind];
          const gb = x.bytes / 1e9;
          side.mbps.push(mbps(x.bytes, x.ms));
          side.cpuPerGB.push(cpu / gb);
          side.clientCpuPerGB.push(x.generatorCpuMs / 1000 / gb);
          if (storage === 'rgw') side.storageCpuPerGB.push(sc / gb);
          side.errors += x.errors;
          say(
            `blobs ${storage.padEnd(3)} ${r}/${BLOB_ROUNDS}  ${NAMES[kind].padEnd(12)}  ${(x.bytes / 1e9).toFixed(2)} GB (${x.blobs} blobs) in ${secs(x.ms)}: ${side.mbps.at(-1)!.toFixed(0)} MB/s, server CPU ${cpu.toFixed(2)} s = ${side.cpuPerGB.at(-1)!.toFixed(3)} s/GB ` +
              `(clients ${side.clientCpuPerGB.at(-1)!.toFixed(3)} s/GB${storage === 'rgw' ? `, RGW ${side.storageCpuPerGB.at(-1)!.toFixed(3)} s/GB` : ''}), ${x.errors} errors`,
          );
        }
      }
    } finally {
      for (const kind of ['vztpl', 'distribution'] as const) {
        const l = live[kind];
        if (!l) continue;
        await l.server.stop();
        if (l.target.kind === 'fs') await rm(l.target.dir, { recursive: true, force: true });
      }
    }
    result[storage] = sides;
  }
  return result;
}

// --- 3. manifest latency at a fixed offered rate, and RSS ---------------------------------------

/**
 * Waits until a server has stopped using CPU (it may still be answering what the closed sockets
 * asked, when it fell behind), so that it does not take from the next run; at most 10 s.
 */
async function settle(pid: number): Promise<void> {
  const deadline = performance.now() + 10_000;
  let before = cpuSeconds(pid);
  while (performance.now() < deadline) {
    await sleep(200);
    const now = cpuSeconds(pid);
    if (now - before < 0.01) return;
    before = now;
  }
}

/** A latency, or what it is when the request got no answer (counted as infinitely late). */
function late(x: number, digits = 2): string {
  return Number.isFinite(x) ? ms(x, digits) : 'no answer';
}

type LatencyKind = Kind | 'floor';
const LATENCY_NAMES: Record<LatencyKind, string> = { ...NAMES, floor: 'node:http' };

interface LatencySide {
  p50: number[];
  p99: number[];
  p999: number[];
  max: number[];
  perSecond: number[];
  /** Server CPU per request, us. */
  cpuPerRequest: number[];
  /** How late the generator sent, p99 per round, ms. */
  sendLagP99: number[];
  scheduled: number;
  completed: number;
  errors: number;
  unanswered: number;
  bodyBytes: number;
}

interface Latency {
  sides: Record<LatencyKind, LatencySide>;
  /** vztpl's memory, kB: after start-up (idle), the sampled VmRSS peak during the runs, VmHWM at the end. */
  idleRss: number;
  peakRss: number;
  hwm: number;
  samples: number;
}

const emptyLatencySide = (): LatencySide => ({ p50: [], p99: [], p999: [], max: [], perSecond: [], cpuPerRequest: [], sendLagP99: [], scheduled: 0, completed: 0, errors: 0, unanswered: 0, bodyBytes: 0 });

/** One open-loop run's numbers, added to a side. */
function recordRun(side: LatencySide, x: OpenLoopResult, cpuSeconds: number): void {
  side.p50.push(percentile(x.latencies, 0.5));
  side.p99.push(percentile(x.latencies, 0.99));
  side.p999.push(percentile(x.latencies, 0.999));
  side.max.push(percentile(x.latencies, 1));
  side.perSecond.push(x.perSecond);
  side.cpuPerRequest.push((cpuSeconds * 1e6) / Math.max(1, x.completed));
  side.sendLagP99.push(x.sendLag.p99);
  side.scheduled += x.scheduled;
  side.completed += x.completed;
  side.errors += x.errors;
  side.unanswered += x.unanswered;
  side.bodyBytes = x.bodyBytes;
}

/**
 * vztpl serve, a bare node:http server giving the same answer from memory (the floor: what any
 * Node server can do on this machine under this generator) and Distribution, each a process of
 * its own, all started before the runs and measured in turn, alternated, at the same offered rate.
 */
async function latency(layout: Layout): Promise<Latency> {
  const path = `/v2/${REPOSITORY}/manifests/${layout.version}`;
  const live = {} as Record<LatencyKind, Server>;
  say(`latency: GET ${path} (Accept: OCI manifest/index, Docker v2), open loop at ${RATE}/s over ${CONNECTIONS} connections, ${WARMUP_MS / 1000} s warm-up, then ${LAT_ROUNDS} rounds of ${LAT_MS / 1000} s (Distribution ${PEER_LAT_MS / 1000} s), alternated`);
  for (const kind of ['vztpl', 'distribution'] as const) {
    // Pushed through one server, measured on a fresh one (its memory is then the load's alone).
    const target = await storageFor(kind, 'fs');
    const first = await startKind(kind, target, `latency-push-${kind}`);
    try {
      await skopeoPush(layout, first);
    } finally {
      await first.stop();
    }
    const server = await startKind(kind, target, `latency-${kind}`);
    live[kind] = server;
    const res = await fetch(`${server.url}${path}`, { headers: { Accept: ACCEPT } });
    const digest = res.headers.get('docker-content-digest');
    await res.arrayBuffer();
    if (res.status !== 200 || digest !== layout.manifestDigest) throw new Error(`${NAMES[kind]}: GET ${path} answered ${res.status} with digest ${digest}, expected 200 and ${layout.manifestDigest}`);
  }
  const answer = await fetch(`${live.vztpl.url}${path}`, { headers: { Accept: ACCEPT } });
  const floorHeaders = Object.fromEntries(['content-type', 'docker-content-digest', 'docker-distribution-api-version'].map((h) => [h, answer.headers.get(h) ?? '']));
  live.floor = await startFloorServer(Buffer.from(await answer.arrayBuffer()), floorHeaders, join(runDir, 'latency-floor.log'));
  await sleep(500);
  const idleRss = rssSampler(live.vztpl.pid).stop().peak;
  const sampler = rssSampler(live.vztpl.pid);
  const kinds: LatencyKind[] = ['vztpl', 'floor', 'distribution'];
  const sides = Object.fromEntries(kinds.map((k) => [k, emptyLatencySide()])) as Record<LatencyKind, LatencySide>;
  const run = async (kind: LatencyKind, durationMs: number) => {
    const c0 = cpuSeconds(live[kind].pid);
    const x = await openLoop({ port: live[kind].port, path, headers: { Accept: ACCEPT }, rate: RATE, connections: CONNECTIONS, durationMs });
    const cpu = cpuSeconds(live[kind].pid) - c0;
    await settle(live[kind].pid);
    return { x, cpu };
  };
  const line = (kind: LatencyKind, label: string, x: OpenLoopResult, cpu: number) =>
    say(
      `latency  ${label}  ${LATENCY_NAMES[kind].padEnd(12)}  ${x.completed}/${x.scheduled} answered at ${x.perSecond.toFixed(0)}/s, p50 ${late(percentile(x.latencies, 0.5))}, p99 ${late(percentile(x.latencies, 0.99))}, ` +
        `p99.9 ${late(percentile(x.latencies, 0.999))}, max ${late(percentile(x.latencies, 1), 1)}; server CPU ${((cpu * 1e6) / Math.max(1, x.completed)).toFixed(0)} us/request; ` +
        `${x.errors} errors, ${x.unanswered} unanswered; send lag p99 ${ms(x.sendLag.p99, 2)}; generator CPU ${((x.generatorCpuMs / x.ms) * 100).toFixed(0)}%`,
    );
  for (const kind of kinds) {
    const { x, cpu } = await run(kind, kind === 'distribution' ? Math.min(WARMUP_MS, PEER_LAT_MS) : WARMUP_MS);
    line(kind, 'warm-up', x, cpu);
  }
  for (let r = 1; r <= LAT_ROUNDS; r++) {
    // Each takes each place in turn.
    const order = kinds.map((_, i) => kinds[(i + r - 1) % kinds.length]!);
    for (const kind of order) {
      const { x, cpu } = await run(kind, kind === 'distribution' ? PEER_LAT_MS : LAT_MS);
      recordRun(sides[kind], x, cpu);
      line(kind, `${r}/${LAT_ROUNDS}    `, x, cpu);
    }
  }
  const s = sampler.stop();
  say(`memory  vztpl serve  idle ${(idleRss / 1024).toFixed(0)} MiB, peak VmRSS under load ${(s.peak / 1024).toFixed(0)} MiB (${s.samples} samples), VmHWM ${(s.hwm / 1024).toFixed(0)} MiB`);
  await stopServers();
  return { sides, idleRss, peakRss: s.peak, hwm: s.hwm, samples: s.samples };
}

// --- report -----------------------------------------------------------------------------------

function list(xs: readonly number[], digits = 2): string {
  return xs.map((x) => (x / 1000).toFixed(digits)).join(', ');
}

async function main(): Promise<void> {
  if (opt['wait-load']) await waitForQuiet(Number(opt['wait-load']));
  const m = machine();
  const revision = gitRevision();
  say(`vztpl registry benchmark, ${m.date}`);
  say(`machine: ${m.cores} cores (nproc), ${m.cpu}, kernel ${m.kernel}, node ${m.node}; load average before: ${m.load}; code ${revision}`);
  requireDist();
  const distVersion = (await runChecked('docker-registry --version', '/usr/bin/docker-registry', ['--version'], { env })).lines[0]?.line.trim() ?? '?';
  const skopeoVersion = (await runChecked('skopeo --version', 'skopeo', ['--version'], { env })).lines[0]?.line.trim() ?? '?';
  await mkdir(runDir, { recursive: true });
  const started = performance.now();
  let t: Throughput | undefined;
  let b: Record<string, Record<Kind, BlobSide>> | undefined;
  let l: Latency | undefined;
  let layout: Layout;
  let rgwStart = 0;
  try {
    if (opt.layout) layout = readLayout(opt.layout);
    else {
      const built = await buildTemplate(opt.recipe, opt['cache-dir'], join(runDir, 'layout'));
      layout = built.layout;
      say(`template: ${opt.recipe} built in ${secs(built.run.ms)} (${built.ranSteps ? `${built.ranSteps} steps ran` : 'every step cached'})`);
    }
    say(`template: ${layout.name}:${layout.version} ${layout.manifestDigest.slice(0, 19)}, ${layout.blobs.length - 1} layers + config, ${(layout.bytes / 1e6).toFixed(1)} MB of blobs`);
    if ((only.has('throughput') || only.has('blobs')) && storages.includes('rgw')) {
      rgw = await startRgw();
      rgwStart = rgw.startMs;
      admin = new S3Client({ endpoint: rgw.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } });
      say(`rgw: ${rgw.endpoint} up in ${secs(rgw.startMs)} (memstore)`);
    }
    if (only.has('throughput')) t = await throughput(layout);
    if (only.has('blobs')) b = await blobThroughput(layout);
    if (only.has('latency')) l = await latency(layout);
  } finally {
    await cleanup();
  }
  const totalMs = performance.now() - started;
  const loadAfter = loadAverage();

  const rows: string[][] = [];
  const MB = (msTaken: number) => `${mbps(layout.bytes, msTaken).toFixed(0)} MB/s`;
  for (const [storage, sides] of Object.entries(t?.storages ?? {})) {
    for (const what of ['push', 'pull', 'blobs'] as const) {
      const a = median(sides.vztpl[what]);
      const b = median(sides.distribution[what]);
      const cpu = (s: Side) => `server CPU ${median(s[`${what}Cpu`]).toFixed(2)} s`;
      const name = what === 'blobs' ? `every blob with one curl, at once (no skopeo), ${storage}` : `${what} ${storage}`;
      rows.push([`${name}, vztpl serve (median of ${sides.vztpl[what].length})`, MB(a), '', `${secs(a)}; ${list(sides.vztpl[what])}; ${cpu(sides.vztpl)}`]);
      rows.push([`${name}, Distribution (median of ${sides.distribution[what].length})`, MB(b), '', `${secs(b)}; ${list(sides.distribution[what])}; ${cpu(sides.distribution)}`]);
      const r = b / a;
      const changed = sides.vztpl.changed + sides.distribution.changed;
      const goal = what === 'blobs' ? '(information)' : `>= 1.2x: ${r >= 1.2 ? 'met' : 'NOT met'}`;
      rows.push([`${name} throughput vztpl / Distribution`, `${r.toFixed(2)}x`, goal, what === 'pull' && changed ? `${changed} pulled manifests differed from the pushed one` : '']);
    }
  }
  if (t?.floor.length) {
    const f = median(t.floor);
    rows.push([`skopeo copy oci: -> oci:, no registry (median of ${t.floor.length})`, MB(f), '(the client floor)', `${secs(f)}; ${list(t.floor)}`]);
  }
  for (const [storage, sides] of Object.entries(b ?? {})) {
    const v = sides.vztpl;
    const d = sides.distribution;
    const name = `every layer, ${BLOB_CLIENTS} clients at once, ${storage}`;
    for (const [kind, side] of [['vztpl', v], ['distribution', d]] as const) {
      rows.push([
        `${name}, ${NAMES[kind]} (median of ${side.mbps.length} rounds of ${BLOB_MS / 1000} s)`,
        `${median(side.mbps).toFixed(0)} MB/s, ${median(side.cpuPerGB).toFixed(3)} s CPU/GB`,
        '',
        `MB/s ${side.mbps.map((x) => x.toFixed(0)).join(', ')}; server CPU s/GB ${side.cpuPerGB.map((x) => x.toFixed(3)).join(', ')}; clients' CPU ${median(side.clientCpuPerGB).toFixed(3)} s/GB${side.storageCpuPerGB.length ? `; RGW's CPU ${median(side.storageCpuPerGB).toFixed(3)} s/GB` : ''}; ${side.errors} errors`,
      ]);
    }
    const tr = median(v.mbps) / median(d.mbps);
    const cr = median(v.cpuPerGB) / median(d.cpuPerGB);
    rows.push([`${name}: throughput vztpl / Distribution`, `${tr.toFixed(2)}x`, `>= 1x: ${tr >= 1 ? 'met' : 'NOT met'}`, '']);
    rows.push([`${name}: server CPU per GB vztpl / Distribution`, `${cr.toFixed(2)}x`, `<= 1x: ${cr <= 1 ? 'met' : 'NOT met'}`, '']);
  }
  if (l) {
    for (const kind of ['vztpl', 'floor', 'distribution'] as const) {
      const s = l.sides[kind];
      const p99 = median(s.p99);
      const what = kind === 'floor' ? 'bare node:http with the same answer from memory' : NAMES[kind];
      rows.push([
        `manifest GET at ${RATE}/s over ${CONNECTIONS} connections (open loop), ${what} (median of ${s.p50.length} rounds of ${(kind === 'distribution' ? PEER_LAT_MS : LAT_MS) / 1000} s)`,
        `p50 ${late(median(s.p50))}, p99 ${late(p99)}`,
        kind === 'vztpl' ? `p99 < 10 ms: ${p99 < 10 ? 'met' : 'NOT met'}` : kind === 'floor' ? '(the floor here)' : '(information)',
        `answered ${median(s.perSecond).toFixed(0)}/s; p50 ${s.p50.map((x) => late(x)).join(', ')}; p99 ${s.p99.map((x) => late(x)).join(', ')}; ` +
          `p99.9 ${s.p999.map((x) => late(x, 1)).join(', ')}; max ${s.max.map((x) => late(x, 1)).join(', ')}; server CPU ${median(s.cpuPerRequest).toFixed(0)} us/request; ` +
          `${s.completed}/${s.scheduled} answered, ${s.errors} errors, ${s.unanswered} unanswered; generator send lag p99 ${s.sendLagP99.map((x) => x.toFixed(2)).join(', ')} ms; ${s.bodyBytes} B body`,
      ]);
    }
    const peak = Math.max(l.peakRss, l.hwm) / 1024;
    rows.push([
      'server RSS under that load, vztpl serve',
      `${peak.toFixed(0)} MiB`,
      `< 150 MB: ${peak * 1.048576 < 150 ? 'met' : 'NOT met'}`,
      `idle after start ${(l.idleRss / 1024).toFixed(0)} MiB; peak of VmRSS sampled every 50 ms ${(l.peakRss / 1024).toFixed(0)} MiB (${l.samples} samples); VmHWM ${(l.hwm / 1024).toFixed(0)} MiB`,
    ]);
  }
  const summary = table(['measurement', 'result', 'goal', 'details (s, unless ms)'], rows);
  await report({
    heading: `${m.date}: registry (bench/registry.ts)`,
    machine: m,
    loadAfter,
    totalMs,
    summary,
    record: !opt['no-results'],
    about: () =>
      `Code: ${revision}. Peer: ${distVersion}; client: ${skopeoVersion}. Options: --only ${[...only].join(',')} --storage ${storages.join(',')}` +
      (only.has('throughput') ? ` --rounds ${ROUNDS}` : '') +
      (only.has('blobs') ? ` --blob-clients ${BLOB_CLIENTS} --blob-rounds ${BLOB_ROUNDS} --blob-seconds ${BLOB_MS / 1000}` : '') +
      (only.has('latency') ? ` --rate ${RATE} --connections ${CONNECTIONS} --latency-rounds ${LAT_ROUNDS} --latency-seconds ${LAT_MS / 1000} --warmup-seconds ${WARMUP_MS / 1000} --peer-latency-seconds ${PEER_LAT_MS / 1000}` : '') +
      `${opt['s3-redirect'] ? ' --s3-redirect' : ''}. Total ${secs(totalMs, 0)}. ` +
      `Template: ${layout!.name}:${layout!.version} (${opt.layout ? `layout ${opt.layout}` : `recipes/${opt.recipe}`}), ${layout!.blobs.length - 1} zstd layers + config, ${(layout!.bytes / 1e6).toFixed(1)} MB of blobs` +
      (rgwStart ? `; RGW (memstore) started in ${secs(rgwStart)}` : '') +
      '.',
  });
}

runBench(main, cleanup);
