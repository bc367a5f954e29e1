// The builder's step cache: one entry per built layer, keyed by what determines its content
// (the parent layers, the step's definition, its input files, the repository metadata it
// resolved against). An entry keeps the layer's tree, usable again as an overlayfs lower dir,
// and its packed blobs. Entries appear by rename only, so a reader sees a whole entry or none.
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sweepDeadPidEntries } from '../common/pids.ts';
import { digestHex, type Digest } from '../format/digest.ts';
import type { Compression, HistoryEntry, LockedPackage } from '../format/oci.ts';
import type { PackedLayer } from '../format/tar/pack.ts';

export interface CachedBlob {
  mediaType: string;
  digest: Digest;
  size: number;
}

export interface CachedLayer {
  key: string;
  /** The layer's tree: a root (bootstrap) or an overlayfs upper dir with its whiteouts. */
  tree: string;
  /** A bootstrap's whole root, or a step's overlayfs upper dir (with whiteouts). */
  treeKind: 'rootfs' | 'upper';
  /** A step that changed nothing adds no layer. */
  emptyLayer: boolean;
  diffId?: Digest;
  tarSize?: number;
  blobs: Partial<Record<Compression, CachedBlob>>;
  /** Installed packages after this step. */
  packages: LockedPackage[];
  history: HistoryEntry;
  /** Seconds the step took when it ran. */
  seconds: number;
}

type Meta = Omit<CachedLayer, 'tree'>;

export const DEFAULT_CACHE_DIR = '/var/cache/vztpl';

export class StepCache {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }

  private stepDir(key: string): string {
    return join(this.root, 'steps', key);
  }

  blobPath(digest: Digest): string {
    return join(this.root, 'blobs', 'sha256', digestHex(digest));
  }

  /** Host directory a bootstrap source keeps downloaded packages in. */
  packagesDir(family: string): string {
    return join(this.root, 'packages', family);
  }

  async init(): Promise<void> {
    for (const d of ['steps', 'blobs/sha256', 'tmp', 'packages']) await mkdir(join(this.root, d), { recursive: true });
    await this.sweepStaleWork();
  }

  /** Work dirs of builds whose process is gone (killed, crashed) are deleted. */
  private async sweepStaleWork(): Promise<void> {
    // Names are <pid>-<random>; anything else in tmp/ is no build's and goes too.
    sweepDeadPidEntries(join(this.root, 'tmp'), (name) => (/^\d+-/.test(name) ? Number(name.split('-')[0]) : 1 << 30));
  }

  /** A fresh private work dir, removed by the caller (or by the next build if we die). */
  async workDir(): Promise<string> {
    const dir = join(this.root, 'tmp', `${process.pid}-${randomBytes(6).toString('hex')}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  async get(key: string): Promise<CachedLayer | undefined> {
    const dir = this.stepDir(key);
    const meta = await readFile(join(dir, 'step.json'), 'utf8').then(
      (t) => JSON.parse(t) as Meta,
      () => undefined,
    );
    if (!meta) return undefined;
    const tree = join(dir, 'tree');
    if (!(await exists(tree))) return undefined;
    for (const blob of Object.values(meta.blobs)) if (!(await exists(this.blobPath(blob.digest)))) delete meta.blobs[blobCompression(blob)];
    return { ...meta, tree };
  }

  /**
   * Moves a finished tree into the cache. If another build stored the same key first, keeps
   * theirs, unless `replace` (a --no-cache build: its fresh result must be the one used).
   */
  async put(meta: Meta, tree: string, replace = false): Promise<CachedLayer> {
    const dir = this.stepDir(meta.key);
    const staging = `${tree}.entry`;
    await mkdir(staging, { recursive: true });
    await rename(tree, join(staging, 'tree'));
    await writeFile(join(staging, 'step.json'), JSON.stringify(meta, null, 1));
    if (replace) {
      const old = `${staging}.old`;
      const hadOld = await rename(dir, old).then(
        () => true,
        () => false,
      );
      await rename(staging, dir);
      if (hadOld) await rm(old, { recursive: true, force: true });
      return { ...meta, tree: join(dir, 'tree') };
    }
    try {
      await rename(staging, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      await rm(staging, { recursive: true, force: true });
      const theirs = await this.get(meta.key);
      if (theirs) return theirs;
      throw err;
    }
    return { ...meta, tree: join(dir, 'tree') };
  }

  /** Records another compressed form of an entry's layer. */
  async addBlob(layer: CachedLayer, compression: Compression, blob: CachedBlob): Promise<void> {
    layer.blobs[compression] = blob;
    const { tree: _tree, ...meta } = layer;
    const file = join(this.stepDir(layer.key), 'step.json');
    await writeFile(`${file}.tmp`, JSON.stringify(meta, null, 1));
    await rename(`${file}.tmp`, file);
  }

  /** Moves a packed blob file into the blob store under its digest. */
  async storeBlob(file: string, packed: PackedLayer): Promise<CachedBlob> {
    const target = this.blobPath(packed.digest);
    if (await exists(target)) await rm(file, { force: true });
    else await rename(file, target);
    return { mediaType: packed.mediaType, digest: packed.digest, size: packed.size };
  }

  async clear(): Promise<void> {
    await rm(join(this.root, 'steps'), { recursive: true, force: true });
    await rm(join(this.root, 'blobs'), { recursive: true, force: true });
    await this.init();
  }
}

function blobCompression(blob: CachedBlob): Compression {
  return blob.mediaType.endsWith('zstd') ? 'zstd' : 'gzip';
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
