import { rename, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { compressedFileSink, formatFromName, type ArchiveFormat } from '../../format/compress.ts';
import { flattenLayers } from '../../format/flatten.ts';
import { OciLayout } from '../../format/layout.ts';
import { parseCommandArgs } from '../args.ts';
import { splitLayoutRef } from '../layout-ref.ts';

const HELP = `
Usage: vztpl export OCI_DIR[:VERSION] [-o FILE] [--format gz|xz|zst|tar]

Flattens a built template into the single root filesystem tarball existing hosts use:
  OpenVZ (vzctl/prlctl template cache):  /vz/template/cache/<name>.tar.gz or .tar.xz
  Proxmox VE (pct, vztmpl):               <name>.tar.zst
The format follows the file name (.tar.gz, .tgz, .tar.xz, .tar.zst, .tar) unless --format says.

Options:
  -o, --output FILE   output file (default: <name>.tar.gz in the current directory)
      --format F      gz, xz, zst or tar
`;

const FORMATS: Record<string, ArchiveFormat> = { gz: 'gzip', gzip: 'gzip', xz: 'xz', zst: 'zstd', zstd: 'zstd', tar: 'none' };
const SUFFIX: Record<ArchiveFormat, string> = { gzip: '.tar.gz', xz: '.tar.xz', zstd: '.tar.zst', none: '.tar' };

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('export', argv, { output: { type: 'string', short: 'o' }, format: { type: 'string' } }, HELP);
  if (!args) return 0;
  const [target, ...extra] = args.positionals;
  if (!target || extra.length) throw new UsageError(`export: name one OCI layout directory\n${HELP}`);
  let format: ArchiveFormat | undefined;
  if (args.values.format !== undefined) {
    format = FORMATS[args.values.format];
    if (!format) throw new UsageError(`export: --format must be gz, xz, zst or tar, not "${args.values.format}"`);
  }
  const { dir, ref } = splitLayoutRef(target);
  const layout = new OciLayout(dir);
  const { manifest, config } = await layout.resolve(ref).catch((err: Error) => {
    throw new UsageError(`export: ${err.message}`);
  });
  const name = config['org.openvz.template']?.name ?? config.config?.Labels?.['org.opencontainers.image.title'] ?? 'template';
  format ??= args.values.output ? (formatFromName(args.values.output) ?? 'gzip') : 'gzip';
  const output = resolve(args.values.output ?? `${name}${SUFFIX[format]}`);
  const tmp = `${output}.tmp-${process.pid}`;
  const started = performance.now();
  const sink = await compressedFileSink(tmp, format);
  try {
    const { entries } = await flattenLayers(manifest.layers, (d) => layout.blobPath(d.digest), (chunk) => sink.write(chunk));
    await sink.close();
    await rename(tmp, output);
    const { size } = await import('node:fs').then((fs) => fs.statSync(output));
    process.stderr.write(`Exported ${name} (${manifest.layers.length} layers, ${entries} entries) to ${output}: ${formatBytes(size)} in ${((performance.now() - started) / 1000).toFixed(1)}s\n`);
    return 0;
  } catch (err) {
    sink.abort();
    await rm(tmp, { force: true });
    throw err;
  }
}
