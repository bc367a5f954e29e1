import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { findCredentials } from '../../client/credentials.ts';
import { RegistryClient, parseImageReference } from '../../client/registry-client.ts';
import { OciLayout } from '../../format/layout.ts';
import { sha256 } from '../../format/digest.ts';
import { MediaType } from '../../format/oci.ts';
import { parseCommandArgs } from '../args.ts';
import { splitLayoutRef } from '../layout-ref.ts';
import { loadSigningKey, reportSigned, signDigest } from './sign.ts';

const HELP = `
Usage: vztpl push OCI_DIR[:VERSION] REGISTRY/NAME[:VERSION] [--sign-key FILE] [--json]

Publishes a built template to a registry (vztpl serve, or any OCI registry). Only the blobs
the registry lacks are sent. A semver tag is a version: it is immutable, and publishing the
highest version moves the aliases latest, MAJOR and MAJOR.MINOR (on a vztpl registry).
Without :VERSION the template's own version is used. Credentials come from "vztpl login"
(or podman login's auth file) when the registry asks for them.

--sign-key FILE signs the pushed manifest as "vztpl sign" does (a cosign private key; its
password from $VZTPL_KEY_PASSWORD or the terminal). The key is read before anything is sent.

Example:
  vztpl push out/debian-12-x86_64 127.0.0.1:5000/debian-12-x86_64
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('push', argv, { json: { type: 'boolean', default: false }, 'sign-key': { type: 'string' } }, HELP);
  if (!args) return 0;
  const [source, target, ...extra] = args.positionals;
  if (!source || !target || extra.length) throw new UsageError(`push: give a layout directory and a destination\n${HELP}`);
  const { dir, ref } = splitLayoutRef(source);
  const layout = new OciLayout(dir);
  const { descriptor, manifest, config } = await layout.resolve(ref).catch((err: Error) => {
    throw new UsageError(`push: ${err.message}`);
  });
  const dest = parseImageReference(target);
  const version = dest.reference ?? config['org.openvz.template']?.version ?? config.config?.Labels?.['org.opencontainers.image.version'];
  if (!version) throw new UsageError(`push: ${target} names no version and the template has none`);
  // a bad key file or password stops the push before anything is sent
  const signKey = args.values['sign-key'] === undefined ? undefined : await loadSigningKey(args.values['sign-key']);
  const client = new RegistryClient(dest.registry, { credentials: () => findCredentials(dest.registry) });
  const emit = (event: Record<string, unknown>) => {
    if (args.values.json) process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
  };
  let sent = 0;
  let skipped = 0;
  for (const blob of [manifest.config, ...manifest.layers]) {
    if (await client.hasBlob(dest.repository, blob.digest)) {
      skipped++;
      emit({ event: 'blob-exists', digest: blob.digest, size: blob.size });
      continue;
    }
    await client.pushBlobFile(dest.repository, blob.digest, layout.blobPath(blob.digest));
    sent += blob.size;
    emit({ event: 'blob-pushed', digest: blob.digest, size: blob.size });
    if (!args.values.json) process.stderr.write(`pushed ${blob.digest.slice(7, 19)} ${formatBytes(blob.size)}\n`);
  }
  const bytes = await layout.blobBytes(descriptor.digest);
  const digest = await client.putManifest(dest.repository, version, MediaType.manifest, bytes);
  emit({ event: 'pushed', repository: dest.repository, version, digest, sent, skipped });
  if (!args.values.json) process.stderr.write(`${dest.repository}:${version} -> ${digest} (${formatBytes(sent)} sent, ${skipped} blobs already there)\n`);
  if (signKey) {
    // what is signed is the digest of the bytes sent, not what the registry says it stored
    const signed = sha256(bytes);
    const published = await signDigest(client, dest, signed, signKey);
    emit({ event: 'signed', repository: dest.repository, digest: signed, key: signKey.publicKey.fingerprint, tag: published.tag, signatures: published.count });
    if (!args.values.json) process.stderr.write(`${reportSigned(dest, signed, signKey, published)}\n`);
  }
  return 0;
}
