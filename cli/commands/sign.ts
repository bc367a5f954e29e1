import { readFile } from 'node:fs/promises';
import { UsageError } from '../../common/errors.ts';
import { findCredentials } from '../../client/credentials.ts';
import { parseImageReference, RegistryClient, type ImageReference } from '../../client/registry-client.ts';
import { describeRef, dockerRepository, publishSignature, resolveManifest, type Published } from '../../client/signatures.ts';
import type { Digest } from '../../format/digest.ts';
import { buildPayload, decodePem, KeyFileError } from '../../format/sigstore/index.ts';
import { COSIGN_PRIVATE_KEY_PEM_TYPE, decodeCosignPrivateKey, signMessage, type PrivateKey } from '../../format/sigstore/private-key.ts';
import { parseCommandArgs } from '../args.ts';
import { promptHidden } from '../prompt.ts';

const HELP = `
Usage: vztpl sign REGISTRY/NAME:VERSION|REGISTRY/NAME@DIGEST --key FILE [--ca-file FILE]

Signs a published template version in the sigstore (cosign) format: a "simple signing" payload
naming REGISTRY/NAME and the manifest digest, signed with the key (ECDSA P-256, SHA-256), kept
in the same repository as the manifest tagged sha256-<hex>.sig. A signature by another key that
is there already stays: this one is added beside it. cosign, podman and skopeo (policy.json
"sigstoreSigned", registries.d "use-sigstore-attachments: true") and "vztpl verify" check it.

The key is a cosign private key ("vztpl key generate", or cosign generate-key-pair); its
password comes from $VZTPL_KEY_PASSWORD, else it is asked at the terminal.

An HTTPS registry's certificate is verified against the system's CAs and --ca-file FILE
(default $VZTPL_CA_FILE), a PEM file of the CA certificates of a private CA.

Example:
  vztpl sign 127.0.0.1:5000/acme/debian-12:1.0.0 --key acme.key
`;

/** Reads and decrypts a cosign private key; every failure names the file (exit 2). */
export async function loadSigningKey(file: string): Promise<PrivateKey> {
  let text: Buffer;
  try {
    text = await readFile(file);
  } catch (err) {
    throw new KeyFileError(file, 'unreadable', `cannot read the private key: ${(err as Error).message}`);
  }
  // The file's kind is checked before a password is asked for.
  const block = decodePem(text.toString('latin1'));
  if (!block) throw new KeyFileError(file, 'not-pem', `not a PEM file (no "-----BEGIN ${COSIGN_PRIVATE_KEY_PEM_TYPE}-----" block)`);
  let password = process.env.VZTPL_KEY_PASSWORD;
  if (password === undefined && block.type === COSIGN_PRIVATE_KEY_PEM_TYPE) {
    if (!process.stdin.isTTY) throw new UsageError(`${file}: no password for the private key: set VZTPL_KEY_PASSWORD, or run on a terminal to be asked`);
    password = await promptHidden(`Password for ${file}: `, 'key password');
  }
  return decodeCosignPrivateKey(text, password ?? '', file);
}

/** Signs `digest` as a manifest of `ref`'s repository and adds the signature to its .sig manifest. */
export async function signDigest(client: RegistryClient, ref: ImageReference, digest: Digest, key: PrivateKey): Promise<Published> {
  const payload = buildPayload(dockerRepository(ref), digest);
  const signature = signMessage(key.key, payload).toString('base64');
  return publishSignature(client, ref, digest, payload, signature);
}

export function reportSigned(ref: ImageReference, digest: Digest, key: PrivateKey, published: Published): string {
  const where = `${dockerRepository(ref)}:${published.tag}`;
  const what = published.appended ? `${published.count} signature${published.count === 1 ? '' : 's'} in ${where}` : `that signature was in ${where} already`;
  return `signed ${dockerRepository(ref)}@${digest} with key ${key.publicKey.fingerprint} (${key.publicKey.description}); ${what}`;
}

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('sign', argv, { key: { type: 'string' }, json: { type: 'boolean', default: false }, 'ca-file': { type: 'string' } }, HELP);
  if (!args) return 0;
  const [target, ...extra] = args.positionals;
  if (!target || extra.length) throw new UsageError(`sign: name one template version\n${HELP}`);
  if (!args.values.key) throw new UsageError(`sign: give the private key with --key FILE\n${HELP}`);
  const ref = parseImageReference(target);
  if (!ref.reference) throw new UsageError(`sign: ${target} names no version or digest (as in ${target}:1.0.0)`);
  // the key first: a bad key file or password publishes nothing and asks the registry nothing
  const key = await loadSigningKey(args.values.key);
  const client = new RegistryClient(ref.registry, { credentials: () => findCredentials(ref.registry), caFile: args.values['ca-file'] });
  const { digest } = await resolveManifest(client, ref);
  const published = await signDigest(client, ref, digest, key);
  if (args.values.json) {
    process.stdout.write(`${JSON.stringify({ reference: describeRef(ref), digest, key: key.publicKey.fingerprint, tag: published.tag, appended: published.appended, signatures: published.count })}\n`);
  } else {
    process.stderr.write(`${reportSigned(ref, digest, key, published)}\n`);
  }
  return 0;
}
