// Shared pieces of the host cache's end-to-end tests (test/cache/host*.test.ts): real templates
// built by the builder with the shared build cache (a Debian 12 minbase base and a flavor `from:`
// it, sharing its layers), an in-process vztpl registry on 127.0.0.1 that counts requests and can
// be throttled, stopped and restarted on its port, the CLI run against a store, views of the store
// (refs, layers, temporaries, locks), and clean-up that proves no mount is left behind.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../registry/server.ts';
import { FsDriver } from '../../registry/storage/fs.ts';
import type { StorageDriver } from '../../registry/storage/driver.ts';
import { cliBuild, mountsMentioning, parseEvents, runCli, spawnCli, writeFiles, type CliResult } from './build-env.ts';
import { listTree } from './tree-listing.ts';

export type Digest = `sha256:${string}`;
export const hexOf = (d: string) => d.replace(/^sha256:/, '');

// ---- templates -----------------------------------------------------------------------------

export const BASE_NAME = 'debian-12-x86_64-hostbase';
export const FLAVOR_NAME = 'debian-12-x86_64-hostweb';

const BASE_RECIPE = `name: ${BASE_NAME}
version: 1.0.0
description: vztpl host cache end-to-end test template
bootstrap:
  tool: mmdebstrap
  suite: bookworm
  mirror: http://deb.debian.org/debian
  variant: minbase
steps:
  - install: [netbase]
  - name: mark the template
    run: |
      set -e
      mkdir -p /opt/vzt-host
      echo base > /opt/vzt-host/base
`;

const FLAVOR_RECIPE = `name: ${FLAVOR_NAME}
version: 1.0.0
description: a flavor of the host cache test template
from: ${BASE_NAME}
steps:
  - name: flavor mark
    run: |
      set -e
      echo flavor > /opt/vzt-host/flavor
`;

export interface BuiltTemplate {
  name: string;
  /** The OCI layout the builder wrote. */
  dir: string;
  manifestDigest: Digest;
  configDigest: Digest;
  /** Compressed layer blobs, bottom first. */
  layers: Array<{ digest: Digest; size: number }>;
  /** Uncompressed tar digests (the layer dirs of the host store), bottom first. */
  diffIds: Digest[];
}

async function readBuilt(name: string, dir: string): Promise<BuiltTemplate> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: Digest }> };
  const manifestDigest = index.manifests[0]!.digest;
  const manifest = JSON.parse(await readFile(join(dir, 'blobs', 'sha256', hexOf(manifestDigest)), 'utf8')) as { config: { digest: Digest }; layers: Array<{ digest: Digest; size: number }> };
  const config = JSON.parse(await readFile(join(dir, 'blobs', 'sha256', hexOf(manifest.config.digest)), 'utf8')) as { rootfs: { diff_ids: Digest[] } };
  return { name, dir, manifestDigest, configDigest: manifest.config.digest, layers: manifest.layers.map((l) => ({ digest: l.digest, size: l.size })), diffIds: config.rootfs.diff_ids };
}

/**
 * Builds the base (mmdebstrap bookworm minbase, netbase, a run step) and the flavor (`from:` the
 * base, one more run step) with the shared build cache: seconds when the cache is warm.
 */
export async function buildTemplates(work: string): Promise<{ base: BuiltTemplate; flavor: BuiltTemplate }> {
  const recipes = join(work, 'recipes');
  await writeFiles(recipes, { [`${BASE_NAME}.yaml`]: BASE_RECIPE, [`${FLAVOR_NAME}.yaml`]: FLAVOR_RECIPE });
  const t0 = performance.now();
  await cliBuild(join(recipes, `${BASE_NAME}.yaml`), join(work, 'out', BASE_NAME));
  await cliBuild(join(recipes, `${FLAVOR_NAME}.yaml`), join(work, 'out', FLAVOR_NAME));
  console.log(`host-env: templates built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const base = await readBuilt(BASE_NAME, join(work, 'out', BASE_NAME));
  const flavor = await readBuilt(FLAVOR_NAME, join(work, 'out', FLAVOR_NAME));
  return { base, flavor };
}

// ---- the registry --------------------------------------------------------------------------

export interface HostRegistry {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT, as --registry and template names take it. */
  host: string;
  port: number;
  /** Every request received, in order (method, URL, and the body's declared length). */
  requests: Array<{ method: string; url: string; bytes?: number }>;
  /** Bytes of blob uploads (PUT/PATCH/POST bodies under /blobs/uploads/) since `from` (an index into requests). */
  uploadedBytes(from?: number): number;
  /** GET requests of a blob (in any repository) since the start, or since `from` (an index into requests). */
  blobGets(digest: string, from?: number): number;
  /** Blob reads are slowed to this many bytes per second while set. */
  throttle: { bytesPerSecond?: number };
  running(): boolean;
  stop(): Promise<void>;
  /** Starts again on the same port and storage (refs on hosts name the port). */
  start(): Promise<void>;
}

/** A reader slowed to `rate()` bytes per second (read each chunk, so it can change mid-stream). */
function throttled(source: Readable, rate: () => number | undefined): Readable {
  const slow = new Transform({
    highWaterMark: 64 << 10,
    transform(chunk: Buffer, _enc, done) {
      const bps = rate();
      if (!bps) return done(null, chunk);
      // 64 KiB slices, each after its share of time.
      let offset = 0;
      const next = () => {
        if (offset >= chunk.length) return done();
        const slice = chunk.subarray(offset, offset + (64 << 10));
        offset += slice.length;
        this.push(slice);
        setTimeout(next, (slice.length / bps) * 1000);
      };
      next();
    },
  });
  pipeline(source, slow).catch(() => undefined);
  return slow;
}

function throttlingDriver(inner: StorageDriver, rate: () => number | undefined): StorageDriver {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'reader') return async (path: string, offset?: number, length?: number) => throttled(await target.reader(path, offset, length), rate);
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** The vztpl registry (buildServer, fs driver over `dataDir`) on 127.0.0.1, port 0 or `port`. */
export async function startHostRegistry(dataDir: string): Promise<HostRegistry> {
  await mkdir(dataDir, { recursive: true });
  const requests: Array<{ method: string; url: string; bytes?: number }> = [];
  const throttle: { bytesPerSecond?: number } = {};
  let app: FastifyInstance | undefined;
  let port = 0;
  const start = async () => {
    const driver = throttlingDriver(new FsDriver({ root: dataDir }), () => throttle.bytesPerSecond);
    const built = await buildServer({ driver });
    await built.app.listen({ host: '127.0.0.1', port });
    port = (built.app.server.address() as AddressInfo).port;
    // The raw server's event sees every request, whatever the routes' hooks.
    built.app.server.on('request', (req: IncomingMessage) => {
      const length = Number(req.headers['content-length']);
      requests.push({ method: req.method ?? '', url: req.url ?? '', ...(Number.isFinite(length) && length > 0 ? { bytes: length } : {}) });
    });
    app = built.app;
  };
  await start();
  const reg: HostRegistry = {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    requests,
    throttle,
    uploadedBytes: (from = 0) => requests.slice(from).filter((r) => r.method !== 'GET' && r.method !== 'HEAD' && r.url.includes('/blobs/uploads/')).reduce((n, r) => n + (r.bytes ?? 0), 0),
    blobGets: (digest, from = 0) => requests.slice(from).filter((r) => r.method === 'GET' && r.url.includes(`/blobs/${digest}`)).length,
    running: () => app !== undefined,
    stop: async () => {
      await app?.close();
      app = undefined;
    },
    start,
  };
  return reg;
}

/** `vztpl push LAYOUT 127.0.0.1:PORT/NAME:VERSION`; throws unless it exits 0. */
export async function pushTemplate(layout: string, registryHost: string, name: string, version: string): Promise<void> {
  const r = await runCli(['push', layout, `${registryHost}/${name}:${version}`, '--json'], { env: hostEnv(), cleanEnv: true });
  if (r.code !== 0) throw new Error(`vztpl push ${layout} ${name}:${version} exited ${r.code}:\n${r.stderr}`);
}

// ---- the CLI against a store ----------------------------------------------------------------

/** The CLI's environment: node 24 first on PATH, and no /etc/vztpl/host.yaml or VZTPL_* setting of the machine. */
export function hostEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !(k.startsWith('VZTPL_') && !k.startsWith('VZTPL_TEST_'))) env[k] = v;
  return { ...env, PATH: `/usr/local/bin:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`, VZTPL_HOST_CONFIG: '/nonexistent/vztpl-host.yaml' };
}

/** Puts --root (and --registry) after the (sub)command, before a `--` and the command it runs. */
export function hostArgs(args: readonly string[], root: string, registry?: string): string[] {
  const at = args[0] === 'cache' ? 2 : 1;
  const flags = ['--root', root, ...(registry ? ['--registry', registry] : [])];
  return [...args.slice(0, at), ...flags, ...args.slice(at)];
}

export interface Host {
  root: string;
  registry?: string;
  run(...args: string[]): Promise<CliResult>;
  /** Like run, but throws with the output unless the exit code is 0. */
  ok(...args: string[]): Promise<CliResult>;
  spawn(...args: string[]): ReturnType<typeof spawnCli>;
}

export function host(root: string, registry?: string): Host {
  const env = hostEnv();
  const h: Host = {
    root,
    registry,
    run: (...args) => runCli(hostArgs(args, root, registry), { env, cleanEnv: true }),
    ok: async (...args) => {
      const r = await h.run(...args);
      if (r.code !== 0) throw new Error(`vztpl ${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stderr}\n${r.stdout}`);
      return r;
    },
    spawn: (...args) => spawnCli(hostArgs(args, root, registry), { env, cleanEnv: true }),
  };
  return h;
}

export type PullEvent = Record<string, any> & { event: string };
export const pullEvents = (r: CliResult) => parseEvents(r.stdout) as unknown as PullEvent[];

// ---- the store -----------------------------------------------------------------------------

export interface StoreView {
  /** refs/<source>/<name>/<version>.json, relative to refs/. */
  refs: string[];
  /** Layer dirs (hex) and info files (hex.json) in layers/sha256. */
  layerDirs: string[];
  layerInfos: string[];
  /** Anything else in layers/sha256: extraction temps. */
  layerOthers: string[];
  blobs: string[];
  tmp: string[];
  locks: string[];
  /** containers/, dot entries (staging) included. */
  containers: string[];
}

const names = (dir: string) => readdir(dir).catch(() => [] as string[]);

async function walkFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await walkFiles(join(dir, e.name), rel)));
    else out.push(rel);
  }
  return out.sort();
}

export async function storeView(root: string): Promise<StoreView> {
  const layerNames = await names(join(root, 'layers', 'sha256'));
  const isHex = (n: string) => /^[0-9a-f]{64}$/.test(n);
  return {
    refs: await walkFiles(join(root, 'refs')),
    layerDirs: layerNames.filter(isHex).sort(),
    layerInfos: layerNames.filter((n) => n.endsWith('.json') && isHex(n.slice(0, -5))).sort(),
    layerOthers: layerNames.filter((n) => !isHex(n) && !(n.endsWith('.json') && isHex(n.slice(0, -5)))).sort(),
    blobs: (await names(join(root, 'blobs', 'sha256'))).sort(),
    tmp: (await names(join(root, 'tmp'))).sort(),
    locks: (await names(join(root, 'locks'))).sort(),
    containers: (await names(join(root, 'containers'))).sort(),
  };
}

/** Every layer dir has its info file and every info file its dir; nothing else lies there. */
export function layersConsistent(v: StoreView): string[] {
  const problems: string[] = [];
  for (const d of v.layerDirs) if (!v.layerInfos.includes(`${d}.json`)) problems.push(`layer dir ${d} without its info file`);
  for (const i of v.layerInfos) if (!v.layerDirs.includes(i.slice(0, -5))) problems.push(`info file ${i} without its layer dir`);
  return problems;
}

/** A comparable listing (type, mode, owner, size, content digest, mtime, xattrs) of a tree. */
export function treeListing(dir: string): string[] {
  return listTree(dir, Number.MAX_SAFE_INTEGER);
}

/** sha256 of the listing of every extracted layer and info file: proves the layers unchanged. */
export function layersChecksum(root: string): string {
  const dir = join(root, 'layers', 'sha256');
  const h = createHash('sha256');
  for (const name of readdirSync(dir).sort()) {
    h.update(`${name}\n`);
    if (/^[0-9a-f]{64}$/.test(name)) for (const line of listTree(join(dir, name), Number.MAX_SAFE_INTEGER)) h.update(`${line}\n`);
  }
  return h.digest('hex');
}

export const exists = (p: string) =>
  lstat(p).then(
    () => true,
    () => false,
  );

// ---- mounts and clean-up --------------------------------------------------------------------

/** Mount points of this mount namespace at or below `dir`, deepest first. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const table = await readFile('/proc/self/mountinfo', 'utf8');
  const points = table
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => Boolean(p))
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

export function sh(command: string, args: readonly string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { maxBuffer: 64 << 20, env: { ...process.env, PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export async function shOk(command: string, args: readonly string[] = []): Promise<string> {
  const r = await sh(command, args);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/**
 * A host test file's afterAll: stops its registry, removes its work dir, and checks that no test
 * left a mount behind, here or in any mount namespace.
 */
export async function finishHostTests(work: string | undefined, reg: HostRegistry | undefined): Promise<void> {
  if (!work) return;
  await reg?.stop();
  const left = await cleanupWork(work);
  expect(left, 'mounts a test left behind').toEqual([]);
  expect(await leakedMounts(work)).toEqual([]);
}

/**
 * Removes a test's work dir: unmounts whatever is still mounted below it (a failed test's
 * containers, tmpfs, loop filesystems), then the tree. Returns the mounts it had to remove.
 */
export async function cleanupWork(work: string): Promise<string[]> {
  const found = await mountsUnder(work);
  for (const m of found) {
    const r = await sh('umount', [m]);
    if (r.code !== 0) await sh('umount', ['-l', m]);
  }
  await rm(work, { recursive: true, force: true });
  return found;
}

/** Mount table lines, in every mount namespace, that mention `dir` (must be none at the end). */
export const leakedMounts = (dir: string) => mountsMentioning(dir);

/** Runs a program in the background (docker-registry): its output is kept for failures. */
export function background(command: string, args: readonly string[]) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => output,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Writes a file, creating its directory. */
export async function put(path: string, content: string): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
}
