// Registry benchmark: vztpl serve against CNCF Distribution (Debian's docker-registry 2.8) on the
// same template, measured in one run:
//   1. push and pull throughput with skopeo, on fs storage and on Ceph RGW (S3), a fresh storage
//      (directory or bucket) and a fresh server process each round, the two registries alternated,
//      with the CPU time each server used, and skopeo copying oci: to oci: (no registry at all)
//      each round: the client's own floor; then every blob fetched at once by one curl to
//      /dev/null, which measures the registry without skopeo's own costs;
//   2. manifest GET latency (p50, p99) with 64 concurrent keep-alive clients, fs storage;
//   3. the vztpl server's RSS under that load (peak of VmRSS sampled every 50 ms, and VmHWM).
// Both registries run as processes on 127.0.0.1 with their log at level info, to a file.
// Usage: node bench/registry.ts [--rounds N] [--storage fs,rgw] [--only throughput,latency] [--no-results]
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { loadAverage, machine, median, ratio, runChecked, running, secs, table, runBench } from './lib.ts';
import {
  REPO,
  report,
  buildTemplate,
  cpuSeconds,
  env,
  gitRevision,
  loadTest,
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
  type LoadResult,
  type Server,
  type StorageTarget,
} from './support.ts';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    storage: { type: 'string', default: 'fs,rgw' },
    clients: { type: 'string', default: '64' },
    requests: { type: 'string', default: '20000' },
    'latency-rounds': { type: 'string', default: '3' },
    'latency-seconds': { type: 'string', default: '30' },
    warmup: { type: 'string', default: '2000' },
    only: { type: 'string', default: 'throughput,latency' },
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
    'Usage: node bench/registry.ts [--rounds 3] [--storage fs,rgw] [--only throughput,latency]\n' +
      '         [--clients 64] [--requests 20000] [--latency-rounds 3] [--latency-seconds 30] [--warmup 2000]\n' +
      '         [--recipe debian-12-x86_64.yaml | --layout OCI_DIR] [--cache-dir /var/tmp/vztpl-test/build-cache]\n' +
      '         [--bench-dir /var/tmp/vztpl-bench] [--s3-redirect] [--wait-load 1.0] [--no-results]\n',
  );
  process.exit(0);
}
const ROUNDS = Number(opt.rounds);
const CLIENTS = Number(opt.clients);
const REQUESTS = Number(opt.requests);
const LAT_ROUNDS = Number(opt['latency-rounds']);
const LAT_MS = Number(opt['latency-seconds']) * 1000;
const WARMUP = Number(opt.warmup);
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

// --- 2 and 3. manifest latency and RSS --------------------------------------------------------

interface LatencySide {
  p50: number[];
  p99: number[];
  max: number[];
  perSecond: number[];
  errors: number;
  completed: number;
  bodyBytes: number;
  /** kB: after start-up (idle), the sampled VmRSS peak during the load, VmHWM at the end. */
  idleRss: number;
  peakRss: number;
  hwm: number;
  samples: number;
}

/** Adds one round's load test to a side's numbers. */
function record(side: LatencySide, x: LoadResult): LatencySide {
  side.p50.push(percentile(x.latencies, 0.5));
  side.p99.push(percentile(x.latencies, 0.99));
  side.max.push(percentile(x.latencies, 1));
  side.perSecond.push(x.perSecond);
  side.errors += x.errors;
  side.completed += x.completed;
  side.bodyBytes = x.bodyBytes;
  return side;
}

async function latency(layout: Layout): Promise<Record<Kind, LatencySide> & { floor?: LatencySide }> {
  const path = `/v2/${REPOSITORY}/manifests/${layout.version}`;
  const live: Partial<Record<Kind, Server>> = {};
  const result = {} as Record<Kind, LatencySide> & { floor?: LatencySide };
  say(`latency: GET ${path} (Accept: OCI manifest/index, Docker v2), ${CLIENTS} keep-alive clients, ${WARMUP} warm-up requests, then ${LAT_ROUNDS} rounds of up to ${REQUESTS} requests or ${LAT_MS / 1000} s, alternated`);
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
    await new Promise((r) => setTimeout(r, 500));
    result[kind] = { p50: [], p99: [], max: [], perSecond: [], errors: 0, completed: 0, bodyBytes: 0, idleRss: 0, peakRss: 0, hwm: 0, samples: 0 };
  }
  const samplers = Object.fromEntries(
    (['vztpl', 'distribution'] as const).map((kind) => {
      const side = result[kind];
      const server = live[kind]!;
      side.idleRss = rssSampler(server.pid).stop().peak;
      return [kind, rssSampler(server.pid)];
    }),
  ) as Record<Kind, ReturnType<typeof rssSampler>>;
  const run = (kind: Kind, requests: number): Promise<LoadResult> =>
    loadTest({ port: live[kind]!.port, path, headers: { Accept: ACCEPT }, clients: CLIENTS, requests, maxMs: LAT_MS });
  for (const kind of ['vztpl', 'distribution'] as const) {
    const w = await run(kind, WARMUP);
    say(`latency  warm-up  ${NAMES[kind].padEnd(12)}  ${w.completed} requests, ${w.perSecond.toFixed(0)}/s, p50 ${ms(percentile(w.latencies, 0.5), 2)}, p99 ${ms(percentile(w.latencies, 0.99), 2)}, ${w.errors} errors`);
  }
  for (let r = 1; r <= LAT_ROUNDS; r++) {
    const order: Kind[] = r % 2 ? ['vztpl', 'distribution'] : ['distribution', 'vztpl'];
    for (const kind of order) {
      const x = await run(kind, REQUESTS);
      const side = record(result[kind], x);
      say(
        `latency  ${r}/${LAT_ROUNDS}      ${NAMES[kind].padEnd(12)}  ${x.completed} requests in ${secs(x.ms)}, ${x.perSecond.toFixed(0)}/s, p50 ${ms(side.p50.at(-1)!, 2)}, p99 ${ms(side.p99.at(-1)!, 2)}, max ${ms(side.max.at(-1)!, 1)}, ${x.errors} errors`,
      );
    }
  }
  for (const kind of ['vztpl', 'distribution'] as const) {
    const s = samplers[kind].stop();
    Object.assign(result[kind], { peakRss: s.peak, hwm: s.hwm, samples: s.samples });
    say(`memory  ${NAMES[kind].padEnd(12)}  idle ${(result[kind].idleRss / 1024).toFixed(0)} MiB, peak VmRSS under load ${(s.peak / 1024).toFixed(0)} MiB (${s.samples} samples), VmHWM ${(s.hwm / 1024).toFixed(0)} MiB`);
  }
  // What any Node server can do here: the same answer from a bare node:http server, measured
  // alike once the registries are stopped (so it has their share of the cores).
  const answer = await fetch(`${live.vztpl!.url}${path}`, { headers: { Accept: ACCEPT } });
  const floorHeaders = Object.fromEntries(['content-type', 'docker-content-digest', 'docker-distribution-api-version'].map((h) => [h, answer.headers.get(h) ?? '']));
  const floorBody = Buffer.from(await answer.arrayBuffer());
  await stopServers();
  const floor = await startFloorServer(floorBody, floorHeaders, join(runDir, 'latency-floor.log'));
  const side: LatencySide = { p50: [], p99: [], max: [], perSecond: [], errors: 0, completed: 0, bodyBytes: 0, idleRss: 0, peakRss: 0, hwm: 0, samples: 0 };
  try {
    await loadTest({ port: floor.port, path, headers: { Accept: ACCEPT }, clients: CLIENTS, requests: WARMUP, maxMs: LAT_MS });
    for (let r = 1; r <= LAT_ROUNDS; r++) {
      const x = await loadTest({ port: floor.port, path, headers: { Accept: ACCEPT }, clients: CLIENTS, requests: REQUESTS, maxMs: LAT_MS });
      record(side, x);
      say(`latency  ${r}/${LAT_ROUNDS}      ${'node:http'.padEnd(12)}  ${x.completed} requests in ${secs(x.ms)}, ${x.perSecond.toFixed(0)}/s, p50 ${ms(side.p50.at(-1)!, 2)}, p99 ${ms(side.p99.at(-1)!, 2)}, ${x.errors} errors`);
    }
  } finally {
    await floor.stop();
  }
  result.floor = side;
  return result;
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
  let l: (Record<Kind, LatencySide> & { floor?: LatencySide }) | undefined;
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
    if (only.has('throughput') && storages.includes('rgw')) {
      rgw = await startRgw();
      rgwStart = rgw.startMs;
      admin = new S3Client({ endpoint: rgw.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } });
      say(`rgw: ${rgw.endpoint} up in ${secs(rgw.startMs)} (memstore)`);
    }
    if (only.has('throughput')) t = await throughput(layout);
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
  if (l) {
    for (const kind of ['vztpl', 'distribution'] as const) {
      const s = l[kind];
      const p99 = median(s.p99);
      rows.push([
        `manifest GET, ${NAMES[kind]}, ${CLIENTS} clients (median of ${s.p50.length} rounds)`,
        `p50 ${ms(median(s.p50), 2)}, p99 ${ms(p99, 2)}`,
        kind === 'vztpl' ? `p99 < 10 ms: ${p99 < 10 ? 'met' : 'NOT met'}` : '',
        `${median(s.perSecond).toFixed(0)} req/s; p50 ${s.p50.map((x) => x.toFixed(2)).join(', ')}; p99 ${s.p99.map((x) => x.toFixed(2)).join(', ')}; max ${s.max.map((x) => x.toFixed(1)).join(', ')} ms; ${s.completed} requests, ${s.errors} errors; ${s.bodyBytes} B body`,
      ]);
    }
    if (l.floor) {
      const f = l.floor;
      rows.push([
        `manifest GET, bare node:http with the same answer from memory (median of ${f.p50.length} rounds)`,
        `p50 ${ms(median(f.p50), 2)}, p99 ${ms(median(f.p99), 2)}`,
        '(the floor here)',
        `${median(f.perSecond).toFixed(0)} req/s; p99 ${f.p99.map((x) => x.toFixed(2)).join(', ')} ms; ${f.completed} requests, ${f.errors} errors; ${f.bodyBytes} B body`,
      ]);
    }
    rows.push(['manifest GET p99 vztpl / Distribution', ratio(median(l.vztpl.p99), median(l.distribution.p99)), '(information)', `req/s vztpl / Distribution ${ratio(median(l.vztpl.perSecond), median(l.distribution.perSecond))}`]);
    for (const kind of ['vztpl', 'distribution'] as const) {
      const s = l[kind];
      const peak = Math.max(s.peakRss, s.hwm) / 1024;
      rows.push([
        `server RSS under that load, ${NAMES[kind]}`,
        `${peak.toFixed(0)} MiB`,
        kind === 'vztpl' ? `< 150 MB: ${peak * 1.048576 < 150 ? 'met' : 'NOT met'}` : '(information)',
        `idle after start ${(s.idleRss / 1024).toFixed(0)} MiB; peak of VmRSS sampled every 50 ms ${(s.peakRss / 1024).toFixed(0)} MiB (${s.samples} samples); VmHWM ${(s.hwm / 1024).toFixed(0)} MiB`,
      ]);
    }
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
      `Code: ${revision}. Peer: ${distVersion}; client: ${skopeoVersion}. Options: --rounds ${ROUNDS} --storage ${storages.join(',')} --clients ${CLIENTS} --requests ${REQUESTS} ` +
      `--latency-rounds ${LAT_ROUNDS} --latency-seconds ${LAT_MS / 1000} --warmup ${WARMUP}${opt['s3-redirect'] ? ' --s3-redirect' : ''}${only.size < 2 ? ` --only ${opt.only}` : ''}. Total ${secs(totalMs, 0)}. ` +
      `Template: ${layout!.name}:${layout!.version} (${opt.layout ? `layout ${opt.layout}` : `recipes/${opt.recipe}`}), ${layout!.blobs.length - 1} zstd layers + config, ${(layout!.bytes / 1e6).toFixed(1)} MB of blobs` +
      (rgwStart ? `; RGW (memstore) started in ${secs(rgwStart)}` : '') +
      '.',
  });
}

runBench(main, cleanup);
