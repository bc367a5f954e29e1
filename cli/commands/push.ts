import { readFileSync } from 'node:fs';
import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { findCredentials } from '../../client/credentials.ts';
import { RegistryClient, parseImageReference, type ImageReference } from '../../client/registry-client.ts';
import { publishSbom } from '../../client/sbom.ts';
import { dockerRepository, signedBy } from '../../client/signatures.ts';
import { OciLayout } from '../../format/layout.ts';
import { sha256, type Digest } from '../../format/digest.ts';
import { MediaType } from '../../format/oci.ts';
import type { PrivateKey } from '../../format/sigstore/private-key.ts';
import { sbomArtifactFor, SPDX_MEDIA_TYPE } from '../../format/spdx.ts';
import { parseCommandArgs } from '../args.ts';
import { splitLayoutRef } from '../layout-ref.ts';
import { loadSigningKey, reportSigned, signDigest } from './sign.ts';

const HELP = `
Usage: vztpl push OCI_DIR[:VERSION] REGISTRY/NAME[:VERSION] [--sign-key FILE] [--no-sbom] [--ca-file FILE]
                  [--mount-from REPO]... [--json]

Publishes a built template to a registry (vztpl serve, or any OCI registry). Only the blobs
the registry lacks are sent. A semver tag is a version: it is immutable, and publishing the
highest version moves the aliases latest, MAJOR and MAJOR.MINOR (on a vztpl registry).
Without :VERSION the template's own version is used. Credentials come from "vztpl login"
(or podman login's auth file) when the registry asks for them.

--sign-key FILE signs the pushed manifest as "vztpl sign" does (a cosign private key; its
password from $VZTPL_KEY_PASSWORD or the terminal). The key is read before anything is sent.
A version that carries a signature by that key already is not signed again.

The template's package list goes beside the version as an SPDX 2.3 JSON document (an OCI 1.1
referrer of the manifest, artifactType ${SPDX_MEDIA_TYPE}; "vztpl sbom" prints it), signed
too when --sign-key is given. The document is made from the image alone, so a second push of
the same version finds it there and adds nothing. --no-sbom leaves it out.

--mount-from REPO: blobs the registry keeps in repository REPO (a template this one is built
on) are mounted from there, not sent (OCI cross-repository mount); may be given more than once.

An HTTPS registry's certificate is verified against the system's CAs and --ca-file FILE
(default $VZTPL_CA_FILE), a PEM file of the CA certificates of a private CA.

Example:
  vztpl push out/debian-12-x86_64 127.0.0.1:5000/debian-12-x86_64
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs(
    'push',
    argv,
    { json: { type: 'boolean', default: false }, 'sign-key': { type: 'string' }, 'no-sbom': { type: 'boolean', default: false }, 'ca-file': { type: 'string' }, 'mount-from': { type: 'string', multiple: true } },
    HELP,
  );
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
  const client = new RegistryClient(dest.registry, { credentials: () => findCredentials(dest.registry), caFile: args.values['ca-file'] });
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
    let mounted: string | undefined;
    for (const from of args.values['mount-from'] ?? []) {
      if (await client.mountBlob(dest.repository, blob.digest, from)) {
        mounted = from;
        break;
      }
    }
    if (mounted) {
      skipped++;
      emit({ event: 'blob-mounted', digest: blob.digest, size: blob.size, from: mounted });
      continue;
    }
    await client.pushBlobFile(dest.repository, blob.digest, layout.blobPath(blob.digest));
    sent += blob.size;
    emit({ event: 'blob-pushed', digest: blob.digest, size: blob.size });
    if (!args.values.json) process.stderr.write(`pushed ${blob.digest.slice(7, 19)} ${formatBytes(blob.size)}\n`);
  }
  const bytes = await layout.blobBytes(descriptor.digest);
  const digest = await client.putManifest(dest.repository, version, MediaType.manifest, bytes);
  if (!args.values.json) process.stderr.write(`${dest.repository}:${version} -> ${digest} (${formatBytes(sent)} sent, ${skipped} blobs already there)\n`);
  // what is signed is the digest of the bytes sent, not what the registry says it stored
  const pushedDigest = sha256(bytes);
  const say = (line: string) => {
    if (!args.values.json) process.stderr.write(`${line}\n`);
  };
  if (signKey) await signOnce(client, dest, pushedDigest, signKey, 'manifest', emit, say);
  const template = config['org.openvz.template'];
  let sbomDigest: Digest | undefined;
  if (template && !args.values['no-sbom']) {
    const subject = { mediaType: MediaType.manifest, digest: pushedDigest, size: bytes.length };
    const artifact = sbomArtifactFor(subject, { template, created: config.created, toolVersion: vztplVersion() });
    const sbom = await publishSbom(client, dest, subject, artifact);
    sbomDigest = sbom.digest;
    emit({ event: 'sbom', repository: dest.repository, subject: pushedDigest, digest: sbom.digest, existed: sbom.existed, kept: sbom.kept ?? null, packages: template.packages.length, indexed: sbom.indexed });
    const where = `${dockerRepository(dest)}@${sbom.digest}`;
    if (sbom.kept) say(`SBOM: ${dest.repository}:${version} has an SBOM already (${where}, not this vztpl's document): kept, nothing added`);
    else if (sbom.existed) say(`SBOM: ${where} (${template.packages.length} packages) was there already`);
    else say(`SBOM: ${where} (SPDX 2.3, ${template.packages.length} packages, ${formatBytes(artifact.document.length)})`);
    if (!sbom.indexed) say(`warning: ${dest.registry} did not confirm that it indexes referrers (no OCI-Subject answer): "vztpl sbom" may not find the SBOM there`);
    // only this push's own document is signed: an SBOM someone else put there is not vouched for
    if (signKey && !sbom.kept) await signOnce(client, dest, sbom.digest, signKey, 'sbom', emit, say);
  }
  // the last event: the version, its blobs, and its SBOM
  emit({ event: 'pushed', repository: dest.repository, version, digest, sent, skipped, sbom: sbomDigest ?? null });
  return 0;
}

/** Signs `digest` with the key unless a signature by that key verifies for it already. */
async function signOnce(
  client: RegistryClient,
  dest: ImageReference,
  digest: Digest,
  key: PrivateKey,
  what: 'manifest' | 'sbom',
  emit: (event: Record<string, unknown>) => void,
  say: (line: string) => void,
): Promise<void> {
  if (await signedBy(client, dest, digest, key.publicKey)) {
    emit({ event: 'signed', what, repository: dest.repository, digest, key: key.publicKey.fingerprint, already: true });
    say(`${dockerRepository(dest)}@${digest} carries a signature by key ${key.publicKey.fingerprint} already; not signed again`);
    return;
  }
  const published = await signDigest(client, dest, digest, key);
  emit({ event: 'signed', what, repository: dest.repository, digest, key: key.publicKey.fingerprint, tag: published.tag, signatures: published.count });
  say(`${what === 'sbom' ? 'SBOM ' : ''}${reportSigned(dest, digest, key, published)}`);
}

/** vztpl's version, from the package.json beside cli/ (source) or dist/cli/ (built). */
function vztplVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'vztpl' && pkg.version) return pkg.version;
    } catch {
      // not this one
    }
  }
  return 'unknown';
}
