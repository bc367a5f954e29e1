// Manifests by digest and by tag. A manifest is accepted only when everything it names is in
// the repository; its bytes and revision link are written before any tag points at it, so a
// reader sees a whole manifest or none. Semver tags are versions: create-only (immutable).
import { sha256, isDigest, type Digest } from '../../format/digest.ts';
import { OciError } from '../errors.ts';
import { contentIfPresent, exists, isNotFound, type StorageDriver } from '../storage/driver.ts';
import type { BlobStore } from './blobs.ts';
import { parseManifest, type ParsedManifest } from './manifest-schema.ts';
import { parsePath, paths, TAG } from './paths.ts';
import { isVersionTag } from '../../format/versions.ts';

export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;

export interface StoredManifest {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
}

export interface PutResult {
  digest: Digest;
  /** True when the tag already pointed at the same manifest (an idempotent re-push). */
  unchanged: boolean;
  parsed: ParsedManifest;
}

const MANIFEST_CACHE_BYTES = 16 << 20;
const MEDIA_TYPE_CACHE_ENTRIES = 100_000;

export class ManifestStore {
  readonly driver: StorageDriver;
  readonly blobs: BlobStore;
  private readonly cache = new Map<Digest, Buffer>();
  /** Revision link path -> the media type it records (oldest first, bounded). */
  private readonly mediaTypes = new Map<string, string>();
  private cachedBytes = 0;
  constructor(driver: StorageDriver, blobs: BlobStore) {
    this.driver = driver;
    this.blobs = blobs;
  }

  async resolveTag(repo: string, tag: string): Promise<Digest | undefined> {
    const link = (await contentIfPresent(this.driver, paths.tagLink(repo, tag)))?.toString('utf8').trim();
    return link !== undefined && isDigest(link) ? link : undefined;
  }

  /** `reference` is a tag or a digest. */
  async get(repo: string, reference: string): Promise<StoredManifest> {
    // Neither a digest nor a tag names nothing the repository could have: not found, as the
    // spec wants (and it never becomes a storage path).
    if (!isDigest(reference) && !TAG.test(reference)) throw new OciError('MANIFEST_UNKNOWN', `manifest unknown: ${repo}:${reference}`, { reference });
    const byTag = !isDigest(reference);
    const digest = byTag ? await this.resolveTag(repo, reference) : reference;
    if (!digest) throw new OciError('MANIFEST_UNKNOWN', `manifest unknown: ${repo}:${reference}`, { reference });
    let mediaType: string;
    try {
      mediaType = await this.revisionMediaType(repo, digest, byTag);
    } catch (err) {
      if (isNotFound(err)) throw new OciError('MANIFEST_UNKNOWN', `manifest unknown: ${repo}@${digest}`, { reference });
      throw err;
    }
    return { digest, mediaType, bytes: await this.content(repo, reference, digest) };
  }

  /**
   * The media type a manifest was pushed with, from its revision link, whose existence says the
   * repository has it. The type is remembered (put() forgets it when it rewrites the link). The
   * existence is checked with a stat where the type is known, except behind a tag (`viaTag`): a
   * revision is written before any tag names it and deleted after its tags, so a tag that
   * names it says it is there.
   */
  private async revisionMediaType(repo: string, digest: Digest, viaTag = false): Promise<string> {
    const path = paths.manifestRevisionLink(repo, digest);
    const known = this.mediaTypes.get(path);
    if (known !== undefined) {
      if (!viaTag) await this.driver.stat(path);
      return known;
    }
    const mediaType = (await this.driver.getContent(path)).toString('utf8').split('\n')[1] ?? '';
    if (this.mediaTypes.size >= MEDIA_TYPE_CACHE_ENTRIES) this.mediaTypes.delete(this.mediaTypes.keys().next().value!);
    this.mediaTypes.set(path, mediaType);
    return mediaType;
  }

  /**
   * A manifest's bytes never change for its digest, so they are kept in memory (bounded);
   * whether the repository still has it is for the caller to check (revisionMediaType). Bytes
   * that garbage collection set aside are brought back; bytes that are gone (a revision link
   * whose blob was lost) make the manifest unknown, as if the revision were not there.
   */
  private async content(repo: string, reference: string, digest: Digest): Promise<Buffer> {
    const cached = this.cache.get(digest);
    if (cached) {
      this.cache.delete(digest);
      this.cache.set(digest, cached);
      return cached;
    }
    let bytes: Buffer;
    try {
      bytes = await this.blobs.getContent(digest);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      if (!(await this.blobs.restore(digest))) throw new OciError('MANIFEST_UNKNOWN', `manifest unknown: ${repo}@${digest} (its content is missing)`, { reference });
      bytes = await this.blobs.getContent(digest);
    }
    this.cache.set(digest, bytes);
    this.cachedBytes += bytes.length;
    for (const [key, value] of this.cache) {
      if (this.cachedBytes <= MANIFEST_CACHE_BYTES) break;
      this.cache.delete(key);
      this.cachedBytes -= value.length;
    }
    return bytes;
  }

  async exists(repo: string, digest: Digest): Promise<boolean> {
    return exists(this.driver, paths.manifestRevisionLink(repo, digest));
  }

  /**
   * Validates and stores a manifest. `beforeWrite` runs once it is accepted, before its revision
   * is written (the registry registers the repository there), so a refused manifest changes nothing.
   */
  async put(repo: string, reference: string, bytes: Buffer, contentType: string | undefined, opts: { beforeWrite?: () => Promise<void> } = {}): Promise<PutResult> {
    if (bytes.length > MAX_MANIFEST_SIZE) throw new OciError('MANIFEST_TOO_LARGE', `manifest exceeds ${MAX_MANIFEST_SIZE} bytes`, undefined, 413);
    const digest = sha256(bytes);
    const byDigest = isDigest(reference);
    if (byDigest && reference !== digest) throw new OciError('DIGEST_INVALID', 'manifest digest does not match the reference', { reference, actual: digest });
    // Tags have no ':', so a reference with one was meant as a digest (of an algorithm or form
    // this registry does not take).
    if (!byDigest && reference.includes(':')) throw new OciError('DIGEST_INVALID', `invalid or unsupported manifest digest ${JSON.stringify(reference)}`, { reference });
    if (!byDigest && !TAG.test(reference)) throw new OciError('TAG_INVALID', `invalid tag ${JSON.stringify(reference)}`);
    const parsed = parseManifest(bytes, contentType);
    if ('error' in parsed) throw new OciError('MANIFEST_INVALID', `manifest invalid: ${parsed.error}`);
    await this.checkReferences(repo, parsed);

    // A version that exists keeps its content: checked before writing anything.
    if (!byDigest && isVersionTag(reference)) {
      const current = await this.resolveTag(repo, reference);
      if (current === digest) return { digest, unchanged: true, parsed };
      if (current) throw immutable(repo, reference, current, digest);
    }
    // The manifest's bytes may land before beforeWrite is done: until the revision link names
    // them they are an unreferenced blob, which the check after the link covers.
    await Promise.all([opts.beforeWrite?.(), this.blobs.putContent(digest, bytes)]);
    const hadRevision = await this.exists(repo, digest);
    await this.driver.putContent(paths.manifestRevisionLink(repo, digest), Buffer.from(`${digest}\n${parsed.mediaType}`));
    this.mediaTypes.delete(paths.manifestRevisionLink(repo, digest));
    // Check again now that the revision is visible to garbage collection: a blob it set aside
    // meanwhile is restored here, or, if already deleted, the revision is withdrawn.
    try {
      await this.checkReferences(repo, parsed);
      // The manifest's own bytes too: restored from the trash, or written again.
      await this.blobs.putContent(digest, bytes);
    } catch (err) {
      if (!hadRevision) await this.driver.delete(paths.manifestRevision(repo, digest)).catch(() => undefined);
      throw err;
    }
    const subject = parsed.manifest.subject;
    if (subject && isDigest(subject.digest)) await this.driver.putContent(paths.referrerLink(repo, subject.digest, digest), Buffer.from(digest));
    if (!byDigest) {
      if (isVersionTag(reference)) {
        const created = await this.driver.putContent(paths.tagLink(repo, reference), Buffer.from(digest), { ifNotExists: true });
        if (!created) {
          const winner = await this.resolveTag(repo, reference);
          if (winner !== digest) throw immutable(repo, reference, winner, digest);
          return { digest, unchanged: true, parsed };
        }
      } else {
        await this.driver.putContent(paths.tagLink(repo, reference), Buffer.from(digest));
      }
    }
    return { digest, unchanged: false, parsed };
  }

  /**
   * Points a tag that is not a version (an alias) at a manifest the repository already has:
   * only the tag link is written, since the manifest and its blobs were checked when it was put.
   * If the manifest is deleted meanwhile, the tag goes too rather than naming nothing.
   */
  async retag(repo: string, tag: string, digest: Digest): Promise<void> {
    if (!TAG.test(tag) || isVersionTag(tag)) throw new OciError('TAG_INVALID', `not an alias tag: ${JSON.stringify(tag)}`);
    if (!(await this.exists(repo, digest))) throw new OciError('MANIFEST_UNKNOWN', `manifest unknown: ${repo}@${digest}`);
    await this.driver.putContent(paths.tagLink(repo, tag), Buffer.from(digest));
    if (!(await this.exists(repo, digest))) await this.driver.delete(paths.tagDir(repo, tag)).catch(() => undefined);
  }

  private async checkReferences(repo: string, parsed: ParsedManifest): Promise<void> {
    if (parsed.kind === 'image') {
      const { config, layers } = parsed.manifest;
      // Only a non-distributable layer with urls (checked to be http(s) by the schema) may be
      // absent: clients fetch it from there. Any other absent layer could never be pulled.
      const all = [
        { order: -1, what: 'config', d: config },
        ...layers.map((d, i) => ({ order: i, what: `layer ${i}`, d })).filter(({ d }) => !(d.urls?.length && NON_DISTRIBUTABLE_LAYERS.has(d.mediaType))),
      ];
      const missing: Array<{ order: number; what: string; digest: string; mediaType: string; urls: boolean }> = [];
      const wrongSize: WrongSize[] = [];
      await Promise.all(
        all.map(async ({ order, what, d }) => {
          const info = isDigest(d.digest) && (await this.blobs.isLinked(repo, d.digest)) ? await this.blobs.statGlobal(d.digest) : undefined;
          if (!info) missing.push({ order, what, digest: d.digest, mediaType: d.mediaType, urls: Boolean(d.urls?.length) });
          else if (info.size !== d.size) wrongSize.push({ digest: d.digest, size: d.size, actual: info.size });
        }),
      );
      if (missing.length) {
        missing.sort((x, y) => x.order - y.order);
        const list = missing.map((m) => `${m.what} ${m.digest}${m.urls ? ` (${m.mediaType} with urls; only non-distributable layers may be absent)` : ''}`).join(', ');
        throw new OciError('MANIFEST_BLOB_UNKNOWN', `manifest names blobs the repository does not have: ${list}`, { digests: missing.map((m) => m.digest), blobs: missing.map(({ what, digest, mediaType }) => ({ what, digest, mediaType })) });
      }
      if (wrongSize.length) throw sizeInvalid(wrongSize);
      return;
    }
    const missing: string[] = [];
    const wrongSize: WrongSize[] = [];
    await Promise.all(
      parsed.manifest.manifests.map(async (d) => {
        if (!isDigest(d.digest) || !(await this.exists(repo, d.digest))) return void missing.push(d.digest);
        const info = await this.blobs.statGlobal(d.digest);
        if (info && info.size !== d.size) wrongSize.push({ digest: d.digest, size: d.size, actual: info.size });
      }),
    );
    if (missing.length) throw new OciError('MANIFEST_BLOB_UNKNOWN', `index names manifests the repository does not have: ${missing.join(', ')}`, { digests: missing });
    if (wrongSize.length) throw sizeInvalid(wrongSize);
  }

  async deleteTag(repo: string, tag: string): Promise<void> {
    if (!TAG.test(tag) || !(await this.resolveTag(repo, tag))) throw new OciError('MANIFEST_UNKNOWN', `tag unknown: ${repo}:${tag}`);
    await this.driver.delete(paths.tagDir(repo, tag));
  }

  /** Deletes a manifest revision and every tag pointing at it. */
  async deleteDigest(repo: string, digest: Digest): Promise<string[]> {
    if (!(await this.exists(repo, digest))) throw new OciError('MANIFEST_UNKNOWN', `manifest unknown: ${repo}@${digest}`);
    const removedTags: string[] = [];
    for (const tag of await this.tags(repo)) {
      if ((await this.resolveTag(repo, tag)) === digest) {
        await this.driver.delete(paths.tagDir(repo, tag));
        removedTags.push(tag);
      }
    }
    await this.driver.delete(paths.manifestRevision(repo, digest));
    return removedTags;
  }

  /** Tag names, sorted. Listing is for enumeration only; lookups never depend on it. */
  async tags(repo: string): Promise<string[]> {
    try {
      const children = await this.driver.list(paths.tags(repo));
      return children.map((p) => p.slice(p.lastIndexOf('/') + 1)).sort();
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
  }

  async referrers(repo: string, subject: Digest): Promise<Digest[]> {
    const out: Digest[] = [];
    try {
      const dir = paths.referrerLinks(repo, subject);
      await this.driver.walk(dir, (info) => {
        const referrer = parsePath.digestLink(dir, info.path);
        if (referrer) out.push(referrer);
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return out.sort();
  }
}

/** Layers a registry need not hold (image-spec's non-distributable types, Docker's foreign layers). */
export const NON_DISTRIBUTABLE_LAYERS: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
]);

interface WrongSize {
  digest: string;
  size: number;
  actual: number;
}

/** A descriptor whose size is not its content's: clients would fail verifying what they pull. */
function sizeInvalid(wrong: WrongSize[]): OciError {
  const list = wrong.map((w) => `${w.digest} is ${w.actual} bytes, not ${w.size}`).join('; ');
  return new OciError('SIZE_INVALID', `manifest gives wrong sizes: ${list}`, { blobs: wrong });
}

function immutable(repo: string, version: string, current: Digest | undefined, pushed: Digest): OciError {
  return new OciError('TAG_IMMUTABLE', `${repo}:${version} is a published version and cannot change; publish a new version`, { current, pushed });
}
