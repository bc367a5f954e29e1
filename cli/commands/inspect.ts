import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { OciLayout } from '../../format/layout.ts';
import { parseCommandArgs } from '../args.ts';
import { splitLayoutRef } from '../layout-ref.ts';

const HELP = `
Usage: vztpl inspect OCI_DIR[:VERSION] [--packages] [--json]

Shows a built template: digest, labels, layers with sizes and the step that made each,
and its package lock.

Options:
      --packages   list every installed package with its version
      --json       the manifest, config and metadata as JSON
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('inspect', argv, { packages: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } }, HELP);
  if (!args) return 0;
  const [target, ...extra] = args.positionals;
  if (!target || extra.length) throw new UsageError(`inspect: name one OCI layout directory\n${HELP}`);
  const { dir, ref } = splitLayoutRef(target);
  const { descriptor, manifest, config } = await new OciLayout(dir).resolve(ref).catch((err: Error) => {
    throw new UsageError(`inspect: ${err.message}`);
  });
  if (args.values.json) {
    process.stdout.write(`${JSON.stringify({ digest: descriptor.digest, manifest, config }, null, 2)}\n`);
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
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}
