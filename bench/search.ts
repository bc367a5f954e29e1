// Template search benchmark (GET /api/v1/templates) on Ceph RGW: publishes N small templates of
// V versions each into a fresh bucket through the registry's HTTP API, then times a search
//   - the way it was before the per-template summaries (commit 3a9f609: every repository in
//     turn, listing its version records, reading each, listing its tags), a copy of that code;
//   - the first search after every summary was deleted (a registry the previous code wrote:
//     each template computed the old way, concurrently, and its summary written);
//   - with the summaries in place, by an instance that has not searched yet (a new Catalog:
//     every summary read), and from the in-memory index (Catalog.search), in-process and over HTTP;
// plus what a publish costs now (the manifest PUT, which writes the record, the aliases and
// the summary). Each timing is the median of --rounds, with the storage requests one search
// makes (the driver's operation counter: a walk counts once, whatever its pages).
// --added-latency-ms delays every storage call of the searches (publishing runs at the
// gateway's own speed), to model a gateway farther away than 127.0.0.1. Prints a table;
// RESULTS.md is left alone.
// Usage: node bench/search.ts [--templates 60] [--versions 2] [--packages 300] [--rounds 5] [--added-latency-ms 0]
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { sha256, type Digest } from '../format/digest.ts';
import { Label, MediaType } from '../format/oci.ts';
import { Catalog, catalogPaths, type VersionRecord } from '../registry/catalog.ts';
import type { Registry } from '../registry/registry.ts';
import { buildServer } from '../registry/server.ts';
import type { StorageDriver } from '../registry/storage/driver.ts';
import { S3Driver } from '../registry/storage/s3.ts';
import { isNotFound } from '../registry/storage/driver.ts';
import { loadAverage, machine, median, runBench, secs, table, timeAsync } from './lib.ts';
import { REPO, gitRevision, ms, say, startRgw, type Rgw } from './support.ts';

const { values: opt } = parseArgs({
  options: {
    templates: { type: 'string', default: '60' },
    versions: { type: 'string', default: '2' },
    packages: { type: 'string', default: '300' },
    rounds: { type: 'string', default: '5' },
    'added-latency-ms': { type: 'string', default: '0' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  say('Usage: node bench/search.ts [--templates 60] [--versions 2] [--packages 300] [--rounds 5] [--added-latency-ms 0]');
  process.exit(0);
}
const TEMPLATES = Number(opt.templates);
const VERSIONS = Number(opt.versions);
const PACKAGES = Number(opt.packages);
const ROUNDS = Number(opt.rounds);
const ADDED_LATENCY = Number(opt['added-latency-ms']);

let rgw: Rgw | undefined;
let admin: S3Client | undefined;
let driver: S3Driver | undefined;
let close: (() => Promise<void>) | undefined;

async function cleanup(): Promise<void> {
  await close?.().catch(() => undefined);
  driver?.destroy();
  admin?.destroy();
  await rgw?.stop().catch(() => undefined);
  rgw = undefined;
}

/** Milliseconds every storage call waits first (set once publishing is done). */
let addedLatency = 0;

/** A driver whose calls wait `addedLatency` first: a gateway with that much more round trip. */
function delayed(inner: StorageDriver): StorageDriver {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || prop === 'constructor') return value;
      return async (...args: unknown[]) => {
        if (addedLatency) await sleep(addedLatency);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

// --- publishing -------------------------------------------------------------------------------

async function call(base: string, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<Response> {
  const res = await fetch(`${base}${path}`, { method, headers, body });
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  return res;
}

async function pushBlob(base: string, repo: string, bytes: Buffer): Promise<{ digest: Digest; size: number }> {
  const digest = sha256(bytes);
  await call(base, 'POST', `/v2/${repo}/blobs/uploads/?digest=${digest}`, { 'content-type': 'application/octet-stream' }, bytes);
  return { digest, size: bytes.length };
}

/** An image config as the builder writes it, with a package lock of PACKAGES entries. */
function templateConfig(name: string, version: string, release: string): Buffer {
  const packages = Array.from({ length: PACKAGES }, (_, i) => ({ name: `package-${String(i).padStart(4, '0')}`, version: `${i % 7}.${i % 13}.${version}-1`, arch: 'amd64' }));
  const meta = { name, version, distro: 'debian', release, arch: 'x86_64', family: 'deb', packages };
  const labels = { [Label.distro]: 'debian', [Label.release]: release, [Label.arch]: 'x86_64', [Label.title]: name, [Label.version]: version };
  const config = { created: new Date().toISOString(), architecture: 'amd64', os: 'linux', config: { Labels: labels }, rootfs: { type: 'layers', diff_ids: [] }, 'org.openvz.template': meta };
  return Buffer.from(JSON.stringify(config));
}

/** Pushes one version's blobs, then times its manifest PUT alone (what publishing costs) and counts its storage calls. */
async function publish(base: string, ops: () => Promise<number>, repo: string, version: string, release: string): Promise<{ ms: number; ops: number }> {
  const config = await pushBlob(base, repo, templateConfig(repo, version, release));
  const layer = await pushBlob(base, repo, randomBytes(1000));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.manifest,
      config: { mediaType: MediaType.config, ...config },
      layers: [{ mediaType: MediaType.layerGzip, ...layer }],
    }),
  );
  const opsBefore = await ops();
  const { ms: took } = await timeAsync(() => call(base, 'PUT', `/v2/${repo}/manifests/${version}`, { 'content-type': MediaType.manifest }, manifest));
  return { ms: took, ops: (await ops()) - opsBefore };
}

// --- the searches -----------------------------------------------------------------------------

/** The search as it was before summaries (commit 3a9f609), filters left out: every repository in turn. */
async function searchBefore(registry: Registry): Promise<number> {
  let found = 0;
  for (const repo of await registry.repositories()) {
    let entries: string[];
    try {
      entries = await registry.driver.list(catalogPaths.versions(repo));
    } catch (err) {
      if (isNotFound(err)) continue;
      throw err;
    }
    const records = await Promise.all(entries.map(async (p) => JSON.parse((await registry.driver.getContent(p)).toString('utf8')) as VersionRecord));
    const tags = new Set(await registry.manifests.tags(repo));
    if (records.some((r) => tags.has(r.version))) found++;
  }
  return found;
}

async function deleteSummaries(registry: Registry): Promise<void> {
  await Promise.all((await registry.repositories()).map((repo) => registry.driver.delete(catalogPaths.summary(repo)).catch(() => undefined)));
}

interface Timing {
  ms: number[];
  ops: number[];
  found: number;
}

/** Runs `fn` ROUNDS times (after `before` each time, untimed): times, storage calls, templates found. */
async function measure(ops: () => Promise<number>, fn: () => Promise<number>, before?: () => Promise<void>): Promise<Timing> {
  const out: Timing = { ms: [], ops: [], found: 0 };
  for (let i = 0; i < ROUNDS; i++) {
    await before?.();
    const opsBefore = await ops();
    const t = await timeAsync(fn);
    out.ops.push((await ops()) - opsBefore);
    out.ms.push(t.ms);
    out.found = t.value;
  }
  return out;
}

async function searchHttp(base: string): Promise<number> {
  const res = await fetch(`${base}/api/v1/templates`);
  if (res.status !== 200) throw new Error(`search: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { templates: unknown[] }).templates.length;
}

async function main(): Promise<void> {
  try {
    await run();
  } finally {
    await cleanup();
  }
}

async function run(): Promise<void> {
  const m = machine();
  const revision = gitRevision();
  say(`vztpl template search benchmark, ${m.date}`);
  say(`machine: ${m.cores} cores (nproc), ${m.cpu}, kernel ${m.kernel}, node ${m.node}; load average before: ${m.load}; code ${revision}`);
  rgw = await startRgw();
  say(`rgw: ${rgw.endpoint} up in ${secs(rgw.startMs)} (memstore)`);
  const credentials = { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey };
  admin = new S3Client({ endpoint: rgw.endpoint, region: 'us-east-1', forcePathStyle: true, credentials });
  const bucket = `vztpl-search-${randomBytes(3).toString('hex')}`;
  await admin.send(new CreateBucketCommand({ Bucket: bucket }));
  driver = new S3Driver({ bucket, prefix: 'registry', endpoint: rgw.endpoint, region: 'us-east-1', forcePathStyle: true, credentials });
  const server = await buildServer({ driver: delayed(driver) });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  close = () => server.app.close();
  const base = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
  const registry: Registry = server.registry;
  const catalog: Catalog = server.catalog;
  const ops = async () => (await server.metrics.storageOps.get()).values.reduce((n, v) => n + v.value, 0);

  const started = performance.now();
  const publishes: Array<{ ms: number; ops: number }> = [];
  for (let v = 0; v < VERSIONS; v++) {
    for (let t = 0; t < TEMPLATES; t++) {
      const release = t % 3 ? '12' : '11';
      publishes.push(await publish(base, ops, `bench/debian-${release}-x86_64-t${String(t).padStart(3, '0')}`, `1.${v}.0`, release));
    }
  }
  const publishOps = { ms: publishes.map((p) => p.ms), ops: publishes.map((p) => p.ops), found: 0 };
  const later = publishes.slice(TEMPLATES);
  say(`published ${TEMPLATES} templates x ${VERSIONS} versions (${PACKAGES} packages each) in ${secs(performance.now() - started)}`);

  // What the summary adds to a publish: it is rewritten alongside the aliases, concurrently.
  const sample = 'bench/debian-12-x86_64-t001';
  const aliases = await measure(ops, () => catalog.moveAliases(sample).then(() => 1));
  const refresh = await measure(ops, () => catalog.refreshSummary(sample).then(() => 1));

  addedLatency = ADDED_LATENCY;
  const before = await measure(ops, () => searchBefore(registry));
  // a new Catalog: an instance whose index is empty, as after a start
  const migrate = await measure(ops, () => new Catalog(registry).search({}).then((r) => r.length), () => deleteSummaries(registry));
  const cold = await measure(ops, () => new Catalog(registry).search({}).then((r) => r.length));
  const after = await measure(ops, () => catalog.search({}).then((r) => r.length));
  const http = await measure(ops, () => searchHttp(base));
  const filtered = await measure(ops, () => catalog.search({ release: '11', package: 'package-0007' }).then((r) => r.length));
  const loadAfter = loadAverage();

  const row = (what: string, t: Timing, search = true) => [what, ms(median(t.ms)), String(median(t.ops)), search ? String(t.found) : '', t.ms.map((x) => x.toFixed(0)).join(', ')];
  const rows = [
    row('search before summaries (per repository, sequential)', before),
    row('first search after deleting every summary (recompute + write)', migrate),
    row('first search of an instance, with summaries (every summary read)', cold),
    row('search from the in-memory index (Catalog.search)', after),
    row('search from the in-memory index, over HTTP', http),
    row('search from the in-memory index, ?release=11&package=package-0007', filtered),
    [
      `publish a version: the manifest PUT (record, aliases, summary), all ${publishes.length}`,
      ms(median(publishOps.ms)),
      String(median(publishOps.ops)),
      '',
      later.length ? `versions after the first: median ${ms(median(later.map((p) => p.ms)))}, ${median(later.map((p) => p.ops))} storage calls` : '',
    ],
    row('of which: moving the aliases (unchanged), alone', aliases, false),
    row('of which: rewriting the summary (unchanged), alone; runs alongside the aliases', refresh, false),
  ];
  say('');
  say(table(['measurement', 'median', 'storage calls', 'templates found', 'rounds (ms)'], rows));
  say(`searches: median of ${ROUNDS} rounds each`);
  say(`speed-up with summaries: ${(median(before.ms) / median(cold.ms)).toFixed(1)}x, with the in-memory index: ${(median(before.ms) / median(after.ms)).toFixed(1)}x; added latency per storage call of the searches: ${ADDED_LATENCY} ms; load average after: ${loadAfter}`);
}

runBench(main, cleanup);
