import { join, resolve } from 'node:path';
import { build } from '../../builder/build.ts';
import { changelogFor, contentOf, orderRecipes, pickVersions, publishedImage, publishedVersions, readPublished, sameContent, type LayerDigests } from '../../builder/publish.ts';
import { findCredentials } from '../../client/credentials.ts';
import { parseImageReference, RegistryClient, RegistryError } from '../../client/registry-client.ts';
import { UsageError, VztplError } from '../../common/errors.ts';
import { lineReporter, silentReporter } from '../../common/progress.ts';
import type { ImageConfig, TemplateChangelog } from '../../format/oci.ts';
import { changeLines } from '../../format/packages/diff.ts';
import { interruptSignal, parseCommandArgs } from '../args.ts';
import { main as push } from './push.ts';

const HELP = `
Usage: vztpl publish RECIPE... --registry REGISTRY[/NAMESPACE] [--sign-key FILE] [options]

Builds each recipe (bases before the flavors built from them, with the step cache, so an
unchanged mirror costs seconds) and compares the result with the newest published version of
the recipe's MAJOR.MINOR. Same content apart from dates (layers without mtimes, config without
created dates): nothing is published ("unchanged"). Otherwise the next version is published as
"vztpl push" does (aliases, SBOM, signature with --sign-key): the recipe's version when its
MAJOR.MINOR has none yet, else the next patch. The version's config records its changelog
(packages added, removed and upgraded since the version before, and whether the recipe
changed); "vztpl inspect" and the catalog API show it.

Two publishers running at once publish a version once: the registry gives it to the first, the
other is refused, reads the versions again and reports the winner's version.

Options:
      --registry R       where to publish: HOST:PORT or HOST:PORT/NAMESPACE (required)
      --sign-key FILE    sign each published version and its SBOM (as push --sign-key)
      --no-sbom          publish no SBOM
      --cache-dir DIR    step and package cache (default: $VZTPL_CACHE_DIR or /var/cache/vztpl)
      --out-dir DIR      where the built layouts go, DIR/<name> (default: out)
      --ca-file FILE     CA certificates of an HTTPS registry (default: $VZTPL_CA_FILE)
      --json             one NDJSON line per recipe on stdout: {event:"publish",name,status,version,...}

Exit codes: 0 every recipe published or unchanged, 1 a build or publish failed, 2 bad arguments.
`;

export interface PublishOutcome {
  name: string;
  /** published: this run published `version`; unchanged: `version` has this content already;
   *  concurrent: another publisher published `version` (with this content) while this one tried. */
  status: 'published' | 'unchanged' | 'concurrent';
  version: string;
  repository: string;
  digest: string;
  changelog?: TemplateChangelog;
  /** Versions another publisher took first. */
  conflicts: string[];
}

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs(
    'publish',
    argv,
    {
      registry: { type: 'string' },
      'sign-key': { type: 'string' },
      'no-sbom': { type: 'boolean', default: false },
      'cache-dir': { type: 'string' },
      'out-dir': { type: 'string' },
      'ca-file': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    HELP,
  );
  if (!args) return 0;
  const recipes = args.positionals;
  const registry = args.values.registry;
  if (!recipes.length) throw new UsageError(`publish: name at least one recipe\n${HELP}`);
  if (!registry) throw new UsageError(`publish: --registry is required\n${HELP}`);
  const json = args.values.json;
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const plans = await orderRecipes(recipes);
  const outDir = resolve(args.values['out-dir'] ?? 'out');
  const layerDigests: LayerDigests = new Map();
  const { signal, dispose } = interruptSignal();
  try {
    for (const plan of plans) {
      const name = plan.target.recipe.name;
      const dest = parseImageReference(`${registry.replace(/\/+$/, '')}/${name}`);
      const client = new RegistryClient(dest.registry, { credentials: () => findCredentials(dest.registry), caFile: args.values['ca-file'] });
      const built = await build({
        recipe: plan.target.file,
        out: join(outDir, name),
        cacheDir: args.values['cache-dir'],
        reporter: json ? silentReporter : lineReporter(process.stderr),
        signal,
      });
      // the bases' repositories: their layers are mounted from there, not sent again
      const mountFrom = plan.chain.slice(0, -1).map((r) => parseImageReference(`${registry.replace(/\/+$/, '')}/${r.recipe.name}`).repository);
      const outcome = await publishOne(client, dest.repository, built, layerDigests, async (version) => {
        const pushArgs = [built.out, `${registry.replace(/\/+$/, '')}/${name}:${version}`];
        if (args.values['sign-key']) pushArgs.push('--sign-key', args.values['sign-key']);
        if (args.values['no-sbom']) pushArgs.push('--no-sbom');
        if (args.values['ca-file']) pushArgs.push('--ca-file', args.values['ca-file']);
        for (const from of mountFrom) pushArgs.push('--mount-from', from);
        await push(pushArgs);
      });
      if (json) {
        process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), event: 'publish', ...outcome, name })}\n`);
      } else {
        for (const v of outcome.conflicts) say(`${name}: ${v} was published by another publisher meanwhile`);
        if (outcome.status === 'unchanged') say(`${name}: unchanged (${outcome.version})`);
        else if (outcome.status === 'concurrent') say(`${name}: ${outcome.version} published by another publisher, with the same content`);
        else {
          const c = outcome.changelog!;
          const lines = changeLines(c);
          say(`${name}: published ${outcome.version}${c.previous ? ` (since ${c.previous}: recipe ${c.recipeChanged ? 'changed' : 'unchanged'}, ${lines.length} package changes)` : ' (first version)'}`);
          for (const line of lines) say(`  ${line}`);
        }
        process.stdout.write(`${name} ${outcome.status} ${outcome.version} ${outcome.digest}\n`);
      }
    }
  } finally {
    dispose();
  }
  return 0;
}

/** Attempts before giving up when other publishers keep taking the next version. */
const MAX_ATTEMPTS = 5;

/**
 * Compares a build with the registry and publishes it as the next version if it differs.
 * `pushVersion` pushes the build's layout (as it is when called) as that version; a 409 from it
 * means another publisher has the version: the versions are read again and compared again.
 */
export async function publishOne(
  client: RegistryClient,
  repository: string,
  built: Awaited<ReturnType<typeof build>>,
  layerDigests: LayerDigests,
  pushVersion: (version: string) => Promise<void>,
): Promise<PublishOutcome> {
  const conflicts: string[] = [];
  const base = { name: built.name, repository };
  const configs = new Map<string, { digest: string; config: ImageConfig }>();
  const published = async (version: string) => {
    if (!configs.has(version)) configs.set(version, await readPublished(client, repository, version));
    return configs.get(version)!;
  };
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const versions = await publishedVersions(client, repository);
    const { compareWith, changelogBase, next } = pickVersions(built.version, versions);
    if (compareWith) {
      const current = await published(compareWith);
      if (await sameContent(built, current.config, layerDigests)) {
        const status = conflicts.includes(compareWith) ? 'concurrent' : 'unchanged';
        return { ...base, status, version: compareWith, digest: current.digest, conflicts: conflicts.filter((v) => v !== compareWith) };
      }
    }
    const changelog = changelogFor(built.config, changelogBase ? { version: changelogBase, config: (await published(changelogBase)).config } : undefined);
    const content = await contentOf(built.out, built.manifest, built.config, layerDigests);
    const image = await publishedImage(built.out, built, next, changelog, content);
    try {
      await pushVersion(next);
    } catch (err) {
      if (err instanceof RegistryError && err.status === 409) {
        conflicts.push(next);
        continue;
      }
      throw err;
    }
    return { ...base, status: 'published', version: next, digest: image.digest, changelog, conflicts };
  }
  throw new VztplError(`publish ${built.name}: other publishers took ${conflicts.join(', ')}; gave up after ${MAX_ATTEMPTS} attempts`);
}
