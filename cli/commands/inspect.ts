import { existsSync } from 'node:fs';
import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { OciLayout } from '../../format/layout.ts';
import { MediaType, type Descriptor, type ImageConfig, type ImageManifest, type TemplateChangelog } from '../../format/oci.ts';
import { changeLines } from '../../format/packages/diff.ts';
import { parseCommandArgs } from '../args.ts';
import { splitLayoutRef } from '../layout-ref.ts';

const HELP = `
Usage: vztpl inspect OCI_DIR[:VERSION] [--packages] [--json]
       vztpl inspect REGISTRY/NAME:VERSION [--packages] [--json] [--ca-file FILE]

Shows a built or published template: digest, labels, layers with sizes and the step that made
each, its package lock, and its changelog: what changed since the version before (packages
added, removed, upgraded; whether the recipe changed), as "vztpl publish" recorded it, or for a
published version, as the registry's catalog derives it.

Options:
      --packages   list every installed package with its version
      --json       the manifest, config and metadata as JSON
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('inspect', argv, { packages: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, 'ca-file': { type: 'string' } }, HELP);
  if (!args) return 0;
  const [target, ...extra] = args.positionals;
  if (!target || extra.length) throw new UsageError(`inspect: name one OCI layout directory\n${HELP}`);
  const { dir, ref } = splitLayoutRef(target);
  let descriptor: Pick<Descriptor, 'digest'>;
  let manifest: ImageManifest;
  let config: ImageConfig;
  let changelog: TemplateChangelog | undefined;
  if (!existsSync(dir) && /^[^/]*[.:][^/]*\/|^localhost\//.test(target)) {
    ({ descriptor, manifest, config, changelog } = await fromRegistry(target, args.values['ca-file']));
  } else {
    ({ descriptor, manifest, config } = await new OciLayout(dir).resolve(ref).catch((err: Error) => {
      throw new UsageError(`inspect: ${err.message}`);
    }));
    changelog = config['org.openvz.template']?.changelog;
  }
  if (args.values.json) {
    process.stdout.write(`${JSON.stringify({ digest: descriptor.digest, manifest, config, changelog: changelog ?? null }, null, 2)}\n`);
    return 0;
  }
  const meta = config['org.openvz.template'];
  const out: string[] = [];
  out.push(`${meta?.name ?? dir} ${meta?.version ?? ''}`.trim());
  out.push(`  digest:   ${descriptor.digest}`);
  out.push(`  created:  ${config.created ?? '-'}`);
  out.push(`  platform: ${config.os}/${config.architecture}`);
  if (meta) out.push(`  recipe:   ${meta.recipeDigest}`);
  const total = manifest.layers.reduce((n, l) => n + l.size, 0);
  out.push(`  size:     ${formatBytes(total)} in ${manifest.layers.length} layers`);
  out.push('', 'Layers:');
  let layerIndex = 0;
  for (const h of config.history ?? []) {
    if (h.empty_layer) {
      out.push(`  -   ${'(no changes)'.padStart(9)}  ${h.comment ?? h.created_by ?? ''}`);
      continue;
    }
    const layer = manifest.layers[layerIndex++];
    out.push(`  ${String(layerIndex).padEnd(3)} ${formatBytes(layer?.size ?? 0).padStart(9)}  ${layer?.digest.slice(7, 19) ?? ''}  ${h.comment ?? h.created_by ?? ''}`);
  }
  const labels = Object.entries(config.config?.Labels ?? {});
  if (labels.length) out.push('', 'Labels:', ...labels.map(([k, v]) => `  ${k}=${v}`));
  if (meta) {
    out.push('', `Packages: ${meta.packages.length} (${meta.family})${args.values.packages ? '' : '; --packages lists them'}`);
    if (args.values.packages) {
      const width = Math.max(...meta.packages.map((p) => p.name.length));
      out.push(...meta.packages.map((p) => `  ${p.name.padEnd(width)}  ${p.version}  ${p.arch}`));
    }
  }
  if (changelog) {
    const lines = changeLines(changelog);
    out.push('', changelog.previous ? `Changes since ${changelog.previous}: recipe ${changelog.recipeChanged ? 'changed' : 'unchanged'}, ${lines.length} package change${lines.length === 1 ? '' : 's'}` : 'Changes: the first version');
    out.push(...lines.map((l) => `  ${l}`));
  }
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

/** A published version: its manifest and config from the registry, its changelog from the config or the catalog. */
async function fromRegistry(target: string, caFile: string | undefined) {
  const [{ parseImageReference, RegistryClient }, { findCredentials }] = await Promise.all([import('../../client/registry-client.ts'), import('../../client/credentials.ts')]);
  const dest = parseImageReference(target);
  if (!dest.reference) throw new UsageError(`inspect: ${target} names no version (REGISTRY/NAME:VERSION)`);
  const client = new RegistryClient(dest.registry, { credentials: () => findCredentials(dest.registry), caFile });
  const got = await client.getManifest(dest.repository, dest.reference, [MediaType.manifest]);
  const manifest = JSON.parse(got.bytes.toString('utf8')) as ImageManifest;
  const config = JSON.parse((await client.getBlobLimited(dest.repository, manifest.config.digest, 16 << 20)).toString('utf8')) as ImageConfig;
  const changelog = config['org.openvz.template']?.changelog ?? (await client.catalogChangelog(dest.repository, dest.reference).catch(() => undefined));
  return { descriptor: { digest: got.digest }, manifest, config, changelog };
}
