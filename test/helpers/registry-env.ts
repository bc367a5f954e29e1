// Helpers for the registry's end-to-end tests: in-process registry instances over a storage
// driver, plain HTTP requests (fetch, and raw node:http for paths fetch would normalise), the
// content a test pushes (blobs, image configs with template metadata, manifests), a small OCI
// image layout made with GNU tar (no builder), a full listing of the storage to prove that a
// refused request changed nothing, and child processes with timeouts.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { OciLayout } from '../../format/layout.ts';
import { Label, MediaType, type LockedPackage } from '../../format/oci.ts';
import { buildServer } from '../../registry/server.ts';
import type { StorageDriver } from '../../registry/storage/driver.ts';

export type Digest = `sha256:${string}`;
export const digestOf = (b: Buffer | string): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;
export const REPO_ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');
export const NODE = '/usr/local/bin/node';
export const CLI = join(REPO_ROOT, 'cli', 'main.ts');

/** A storage the registry suite runs on: every driver() is a new instance over the same data. */
export interface RegistryStorage {
  /** A new driver instance on the suite's storage (what another registry process would open). */
  driver(): StorageDriver;
  /** What a failed write may leave outside the listing: fs temp files, S3 multipart uploads. */
  leftovers(): Promise<string[]>;
  cleanup(): Promise<void>;
}

export interface RunningRegistry {
  app: FastifyInstance;
  url: string;
  port: number;
  driver: StorageDriver;
  close(): Promise<void>;
}

export async function startRegistry(driver: StorageDriver): Promise<RunningRegistry> {
  const { app } = await buildServer({ driver });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  return { app, url: `http://127.0.0.1:${port}`, port, driver, close: () => app.close() };
}

/** Every object under the root: path, size and modification time, sorted. */
export async function storageListing(driver: StorageDriver): Promise<string[]> {
  const rows: string[] = [];
  await driver.walk('/', (info) => {
    rows.push(`${info.path} ${info.size} ${info.modTime.getTime()}`);
  });
  return rows.sort();
}

/** The storage as a comparable whole: the listing plus what lies outside it. */
export async function snapshot(storage: RegistryStorage, driver: StorageDriver): Promise<{ listing: string[]; leftovers: string[] }> {
  return { listing: await storageListing(driver), leftovers: await storage.leftovers() };
}

export interface Res {
  status: number;
  headers: Headers;
  body: Buffer;
  text: string;
  json<T = any>(): T;
}

async function toRes(r: Response): Promise<Res> {
  const body = Buffer.from(await r.arrayBuffer());
  const text = body.toString('utf8');
  return { status: r.status, headers: r.headers, body, text, json: () => JSON.parse(text) };
}

export interface ReqInit {
  headers?: Record<string, string>;
  body?: Buffer | string | ReadableStream<Uint8Array>;
}

/** fetch relative to a registry base URL (or an absolute Location). */
export async function req(base: string, method: string, path: string, init: ReqInit = {}): Promise<Res> {
  const url = /^https?:/.test(path) ? path : new URL(path, base).toString();
  const r = await fetch(url, {
    method,
    headers: init.headers,
    body: init.body as RequestInit['body'],
    duplex: init.body instanceof ReadableStream ? 'half' : undefined,
    redirect: 'manual',
  } as RequestInit);
  return toRes(r);
}

/** A request with the path sent exactly as given (no URL normalisation of '..', %2e, '//'). */
export function rawReq(base: string, method: string, rawPath: string, init: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Res> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const r = httpRequest({ host: u.hostname, port: Number(u.port), method, path: rawPath, headers: { connection: 'close', ...init.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
        const text = body.toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers, body, text, json: () => JSON.parse(text) });
      });
      res.on('error', reject);
    });
    r.on('error', reject);
    r.end(init.body);
  });
}

/** The first OCI error code of a response body. */
export function errorCode(res: Res): string | undefined {
  try {
    return (res.json() as { errors?: Array<{ code: string }> }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

export function errorOf(res: Res): { code: string; message: string; detail?: any } {
  const parsed = res.json() as { errors: Array<{ code: string; message: string; detail?: unknown }> };
  return parsed.errors[0]!;
}

// ---- content -------------------------------------------------------------------------------

export interface Blob {
  bytes: Buffer;
  digest: Digest;
  size: number;
  mediaType: string;
}

export function blob(content: Buffer | string, mediaType: string = MediaType.layerGzip): Blob {
  const bytes = Buffer.isBuffer(content) ? content : Buffer.from(content);
  return { bytes, digest: digestOf(bytes), size: bytes.length, mediaType };
}

export const randomBlob = (size: number, mediaType?: string) => blob(randomBytes(size), mediaType);

export function descriptor(b: Blob, extra: Record<string, unknown> = {}) {
  return { mediaType: b.mediaType, digest: b.digest, size: b.size, ...extra };
}

export interface TemplateSpec {
  name: string;
  version: string;
  distro: string;
  release: string;
  arch: string;
  flavor?: string;
  packages?: LockedPackage[];
}

/** An image config as builder/build.ts writes it: labels plus the 'org.openvz.template' metadata. */
export function templateConfig(t: TemplateSpec, diffIds: Digest[] = []): Blob {
  const labels: Record<string, string> = {
    [Label.distro]: t.distro,
    [Label.release]: t.release,
    [Label.arch]: t.arch,
    ...(t.flavor ? { [Label.flavor]: t.flavor } : {}),
    [Label.title]: t.name,
    [Label.version]: t.version,
  };
  const config = {
    created: '2024-01-01T00:00:00.000Z',
    architecture: t.arch === 'x86_64' ? 'amd64' : t.arch,
    os: 'linux',
    config: { Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'], Labels: labels },
    rootfs: { type: 'layers', diff_ids: diffIds },
    'org.openvz.template': {
      name: t.name,
      version: t.version,
      distro: t.distro,
      release: t.release,
      arch: t.arch,
      ...(t.flavor ? { flavor: t.flavor } : {}),
      recipeDigest: digestOf(`recipe ${t.name}`),
      family: 'deb',
      packages: t.packages ?? [],
    },
  };
  return blob(JSON.stringify(config), MediaType.config);
}

export function plainConfig(note = randomBytes(4).toString('hex')): Blob {
  return blob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, note }), MediaType.config);
}

export interface ManifestSpec {
  config: Blob;
  layers: Blob[];
  subject?: { mediaType: string; digest: Digest; size: number };
  artifactType?: string;
  annotations?: Record<string, string>;
  /** Leave out the mediaType field (then only the Content-Type says what it is). */
  noMediaType?: boolean;
}

export function imageManifest(spec: ManifestSpec): Blob {
  const m = {
    schemaVersion: 2,
    ...(spec.noMediaType ? {} : { mediaType: MediaType.manifest }),
    ...(spec.artifactType ? { artifactType: spec.artifactType } : {}),
    config: descriptor(spec.config),
    layers: spec.layers.map((l) => descriptor(l)),
    ...(spec.subject ? { subject: spec.subject } : {}),
    ...(spec.annotations ? { annotations: spec.annotations } : {}),
  };
  return blob(JSON.stringify(m), MediaType.manifest);
}

export async function pushBlob(base: string, repo: string, b: Blob): Promise<void> {
  const res = await req(base, 'POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, { headers: { 'content-type': 'application/octet-stream' }, body: b.bytes });
  if (res.status !== 201) throw new Error(`push blob ${b.digest} to ${repo}: ${res.status} ${res.text}`);
}

export async function putManifest(base: string, repo: string, reference: string, m: Blob, contentType: string = m.mediaType): Promise<Res> {
  return req(base, 'PUT', `/v2/${repo}/manifests/${reference}`, { headers: { 'content-type': contentType }, body: m.bytes });
}

/** Pushes config, layers and manifest; throws unless the manifest PUT answers 201. */
export async function pushImage(base: string, repo: string, reference: string, spec: ManifestSpec): Promise<Blob> {
  for (const b of [spec.config, ...spec.layers]) await pushBlob(base, repo, b);
  const m = imageManifest(spec);
  const res = await putManifest(base, repo, reference, m);
  if (res.status !== 201) throw new Error(`push ${repo}:${reference}: ${res.status} ${res.text}`);
  return m;
}

// ---- an OCI image layout made without the builder -----------------------------------------

export interface SmallLayout {
  dir: string;
  ref: string;
  manifest: Blob;
  config: Blob;
  layers: Blob[];
  /** Uncompressed tar digests (the config's diff_ids). */
  diffIds: Digest[];
}

/**
 * Two gzip layers made with GNU tar (a base tree and a change on top), a config with template
 * metadata and the manifest, written with OciLayout under the ref name `ref`.
 */
export async function makeSmallLayout(dir: string, ref: string, t: TemplateSpec): Promise<SmallLayout> {
  const work = await mkdtemp(join(tmpdir(), 'vztpl-layer-'));
  const trees: Record<string, string>[] = [
    { 'etc/os-release': `ID=${t.distro}\nVERSION_ID=${t.release}\n`, 'usr/bin/hello': '#!/bin/sh\necho hello\n', 'var/lib/data.bin': randomBytes(200_000).toString('base64') },
    { 'etc/motd': `${t.name} ${t.version}\n`, 'root/.profile': 'PS1="# "\n' },
  ];
  const layers: Blob[] = [];
  const diffIds: Digest[] = [];
  for (const [i, files] of trees.entries()) {
    const root = join(work, `tree${i}`);
    for (const [rel, content] of Object.entries(files)) {
      await mkdir(join(root, rel, '..'), { recursive: true });
      await writeFile(join(root, rel), content, { mode: rel.startsWith('usr/bin') ? 0o755 : 0o644 });
    }
    const tarFile = join(work, `layer${i}.tar`);
    await execOk('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@1700000000', '--format=pax', '--pax-option=delete=atime,delete=ctime', '-C', root, '-cf', tarFile, '.']);
    const tar = await readFile(tarFile);
    diffIds.push(digestOf(tar));
    layers.push(blob(gzipSync(tar, { level: 6 }), MediaType.layerGzip));
  }
  const config = templateConfig(t, diffIds);
  const manifest = imageManifest({ config, layers, annotations: { [Label.title]: t.name, [Label.version]: t.version } });
  const layout = new OciLayout(dir);
  await layout.init();
  for (const b of [config, ...layers, manifest]) await writeFile(layout.blobPath(b.digest), b.bytes);
  await layout.writeIndex([{ mediaType: MediaType.manifest, digest: manifest.digest, size: manifest.size, annotations: { [Label.refName]: ref } }]);
  await execOk('rm', ['-rf', work]);
  return { dir, ref, manifest, config, layers, diffIds };
}

// ---- processes -------------------------------------------------------------------------------

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 300_000, maxBuffer: 64 << 20, cwd: opts.cwd ?? REPO_ROOT, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export async function execOk(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stderr}\n${r.stdout}`);
  return r;
}

/** The environment for the CLI: node 24 first on PATH. */
export function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `/usr/local/bin:${process.env.PATH ?? '/usr/bin:/bin'}` };
  for (const k of Object.keys(env)) if (k.startsWith('VZTPL_') && !k.startsWith('VZTPL_TEST_')) delete env[k];
  return { ...env, ...extra };
}

export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(NODE, [CLI, ...args], { env: opts.env ?? cliEnv(), timeoutMs: opts.timeoutMs });
}

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL if still running; waits for the exit. */
  kill(): Promise<void>;
}

export function spawnCli(args: string[], env: NodeJS.ProcessEnv = cliEnv()): Spawned {
  const child = spawn(NODE, [CLI, ...args], { env, cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls GET url until it answers 200 (or the process exits, or the time is up). */
export async function waitHealthy(url: string, proc?: Spawned, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && proc.child.exitCode !== null) throw new Error(`process exited ${proc.child.exitCode} before ${url} answered:\n${proc.stderr()}\n${proc.stdout()}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await r.arrayBuffer();
      if (r.status === 200) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function parseJsonLines(text: string): Array<Record<string, any>> {
  return text
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

export const rand = (n = 4) => randomBytes(n).toString('hex');

/**
 * A driver that holds the first putContent to a matching path for `ms` milliseconds: a slow
 * registry instance, to force one interleaving of two concurrent requests.
 */
export function delayingDriver(inner: StorageDriver, match: (path: string) => boolean, ms: number): StorageDriver & { held: Promise<void> } {
  let armed = true;
  let reached!: () => void;
  const held = new Promise<void>((r) => (reached = r));
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'held') return held;
      if (prop === 'putContent') {
        return async (path: string, content: Buffer, opts?: { ifNotExists?: boolean }) => {
          if (armed && match(path)) {
            armed = false;
            reached();
            await new Promise((r) => setTimeout(r, ms));
          }
          return target.putContent(path, content, opts);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as StorageDriver & { held: Promise<void> };
}
