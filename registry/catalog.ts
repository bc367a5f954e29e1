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
// Each instance keeps what search shows of the summaries in memory (search-index.ts), told of
// changes through any instance by the markers every change writes last (catalog-changes.ts).
import semver from 'semver';
import { mapBounded } from '../common/bounded.ts';
import type { Digest } from '../format/digest.ts';
import type { ImageConfig, ImageManifest, LockedPackage, TemplateChangelog } from '../format/oci.ts';
import { packageDiff } from '../format/packages/diff.ts';
import { Label } from '../format/oci.ts';
import { ChangeMarkers } from './catalog-changes.ts';
import { OciError } from './errors.ts';
import type { Registry } from './registry.ts';
import { SearchIndex } from './search-index.ts';
import { contentIfPresent, isNotFound } from './storage/driver.ts';
import { aliasesFor, isAliasTag, isValidRange, isVersionTag, resolveRange } from '../format/versions.ts';
import { isSignatureTag, MAX_PAYLOAD_SIZE, parsePayload, parseSignatureManifest, repositoryOf, SIGNATURE_ANNOTATION, SignatureFormatError, signatureTag, SIMPLE_SIGNING_MEDIA_TYPE, verifyMessage, type PublicKey } from '../format/sigstore/index.ts';
import { SPDX_MEDIA_TYPE } from '../format/spdx.ts';

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
  /** What changed since the version before, as `vztpl publish` recorded it in the config. */
  changelog?: TemplateChangelog;
}

/** A version's changelog as the catalog gives it: recorded by publish, or derived from the versions' records. */
export interface VersionChangelog extends TemplateChangelog {
  name: string;
  version: string;
  digest: Digest;
  /** true: written by `vztpl publish` into the version's config; false: derived here from the package locks and recipe digests. */
  recorded: boolean;
}

/** One template as search lists it: its latest version without labels, lock and changelog, how many versions it has, whether that one is signed. */
export type TemplateListing = Omit<VersionRecord, 'packages' | 'labels' | 'changelog'> & {
  /** How many versions are published. */
  versions: number;
  /** How many packages the latest version's lock has. */
  packages: number;
} & Pick<VersionTrust, 'signed' | 'signedBy'>;

/** What search keeps of a template in memory: its listing and the names of its latest version's packages. */
interface IndexedTemplate {
  listing: TemplateListing;
  packageNames: ReadonlySet<string>;
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
/** How long search may go on trusting its in-memory index without reloading every template (see search-index.ts). */
const SEARCH_MAX_AGE_MS = 30_000;

/** Where the catalog keeps its objects (repository names have no component starting with '_'). */
export const catalogPaths = {
  record: (repo: string, version: string) => `/v2/_templates/${repo}/_versions/${version}`,
  versions: (repo: string) => `/v2/_templates/${repo}/_versions`,
  summary: (repo: string) => `/v2/_templates/${repo}/_summary`,
};

export class Catalog {
  readonly registry: Registry;
  /** The signers' public keys the catalog names signatures by (none: signatures are only described). */
  readonly signatureKeys: readonly PublicKey[];
  private readonly changes: ChangeMarkers;
  private readonly index: SearchIndex<IndexedTemplate>;
  constructor(registry: Registry, opts: { signatureKeys?: readonly PublicKey[]; searchMaxAgeMs?: number } = {}) {
    this.registry = registry;
    this.signatureKeys = opts.signatureKeys ?? [];
    this.changes = new ChangeMarkers(registry.driver);
    this.index = new SearchIndex({
      markers: this.changes,
      repositories: () => registry.repositories(),
      load: (repo) => this.indexed(repo),
      maxAgeMs: opts.searchMaxAgeMs ?? SEARCH_MAX_AGE_MS,
      concurrency: SEARCH_CONCURRENCY,
    });
  }

  /**
   * After a manifest is stored under `tag`: a version gets its record, moves the aliases and
   * rewrites the summary; a signature changes what search shows. Either is then marked changed
   * (a version only when its summary changed, so pushing one again leaves storage as it was).
   */
  async published(repo: string, tag: string, digest: Digest): Promise<void> {
    if (isVersionTag(tag)) {
      // The summary quotes the latest record; the aliases need only the tags.
      const [, { changed }] = await Promise.all([this.moveAliases(repo), this.writeRecord(repo, tag, digest).then(() => this.refreshSummary(repo))]);
      if (changed) await this.changes.changed(repo);
    } else if (isSignatureTag(tag)) await this.changes.changed(repo);
  }

  /**
   * After tags were deleted (by name, or with their manifest): if versions went, the aliases move
   * to the versions left and the summary is rewritten; marked changed as for a publish.
   */
  async deleted(repo: string, tags: readonly string[]): Promise<void> {
    if (tags.some(isVersionTag)) {
      await this.moveAliases(repo);
      if ((await this.refreshSummary(repo)).changed) await this.changes.changed(repo);
    } else if (tags.some(isSignatureTag)) await this.changes.changed(repo);
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
  async refreshSummary(repo: string): Promise<{ summary: TemplateSummary; changed: boolean }> {
    let previous: string | undefined;
    let summary: TemplateSummary | undefined;
    let changed = false;
    for (let round = 0; round < 20; round++) {
      const versions = await this.versionNames(repo);
      const key = versions.join(' ');
      if (summary && key === previous) break;
      previous = key;
      summary = await this.summarize(repo, versions);
      if (await this.storeSummary(repo, summary)) changed = true;
    }
    return { summary: summary!, changed };
  }

  /** Writes a summary unless the stored one already says the same (a re-push of a version changes nothing); whether it wrote. */
  private async storeSummary(repo: string, summary: TemplateSummary): Promise<boolean> {
    const bytes = Buffer.from(JSON.stringify(summary));
    const stored = await contentIfPresent(this.registry.driver, catalogPaths.summary(repo));
    if (stored?.equals(bytes)) return false;
    await this.registry.driver.putContent(catalogPaths.summary(repo), bytes);
    return true;
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
   * else computed now (and stored, and marked changed for the other instances). A summary names
   * a version only after it is whole; a deletion whose summary rewrite was lost (a crash) is
   * caught here, at one small read.
   */
  private async currentSummary(repo: string): Promise<TemplateSummary> {
    const stored = await this.readSummary(repo);
    if (stored && (!stored.latest || (await this.registry.manifests.resolveTag(repo, stored.latest.version)) === stored.latest.digest)) return stored;
    const { summary, changed } = await this.refreshSummary(repo);
    if (changed) await this.changes.changed(repo);
    return summary;
  }

  /** What search keeps of a template: its latest version's listing and package names, with its signature status. */
  private async indexed(repo: string): Promise<IndexedTemplate | undefined> {
    const { latest, versions } = await this.currentSummary(repo);
    if (!latest) return undefined;
    const signatures = await signatureSummary(this.registry, repo, latest.digest, this.signatureKeys);
    const { packages, labels: _labels, changelog: _changelog, ...rest } = latest;
    const listing: TemplateListing = { ...rest, versions: versions.length, packages: packages.length, signed: (signatures?.matching ?? 0) > 0, signedBy: signatures?.signedBy ?? [] };
    return { listing, packageNames: new Set(packages.map((p) => p.name)) };
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
      ...(meta?.changelog ? { changelog: meta.changelog } : {}),
    };
  }

  /**
   * What changed in `version` since the version before it: the changelog publish recorded, or,
   * for a version pushed otherwise, the package difference from the highest lower release and
   * whether the recipe digest differs.
   */
  async changelog(repo: string, version: string): Promise<VersionChangelog> {
    return changelogFrom(repo, await this.versions(repo), version);
  }

  async versions(repo: string): Promise<VersionRecord[]> {
    return Promise.all((await this.versionNames(repo)).map((v) => this.readRecord(repo, v)));
  }

  /** Signatures and SBOM of a version's manifest (read now: both may be added after the version). */
  async trust(repo: string, digest: Digest): Promise<VersionTrust> {
    return versionTrust(this.registry, repo, digest, this.signatureKeys);
  }

  /** Each record with its signatures and SBOM, a few versions at a time. */
  async withTrust<R extends VersionRecord>(records: R[]): Promise<Array<R & VersionTrust>> {
    return mapBounded(records, SEARCH_CONCURRENCY, async (r) => ({ ...r, ...(await this.trust(r.name, r.digest)) }));
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
  async search(filter: SearchFilter): Promise<TemplateListing[]> {
    return (await this.index.templates()).filter((t) => matches(t, filter)).map((t) => t.listing);
  }
}

// ---- signatures and SBOM of a version, as the catalog reports them ----------------------------
//
// A cosign signature does not name its key: an ECDSA signature verifies only against a public
// key one already has. So the catalog reports, for each signature in the version's signature
// manifest (sha256-<hex>.sig), what it can check without a key: the payload's digest, the
// identity and the manifest digest the payload names, and whether those are this version's.
// "signed" means: at least one such signature names this version's digest and repository.
// When the operator gives the registry its signers' public keys (signatureKeys), a signature
// that verifies with one is named by that key's fingerprint ("verifiedBy", "signedBy"); any
// other key is never guessed. Hosts decide trust themselves (vztpl verify, the trust policy).

/** One signature layer, as the catalog can see it without a key. */
export interface SignatureFacts {
  /** Position in the signature manifest. */
  layer: number;
  /** The simple-signing payload's digest and size. */
  payload: { digest: Digest; size: number };
  /** The docker-reference the payload names (REGISTRY/NAME), when it parses. */
  identity?: string;
  /** The manifest digest the payload names, when it parses. */
  signedDigest?: string;
  /** Names this version's digest and a reference whose repository path is this repository. */
  matches: boolean;
  /** Why the payload could not be read as a signature, or it has no signature annotation. */
  problem?: string;
  /** Fingerprint of the registry's signatureKeys key this signature verifies with. */
  verifiedBy?: string;
}

export interface SignatureSummary {
  /** The signature manifest's tag and digest. */
  tag: string;
  digest: Digest;
  /** Signature layers (simple-signing payloads) in it. */
  count: number;
  /** Of those, the ones whose payload names this version (digest and repository). */
  matching: number;
  /** Fingerprints of the registry's signatureKeys that sign this version (of the matching ones). */
  signedBy: string[];
  signatures: SignatureFacts[];
  /** Why the signature manifest could not be read (not JSON, not an image manifest, too large). */
  problem?: string;
}

export interface SbomLink {
  /** The SBOM artifact's manifest: a referrer of the version's manifest. */
  digest: Digest;
  mediaType: string;
  artifactType: string;
  size: number;
  /** Where to fetch the artifact's manifest (distribution API). */
  url: string;
  /** The SPDX document: the artifact's layer. */
  document?: { digest: Digest; size: number; mediaType: string; url: string };
  created?: string;
  /** The SBOM manifest's own signatures, as for the version. */
  signed: boolean;
  signatures: SignatureSummary | null;
}

export interface VersionTrust {
  signed: boolean;
  /** Fingerprints of the registry's signatureKeys that sign this version. */
  signedBy: string[];
  signatures: SignatureSummary | null;
  /** The newest SBOM referrer (by its created annotation), or null. */
  sbom: SbomLink | null;
  /** How many SBOM referrers the version has (more than one only when other tools added some). */
  sboms: number;
}

/** A payload larger than this is not read by the catalog (it is not a cosign payload). */
const CATALOG_MAX_PAYLOAD = Math.min(MAX_PAYLOAD_SIZE, 64 * 1024);

/** The signature manifest of `digest` in `repo`, as facts; null when there is none, or it does not parse. */
export async function signatureSummary(registry: Registry, repo: string, digest: Digest, keys: readonly PublicKey[] = []): Promise<SignatureSummary | null> {
  const tag = signatureTag(digest);
  let stored;
  try {
    stored = await registry.manifests.get(repo, tag);
  } catch (err) {
    if ((err instanceof OciError && err.code === 'MANIFEST_UNKNOWN') || isNotFound(err)) return null;
    throw err;
  }
  let layers;
  try {
    layers = parseSignatureManifest(stored.bytes, stored.mediaType, `${repo}:${tag}`);
  } catch (err) {
    if (!(err instanceof SignatureFormatError)) throw err;
    return { tag, digest: stored.digest, count: 0, matching: 0, signedBy: [], signatures: [], problem: err.message };
  }
  const signatures: SignatureFacts[] = [];
  for (const [i, layer] of layers.entries()) {
    if (layer.mediaType !== SIMPLE_SIGNING_MEDIA_TYPE) continue;
    const facts: SignatureFacts = { layer: i, payload: { digest: layer.digest, size: layer.size }, matches: false };
    signatures.push(facts);
    if (layer.annotations?.[SIGNATURE_ANNOTATION] === undefined) {
      facts.problem = `no ${SIGNATURE_ANNOTATION} annotation`;
      continue;
    }
    if (layer.size > CATALOG_MAX_PAYLOAD) {
      facts.problem = `payload of ${layer.size} bytes not read`;
      continue;
    }
    try {
      // content-addressed: the bytes are the ones the layer names
      const bytes = await registry.blobs.getContent(layer.digest);
      const payload = parsePayload(bytes);
      facts.identity = payload.dockerReference;
      facts.signedDigest = payload.digest;
      facts.matches = payload.digest === digest && repositoryPath(payload.dockerReference) === repo;
      const signature = Buffer.from(layer.annotations[SIGNATURE_ANNOTATION]!, 'base64');
      const by = keys.find((k) => verifyMessage(k.key, bytes, signature));
      if (by) facts.verifiedBy = by.fingerprint;
    } catch (err) {
      if (isNotFound(err) || (err instanceof OciError && err.code === 'BLOB_UNKNOWN')) facts.problem = 'payload not in the registry';
      else if (err instanceof SignatureFormatError) facts.problem = err.message;
      else throw err;
    }
  }
  const signedBy = [...new Set(signatures.filter((s) => s.matches && s.verifiedBy).map((s) => s.verifiedBy!))];
  return { tag, digest: stored.digest, count: signatures.length, matching: signatures.filter((s) => s.matches).length, signedBy, signatures };
}

/** The repository path of a docker reference: without its registry host (the registry does not know the name clients use for it). */
function repositoryPath(dockerReference: string): string {
  const name = repositoryOf(dockerReference);
  const slash = name.indexOf('/');
  return slash > 0 && /[.:]|^localhost$/.test(name.slice(0, slash)) ? name.slice(slash + 1) : name;
}

/** Signatures and SBOM of one version's manifest. */
export async function versionTrust(registry: Registry, repo: string, digest: Digest, keys: readonly PublicKey[] = []): Promise<VersionTrust> {
  const [signatures, referrers] = await Promise.all([signatureSummary(registry, repo, digest, keys), registry.manifests.referrers(repo, digest)]);
  const sboms: Array<{ digest: Digest; mediaType: string; size: number; manifest: { layers?: Array<{ mediaType?: string; digest?: string; size?: number }>; annotations?: Record<string, string> } }> = [];
  for (const referrer of referrers) {
    const m = await registry.manifests.get(repo, referrer).catch(() => undefined);
    if (!m) continue;
    let parsed: { artifactType?: string; layers?: Array<{ mediaType?: string; digest?: string; size?: number }>; annotations?: Record<string, string> };
    try {
      parsed = JSON.parse(m.bytes.toString('utf8')) as typeof parsed;
    } catch {
      continue;
    }
    if (parsed.artifactType === SPDX_MEDIA_TYPE) sboms.push({ digest: referrer, mediaType: m.mediaType, size: m.bytes.length, manifest: parsed });
  }
  const created = (s: (typeof sboms)[number]) => s.manifest.annotations?.['org.opencontainers.image.created'] ?? '';
  const newest = sboms.sort((a, b) => (created(a) === created(b) ? (a.digest < b.digest ? -1 : 1) : created(a) < created(b) ? 1 : -1))[0];
  let sbom: SbomLink | null = null;
  if (newest) {
    const layer = newest.manifest.layers?.find((l) => l?.mediaType === SPDX_MEDIA_TYPE);
    const sbomSignatures = await signatureSummary(registry, repo, newest.digest, keys);
    sbom = {
      digest: newest.digest,
      mediaType: newest.mediaType,
      artifactType: SPDX_MEDIA_TYPE,
      size: newest.size,
      url: `/v2/${repo}/manifests/${newest.digest}`,
      ...(layer && typeof layer.digest === 'string' && typeof layer.size === 'number'
        ? { document: { digest: layer.digest as Digest, size: layer.size, mediaType: SPDX_MEDIA_TYPE, url: `/v2/${repo}/blobs/${layer.digest}` } }
        : {}),
      ...(created(newest) ? { created: created(newest) } : {}),
      signed: (sbomSignatures?.matching ?? 0) > 0,
      signatures: sbomSignatures,
    };
  }
  return { signed: (signatures?.matching ?? 0) > 0, signedBy: signatures?.signedBy ?? [], signatures, sbom, sboms: sboms.length };
}

/** The changelog of `version` given the template's records (all of them, lowest first): see Catalog.changelog. */
export function changelogFrom(repo: string, records: readonly VersionRecord[], version: string): VersionChangelog {
  const record = records.find((r) => r.version === version);
  if (!record) throw new OciError('MANIFEST_UNKNOWN', records.length ? `${repo} has no version ${version}` : `no template named ${repo}`);
  const head = { name: repo, version, digest: record.digest };
  if (record.changelog) return { ...head, ...record.changelog, recorded: true };
  const previous = records.filter((r) => !semver.prerelease(r.version) && compareVersions(r.version, version) < 0).at(-1);
  if (!previous) return { ...head, recipeChanged: true, added: [], removed: [], upgraded: [], recorded: false };
  const diff = packageDiff(previous.packages, record.packages);
  const recipe = (r: VersionRecord) => r.labels[Label.recipeDigest];
  return { ...head, previous: previous.version, recipeChanged: recipe(previous) !== recipe(record), added: diff.added, removed: diff.removed, upgraded: diff.changed, recorded: false };
}

function matches({ listing, packageNames }: IndexedTemplate, filter: SearchFilter): boolean {
  if (filter.q && !listing.name.includes(filter.q)) return false;
  if (filter.distro && listing.distro !== filter.distro) return false;
  if (filter.release && listing.release !== filter.release) return false;
  if (filter.arch && listing.arch !== filter.arch) return false;
  return !filter.package || packageNames.has(filter.package);
}

export function compareVersions(a: string, b: string): number {
  return semver.compare(a, b);
}

export { packageDiff };
