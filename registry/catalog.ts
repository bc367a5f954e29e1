// The template catalog: what a version is (name, digest, size, date, labels, package lock),
// written as one small record per version when it is published, and the queries hosts and
// authors ask of it (search, versions, range resolution, package differences).
import semver from 'semver';
import type { Digest } from '../format/digest.ts';
import type { ImageConfig, ImageManifest, LockedPackage } from '../format/oci.ts';
import { Label } from '../format/oci.ts';
import { OciError } from './errors.ts';
import type { Registry } from './registry.ts';
import { isNotFound } from './store/blobs.ts';
import { aliasesFor, isValidRange, isVersionTag, resolveRange } from '../format/versions.ts';

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

const recordPath = (repo: string, version: string) => `/v2/_templates/${repo}/_versions/${version}`;
const versionsDir = (repo: string) => `/v2/_templates/${repo}/_versions`;

export class Catalog {
  readonly registry: Registry;
  constructor(registry: Registry) {
    this.registry = registry;
  }

  /** After a manifest is stored under `tag`: a version gets its record and moves the aliases. */
  async published(repo: string, tag: string, digest: Digest): Promise<void> {
    if (!isVersionTag(tag)) return;
    const record = await this.recordFor(repo, tag, digest);
    await this.registry.driver.putContent(recordPath(repo, tag), Buffer.from(JSON.stringify(record)), { ifNotExists: true });
    await this.moveAliases(repo);
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
      const versions = (await this.registry.manifests.tags(repo)).filter(isVersionTag).sort();
      const key = versions.join(' ');
      if (key === previous) return;
      previous = key;
      const target = new Map<string, string>();
      for (const v of versions) for (const alias of aliasesFor(v, versions)) target.set(alias, v);
      for (const [alias, version] of target) {
        const digest = await this.registry.manifests.resolveTag(repo, version);
        if (!digest || (await this.registry.manifests.resolveTag(repo, alias)) === digest) continue;
        // With the version's media type: a manifest need not carry a mediaType field.
        const stored = await this.registry.manifests.get(repo, digest);
        await this.registry.manifests.put(repo, alias, stored.bytes, stored.mediaType);
      }
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
    let entries: string[];
    try {
      entries = await this.registry.driver.list(versionsDir(repo));
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
    const records = await Promise.all(entries.map(async (p) => JSON.parse((await this.registry.driver.getContent(p)).toString('utf8')) as VersionRecord));
    // A record outlives a deleted version tag only until the next publish; hide it now.
    const tags = new Set(await this.registry.manifests.tags(repo));
    return records.filter((r) => tags.has(r.version)).sort((a, b) => compareVersions(a.version, b.version));
  }

  async version(repo: string, version: string): Promise<VersionRecord> {
    const found = (await this.versions(repo)).find((r) => r.version === version);
    if (!found) throw new OciError('MANIFEST_UNKNOWN', `${repo} has no version ${version}`);
    return found;
  }

  async resolve(repo: string, range: string): Promise<VersionRecord> {
    if (!isValidRange(range)) throw new OciError('TAG_INVALID', `invalid version range ${JSON.stringify(range)}`);
    const records = await this.versions(repo);
    if (!records.length) throw new OciError('NAME_UNKNOWN', `no template named ${repo}`);
    const version = resolveRange(range, records.map((r) => r.version));
    if (!version) throw new OciError('MANIFEST_UNKNOWN', `no version of ${repo} satisfies ${range} (have ${records.map((r) => r.version).join(', ')})`);
    return records.find((r) => r.version === version)!;
  }

  /** The latest version of every template matching the filters. */
  async search(filter: { q?: string; distro?: string; release?: string; arch?: string; package?: string }): Promise<Array<VersionRecord & { versions: number }>> {
    const out: Array<VersionRecord & { versions: number }> = [];
    for (const repo of await this.registry.repositories()) {
      if (filter.q && !repo.includes(filter.q)) continue;
      const records = await this.versions(repo);
      const latest = records.filter((r) => !r.version.includes('-')).at(-1) ?? records.at(-1);
      if (!latest) continue;
      if (filter.distro && latest.distro !== filter.distro) continue;
      if (filter.release && latest.release !== filter.release) continue;
      if (filter.arch && latest.arch !== filter.arch) continue;
      if (filter.package && !latest.packages.some((p) => p.name === filter.package)) continue;
      out.push({ ...latest, versions: records.length });
    }
    return out;
  }
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
