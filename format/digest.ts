// Content digests as OCI writes them: "sha256:<64 hex>".
import type { Hash } from 'node:crypto';
import { fs } from '../common/builtins.ts';

// node:crypto is loaded on first use: `vztpl create` checks digests' form but hashes nothing.
const createHash = (algorithm: string): Hash => process.getBuiltinModule('node:crypto').createHash(algorithm);

export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: string): value is Digest {
  return DIGEST_RE.test(value);
}

export function sha256(data: string | Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function digestOfHash(hash: Hash): Digest {
  return `sha256:${hash.digest('hex')}`;
}

export async function sha256File(path: string): Promise<Digest> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return digestOfHash(hash);
}

/** The hex part of a digest, as used in blob file names. */
export function digestHex(digest: Digest | string): string {
  if (!isDigest(digest)) throw new Error(`not a sha256 digest: ${digest}`);
  return digest.slice('sha256:'.length);
}
