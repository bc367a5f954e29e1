// Public keys as cosign writes them and containers/image reads them (sigstore's
// cryptoutils.UnmarshalPEMToPublicKey): PEM "PUBLIC KEY" (PKIX), or "RSA PUBLIC KEY" (PKCS#1).
// Signatures are checked as sigstore's LoadVerifier does with SHA-256, the hash containers/image
// hard-codes: ECDSA (ASN.1 DER signature), RSA PKCS#1 v1.5, Ed25519 (over the message itself).
// No private-key code here: a host that only verifies loads nothing more.
import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { KeyFileError } from './errors.ts';
import { decodePem } from './pem.ts';

const crypto = () => process.getBuiltinModule('node:crypto');

export interface PublicKey {
  key: KeyObject;
  /** "SHA256:<hex>" of the key's PKIX (SubjectPublicKeyInfo) DER: names the key in messages. */
  fingerprint: string;
  /** "ecdsa-P-256", "rsa-2048", "ed25519". */
  description: string;
}

export function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      return `ecdsa-${details.namedCurve === 'prime256v1' ? 'P-256' : details.namedCurve === 'secp384r1' ? 'P-384' : details.namedCurve === 'secp521r1' ? 'P-521' : (details.namedCurve ?? '?')}`;
    case 'rsa':
      return `rsa-${details.modulusLength ?? '?'}`;
    default:
      return String(key.asymmetricKeyType);
  }
}

const SUPPORTED = new Set(['ec', 'rsa', 'ed25519']);

export function publicKeyInfo(key: KeyObject): PublicKey {
  const der = key.export({ format: 'der', type: 'spki' });
  return { key, fingerprint: `SHA256:${crypto().createHash('sha256').update(der).digest('hex')}`, description: describeKey(key) };
}

/** Reads and parses a public key file; every failure names the file (exit 2). */
export async function loadPublicKey(file: string): Promise<PublicKey> {
  let text: Buffer;
  try {
    text = await readFile(file);
  } catch (err) {
    throw new KeyFileError(file, 'unreadable', `cannot read the public key: ${(err as Error).message}`);
  }
  return parsePublicKey(text, file);
}

/** Parses a public key file's text; `file` names it in errors. */
export function parsePublicKey(text: string | Buffer, file: string): PublicKey {
  const block = decodePem(Buffer.isBuffer(text) ? text.toString('latin1') : text);
  if (!block) throw new KeyFileError(file, 'not-pem', 'not a PEM public key (no "-----BEGIN PUBLIC KEY-----" block)');
  let key: KeyObject;
  try {
    if (block.type === 'PUBLIC KEY') key = crypto().createPublicKey({ key: block.bytes, format: 'der', type: 'spki' });
    else if (block.type === 'RSA PUBLIC KEY') key = crypto().createPublicKey({ key: block.bytes, format: 'der', type: 'pkcs1' });
    else throw new KeyFileError(file, 'pem-type', `PEM type "${block.type}" is not a public key (want "PUBLIC KEY"; give the .pub file)`);
  } catch (err) {
    if (err instanceof KeyFileError) throw err;
    throw new KeyFileError(file, 'not-a-key', `the PEM block does not hold a public key: ${(err as Error).message}`);
  }
  if (!SUPPORTED.has(key.asymmetricKeyType ?? '')) throw new KeyFileError(file, 'unsupported-key', `unsupported key type ${key.asymmetricKeyType} (ECDSA, RSA or Ed25519)`);
  return publicKeyInfo(key);
}

export function encodePublicKey(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'spki' }).toString();
}

/** Whether `signature` (raw bytes) is `key`'s signature of `message`, as sigstore checks it. */
export function verifyMessage(key: KeyObject, message: Buffer, signature: Buffer): boolean {
  const algorithm = key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  try {
    if (key.asymmetricKeyType === 'ec') return crypto().verify(algorithm, message, { key, dsaEncoding: 'der' }, signature);
    if (key.asymmetricKeyType === 'rsa') return crypto().verify(algorithm, message, { key, padding: crypto().constants.RSA_PKCS1_PADDING }, signature);
    return crypto().verify(algorithm, message, key, signature);
  } catch {
    return false; // a malformed signature is not a signature
  }
}
