// Signatures in a registry, as cosign and containers/image keep them: the signature manifest
// tagged sha256-<hex>.sig beside the signed manifest (format/sigstore/manifest.ts). Reading it
// (with containers/image's size limits), fetching its payloads, and publishing a signature by
// appending a layer to what is there. The format is decided in format/sigstore/; this is the I/O.
import { ExitCode, VztplError } from '../common/errors.ts';
import { isDigest, sha256, type Digest } from '../format/digest.ts';
import { MediaType } from '../format/oci.ts';
import {
  appendSignature,
  buildSignatureManifest,
  MAX_PAYLOAD_SIZE,
  MAX_SIGNATURE_MANIFEST_SIZE,
  parseSignatureManifest,
  SignatureFormatError,
  signatureLayer,
  signatureTag,
  SIMPLE_SIGNING_MEDIA_TYPE,
  verifySignatureLayers,
  type PublicKey,
  type SignatureLayer,
} from '../format/sigstore/index.ts';
import { registryKey } from './credentials.ts';
import { RegistryError, TooLargeError, type ImageReference, type RegistryClient } from './registry-client.ts';

/** containers/image's iolimits.MaxManifestBodySize, for the signed image's manifest too. */
const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;
const MANIFEST_TYPES = [MediaType.manifest, MediaType.index, MediaType.dockerManifest, MediaType.dockerManifestList];

/** REGISTRY/NAME as signatures name it (the docker reference without a tag): "127.0.0.1:5000/acme/web". */
export function dockerRepository(ref: ImageReference): string {
  return `${registryKey(ref.registry)}/${ref.repository}`;
}

export function describeRef(ref: ImageReference): string {
  const r = ref.reference ?? 'latest';
  return `${dockerRepository(ref)}${isDigest(r) ? '@' : ':'}${r}`;
}

/** The manifest a reference names and its digest (computed from its bytes); exit 4 when there is none. */
export async function resolveManifest(client: RegistryClient, ref: ImageReference): Promise<{ digest: Digest; mediaType: string; bytes: Buffer }> {
  const reference = ref.reference ?? 'latest';
  let got: { mediaType: string; bytes: Buffer } | undefined;
  try {
    got = await client.getManifestLimited(ref.repository, reference, MANIFEST_TYPES, MAX_MANIFEST_SIZE);
  } catch (err) {
    if (err instanceof TooLargeError) throw new VztplError(`${describeRef(ref)}: the manifest is larger than ${MAX_MANIFEST_SIZE} bytes`);
    throw err;
  }
  if (!got) throw new VztplError(`${describeRef(ref)}: unknown reference (the registry has no such manifest)`, ExitCode.notFound);
  const digest = sha256(got.bytes);
  if (isDigest(reference) && digest !== reference) throw new VztplError(`${describeRef(ref)}: the registry served a manifest of digest ${digest}`);
  return { digest, mediaType: got.mediaType, bytes: got.bytes };
}

export interface FetchedSignatures {
  /** REPOSITORY:sha256-<hex>.sig, for messages. */
  name: string;
  layers: SignatureLayer[];
}

/** The signature manifest of `digest`, parsed; undefined when there is none (unsigned). */
export async function fetchSignatureManifest(client: RegistryClient, ref: ImageReference, digest: Digest): Promise<FetchedSignatures | undefined> {
  const tag = signatureTag(digest);
  const name = `${dockerRepository(ref)}:${tag}`;
  let got: { mediaType: string; bytes: Buffer } | undefined;
  try {
    got = await client.getManifestLimited(ref.repository, tag, [MediaType.manifest], MAX_SIGNATURE_MANIFEST_SIZE);
  } catch (err) {
    if (err instanceof TooLargeError) throw new SignatureFormatError(`${name}: the signature manifest is larger than ${MAX_SIGNATURE_MANIFEST_SIZE} bytes`);
    throw err;
  }
  if (!got) return undefined;
  return { name, layers: parseSignatureManifest(got.bytes, got.mediaType, name) };
}

/** Each layer's payload, or why it could not be read; only simple-signing layers are fetched. */
export async function fetchPayloads(client: RegistryClient, ref: ImageReference, layers: SignatureLayer[]): Promise<Array<{ layer: SignatureLayer; payload: Buffer | { error: string } }>> {
  const out: Array<{ layer: SignatureLayer; payload: Buffer | { error: string } }> = [];
  for (const layer of layers) {
    if (layer.mediaType !== SIMPLE_SIGNING_MEDIA_TYPE) {
      out.push({ layer, payload: { error: 'not a signature' } });
      continue;
    }
    if (layer.size > MAX_PAYLOAD_SIZE) {
      out.push({ layer, payload: { error: `${layer.size} bytes, more than the ${MAX_PAYLOAD_SIZE} a payload may have` } });
      continue;
    }
    try {
      // one byte more than declared is enough to see that the size is wrong
      out.push({ layer, payload: await client.getBlobLimited(ref.repository, layer.digest, Math.min(layer.size + 1, MAX_PAYLOAD_SIZE)) });
    } catch (err) {
      if (err instanceof RegistryError || err instanceof TooLargeError) out.push({ layer, payload: { error: err.message } });
      else throw err;
    }
  }
  return out;
}

export interface Published {
  tag: string;
  /** False when the same signature was there already. */
  appended: boolean;
  /** Signatures in the manifest now. */
  count: number;
}

/**
 * Adds a signature (payload + base64 signature) to the signature manifest of `digest`: the
 * payload and a new config go up, then the manifest with the layer appended. A signature
 * manifest that is there but does not parse is not replaced: the error says so, nothing is sent.
 */
export async function publishSignature(client: RegistryClient, ref: ImageReference, digest: Digest, payload: Buffer, base64Signature: string): Promise<Published> {
  const tag = signatureTag(digest);
  const existing = await fetchSignatureManifest(client, ref, digest).catch((err: unknown) => {
    if (err instanceof SignatureFormatError) throw new SignatureFormatError(`${err.message}; refusing to replace it (delete the tag ${tag} to start afresh)`);
    throw err;
  });
  const { layers, appended } = appendSignature(existing?.layers ?? [], signatureLayer(payload, base64Signature));
  if (!appended) return { tag, appended, count: layers.length };
  const built = buildSignatureManifest(layers);
  const repo = ref.repository;
  const payloadDigest = sha256(payload);
  if (!(await client.hasBlob(repo, payloadDigest))) await client.pushBlob(repo, payloadDigest, payload);
  if (!(await client.hasBlob(repo, built.configDigest))) await client.pushBlob(repo, built.configDigest, built.config);
  await client.putManifest(repo, tag, MediaType.manifest, built.manifest);
  return { tag, appended, count: layers.length };
}

/**
 * Whether `digest` already carries a signature by `key` that verifies for `ref`'s repository: a
 * push of the same version again then signs nothing (ECDSA signatures differ each time, so
 * signing again would add a layer per push).
 */
export async function signedBy(client: RegistryClient, ref: ImageReference, digest: Digest, key: PublicKey): Promise<boolean> {
  const existing = await fetchSignatureManifest(client, ref, digest);
  if (!existing) return false;
  const outcome = verifySignatureLayers(await fetchPayloads(client, ref, existing.layers), key, { digest, repository: dockerRepository(ref) });
  return Boolean(outcome.verified);
}
