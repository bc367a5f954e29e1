// Where templates come from: a registry (vztpl's, with its catalog API for ranges, or any OCI
// registry, resolving from the tags list) or an OCI image layout directory.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { ExitCode, UsageError, VztplError } from '../common/errors.ts';
import { RegistryClient, RegistryError } from '../client/registry-client.ts';
import { fetchPayloads, fetchSignatureManifest } from '../client/signatures.ts';
import type { SignatureLayer } from '../format/sigstore/index.ts';
import { sha256, isDigest, type Digest } from '../format/digest.ts';
import { OciLayout } from '../format/layout.ts';
import { MediaType } from '../format/oci.ts';
import { isVersionTag, resolveRange } from '../format/versions.ts';

export const MANIFEST_ACCEPT = [MediaType.manifest, MediaType.index, MediaType.dockerManifest, MediaType.dockerManifestList];

export interface Resolved {
  /** The version (or tag) the request resolved to. */
  version: string;
  manifestDigest: Digest;
}

export interface TemplateSource {
  /** Registry base URL or oci:DIR, as recorded in template references. */
  readonly id: string;
  resolve(name: string, request: string): Promise<Resolved>;
  /** Manifest bytes, verified against the digest. */
  manifest(name: string, digest: Digest): Promise<{ mediaType: string; bytes: Buffer }>;
  blob(name: string, digest: Digest): Promise<AsyncIterable<Buffer>>;
  /**
   * The sigstore signatures of `digest` (its sha256-<hex>.sig manifest's layers and their
   * payloads); undefined when it has none. Absent for a source that cannot hold signatures.
   */
  signatures?(name: string, digest: Digest): Promise<SourceSignatures | undefined>;
}

export interface SourceSignatures {
  /** REPOSITORY:sha256-<hex>.sig, for messages. */
  from: string;
  layers: Array<{ layer: SignatureLayer; payload: Buffer | { error: string } }>;
}

/** What a request names: a range (^1.4, latest), an exact version, a plain tag, or a digest. */
function isRangeLike(request: string): boolean {
  return request === 'latest' || /^[\^~<>=*]|^\d+(\.\d+|\.x)*$|\s|\|\|/.test(request) || isVersionTag(request);
}

/** An unknown name, version, tag or digest is "not found" (exit 4), not a failure of the registry. */
function notFound(err: unknown): never {
  if (err instanceof RegistryError && err.status === 404) throw new VztplError(err.message, ExitCode.notFound, { cause: err });
  throw err;
}

export class RegistrySource implements TemplateSource {
  readonly id: string;
  readonly client: RegistryClient;
  constructor(base: string, client?: RegistryClient) {
    this.id = base.replace(/\/+$/, '');
    this.client = client ?? new RegistryClient(this.id);
  }

  async resolve(name: string, request: string): Promise<Resolved> {
    return this.resolveAt(name, request).catch(notFound);
  }

  private async resolveAt(name: string, request: string): Promise<Resolved> {
    if (isDigest(request)) {
      // The version that digest was published as, when the registry's catalog knows it.
      // A registry without it (or refusing it) leaves the digest as the version.
      const versions = await this.client.catalogVersions(name).catch(() => undefined);
      const published = versions?.find((v) => v.digest === request);
      return { version: published?.version ?? request, manifestDigest: request };
    }
    if (isRangeLike(request)) {
      const viaCatalog = await this.client.resolveVersion(name, request);
      if (viaCatalog) return { version: viaCatalog.version, manifestDigest: viaCatalog.digest };
      // A plain OCI registry: resolve the range among its semver tags.
      const tags = await this.client.tags(name);
      const version = resolveRange(request, tags) ?? (tags.includes(request) ? request : undefined);
      if (!version) throw new VztplError(`${name}: no version satisfies ${request} at ${this.id} (tags: ${tags.slice(0, 20).join(', ') || 'none'})`, ExitCode.notFound);
      const m = await this.client.getManifest(name, version, MANIFEST_ACCEPT);
      return { version, manifestDigest: sha256(m.bytes) };
    }
    // A plain tag, as for any OCI image (interop): its digest is that of the bytes served.
    const m = await this.client.getManifest(name, request, MANIFEST_ACCEPT);
    return { version: request, manifestDigest: sha256(m.bytes) };
  }

  async manifest(name: string, digest: Digest): Promise<{ mediaType: string; bytes: Buffer }> {
    const m = await this.client.getManifest(name, digest, MANIFEST_ACCEPT).catch(notFound);
    if (sha256(m.bytes) !== digest) throw new VztplError(`${name}@${digest}: the registry served a manifest with another digest (${sha256(m.bytes)})`);
    return { mediaType: m.mediaType, bytes: m.bytes };
  }

  async signatures(name: string, digest: Digest): Promise<SourceSignatures | undefined> {
    const ref = { registry: this.id, repository: name };
    const found = await fetchSignatureManifest(this.client, ref, digest);
    if (!found) return undefined;
    return { from: found.name, layers: await fetchPayloads(this.client, ref, found.layers) };
  }

  async blob(name: string, digest: Digest): Promise<AsyncIterable<Buffer>> {
    const res = await this.client.getBlob(name, digest);
    if (!res.body) throw new VztplError(`${name}@${digest}: empty response`);
    return Readable.fromWeb(res.body as never) as AsyncIterable<Buffer>;
  }
}

/** An OCI image layout directory (what `vztpl build` writes, or `skopeo copy ... oci:DIR`). */
export class LayoutSource implements TemplateSource {
  readonly id: string;
  readonly layout: OciLayout;
  constructor(dir: string) {
    this.id = `oci:${dir}`;
    this.layout = new OciLayout(dir);
  }

  async resolve(_name: string, request: string): Promise<Resolved> {
    const index = await this.layout.readIndex().catch((err: Error) => {
      throw new UsageError(`${this.layout.dir}: not an OCI image layout (${err.message})`);
    });
    const named = index.manifests.map((m) => ({ ref: m.annotations?.['org.opencontainers.image.ref.name'], digest: m.digest }));
    if (isDigest(request)) return { version: named.find((n) => n.digest === request && n.ref)?.ref ?? request, manifestDigest: request };
    if (request === 'latest' && named.length === 1) return { version: named[0]!.ref ?? 'latest', manifestDigest: named[0]!.digest };
    const refs = named.map((n) => n.ref).filter((r): r is string => Boolean(r));
    const version = resolveRange(request, refs) ?? (refs.includes(request) ? request : undefined);
    const found = named.find((n) => n.ref === version);
    if (!found) throw new VztplError(`${this.layout.dir}: no image satisfies ${request} (have ${refs.join(', ') || 'none'})`, ExitCode.notFound);
    return { version: found.ref!, manifestDigest: found.digest };
  }

  async manifest(_name: string, digest: Digest): Promise<{ mediaType: string; bytes: Buffer }> {
    const bytes = await this.layout.blobBytes(digest);
    const mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? MediaType.manifest;
    return { mediaType, bytes };
  }

  async blob(_name: string, digest: Digest): Promise<AsyncIterable<Buffer>> {
    return createReadStream(this.layout.blobPath(digest), { highWaterMark: 1 << 20 });
  }
}
