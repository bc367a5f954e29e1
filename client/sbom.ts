// A template version's SBOM in a registry: the SPDX artifact (format/spdx.ts) pushed as an OCI
// 1.1 referrer of the version's manifest, and found again through the referrers API. The format
// is decided in format/spdx.ts; this is the I/O.
import { ExitCode, VztplError } from '../common/errors.ts';
import { isDigest, sha256, type Digest } from '../format/digest.ts';
import { MediaType, type Descriptor } from '../format/oci.ts';
import { EMPTY_CONFIG, EMPTY_CONFIG_BYTES, SPDX_MEDIA_TYPE, type SbomArtifact } from '../format/spdx.ts';
import { TooLargeError, type ImageReference, type RegistryClient } from './registry-client.ts';
import { describeRef } from './signatures.ts';

/** An artifact manifest is small; a referrer larger than this is not one of ours. */
const MAX_ARTIFACT_MANIFEST_SIZE = 4 * 1024 * 1024;
/** An SBOM of a few thousand packages is a few MiB; more than this is refused. */
export const MAX_SBOM_SIZE = 64 * 1024 * 1024;

export interface PublishedSbom {
  /** The SBOM manifest's digest: this push's, or the one the version had already. */
  digest: Digest;
  /** This push's document was there already (same bytes), nothing was sent. */
  existed: boolean;
  /** Another SBOM of the version was there already; this push's was not added. */
  kept?: Digest;
  /** The registry named the subject in OCI-Subject (it indexes referrers); false when it did not say. */
  indexed: boolean;
}

/** The SPDX referrers of `digest`, by the referrers API; undefined when the registry has none. */
export async function sbomReferrers(client: RegistryClient, ref: ImageReference, digest: Digest): Promise<Descriptor[] | undefined> {
  const found = await client.referrers(ref.repository, digest, SPDX_MEDIA_TYPE);
  if (!found) return undefined;
  // a registry that did not apply the filter lists every referrer: filtered here
  return found.manifests.filter((d) => d && d.artifactType === SPDX_MEDIA_TYPE && typeof d.digest === 'string' && isDigest(d.digest) && d.mediaType === MediaType.manifest);
}

/**
 * Pushes the SBOM artifact of `subject` unless the version has one: the same document (same
 * digest) is left as it is, and so is an SBOM another push made (an older vztpl's, whose creator
 * line differs): one SBOM per version. The empty config and the document go up first (when the
 * registry lacks them), then the manifest by digest.
 */
export async function publishSbom(client: RegistryClient, ref: ImageReference, subject: Descriptor, artifact: SbomArtifact): Promise<PublishedSbom> {
  const repo = ref.repository;
  const existing = await sbomReferrers(client, ref, subject.digest);
  if (existing?.some((d) => d.digest === artifact.digest)) return { digest: artifact.digest, existed: true, indexed: true };
  if (existing?.length) {
    const kept = [...existing].sort((a, b) => (a.digest < b.digest ? -1 : 1))[0]!.digest;
    return { digest: kept, existed: false, kept, indexed: true };
  }
  if (!(await client.hasBlob(repo, EMPTY_CONFIG.digest))) await client.pushBlob(repo, EMPTY_CONFIG.digest, EMPTY_CONFIG_BYTES);
  if (!(await client.hasBlob(repo, artifact.layer.digest))) await client.pushBlob(repo, artifact.layer.digest, artifact.document);
  const put = await client.putReferrer(repo, MediaType.manifest, artifact.manifest, artifact.digest);
  if (put.digest !== artifact.digest) throw new VztplError(`PUT SBOM of ${describeRef(ref)}: the registry stored digest ${put.digest}, not ${artifact.digest}`);
  return { digest: artifact.digest, existed: false, indexed: put.subject === subject.digest };
}

export interface FetchedSbom {
  /** The SBOM manifest's digest (the referrer). */
  digest: Digest;
  /** The SPDX document's bytes. */
  document: Buffer;
  /** SBOM referrers the version has (more than one only when pushed by other tools). */
  count: number;
}

/**
 * The SBOM of the manifest `digest` of `ref`'s repository: found by the referrers API, its
 * manifest checked (an SPDX artifact whose subject is that digest), its document fetched and
 * checked against the digest the manifest names. Exit 4 when there is none.
 */
export async function fetchSbom(client: RegistryClient, ref: ImageReference, digest: Digest): Promise<FetchedSbom> {
  const what = `${describeRef(ref)} (${digest})`;
  const referrers = await sbomReferrers(client, ref, digest);
  if (referrers === undefined) throw new VztplError(`${what} has no SBOM that can be found: the registry has no referrers API (GET /v2/${ref.repository}/referrers/${digest} answered 404)`, ExitCode.notFound);
  if (!referrers.length) throw new VztplError(`${what} has no SBOM (no referrer of artifactType ${SPDX_MEDIA_TYPE})`, ExitCode.notFound);
  // the newest first, by the created annotation; then by digest, for a stable choice
  const created = (d: Descriptor) => d.annotations?.['org.opencontainers.image.created'] ?? '';
  const chosen = [...referrers].sort((a, b) => (created(a) === created(b) ? (a.digest < b.digest ? -1 : 1) : created(a) < created(b) ? 1 : -1))[0]!;
  const name = `${ref.registry.replace(/^https?:\/\//, '')}/${ref.repository}@${chosen.digest}`;
  let got: { mediaType: string; bytes: Buffer } | undefined;
  try {
    got = await client.getManifestLimited(ref.repository, chosen.digest, [MediaType.manifest], MAX_ARTIFACT_MANIFEST_SIZE);
  } catch (err) {
    if (err instanceof TooLargeError) throw new VztplError(`${name}: the SBOM manifest is larger than ${MAX_ARTIFACT_MANIFEST_SIZE} bytes`);
    throw err;
  }
  if (!got) throw new VztplError(`${name}: the registry lists this SBOM but does not serve it`, ExitCode.notFound);
  if (sha256(got.bytes) !== chosen.digest) throw new VztplError(`${name}: the registry served a manifest of digest ${sha256(got.bytes)}`);
  let manifest: { artifactType?: unknown; subject?: { digest?: unknown }; layers?: unknown };
  try {
    manifest = JSON.parse(got.bytes.toString('utf8')) as typeof manifest;
  } catch {
    throw new VztplError(`${name}: the SBOM manifest is not JSON`);
  }
  if (manifest.artifactType !== SPDX_MEDIA_TYPE) throw new VztplError(`${name}: not an SPDX artifact (artifactType ${JSON.stringify(manifest.artifactType ?? null)})`);
  if (manifest.subject?.digest !== digest) throw new VztplError(`${name}: its subject is ${JSON.stringify(manifest.subject?.digest ?? null)}, not ${digest}`);
  const layer = Array.isArray(manifest.layers) ? (manifest.layers as Descriptor[]).find((l) => l && l.mediaType === SPDX_MEDIA_TYPE) : undefined;
  if (!layer || typeof layer.digest !== 'string' || !isDigest(layer.digest) || !Number.isSafeInteger(layer.size)) throw new VztplError(`${name}: no ${SPDX_MEDIA_TYPE} layer`);
  if (layer.size > MAX_SBOM_SIZE) throw new VztplError(`${name}: the document has ${layer.size} bytes, more than the ${MAX_SBOM_SIZE} accepted`);
  const document = await client.getBlobLimited(ref.repository, layer.digest, layer.size + 1);
  if (document.length !== layer.size || sha256(document) !== layer.digest) {
    throw new VztplError(`${name}: the registry served ${document.length} bytes of digest ${sha256(document)} for the document ${layer.digest} (${layer.size} bytes)`);
  }
  return { digest: chosen.digest, document, count: referrers.length };
}
