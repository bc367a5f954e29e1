// The template catalog: what a version is (name, digest, size, date, labels, package lock),
// written as one small record per version when it is published, and the queries hosts and
// authors ask of it (search, versions, range resolution, package differences).
//
// Search reads one summary object per template (its versions and its latest record) instead
// of listing and reading every version of every template: on S3 each listing and read is a
// round trip, and ~60 templates took ~25 s that way. The summary is derived state, rewritten
// from the versions whenever a version is published or a version tag deleted; the versions
// (records and tags) stay the truth, and anything without a usable summary (a registry written
// before summaries existed, a summary whose latest version is gone) is recomputed from them.
import semver from 'semver';
import type { Digest } from '../format/digest.ts';
import type { ImageConfig, ImageManifest, LockedPackage } from '../format/oci.ts';
import { Label } from '../format/oci.ts';
import { OciError } from './errors.ts';
import type { Registry } from './registry.ts';
import { isNotFound } from './storage/driver.ts';
import { aliasesFor, isAliasTag, isValidRange, isVersionTag, resolveRange } from '../format/versions.ts';

export interface VersionRecord {
  name: string;
  version: string;
  digest: Digest;
  /** Config plus layers, compressed, in bytes. */
  size: number;
  created?: string;
  published: string;
  distro?: string;
  release?: string;
  arch?: string;
  flavor?: string;
  labels: Record<string, string>;
  packages: LockedPackage[];
}

/** What search needs of one template, in one object. */
export interface TemplateSummary {
  /** Layout of this object: a summary in another format is recomputed, not misread. */
  format: typeof SUMMARY_FORMAT;
  /** Every published version, lowest first. */
  versions: string[];
  /** The highest release, or the highest pre-release when there is none; absent with no versions. */
  latest?: VersionRecord;
}

export type SearchFilter = { q?: string; distro?: string; release?: string; arch?: string; package?: string };

const SUMMARY_FORMAT = 1;
/** Summaries read at once by a search: enough to hide S3's round trips, few enough for one bucket. */
const SEARCH_CONCURRENCY = 16;

/** Where the catalog keeps its objects (repository names have no component starting with '_'). */
export const catalogPaths = {
  record: (repo: string, version: string) => `/v2/_templates/${repo}/_versions/${version}`,
  versions: (repo: string) => `/v2/_templates/${repo}/_versions`,
  summary: (repo: string) => `/v2/_templates/${repo}/_summary`,
};

export class Catalog {
  readonly registry: Registry;
  constructor(registry: Registry) {
    this.registry = registry;
  }

  /** After a manifest is stored under `tag`: a version gets its record, moves the aliases and rewrites the summary. */
  async published(repo: string, tag: string, digest: Digest): Promise<void> {
    if (!isVersionTag(tag)) return;
    // The summary quotes the latest record; the aliases need only the tags.
    await Promise.all([this.moveAliases(repo), this.writeRecord(repo, tag, digest).then(() => this.refreshSummary(repo))]);
  }

  /**
   * After tags were deleted (by name, or with their manifest): if versions went, the aliases move
   * to the versions left and the summary is rewritten.
   */
  async deleted(repo: string, tags: readonly string[]): Promise<void> {
    if (!tags.some(isVersionTag)) return;
    await this.moveAliases(repo);
    await this.refreshSummary(repo);
  }

  private async writeRecord(repo: string, version: string, digest: Digest): Promise<void> {
    const bytes = Buffer.from(JSON.stringify(await this.recordFor(repo, version, digest)));
    if (await this.registry.driver.putContent(catalogPaths.record(repo, version), bytes, { ifNotExists: true })) return;
    // The record of a version that was deleted and pushed again with other content: replaced,
    // but only while the tag (create-only) names this digest, so a late publisher of the
    // deleted content cannot put its record back.
    const existing = await this.readRecord(repo, version);
    if (existing.digest !== digest && (await this.registry.manifests.resolveTag(repo, version)) === digest) {
      await this.registry.driver.putContent(catalogPaths.record(repo, version), bytes);
    }
  }

  private async readRecord(repo: string, version: string): Promise<VersionRecord> {
    return JSON.parse((await this.registry.driver.getContent(catalogPaths.record(repo, version))).toString('utf8')) as VersionRecord;
  }

  /**
   * Points every alias at the highest version it covers, recomputed from all versions.
   *
   * Concurrent publishes converge: after writing, the versions are listed again, and if one
   * appeared meanwhile the aliases are recomputed and written again. A publisher whose writes
   * were based on an older list (and may have landed after a newer publisher's) therefore
   * always corrects them; a version published after that last listing has a publisher of its
   * own that lists, and writes, later still.
   */
  async moveAliases(repo: string): Promise<void> {
    let previous: string | undefined;
    for (let round = 0; round < 20; round++) {
      const tags = await this.registry.manifests.tags(repo);
      const versions = tags.filter(isVersionTag).sort();
      const key = versions.join(' ');
      if (key === previous) return;
      previous = key;
      const target = new Map<string, string>();
      for (const v of versions) for (const alias of aliasesFor(v, versions)) target.set(alias, v);
      await Promise.all(
        [...target].map(async ([alias, version]) => {
          const digest = await this.registry.manifests.resolveTag(repo, version);
          if (!digest || (await this.registry.manifests.resolveTag(repo, alias)) === digest) return;
          await this.registry.manifests.retag(repo, alias, digest);
        }),
      );
      // An alias no version covers any more (its versions were deleted) goes too, rather than
      // naming a deleted version.
      for (const tag of tags) {
        if (!isAliasTag(tag) || target.has(tag)) continue;
        await this.registry.manifests.deleteTag(repo, tag).catch((err: unknown) => {
          if (!(err instanceof OciError && err.code === 'MANIFEST_UNKNOWN')) throw err;
        });
      }
    }
  }

  /**
   * Writes the template's summary from its versions as they are now, and returns it.
   *
   * Concurrent writers converge as in moveAliases: after writing, the versions are listed
   * again, and if the set changed meanwhile the summary is computed and written again. A writer
   * whose summary came from an older listing (and may have landed after a newer one) therefore
   * corrects it; a version published or deleted after that last listing has a writer of its own
   * that lists, and writes, later still.
   */
  async refreshSummary(repo: string): Promise<TemplateSummary> {
    let previous: string | undefined;
    let summary: TemplateSummary | undefined;
    for (let round = 0; round < 20; round++) {
      const versions = await this.versionNames(repo);
      const key = versions.join(' ');
      if (summary && key === previous) return summary;
      previous = key;
      summary = await this.summarize(repo, versions);
      await this.storeSummary(repo, summary);
    }
    return summary!;
  }

  /** Writes a summary unless the stored one already says the same (a re-push of a version changes nothing). */
  private async storeSummary(repo: string, summary: TemplateSummary): Promise<void> {
    const bytes = Buffer.from(JSON.stringify(summary));
    const stored = await this.registry.driver.getContent(catalogPaths.summary(repo)).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (!stored?.equals(bytes)) await this.registry.driver.putContent(catalogPaths.summary(repo), bytes);
  }

  private async summarize(repo: string, versions: string[]): Promise<TemplateSummary> {
    const latest = versions.filter((v) => !v.includes('-')).at(-1) ?? versions.at(-1);
    return { format: SUMMARY_FORMAT, versions, ...(latest ? { latest: await this.readRecord(repo, latest) } : {}) };
  }

  /** The stored summary; undefined when there is none or it is in another format. */
  private async readSummary(repo: string): Promise<TemplateSummary | undefined> {
    let parsed: Partial<TemplateSummary>;
    try {
      parsed = JSON.parse((await this.registry.driver.getContent(catalogPaths.summary(repo))).toString('utf8')) as Partial<TemplateSummary>;
    } catch (err) {
      // Unreadable JSON cannot come from an atomic write of ours; recomputing replaces it.
      if (isNotFound(err) || err instanceof SyntaxError) return undefined;
      throw err;
    }
    return parsed.format === SUMMARY_FORMAT && Array.isArray(parsed.versions) ? (parsed as TemplateSummary) : undefined;
  }

  /**
   * The summary search may show: the stored one while its latest version is still published,
   * else computed now (and stored). A summary names a version only after it is whole; a
   * deletion whose summary rewrite was lost (a crash) is caught here, at one small read.
   */
  private async currentSummary(repo: string): Promise<TemplateSummary> {
    const stored = await this.readSummary(repo);
    if (stored && (!stored.latest || (await this.registry.manifests.resolveTag(repo, stored.latest.version)) === stored.latest.digest)) return stored;
    return this.refreshSummary(repo);
  }

  /** Published versions, lowest first: those with both a record and a tag. */
  private async versionNames(repo: string): Promise<string[]> {
    const [entries, tags] = await Promise.all([this.listRecords(repo), this.registry.manifests.tags(repo)]);
    // A record outlives a deleted version tag: only the tag says the version is published.
    const published = new Set(tags.filter(isVersionTag));
    return entries.filter((v) => published.has(v)).sort(compareVersions);
  }

  private async listRecords(repo: string): Promise<string[]> {
    try {
      return (await this.registry.driver.list(catalogPaths.versions(repo))).map((p) => p.slice(p.lastIndexOf('/') + 1));
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
  }

  private async recordFor(repo: string, version: string, digest: Digest): Promise<VersionRecord> {
    const stored = await this.registry.manifests.get(repo, digest);
    const base: VersionRecord = { name: repo, version, digest, size: stored.bytes.length, published: new Date().toISOString(), labels: {}, packages: [] };
    const manifest = JSON.parse(stored.bytes.toString('utf8')) as Partial<ImageManifest>;
    if (!manifest.config || !Array.isArray(manifest.layers)) return base;
    const config = JSON.parse((await this.registry.blobs.getContent(manifest.config.digest)).toString('utf8')) as ImageConfig;
    const labels = config.config?.Labels ?? {};
    const meta = config['org.openvz.template'];
    return {
      ...base,
      size: manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0),
      created: config.created,
      distro: meta?.distro ?? labels[Label.distro],
      release: meta?.release ?? labels[Label.release],
      arch: meta?.arch ?? labels[Label.arch],
      flavor: meta?.flavor ?? labels[Label.flavor],
      labels,
      packages: meta?.packages ?? [],
    };
  }

  async versions(repo: string): Promise<VersionRecord[]> {
    return Promise.all((await this.versionNames(repo)).map((v) => this.readRecord(repo, v)));
  }

  async version(repo: string, version: string): Promise<VersionRecord> {
    const found = (await this.versions(repo)).find((r) => r.version === version);
    if (!found) throw new OciError('MANIFEST_UNKNOWN', `${repo} has no version ${version}`);
    return found;
  }

  async resolve(repo: string, range: string): Promise<VersionRecord> {
    if (!isValidRange(range)) throw new OciError('VERSION_RANGE_INVALID', `invalid version range ${JSON.stringify(range)}`, { range });
    const records = await this.versions(repo);
    if (!records.length) throw new OciError('NAME_UNKNOWN', `no template named ${repo}`);
    const version = resolveRange(range, records.map((r) => r.version));
    if (!version) throw new OciError('MANIFEST_UNKNOWN', `no version of ${repo} satisfies ${range} (have ${records.map((r) => r.version).join(', ')})`);
    return records.find((r) => r.version === version)!;
  }

  /** The latest version of every template matching the filters, by repository name. */
  async search(filter: SearchFilter): Promise<Array<VersionRecord & { versions: number }>> {
    const repos = (await this.registry.repositories()).filter((repo) => !filter.q || repo.includes(filter.q));
    const summaries = await mapBounded(repos, SEARCH_CONCURRENCY, (repo) => this.currentSummary(repo));
    const out: Array<VersionRecord & { versions: number }> = [];
    for (const { latest, versions } of summaries) {
      if (latest && matches(latest, filter)) out.push({ ...latest, versions: versions.length });
    }
    return out;
  }
}

function matches(latest: VersionRecord, filter: SearchFilter): boolean {
  if (filter.distro && latest.distro !== filter.distro) return false;
  if (filter.release && latest.release !== filter.release) return false;
  if (filter.arch && latest.arch !== filter.arch) return false;
  return !filter.package || latest.packages.some((p) => p.name === filter.package);
}

/** fn over items, at most `limit` calls in flight; results in the items' order. Stops at the first error. */
async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export function compareVersions(a: string, b: string): number {
  return semver.compare(a, b);
}

/** Packages added, removed and changed from one lock to another. */
export function packageDiff(from: readonly LockedPackage[], to: readonly LockedPackage[]) {
  const before = new Map(from.map((p) => [`${p.name}:${p.arch}`, p]));
  const after = new Map(to.map((p) => [`${p.name}:${p.arch}`, p]));
  const added = [...after.values()].filter((p) => !before.has(`${p.name}:${p.arch}`));
  const removed = [...before.values()].filter((p) => !after.has(`${p.name}:${p.arch}`));
  const changed = [...after.values()]
    .filter((p) => before.has(`${p.name}:${p.arch}`) && before.get(`${p.name}:${p.arch}`)!.version !== p.version)
    .map((p) => ({ name: p.name, arch: p.arch, from: before.get(`${p.name}:${p.arch}`)!.version, to: p.version }));
  return { added, removed, changed };
}
