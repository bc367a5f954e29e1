// vztpl publish, the parts that are not pushing (cli/commands/publish.ts pushes with push's
// logic): recipes in build order, the content of a built template apart from dates, the
// published versions of a template, the next patch version and its changelog, and the image
// that is published (the built layers, a config that carries version, changelog and content).
//
// "Apart from dates": the builder clamps every mtime to SOURCE_DATE_EPOCH, which defaults to the
// date of the bootstrap mirror's metadata, and stamps the config's `created`, the history's
// `created` and the manifest's created annotation with it. A mirror whose Release date moved
// while nothing the template holds changed therefore gives layers with other bytes (other
// mtimes) and another config. The content compared is, per layer, every entry's path, type,
// mode, owner, size, link target, device numbers, extended attributes and data digest, but not
// its mtime (with /etc/shadow's last-change day, a date written from SOURCE_DATE_EPOCH, blanked);
// and the config without `created`, history dates, the version and the publish metadata. The
// recipe digest is part of the config: a recipe that changed publishes a new version.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import semver from 'semver';
import { RegistryClient, RegistryError } from '../client/registry-client.ts';
import { createDecompressor } from '../format/compress.ts';
import { sha256, type Digest } from '../format/digest.ts';
import { OciLayout } from '../format/layout.ts';
import { Label, MediaType, type ImageConfig, type ImageManifest, type TemplateChangelog } from '../format/oci.ts';
import { packageDiff } from '../format/packages/diff.ts';
import { readTar } from '../format/tar/read.ts';
import { isVersionTag } from '../format/versions.ts';
import { planBuild, type BuildPlan } from './plan.ts';

/** The manifest annotation that makes each publish's manifest its own (see publishedImage). */
export const PUBLISH_ID_ANNOTATION = 'org.openvz.template.publish-id';

/** Recipes in build order: every recipe after the recipes it is built `from:` (bases first). */
export async function orderRecipes(files: readonly string[]): Promise<BuildPlan[]> {
  const plans = await Promise.all(files.map((f) => planBuild(f)));
  // An ancestor's chain is a strict prefix of its flavor's: shorter chains first is a topological order.
  return plans.map((plan, i) => ({ plan, i })).sort((a, b) => a.plan.chain.length - b.plan.chain.length || a.i - b.i).map(({ plan }) => plan);
}

/** JSON with sorted keys: the same content gives the same text whatever the writer's key order. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

const SHADOW = new Set(['etc/shadow', 'etc/shadow-']);

/** A layer's content apart from dates (see the top of this file): a digest of its entries without their mtimes. */
export async function layerContentDigest(file: string, mediaType: string): Promise<Digest> {
  const raw = createReadStream(file);
  const decompressor = createDecompressor(mediaType);
  if (decompressor) raw.on('error', (err) => decompressor.destroy(err));
  const source = decompressor ? raw.pipe(decompressor) : raw;
  const hash = createHash('sha256');
  for await (const { entry, body } of readTar(source)) {
    let data: string | null = null;
    let size: number | null = entry.size;
    if (entry.type === 'file') {
      const h = createHash('sha256');
      if (SHADOW.has(entry.path)) {
        const chunks: Buffer[] = [];
        for await (const chunk of body()) chunks.push(chunk);
        // name:password:LASTCHANGE:...: the day of the last change is SOURCE_DATE_EPOCH's
        h.update(Buffer.concat(chunks).toString('utf8').replace(/^([^:\n]*:[^:\n]*:)[0-9]*:/gm, '$1:'));
        size = null;
      } else {
        for await (const chunk of body()) h.update(chunk);
      }
      data = h.digest('hex');
    }
    const xattrs = [...(entry.xattrs ?? new Map<string, Buffer>())].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v.toString('base64')]);
    hash.update(`${JSON.stringify([entry.path, entry.type, entry.mode, entry.uid, entry.gid, size, entry.linkname ?? null, entry.devmajor ?? null, entry.devminor ?? null, xattrs, data])}\n`);
  }
  return `sha256:${hash.digest('hex')}`;
}

/** The config as compared: without dates, layer digests, version and publish metadata. */
export function configWithoutDates(config: ImageConfig): unknown {
  const { created: _created, rootfs: _rootfs, history, config: run, 'org.openvz.template': meta, ...rest } = config;
  const labels = { ...run?.Labels };
  delete labels[Label.version];
  delete labels[Label.created];
  const { version: _version, changelog: _changelog, content: _content, ...template } = meta ?? ({} as Partial<NonNullable<typeof meta>>);
  return { ...rest, config: { ...run, Labels: labels }, history: history?.map(({ created: _c, ...h }) => h), template: meta ? template : null };
}

/** Layer content digests by diff_id, shared by the recipes of one publish run (a flavor shares its base's layers). */
export type LayerDigests = Map<Digest, Digest>;

/** The content of a built template apart from dates: its digest and each layer's. */
export async function contentOf(layoutDir: string, manifest: ImageManifest, config: ImageConfig, cache: LayerDigests = new Map()): Promise<{ digest: Digest; layers: Digest[] }> {
  const layout = new OciLayout(layoutDir);
  const layers: Digest[] = [];
  for (const [i, layer] of manifest.layers.entries()) {
    const diffId = config.rootfs.diff_ids[i]!;
    let digest = cache.get(diffId);
    if (!digest) {
      digest = await layerContentDigest(layout.blobPath(layer.digest), layer.mediaType);
      cache.set(diffId, digest);
    }
    layers.push(digest);
  }
  return { digest: sha256(stableJson({ config: configWithoutDates(config), layers })), layers };
}

/**
 * Whether a build has the content of a published version, apart from dates. Same layers (diff_ids)
 * and config: the same, without reading a layer. Otherwise the content digests decide, when the
 * published version records its own (versions made by publish do); a version pushed otherwise
 * counts as different.
 */
export async function sameContent(
  built: { out: string; manifest: ImageManifest; config: ImageConfig },
  published: ImageConfig,
  cache: LayerDigests,
): Promise<boolean> {
  const sameConfig = stableJson(configWithoutDates(built.config)) === stableJson(configWithoutDates(published));
  if (sameConfig && stableJson(built.config.rootfs.diff_ids) === stableJson(published.rootfs.diff_ids)) return true;
  const recorded = published['org.openvz.template']?.content?.digest;
  if (!recorded) return false;
  return (await contentOf(built.out, built.manifest, built.config, cache)).digest === recorded;
}

/** The versions published in `repo` (none when the repository does not exist). */
export async function publishedVersions(client: RegistryClient, repo: string): Promise<string[]> {
  try {
    const listed = (await client.catalogVersions(repo))?.map((v) => v.version) ?? (await client.tags(repo));
    return listed.filter(isVersionTag).sort(semver.compare);
  } catch (err) {
    if (err instanceof RegistryError && err.status === 404) return [];
    throw err;
  }
}

/** A published version's manifest digest and config. */
export async function readPublished(client: RegistryClient, repo: string, version: string): Promise<{ digest: Digest; manifest: ImageManifest; config: ImageConfig }> {
  const got = await client.getManifest(repo, version, [MediaType.manifest]);
  const manifest = JSON.parse(got.bytes.toString('utf8')) as ImageManifest;
  const config = JSON.parse((await client.getBlobLimited(repo, manifest.config.digest, 16 << 20)).toString('utf8')) as ImageConfig;
  return { digest: got.digest ?? sha256(got.bytes), manifest, config };
}

/**
 * The version a build is compared with (the newest release of the recipe's MAJOR.MINOR), the one
 * its changelog is against (the newest release below the next), and the next version: the
 * recipe's own when its MAJOR.MINOR has none yet, else the next patch (never below the recipe's).
 */
export function pickVersions(recipeVersion: string, published: readonly string[]): { compareWith?: string; changelogBase?: string; next: string } {
  const releases = published.filter((v) => isVersionTag(v) && !semver.prerelease(v)).sort(semver.compare);
  const major = semver.major(recipeVersion);
  const minor = semver.minor(recipeVersion);
  const compareWith = releases.filter((v) => semver.major(v) === major && semver.minor(v) === minor).at(-1);
  let next = recipeVersion;
  if (compareWith) {
    const bumped = semver.inc(compareWith, 'patch')!;
    next = semver.gt(bumped, recipeVersion) ? bumped : recipeVersion;
  }
  const changelogBase = releases.filter((v) => semver.lt(v, next)).at(-1);
  return { compareWith, changelogBase, next };
}

/** What changed from `base` (a published version's config, or none) to the build. */
export function changelogFor(config: ImageConfig, base?: { version: string; config: ImageConfig }): TemplateChangelog {
  const meta = config['org.openvz.template'];
  if (!base) return { recipeChanged: true, added: [], removed: [], upgraded: [] };
  const before = base.config['org.openvz.template'];
  const recipeOf = (c: ImageConfig) => c['org.openvz.template']?.recipeDigest ?? c.config?.Labels?.[Label.recipeDigest];
  const diff = packageDiff(before?.packages ?? [], meta?.packages ?? []);
  return { previous: base.version, recipeChanged: recipeOf(config) !== recipeOf(base.config), added: diff.added, removed: diff.removed, upgraded: diff.changed };
}

/**
 * Writes the image to publish into the build's layout (as its only image, named `version`): the
 * built layers; the config with the version, the changelog and the content digests; a manifest
 * whose publish-id annotation is this publish's own. Two publishers of the same content so make
 * different manifests, and the registry's create-only version tags let exactly one of them have
 * the version: the other is refused (409) and reports the winner's.
 */
export async function publishedImage(
  out: string,
  built: { manifest: ImageManifest; config: ImageConfig },
  version: string,
  changelog: TemplateChangelog,
  content: { digest: Digest; layers: Digest[] },
): Promise<{ digest: Digest; config: ImageConfig }> {
  const layout = new OciLayout(out);
  const config = structuredClone(built.config);
  const meta = config['org.openvz.template'];
  if (meta) Object.assign(meta, { version, changelog, content });
  if (config.config?.Labels) config.config.Labels[Label.version] = version;
  const manifest: ImageManifest = {
    ...built.manifest,
    config: await layout.writeJson(MediaType.config, config),
    annotations: { ...built.manifest.annotations, [Label.version]: version, [PUBLISH_ID_ANNOTATION]: randomUUID() },
  };
  const descriptor = await layout.writeJson(MediaType.manifest, manifest);
  await layout.writeIndex([{ ...descriptor, annotations: { [Label.refName]: version, [Label.title]: meta?.name ?? built.manifest.annotations?.[Label.title] ?? '' } }]);
  return { digest: descriptor.digest, config };
}
