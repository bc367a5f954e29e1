// Checking the signatures of a signature manifest against one public key, in containers/image's
// order (signature/policy_eval_sigstore.go): a layer that is not a simple-signing payload is not a
// signature; the annotation must hold base64; the signature must verify over the payload's bytes;
// then the payload must parse and name the expected digest and repository. vztpl checks first,
// as containers/image 5.23 does not, that the payload it was served is the one the manifest names
// (its digest and size): a payload changed on the way is "tampered", not just "not verified".
// Pure: the caller fetches the manifest and the payloads.
import { sha256 } from '../digest.ts';
import { SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, type SignatureLayer } from './manifest.ts';
import { parsePayload, repositoryOf, type SimpleSigningPayload } from './payload.ts';
import { verifyMessage, type PublicKey } from './public-key.ts';

export type RejectionKind = 'not-a-signature' | 'no-signature-annotation' | 'tampered' | 'other-key' | 'bad-payload' | 'other-digest' | 'other-repository';

export interface Rejection {
  layer: number;
  kind: RejectionKind;
  message: string;
}

export interface Expected {
  /** The manifest digest the signature must name. */
  digest: string;
  /** REGISTRY/NAME (no tag) the signature must name. */
  repository: string;
}

export type LayerResult = { ok: true; layer: number; payload: SimpleSigningPayload } | ({ ok: false } & Rejection);

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Checks one layer of a signature manifest; `payload` is the blob fetched for it, or why it could not be. */
export function checkSignatureLayer(index: number, layer: SignatureLayer, payload: Buffer | { error: string }, key: PublicKey, expected: Expected): LayerResult {
  const reject = (kind: RejectionKind, message: string): LayerResult => ({ ok: false, layer: index, kind, message });
  if (layer.mediaType !== SIMPLE_SIGNING_MEDIA_TYPE) return reject('not-a-signature', `layer ${index} is a ${layer.mediaType}, not a signature`);
  if (!Buffer.isBuffer(payload)) return reject('tampered', `layer ${index}: its payload ${layer.digest} could not be read: ${payload.error}`);
  if (payload.length !== layer.size || sha256(payload) !== layer.digest) {
    return reject('tampered', `layer ${index}: tampered payload: the registry served ${payload.length} bytes of digest ${sha256(payload)}, the signature manifest names ${layer.size} bytes of ${layer.digest}`);
  }
  const b64 = layer.annotations?.[SIGNATURE_ANNOTATION];
  if (b64 === undefined) return reject('no-signature-annotation', `layer ${index} has no ${SIGNATURE_ANNOTATION} annotation`);
  if (!STRICT_BASE64.test(b64)) return reject('other-key', `layer ${index}: the ${SIGNATURE_ANNOTATION} annotation is not base64`);
  if (!verifyMessage(key.key, payload, Buffer.from(b64, 'base64'))) {
    return reject('other-key', `layer ${index}: the signature does not verify with key ${key.fingerprint} (signed by another key, or its payload was altered)`);
  }
  let parsed: SimpleSigningPayload;
  try {
    parsed = parsePayload(payload);
  } catch (err) {
    return reject('bad-payload', `layer ${index}: ${(err as Error).message}`);
  }
  if (parsed.digest !== expected.digest) return reject('other-digest', `layer ${index}: a signature for another digest: ${parsed.digest}, not ${expected.digest}`);
  const repository = repositoryOf(parsed.dockerReference);
  if (repository !== expected.repository) return reject('other-repository', `layer ${index}: a signature for another repository: ${parsed.dockerReference}, not ${expected.repository}`);
  return { ok: true, layer: index, payload: parsed };
}

export interface VerifyOutcome {
  verified?: { layer: number; payload: SimpleSigningPayload };
  rejections: Rejection[];
  /** How many layers are signatures (simple-signing payloads), all of them. */
  signatures: number;
}

/** The first layer that verifies, and why each one before it did not. */
export function verifySignatureLayers(layers: Array<{ layer: SignatureLayer; payload: Buffer | { error: string } }>, key: PublicKey, expected: Expected): VerifyOutcome {
  const rejections: Rejection[] = [];
  const signatures = layers.filter(({ layer }) => layer.mediaType === SIMPLE_SIGNING_MEDIA_TYPE).length;
  for (const [i, { layer, payload }] of layers.entries()) {
    const result = checkSignatureLayer(i, layer, payload, key, expected);
    if (result.ok) return { verified: { layer: result.layer, payload: result.payload }, rejections, signatures };
    if (result.kind !== 'not-a-signature') rejections.push({ layer: result.layer, kind: result.kind, message: result.message });
  }
  return { rejections, signatures };
}
