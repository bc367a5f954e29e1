// The registry's state on one storage driver: blobs, uploads, manifests, versions, and the
// template catalog records written when a version is published.
import { OciError } from './errors.ts';
import { isNotFound, type StorageDriver } from './storage/driver.ts';
import { BlobStore } from './store/blobs.ts';
import { ManifestStore } from './store/manifests.ts';
import { isReservedComponent, REPOSITORY_NAME } from './store/paths.ts';
import { UploadStore } from './store/uploads.ts';

export class Registry {
  readonly driver: StorageDriver;
  readonly blobs: BlobStore;
  readonly uploads: UploadStore;
  readonly manifests: ManifestStore;
  constructor(driver: StorageDriver) {
    this.driver = driver;
    this.blobs = new BlobStore(driver);
    this.uploads = new UploadStore(driver, this.blobs);
    this.manifests = new ManifestStore(driver, this.blobs);
  }

  /** Throws NAME_INVALID for names the OCI spec or the storage layout cannot take. */
  checkName(repo: string): void {
    if (!this.isValidName(repo)) {
      throw new OciError('NAME_INVALID', `invalid repository name ${JSON.stringify(repo)}`, { name: repo });
    }
  }

  isValidName(repo: string): boolean {
    return repo.length <= 255 && REPOSITORY_NAME.test(repo) && !isReservedComponent(repo);
  }

  /** Records that a repository exists, for the catalog (one small object per repository). */
  async registerRepository(repo: string): Promise<void> {
    await this.driver.putContent(repositoryIndexPath(repo), Buffer.from(repo), { ifNotExists: true });
  }

  async repositories(): Promise<string[]> {
    const names: string[] = [];
    try {
      await this.driver.walk(INDEX_ROOT, (info) => {
        if (info.path.endsWith(INDEX_MARK)) names.push(info.path.slice(INDEX_ROOT.length + 1, -INDEX_MARK.length));
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return names.sort();
  }
}

const INDEX_ROOT = '/v2/_index/repositories';
const INDEX_MARK = '/_repository';

function repositoryIndexPath(repo: string): string {
  return `${INDEX_ROOT}/${repo}${INDEX_MARK}`;
}
