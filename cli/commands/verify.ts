import { UsageError } from '../../common/errors.ts';
import { findCredentials } from '../../client/credentials.ts';
import { parseImageReference, RegistryClient } from '../../client/registry-client.ts';
import { describeRef, dockerRepository, fetchPayloads, fetchSignatureManifest, resolveManifest } from '../../client/signatures.ts';
import { loadPublicKey, NotVerifiedError, signatureTag, verifySignatureLayers } from '../../format/sigstore/index.ts';
import { parseCommandArgs } from '../args.ts';

const HELP = `
Usage: vztpl verify REGISTRY/NAME:VERSION|REGISTRY/NAME@DIGEST --key FILE.pub [--json] [--ca-file FILE]

Checks that a published template version carries a sigstore (cosign) signature by the key:
the signature manifest sha256-<hex>.sig beside it holds a simple-signing payload whose digest
matches the one the registry serves, naming the manifest's digest and this repository, signed by
the key. Says which signature verified, or why none did: unsigned, no signature by this key, a
signature for another digest or repository, a tampered payload.

Exit codes: 0 verified; 1 not verified; 2 bad input (an unreadable or corrupt key file names the
file); 4 unknown reference; 5 registry unreachable, or its TLS certificate not trusted.

An HTTPS registry's certificate is verified against the system's CAs and --ca-file FILE
(default $VZTPL_CA_FILE), a PEM file of the CA certificates of a private CA.

Example:
  vztpl verify 127.0.0.1:5000/acme/debian-12:1.0.0 --key acme.pub
`;


export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('verify', argv, { key: { type: 'string' }, json: { type: 'boolean', default: false }, 'ca-file': { type: 'string' } }, HELP);
  if (!args) return 0;
  const [target, ...extra] = args.positionals;
  if (!target || extra.length) throw new UsageError(`verify: name one template version\n${HELP}`);
  if (!args.values.key) throw new UsageError(`verify: give the public key with --key FILE.pub\n${HELP}`);
  const ref = parseImageReference(target);
  if (!ref.reference) throw new UsageError(`verify: ${target} names no version or digest (as in ${target}:1.0.0)`);
  const key = await loadPublicKey(args.values.key);
  const client = new RegistryClient(ref.registry, { credentials: () => findCredentials(ref.registry), caFile: args.values['ca-file'] });
  const { digest } = await resolveManifest(client, ref);
  const what = `${describeRef(ref)} (${digest})`;
  const report = (verified: boolean, extra: Record<string, unknown>) => {
    if (args.values.json) process.stdout.write(`${JSON.stringify({ verified, reference: describeRef(ref), digest, key: key.fingerprint, ...extra })}\n`);
  };
  const signatures = await fetchSignatureManifest(client, ref, digest).catch((err: Error) => {
    report(false, { reason: 'bad-signature-manifest', reasons: [err.message] });
    throw err;
  });
  if (!signatures) {
    const message = `not verified: ${what} is unsigned (no signature manifest ${dockerRepository(ref)}:${signatureTag(digest)})`;
    report(false, { reason: 'unsigned', reasons: [] });
    throw new NotVerifiedError(message, []);
  }
  const outcome = verifySignatureLayers(await fetchPayloads(client, ref, signatures.layers), key, { digest, repository: dockerRepository(ref) });
  if (outcome.verified) {
    const { layer, payload } = outcome.verified;
    report(true, { layer, signatures: outcome.signatures, identity: payload.dockerReference });
    if (!args.values.json) {
      process.stdout.write(
        `Verified OK: ${what}\n  signed by key ${key.fingerprint} (${key.description})\n  signature ${layer + 1} of ${outcome.signatures} in ${signatures.name}, identity ${payload.dockerReference}\n`,
      );
    }
    return 0;
  }
  const reasons = outcome.rejections.map((r) => r.message);
  if (outcome.signatures === 0) {
    report(false, { reason: 'unsigned', reasons });
    throw new NotVerifiedError(`not verified: ${what} is unsigned (${signatures.name} holds no signature)`, reasons);
  }
  const kinds = [...new Set(outcome.rejections.map((r) => r.kind))];
  const summary = kinds.length === 1 && kinds[0] === 'other-key' ? `no signature by key ${key.fingerprint}` : `none of its ${outcome.signatures} signature${outcome.signatures === 1 ? '' : 's'} verified with key ${key.fingerprint}`;
  report(false, { reason: kinds.length === 1 ? kinds[0] : 'mixed', signatures: outcome.signatures, reasons, kinds });
  throw new NotVerifiedError(`not verified: ${what}: ${summary}\n${reasons.map((r) => `  - ${r}`).join('\n')}`, reasons);
}
