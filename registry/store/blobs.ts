// Blobs: content-addressed data stored once, and per-repository links that say which
// repositories may serve it. A link is written only after its blob is complete.
import type { Readable } from 'node:stream';
import type { Digest } from '../../format/digest.ts';
import { OciError } from '../errors.ts';
import { exists, isNotFound, type StorageDriver } from '../storage/driver.ts';
import { paths } from './paths.ts';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

export class BlobStore {
  readonly driver: StorageDriver;
  constructor(driver: StorageDriver) {
    this.driver = driver;
  }

  /**
   * Size of the blob in global storage, or undefined. A blob that garbage collection set aside
   * is moved back first: whoever needs a blob keeps it alive (see registry/gc.ts).
   */
  async statGlobal(digest: Digest): Promise<BlobInfo | undefined> {
    const found = await this.statData(digest);
    if (found || !(await this.restore(digest))) return found;
    return this.statData(digest);
  }

  private async statData(digest: Digest): Promise<BlobInfo | undefined> {
    try {
      const info = await this.driver.stat(paths.blobData(digest));
      return { digest, size: info.size };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Moves a blob back from the trash; false if it is not there. */
  async restore(digest: Digest): Promise<boolean> {
    try {
      await this.driver.move(paths.trashData(digest), paths.blobData(digest));
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
    await this.driver.delete(paths.trashEntry(digest)).catch(() => undefined);
    return true;
  }

  async isLinked(repo: string, digest: Digest): Promise<boolean> {
    return exists(this.driver, paths.layerLink(repo, digest));
  }

  /** The blob as repository `repo` serves it; BLOB_UNKNOWN if the repository has no link to it. */
  async stat(repo: string, digest: Digest): Promise<BlobInfo> {
    const [linked, info] = await Promise.all([this.isLinked(repo, digest), this.statGlobal(digest)]);
    if (!linked || !info) throw new OciError('BLOB_UNKNOWN', `blob unknown to repository ${repo}`, { digest });
    return info;
  }

  async link(repo: string, digest: Digest): Promise<void> {
    await this.driver.putContent(paths.layerLink(repo, digest), Buffer.from(digest));
  }

  async unlink(repo: string, digest: Digest): Promise<void> {
    try {
      await this.driver.delete(paths.layerLinkDir(repo, digest));
    } catch (err) {
      if (isNotFound(err)) throw new OciError('BLOB_UNKNOWN', `blob unknown to repository ${repo}`, { digest });
      throw err;
    }
  }

  async open(digest: Digest, offset = 0, length?: number): Promise<Readable> {
    return this.driver.reader(paths.blobData(digest), offset, length);
  }

  async redirectURL(digest: Digest, method: 'GET' | 'HEAD'): Promise<string | undefined> {
    return this.driver.redirectURL(paths.blobData(digest), { method });
  }

  /** Small blobs (manifests, configs) whole. */
  async getContent(digest: Digest): Promise<Buffer> {
    return this.driver.getContent(paths.blobData(digest));
  }

  /** Stores small content under its digest (idempotent: same digest, same bytes). */
  async putContent(digest: Digest, content: Buffer): Promise<void> {
    if (await this.statGlobal(digest)) return;
    await this.driver.putContent(paths.blobData(digest), content);
  }
}
