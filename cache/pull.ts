// Pulling a template: resolve the name and range, fetch the manifest, check its signatures against
// the host's trust policy (cache/trust.ts) before the store is touched, then the config and every
// layer the host lacks, several at once, each digest-verified while it streams and extracted
// into a temporary directory that is renamed into place whole. A layer shared by templates is
// fetched and extracted once; concurrent pulls (several processes) wait on one lock per layer.
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ExitCode, VztplError } from '../common/errors.ts';
import { sha256, isDigest, type Digest } from '../format/digest.ts';
import { ociArchitecture, type ImageConfig } from '../format/oci.ts';
import { acquire } from '../common/lock.ts';
import { mapBounded } from '../common/bounded.ts';
import { holdForUse } from './holds.ts';
import { sweepDeadWork } from './containers.ts';
import { extractLayer, sweepStaleTemps } from './extract.ts';
import { warmUpDecoder } from './extract-decoder.ts';
import type { TemplateSource } from './source.ts';
import { Store, type LayerRecord, type TemplateRef } from './store.ts';
import { checkPull } from './trust.ts';
import { decide, publicKeys, trustSubject, type TrustPolicy } from './trust-policy.ts';

export type PullEvent =
  | { event: 'resolved'; name: string; version: string; digest: Digest; layers: number; bytes: number; missing: number }
  | { event: 'layer-start'; digest: Digest; size: number }
  | { event: 'layer-progress'; digest: Digest; received: number; size: number }
  | { event: 'layer-done'; digest: Digest; size: number; shared: boolean }
  | { event: 'pulled'; name: string; version: string; digest: Digest; downloaded: number; seconds: number };

export interface PullOptions {
  store: Store;
  source: TemplateSource;
  name: string;
  /** Range, version, tag or digest; default latest. */
  request?: string;
  concurrency?: number;
  onEvent?: (e: PullEvent) => void;
  signal?: AbortSignal;
  /**
   * Check the signatures against this policy (undefined: no policy, accept anything with a
   * warning) before anything is stored. Without this option nothing is checked or warned about.
   */
  trust?: { policy: TrustPolicy | undefined; warn: (line: string) => void };
}

interface ManifestJson {
  mediaType?: string;
  config: { digest: Digest; size: number; mediaType: string };
  layers: Array<{ digest: Digest; size: number; mediaType: string }>;
  manifests?: Array<{ digest: Digest; mediaType: string; platform?: { architecture: string; os: string } }>;
}

function hostArchitecture(): string {
  return ociArchitecture({ x64: 'x86_64', arm64: 'aarch64' }[process.arch as 'x64' | 'arm64'] ?? process.arch);
}

export async function pull(opts: PullOptions): Promise<TemplateRef> {
  try {
    return await pullTemplate(opts);
  } catch (err) {
    // The store's filesystem failing (ENOSPC, EIO, EROFS): a clear error, not an internal one.
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (err instanceof VztplError || typeof code !== 'string' || !/^E[A-Z0-9]+$/.test(code)) throw err;
    throw new VztplError(`pulling ${opts.name} into ${opts.store.root} failed: ${(err as Error).message}`, ExitCode.failure, { cause: err });
  }
}

/**
 * Work killed commands left behind: extraction temps beside the layers, blob temps in tmp/,
 * holds and half-written lock files, staging trees of creates and destroys.
 */
export async function sweepLeftovers(store: Store): Promise<void> {
  sweepDeadWork(store);
  await sweepStaleTemps(join(store.root, 'layers', 'sha256'));
}

async function pullTemplate(opts: PullOptions): Promise<TemplateRef> {
  const started = performance.now();
  // Its start overlaps the requests for the manifest and the config.
  warmUpDecoder();
  const { store, source, name } = opts;
  const emit = opts.onEvent ?? (() => undefined);
  // Bad key files in the matching policy entry are bad input: said before anything is fetched.
  const decision = opts.trust ? decide(opts.trust.policy, trustSubject(source.id, name)) : undefined;
  if (decision?.verify) await publicKeys(decision);
  const resolved = await source.resolve(name, opts.request ?? 'latest');
  let manifestDigest = resolved.manifestDigest;
  let { mediaType, bytes } = await source.manifest(name, manifestDigest);
  let manifest = JSON.parse(bytes.toString('utf8')) as ManifestJson;
  let index: { digest: Digest; bytes: Buffer } | undefined;
  if (manifest.manifests) {
    index = { digest: manifestDigest, bytes };
    // An index: the host's platform.
    const arch = hostArchitecture();
    const pick = manifest.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === arch);
    if (!pick) throw new VztplError(`${name}@${resolved.version}: no image for linux/${arch} in the index`, ExitCode.notFound);
    manifestDigest = pick.digest;
    ({ mediaType, bytes } = await source.manifest(name, manifestDigest));
    manifest = JSON.parse(bytes.toString('utf8')) as ManifestJson;
  }
  if (!manifest.config || !Array.isArray(manifest.layers)) throw new VztplError(`${name}@${resolved.version}: not an image manifest (${mediaType})`);
  // The signatures of the digest the request resolved to, before any layer is fetched or stored.
  const signatures = decision
    ? await checkPull({ source, name, version: resolved.version, signedDigest: index?.digest ?? manifestDigest, index: index?.bytes }, decision, opts.trust!.warn)
    : undefined;
  await store.init();
  await sweepLeftovers(store);
  const configBytes = await readAll(await source.blob(name, manifest.config.digest));
  if (sha256(configBytes) !== manifest.config.digest) throw new VztplError(`${name}: config blob does not match its digest ${manifest.config.digest}`);
  const config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length || !diffIds.every(isDigest)) {
    throw new VztplError(`${name}: the config names ${diffIds.length} layers, the manifest ${manifest.layers.length}`);
  }
  const layers: LayerRecord[] = manifest.layers.map((l, i) => ({ digest: l.digest, diffId: diffIds[i]!, mediaType: l.mediaType, size: l.size }));
  // Until the reference is written, nothing else tells a prune that these are wanted.
  const hold = await holdForUse(store, { layers: layers.map((l) => l.diffId), blobs: [manifestDigest, manifest.config.digest, ...layers.map((l) => l.digest)] }, { signal: opts.signal });
  try {
    const missing: LayerRecord[] = [];
    for (const l of layers) if (!(await store.hasLayer(l.diffId)) && !missing.some((m) => m.diffId === l.diffId)) missing.push(l);
    emit({ event: 'resolved', name, version: resolved.version, digest: manifestDigest, layers: layers.length, bytes: layers.reduce((n, l) => n + l.size, 0), missing: missing.length });
    // Layers the host has already (shared with a cached template): reported, not fetched.
    for (const l of layers) if (!missing.some((m) => m.diffId === l.diffId)) emit({ event: 'layer-done', digest: l.digest, size: l.size, shared: true });

    // Several layers at once; the first that fails stops the others, each cleaning up first.
    const fetched = await mapBounded(missing, opts.concurrency ?? 3, (layer, stop) => fetchLayer(store, source, name, layer, emit, opts.signal ? AbortSignal.any([opts.signal, stop]) : stop));
    const downloaded = fetched.reduce((n, bytes) => n + bytes, 0);

    // Manifest and config last: a reference is written only when every layer is in place.
    await store.writeFileAtomic(store.blobPath(manifestDigest), bytes);
    await store.writeFileAtomic(store.blobPath(manifest.config.digest), configBytes);
    const now = new Date().toISOString();
    const ref: TemplateRef = {
      source: source.id,
      name,
      version: resolved.version,
      manifestDigest,
      configDigest: manifest.config.digest,
      layers,
      env: config.config?.Env ?? [],
      cmd: config.config?.Cmd ?? ['/bin/sh'],
      architecture: config.architecture,
      pulledAt: now,
      lastUsed: now,
      ...(index ? { indexDigest: index.digest } : {}),
    };
    // The signatures first: a ref is never there without the signatures it was pulled with.
    await store.saveSignatures(ref, signatures);
    await store.saveRef(ref);
    emit({ event: 'pulled', name, version: resolved.version, digest: manifestDigest, downloaded, seconds: (performance.now() - started) / 1000 });
    return ref;
  } finally {
    hold.release();
  }
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Downloads and extracts one layer unless another process does (or did) it. Returns bytes fetched. */
export async function fetchLayer(store: Store, source: TemplateSource, name: string, layer: LayerRecord, emit: (e: PullEvent) => void, signal?: AbortSignal): Promise<number> {
  const lock = await acquire(store.lockPath(`layer-${layer.diffId.slice(7)}`), { ready: () => store.hasLayer(layer.diffId), signal });
  if (!lock) {
    emit({ event: 'layer-done', digest: layer.digest, size: layer.size, shared: true });
    return 0;
  }
  try {
    if (await store.hasLayer(layer.diffId)) {
      emit({ event: 'layer-done', digest: layer.digest, size: layer.size, shared: true });
      return 0;
    }
    emit({ event: 'layer-start', digest: layer.digest, size: layer.size });
    await mkdir(store.tmpDir(), { recursive: true });
    const body = await source.blob(name, layer.digest);
    const blobTmp = join(store.tmpDir(), `blob-${process.pid}-${randomBytes(6).toString('hex')}`);
    // A deep buffer: the blob is written behind the extraction, never holding it up at each chunk.
    const blobFile = createWriteStream(blobTmp, { highWaterMark: 8 << 20 });
    // A failed write (ENOSPC) is an error of this layer, never an unhandled 'error' event.
    let writeError: Error | undefined;
    blobFile.on('error', (err) => (writeError ??= err));
    const writeFailed = (err: Error) => new VztplError(`layer ${layer.digest}: writing the blob to ${blobTmp} failed: ${err.message}`, ExitCode.failure, { cause: err });
    let received = 0;
    let lastReport = 0;
    // The compressed bytes go to the blob store as they pass to the extractor.
    const tee = async function* (): AsyncGenerator<Buffer> {
      for await (const chunk of body) {
        signal?.throwIfAborted();
        received += chunk.length;
        if (received > layer.size) throw new VztplError(`layer ${layer.digest}: more data than the manifest's ${layer.size} bytes`);
        if (writeError) throw writeFailed(writeError);
        if (!blobFile.write(chunk)) await once(blobFile, 'drain').catch((err: Error) => Promise.reject(writeFailed(writeError ?? err)));
        if (received - lastReport > 4 << 20) {
          lastReport = received;
          emit({ event: 'layer-progress', digest: layer.digest, received, size: layer.size });
        }
        yield chunk;
      }
    };
    const target = store.layerDir(layer.diffId);
    try {
      await rm(target, { recursive: true, force: true }); // a layer dir without its info file is incomplete
      const result = await extractLayer(tee(), { mediaType: layer.mediaType, expectedDigest: layer.digest, expectedDiffId: layer.diffId, target, policy: {} });
      blobFile.end();
      await once(blobFile, 'close');
      if (writeError) throw writeFailed(writeError);
      if (received !== layer.size) throw new VztplError(`layer ${layer.digest}: ${received} bytes, the manifest says ${layer.size}`);
      await rename(blobTmp, store.blobPath(layer.digest));
      // The info file marks the layer complete: written last.
      await store.writeJson(store.layerInfoPath(layer.diffId), { diffId: layer.diffId, bytes: result.bytes, entries: result.entries });
    } catch (err) {
      blobFile.destroy();
      await rm(blobTmp, { force: true });
      await rm(target, { recursive: true, force: true });
      throw err;
    }
    emit({ event: 'layer-done', digest: layer.digest, size: layer.size, shared: false });
    return received;
  } finally {
    lock.release();
  }
}

