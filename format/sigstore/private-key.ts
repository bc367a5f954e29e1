// cosign's encrypted private key: PEM type "ENCRYPTED COSIGN PRIVATE KEY" around the JSON of
// go-tuf's (later secure-systems-lab's) `encrypted` package, the one containers/image 5.23 reads
// (signature/sigstore/copied.go: loadPrivateKey -> encrypted.Decrypt -> x509.ParsePKCS8PrivateKey):
//
//   {"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"<32 bytes, base64>"},
//    "cipher":{"name":"nacl/secretbox","nonce":"<24 bytes, base64>"},
//    "ciphertext":"<secretbox(PKCS#8 DER), base64>"}
//
// The secretbox key is scrypt(password, salt, N, r, p, 32 bytes). The reader refuses any other KDF
// parameters (as go-tuf's CheckParams does: tampered parameters must not cost a denial of service).
// XSalsa20-Poly1305 (NaCl's secretbox) comes from tweetnacl: node:crypto has no XSalsa20.
import type { KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';
import { KeyFileError } from './errors.ts';
import { decodePem, encodePem } from './pem.ts';
import { describeKey, encodePublicKey, publicKeyInfo, type PublicKey } from './public-key.ts';

export const COSIGN_PRIVATE_KEY_PEM_TYPE = 'ENCRYPTED COSIGN PRIVATE KEY';
export const SCRYPT = { N: 32768, r: 8, p: 1 } as const;
const SALT_SIZE = 32;
const NONCE_SIZE = 24;
const KEY_SIZE = 32;

const crypto = () => process.getBuiltinModule('node:crypto');

function scrypt(password: Buffer, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    crypto().scrypt(password, salt, KEY_SIZE, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: 64 * 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** Encrypts `plaintext` as go-tuf's encrypted.Encrypt does; the JSON bytes, field order as Go writes them. */
export async function encryptWithPassword(plaintext: Buffer, password: string): Promise<Buffer> {
  const salt = crypto().randomBytes(SALT_SIZE);
  const nonce = crypto().randomBytes(NONCE_SIZE);
  const key = await scrypt(Buffer.from(password, 'utf8'), salt);
  const box = nacl.secretbox(plaintext, nonce, key);
  const data = {
    kdf: { name: 'scrypt', params: { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(box).toString('base64'),
  };
  return Buffer.from(JSON.stringify(data));
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
function base64Field(value: unknown, what: string, file: string): Buffer {
  if (typeof value !== 'string' || !B64.test(value) || value.length % 4 !== 0) throw new KeyFileError(file, 'not-json', `${what} is not base64`);
  return Buffer.from(value, 'base64');
}

/** Decrypts go-tuf's encrypted JSON; errors name `file` and say which part is wrong. */
export async function decryptWithPassword(json: Buffer, password: string, file: string): Promise<Buffer> {
  let data: any;
  try {
    data = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new KeyFileError(file, 'not-json', `the encrypted key is not JSON (${(err as Error).message})`);
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw new KeyFileError(file, 'not-json', 'the encrypted key is not a JSON object');
  const kdf = data.kdf ?? {};
  const cipher = data.cipher ?? {};
  if (kdf.name !== 'scrypt') throw new KeyFileError(file, 'kdf', `unknown key derivation ${JSON.stringify(kdf.name ?? null)} (want "scrypt")`);
  if (cipher.name !== 'nacl/secretbox') throw new KeyFileError(file, 'cipher', `unknown cipher ${JSON.stringify(cipher.name ?? null)} (want "nacl/secretbox")`);
  const params = kdf.params ?? {};
  if (params.N !== SCRYPT.N || params.r !== SCRYPT.r || params.p !== SCRYPT.p) {
    throw new KeyFileError(file, 'kdf', `unexpected scrypt parameters ${JSON.stringify(params)} (cosign's are N=${SCRYPT.N}, r=${SCRYPT.r}, p=${SCRYPT.p})`);
  }
  const salt = base64Field(kdf.salt ?? '', 'kdf.salt', file);
  const nonce = base64Field(cipher.nonce ?? '', 'cipher.nonce', file);
  const ciphertext = base64Field(data.ciphertext ?? '', 'ciphertext', file);
  if (nonce.length !== NONCE_SIZE) throw new KeyFileError(file, 'cipher', `the nonce has ${nonce.length} bytes, not ${NONCE_SIZE}`);
  const key = await scrypt(Buffer.from(password, 'utf8'), salt);
  const plain = nacl.secretbox.open(ciphertext, nonce, key);
  if (!plain) throw new KeyFileError(file, 'wrong-password', 'wrong password for this private key (or the key file is damaged)');
  return Buffer.from(plain);
}

export interface PrivateKey {
  key: KeyObject;
  publicKey: PublicKey;
}

/** Reads a cosign private key file's text with its password; `file` names it in errors. */
export async function decodeCosignPrivateKey(text: string | Buffer, password: string, file: string): Promise<PrivateKey> {
  const block = decodePem(Buffer.isBuffer(text) ? text.toString('latin1') : text);
  if (!block) throw new KeyFileError(file, 'not-pem', `not a PEM file (no "-----BEGIN ${COSIGN_PRIVATE_KEY_PEM_TYPE}-----" block)`);
  if (block.type !== COSIGN_PRIVATE_KEY_PEM_TYPE) {
    const hint = block.type === 'PUBLIC KEY' ? ': this is a public key, give the .key file' : '';
    throw new KeyFileError(file, 'pem-type', `PEM type "${block.type}" is not a cosign private key (want "${COSIGN_PRIVATE_KEY_PEM_TYPE}")${hint}`);
  }
  const der = await decryptWithPassword(block.bytes, password, file);
  let key: KeyObject;
  try {
    key = crypto().createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw new KeyFileError(file, 'not-a-key', `the decrypted content is not a PKCS#8 private key: ${(err as Error).message}`);
  }
  if (!['ec', 'rsa', 'ed25519'].includes(key.asymmetricKeyType ?? '')) throw new KeyFileError(file, 'unsupported-key', `unsupported key type ${describeKey(key)} (ECDSA, RSA or Ed25519)`);
  return { key, publicKey: publicKeyInfo(crypto().createPublicKey(key)) };
}

export async function encodeCosignPrivateKey(key: KeyObject, password: string): Promise<string> {
  const der = key.export({ format: 'der', type: 'pkcs8' });
  return encodePem(COSIGN_PRIVATE_KEY_PEM_TYPE, await encryptWithPassword(der, password));
}

/** A new ECDSA P-256 key pair, as `cosign generate-key-pair` makes: the .key and .pub texts. */
export async function generateCosignKeyPair(password: string): Promise<{ privatePem: string; publicPem: string; publicKey: PublicKey }> {
  const { privateKey, publicKey } = crypto().generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privatePem: await encodeCosignPrivateKey(privateKey, password), publicPem: encodePublicKey(publicKey), publicKey: publicKeyInfo(publicKey) };
}

/** Signs `message` as sigstore's SignerVerifiers do (SHA-256; ECDSA as ASN.1 DER). */
export function signMessage(key: KeyObject, message: Buffer): Buffer {
  if (key.asymmetricKeyType === 'ed25519') return crypto().sign(null, message, key);
  if (key.asymmetricKeyType === 'ec') return crypto().sign('sha256', message, { key, dsaEncoding: 'der' });
  return crypto().sign('sha256', message, { key, padding: crypto().constants.RSA_PKCS1_PADDING });
}
