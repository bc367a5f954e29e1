import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { findCredentials } from '../../client/credentials.ts';
import { RegistryClient, parseImageReference } from '../../client/registry-client.ts';
import { OciLayout } from '../../format/layout.ts';
import { MediaType } from '../../format/oci.ts';
import { parseCommandArgs } from '../args.ts';
import { splitLayoutRef } from '../layout-ref.ts';

const HELP = `
Usage: vztpl push OCI_DIR[:VERSION] REGISTRY/NAME[:VERSION] [--json]

Publishes a built template to a registry (vztpl serve, or any OCI registry). Only the blobs
the registry lacks are sent. A semver tag is a version: it is immutable, and publishing the
highest version moves the aliases latest, MAJOR and MAJOR.MINOR (on a vztpl registry).
Without :VERSION the template's own version is used. Credentials come from "vztpl login"
(or podman login's auth file) when the registry asks for them.

Example:
  vztpl push out/debian-12-x86_64 127.0.0.1:5000/debian-12-x86_64
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('push', argv, { json: { type: 'boolean', default: false } }, HELP);
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
  return 0;
}
