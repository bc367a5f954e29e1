// The "simple signing" payload cosign signs, and containers/image reads
// (signature/internal/sigstore_payload.go):
//
//   {"critical":{"identity":{"docker-reference":"REGISTRY/NAME"},
//                "image":{"docker-manifest-digest":"sha256:..."},
//                "type":"cosign container image signature"},
//    "optional":null}
//
// buildPayload writes cosign's bytes (Go's json.Marshal of a map: keys sorted, no spaces).
// parsePayload is as strict as containers/image: exactly these fields, no duplicate keys,
// "optional" null or an object whose "creator" is a string and "timestamp" an integer.
import { isDigest, type Digest } from '../digest.ts';
import { SignatureFormatError } from './errors.ts';

export const SIGNATURE_TYPE = 'cosign container image signature';
/** containers/image's iolimits.MaxSignatureBodySize: a payload is read up to this many bytes. */
export const MAX_PAYLOAD_SIZE = 4 * 1024 * 1024;

export interface SimpleSigningPayload {
  /** What the signer named: REGISTRY/NAME as cosign writes it, or with a :TAG as skopeo does. */
  dockerReference: string;
  digest: string;
  creator?: string;
  timestamp?: number;
}

/** cosign's payload for `digest` in `dockerReference` (REGISTRY/NAME, no tag). */
export function buildPayload(dockerReference: string, digest: Digest): Buffer {
  if (!dockerReference) throw new Error('buildPayload: empty docker reference');
  if (!isDigest(digest)) throw new Error(`buildPayload: not a sha256 digest: ${digest}`);
  return Buffer.from(
    JSON.stringify({
      critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': digest }, type: SIGNATURE_TYPE },
      optional: null,
    }),
  );
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The first key that appears twice in one object of `text` (valid JSON), or undefined. */
export function duplicateKey(text: string): string | undefined {
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.has(key)) return key;
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (ch === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (ch === '[') {
      stack.push(null);
    } else if (ch === '}' || ch === ']') {
      stack.pop();
    } else if (ch === ',') {
      expectKey = stack[stack.length - 1] != null;
    }
  }
  return undefined;
}

function object(value: Json | undefined, what: string, fields?: string[]): { [key: string]: Json } {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new SignatureFormatError(`signature payload: ${what} is not a JSON object`);
  if (fields) {
    const keys = Object.keys(value);
    const extra = keys.filter((k) => !fields.includes(k));
    const missing = fields.filter((k) => !keys.includes(k));
    if (extra.length) throw new SignatureFormatError(`signature payload: ${what} has an unexpected field ${JSON.stringify(extra[0])}`);
    if (missing.length) throw new SignatureFormatError(`signature payload: ${what} lacks the field ${JSON.stringify(missing[0])}`);
  }
  return value;
}

function string(value: Json | undefined, what: string): string {
  if (typeof value !== 'string') throw new SignatureFormatError(`signature payload: ${what} is not a string`);
  return value;
}

/** Parses a payload as containers/image does; throws SignatureFormatError saying what is wrong. */
export function parsePayload(bytes: Buffer): SimpleSigningPayload {
  if (bytes.length > MAX_PAYLOAD_SIZE) throw new SignatureFormatError(`signature payload: ${bytes.length} bytes, more than the ${MAX_PAYLOAD_SIZE} a payload may have`);
  const text = bytes.toString('utf8');
  let root: Json;
  try {
    root = JSON.parse(text) as Json;
  } catch (err) {
    throw new SignatureFormatError(`signature payload: not JSON (${(err as Error).message})`);
  }
  const dup = duplicateKey(text);
  if (dup !== undefined) throw new SignatureFormatError(`signature payload: duplicate field ${JSON.stringify(dup)}`);
  const top = object(root, 'the payload', ['critical', 'optional']);
  const result: Partial<SimpleSigningPayload> = {};
  if (top.optional !== null) {
    const optional = object(top.optional, '"optional"');
    if ('creator' in optional) result.creator = string(optional.creator, 'optional.creator');
    if ('timestamp' in optional) {
      if (typeof optional.timestamp !== 'number' || !Number.isInteger(optional.timestamp)) throw new SignatureFormatError('signature payload: optional.timestamp is not an integer');
      result.timestamp = optional.timestamp;
    }
  }
  const critical = object(top.critical, '"critical"', ['type', 'image', 'identity']);
  const type = string(critical.type, 'critical.type');
  if (type !== SIGNATURE_TYPE) throw new SignatureFormatError(`signature payload: unrecognized signature type ${JSON.stringify(type)}`);
  const image = object(critical.image, 'critical.image', ['docker-manifest-digest']);
  const identity = object(critical.identity, 'critical.identity', ['docker-reference']);
  return {
    dockerReference: string(identity['docker-reference'], 'critical.identity.docker-reference'),
    digest: string(image['docker-manifest-digest'], 'critical.image.docker-manifest-digest'),
    ...result,
  };
}

/** The repository part of a docker reference: REGISTRY/NAME without :TAG or @DIGEST. */
export function repositoryOf(dockerReference: string): string {
  const at = dockerReference.indexOf('@');
  const name = at === -1 ? dockerReference : dockerReference.slice(0, at);
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? name.slice(0, colon) : name;
}
