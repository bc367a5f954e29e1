import { build } from '../../builder/build.ts';
import { jsonReporter, lineReporter } from '../../common/progress.ts';
import { UsageError, VztplError } from '../../common/errors.ts';
import { interruptSignal, parseCommandArgs } from '../args.ts';
import type { Compression } from '../../format/oci.ts';

const HELP = `
Usage: vztpl build RECIPE [options]

Builds the template a recipe describes into an OCI image layout directory.

Options:
  -o, --out DIR            output directory (default: out/<name>)
      --cache-dir DIR      step and package cache (default: $VZTPL_CACHE_DIR or /var/cache/vztpl)
      --compression C      zstd (default) or gzip (for old clients)
      --no-cache           run every step, ignoring cached layers
      --refresh            re-resolve packages: rerun the bootstrap and package steps
      --check-reproducible build twice without the cache and compare the digests
      --json               NDJSON progress events on stdout
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('build', argv, {
    out: { type: 'string', short: 'o' },
    'cache-dir': { type: 'string' },
    compression: { type: 'string', default: 'zstd' },
    'no-cache': { type: 'boolean', default: false },
    refresh: { type: 'boolean', default: false },
    'check-reproducible': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  }, HELP);
  if (!args) return 0;
  const [recipe, ...extra] = args.positionals;
  if (!recipe || extra.length) throw new UsageError(`build: give exactly one recipe file\n${HELP}`);
  const compression = args.values.compression as string;
  if (compression !== 'zstd' && compression !== 'gzip') throw new UsageError(`build: --compression must be zstd or gzip, not "${compression}"`);
  const reporter = args.values.json ? jsonReporter(process.stdout) : lineReporter(process.stderr);
  const { signal, dispose } = interruptSignal();
  try {
    const common = { recipe, cacheDir: args.values['cache-dir'], compression: compression as Compression, refresh: args.values.refresh, reporter, signal };
    const first = await build({ ...common, out: args.values.out, noCache: args.values['no-cache'] || args.values['check-reproducible'] });
    if (!args.values['check-reproducible']) return 0;
    const second = await build({ ...common, out: `${first.out}.check`, noCache: true });
    const { rm } = await import('node:fs/promises');
    await rm(second.out, { recursive: true, force: true });
    if (second.manifestDigest === first.manifestDigest) {
      reporter.emit({ event: 'message', message: `reproducible: both builds gave ${first.manifestDigest}` });
      return 0;
    }
    const firstIds = first.config.rootfs.diff_ids;
    const secondIds = second.config.rootfs.diff_ids;
    const differing = firstIds.map((id, i) => (id === secondIds[i] ? undefined : i + 1)).filter((i) => i !== undefined);
    throw new VztplError(
      `not reproducible: ${first.manifestDigest} then ${second.manifestDigest}; layers that differ: ${differing.join(', ') || 'none (the config differs)'}`,
    );
  } catch (err) {
    if (args.values.json) {
      const exitCode = err instanceof VztplError ? err.exitCode : 1;
      reporter.emit({ event: 'error', message: err instanceof Error ? err.message : String(err), exitCode });
    }
    throw err;
  } finally {
    dispose();
  }
}
