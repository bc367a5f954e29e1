import { resolve } from 'node:path';
import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { splitReference, splitRegistry } from '../../format/reference.ts';
import { parseCommandArgs } from '../args.ts';
import { CA_FILE_OPTION, HOST_HELP, HOST_OPTIONS, openStore } from '../host.ts';

const HELP = `
Usage: vztpl commit CTID REGISTRY/NAME:VERSION [--sign-key FILE]
       vztpl commit CTID NAME:VERSION --out DIR

Turns a container back into a template: its snapshots and live changes become OCI layers above
its template's layers (deletions and replaced directories as OCI whiteouts, packed reproducibly
as the builder packs), with a config that keeps the template's labels, names the commit in its
history, and carries the package lock read again from the container's own package database.
The container's hostname and machine-id are not part of it. Published as a version with the
registry's usual rules (immutable versions, aliases); only the new layers travel. With --out,
an OCI image layout is written instead. Refused while a process of the container runs.
Options:
      --out DIR          write an OCI image layout, push nothing
      --sign-key FILE    sign the pushed version (as vztpl push --sign-key)
      --compression C    zstd (default) or gzip
      --ca-file FILE     CA certificates for an HTTPS registry (default $VZTPL_CA_FILE)
${HOST_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('commit', argv, { ...HOST_OPTIONS, ...CA_FILE_OPTION, out: { type: 'string' }, 'sign-key': { type: 'string' }, compression: { type: 'string', default: 'zstd' } }, HELP);
  if (!args) return 0;
  const [ctid, target, ...extra] = args.positionals;
  if (!ctid || !target || extra.length) throw new UsageError(`commit: name a CTID and the version to make\n${HELP}`);
  const compression = args.values.compression;
  if (compression !== 'zstd' && compression !== 'gzip') throw new UsageError(`commit: --compression must be zstd or gzip, not "${compression}"`);
  const { registry, rest } = splitRegistry(target);
  const { name, reference: version } = splitReference(rest);
  if (!version || !/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$/.test(version)) throw new UsageError(`commit: ${target}: give the new version as NAME:X.Y.Z`);
  if (!/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(name)) throw new UsageError(`commit: invalid template name ${JSON.stringify(name)}`);
  if (!args.values.out && !registry) throw new UsageError(`commit: ${target} names no registry; give REGISTRY/NAME:VERSION, or --out DIR`);
  const { store } = openStore(args.values);
  const { commitContainer } = await import('../../cache/commit.ts');
  const out = args.values.out ? resolve(args.values.out) : `${store.tmpDir()}/commit-layout-${process.pid}`;
  try {
    const result = await commitContainer({ store, ctid, name, version, out, compression });
    const added = result.newLayers.reduce((n, l) => n + l.size, 0);
    if (args.values.json) process.stdout.write(`${JSON.stringify({ event: 'committed', ctid, name, version, ...result })}\n`);
    else process.stderr.write(`committed ${ctid} as ${name}:${version}: ${result.templateLayers} template layers and ${result.newLayers.length} new (${formatBytes(added)}), ${result.packages} packages\n`);
    if (args.values.out) {
      if (!args.values.json) process.stdout.write(`${out} ${result.manifestDigest}\n`);
      return 0;
    }
    // Published as any built template is: the same push (only missing blobs, signing). The
    // template's layers are mounted from its own repository when it is on the same registry.
    const { readContainer } = await import('../../cache/containers.ts');
    const from = (await readContainer(store, ctid)).template;
    const sameRegistry = registry !== undefined && !from.source.startsWith('oci:') && new URL(from.source).host === new URL(registry).host;
    const push = await import('./push.ts');
    return await push.main([
      out,
      target,
      ...(sameRegistry ? ['--mount-from', from.name] : []),
      ...(args.values.json ? ['--json'] : []),
      ...(args.values['sign-key'] ? ['--sign-key', args.values['sign-key']] : []),
      ...(args.values['ca-file'] ? ['--ca-file', args.values['ca-file']] : []),
    ]);
  } finally {
    if (!args.values.out) {
      const { rm } = await import('node:fs/promises');
      await rm(out, { recursive: true, force: true });
    }
  }
}
