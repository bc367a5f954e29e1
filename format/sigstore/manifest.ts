// The signature manifest cosign writes and containers/image reads (use-sigstore-attachments):
// an OCI image manifest tagged "sha256-<hex>.sig" in the signed image's repository, one layer per
// signature: the payload as a blob of media type application/vnd.dev.cosign.simplesigning.v1+json,
// the base64 signature in the layer annotation dev.cosignproject.cosign/signature. The config is
// what go-containerregistry writes for cosign (an empty image whose diff_ids are the payloads).
// A second signature appends a layer; one already there (same payload and annotations) is not
// added twice, as containers/image decides (layerMatchesSigstoreSignature).
import { isDigest, sha256, type Digest } from '../digest.ts';
import { MediaType } from '../oci.ts';
import { SignatureFormatError } from './errors.ts';
import { MAX_PAYLOAD_SIZE } from './payload.ts';

export const SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
/** containers/image's iolimits.MaxManifestBodySize. */
export const MAX_SIGNATURE_MANIFEST_SIZE = 4 * 1024 * 1024;
/** More signatures than this on one digest is not a signature list but an attack on the verifier. */
export const MAX_SIGNATURE_LAYERS = 1000;

/** The tag of the signatures of `digest`: "sha256-<hex>.sig". */
export function signatureTag(digest: Digest): string {
  if (!isDigest(digest)) throw new Error(`not a sha256 digest: ${digest}`);
  return `${digest.replace(':', '-')}.sig`;
}

/** Whether a tag is one signatureTag makes. */
export function isSignatureTag(tag: string): boolean {
  return /^sha256-[a-f0-9]{64}\.sig$/.test(tag);
}

export interface SignatureLayer {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
}

/** The layer descriptor of one signature: its payload's digest and size, the signature in the annotation. */
export function signatureLayer(payload: Buffer, base64Signature: string): SignatureLayer {
  return { mediaType: SIMPLE_SIGNING_MEDIA_TYPE, digest: sha256(payload), size: payload.length, annotations: { [SIGNATURE_ANNOTATION]: base64Signature } };
}

export interface SignatureManifest {
  manifest: Buffer;
  config: Buffer;
  configDigest: Digest;
}

const ZERO_TIME = '0001-01-01T00:00:00Z';

/** The config and manifest bytes for these layers, field for field as cosign writes them. */
export function buildSignatureManifest(layers: SignatureLayer[]): SignatureManifest {
  const config = Buffer.from(
    JSON.stringify({
      architecture: '',
      created: ZERO_TIME,
      history: layers.map(() => ({ created: ZERO_TIME })),
      os: '',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      config: {},
    }),
  );
  const configDigest = sha256(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.manifest,
      config: { mediaType: MediaType.config, size: config.length, digest: configDigest },
      layers: layers.map((l) => ({ mediaType: l.mediaType, size: l.size, digest: l.digest, ...(l.annotations ? { annotations: l.annotations } : {}) })),
    }),
  );
  return { manifest, config, configDigest };
}

/** Whether `layer` already holds this signature (same media type, payload and annotations). */
export function sameSignature(layer: SignatureLayer, candidate: SignatureLayer): boolean {
  if (layer.mediaType !== candidate.mediaType || layer.size !== candidate.size || layer.digest !== candidate.digest) return false;
  const a = layer.annotations ?? {};
  const b = candidate.annotations ?? {};
  return Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);
}

/** The layers with `added` appended, unless one of them is that signature already. */
export function appendSignature(layers: SignatureLayer[], added: SignatureLayer): { layers: SignatureLayer[]; appended: boolean } {
  if (layers.some((l) => sameSignature(l, added))) return { layers, appended: false };
  if (layers.length >= MAX_SIGNATURE_LAYERS) throw new SignatureFormatError(`the signature manifest has ${layers.length} signatures already, the most one digest may have`);
  return { layers: [...layers, added], appended: true };
}

/**
 * Parses a signature manifest. `what` names it (REPOSITORY:sha256-<hex>.sig) in errors; a
 * manifest that is larger than containers/image would read, is not JSON, or is not an OCI image
 * manifest is refused. Layers of other media types are kept (attachments): callers skip them.
 */
export function parseSignatureManifest(bytes: Buffer, contentType: string | undefined, what: string): SignatureLayer[] {
  if (bytes.length > MAX_SIGNATURE_MANIFEST_SIZE) throw new SignatureFormatError(`${what}: the signature manifest has ${bytes.length} bytes, more than ${MAX_SIGNATURE_MANIFEST_SIZE}`);
  const type = contentType?.split(';')[0]!.trim();
  let value: any;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new SignatureFormatError(`${what}: the signature manifest is not JSON (${(err as Error).message})`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new SignatureFormatError(`${what}: the signature manifest is not a JSON object`);
  const mediaType = value.mediaType ?? type;
  if (mediaType !== MediaType.manifest || (type && type !== MediaType.manifest)) {
    throw new SignatureFormatError(`${what}: not an OCI image manifest (media type ${JSON.stringify(type || value.mediaType || null)})`);
  }
  if (value.schemaVersion !== 2) throw new SignatureFormatError(`${what}: schemaVersion is ${JSON.stringify(value.schemaVersion ?? null)}, not 2`);
  if (!Array.isArray(value.layers)) throw new SignatureFormatError(`${what}: the signature manifest has no layers list`);
  if (value.layers.length > MAX_SIGNATURE_LAYERS) throw new SignatureFormatError(`${what}: ${value.layers.length} layers, more than the ${MAX_SIGNATURE_LAYERS} a signature manifest may have`);
  return (value.layers as unknown[]).map((raw, i) => {
    const l = raw as Record<string, unknown>;
    if (!l || typeof l !== 'object' || typeof l.mediaType !== 'string' || typeof l.digest !== 'string' || !isDigest(l.digest) || !Number.isSafeInteger(l.size) || (l.size as number) < 0) {
      throw new SignatureFormatError(`${what}: layer ${i} is not a descriptor with a media type, a sha256 digest and a size`);
    }
    let annotations: Record<string, string> | undefined;
    if (l.annotations !== undefined && l.annotations !== null) {
      if (typeof l.annotations !== 'object' || Array.isArray(l.annotations) || Object.values(l.annotations).some((v) => typeof v !== 'string')) {
        throw new SignatureFormatError(`${what}: layer ${i}'s annotations are not a map of strings`);
      }
      annotations = l.annotations as Record<string, string>;
    }
    return { mediaType: l.mediaType, digest: l.digest, size: l.size as number, ...(annotations ? { annotations } : {}) };
  });
}

/** Whether a layer's payload is small enough to fetch (containers/image's MaxSignatureBodySize). */
export function payloadFetchable(layer: SignatureLayer): boolean {
  return layer.size <= MAX_PAYLOAD_SIZE;
}
