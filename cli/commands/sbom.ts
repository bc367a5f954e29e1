import { UsageError } from '../../common/errors.ts';
import { findCredentials } from '../../client/credentials.ts';
import { parseImageReference, RegistryClient } from '../../client/registry-client.ts';
import { fetchSbom } from '../../client/sbom.ts';
import { describeRef, dockerRepository, fetchPayloads, fetchSignatureManifest, resolveManifest } from '../../client/signatures.ts';
import { NotVerifiedError, signatureTag, verifySignatureLayers } from '../../format/sigstore/index.ts';
import { SPDX_MEDIA_TYPE } from '../../format/spdx.ts';
import { parseCommandArgs } from '../args.ts';
import { loadPublicKey } from '../../format/sigstore/public-key.ts';

const HELP = `
Usage: vztpl sbom REGISTRY/NAME:VERSION|REGISTRY/NAME@DIGEST [--key FILE.pub]

Prints the SBOM of a published template version: the SPDX 2.3 JSON document "vztpl push"
attached to it (every package of the template with its version, architecture and purl). It is
found with the registry's referrers API (OCI distribution-spec 1.1) among the referrers of the
version's manifest of artifactType ${SPDX_MEDIA_TYPE}; its manifest must name that manifest as
its subject, and the document must have the digest the manifest names.

--key FILE.pub prints it only if the SBOM's manifest carries a signature by that key ("vztpl
push --sign-key" signs it as it signs the template, tag sha256-<hex>.sig).

Exit codes: 0 printed; 1 not verified (--key); 2 bad input; 4 unknown reference, or the
version has no SBOM; 5 registry unreachable.

Example:
  vztpl sbom 127.0.0.1:5000/acme/debian-12:1.0.0 > debian-12.spdx.json
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('sbom', argv, { key: { type: 'string' }, json: { type: 'boolean', default: false } }, HELP);
  if (!args) return 0;
  const [target, ...extra] = args.positionals;
  if (!target || extra.length) throw new UsageError(`sbom: name one template version\n${HELP}`);
  const ref = parseImageReference(target);
  if (!ref.reference) throw new UsageError(`sbom: ${target} names no version or digest (as in ${target}:1.0.0)`);
  const key = args.values.key === undefined ? undefined : await loadPublicKey(args.values.key);
  const client = new RegistryClient(ref.registry, { credentials: () => findCredentials(ref.registry) });
  const { digest } = await resolveManifest(client, ref);
  const sbom = await fetchSbom(client, ref, digest);
  const where = `${dockerRepository(ref)}@${sbom.digest}`;
  if (key) {
    const signatures = await fetchSignatureManifest(client, ref, sbom.digest);
    if (!signatures) throw new NotVerifiedError(`not verified: the SBOM ${where} of ${describeRef(ref)} is unsigned (no ${signatureTag(sbom.digest)})`, []);
    const outcome = verifySignatureLayers(await fetchPayloads(client, ref, signatures.layers), key, { digest: sbom.digest, repository: dockerRepository(ref) });
    if (!outcome.verified) {
      const reasons = outcome.rejections.map((r) => r.message);
      throw new NotVerifiedError(`not verified: the SBOM ${where} of ${describeRef(ref)} has no signature by key ${key.fingerprint}\n${reasons.map((r) => `  - ${r}`).join('\n')}`, reasons);
    }
    process.stderr.write(`SBOM ${where} signed by key ${key.fingerprint}\n`);
  }
  if (sbom.count > 1) process.stderr.write(`${describeRef(ref)} has ${sbom.count} SBOMs; printing the newest, ${where}\n`);
  process.stdout.write(sbom.document);
  return 0;
}
