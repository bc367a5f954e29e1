// The builder's step cache: one entry per built layer, keyed by what determines its content
// (the parent layers, the step's definition, its input files, the repository metadata it
// resolved against). An entry keeps the layer's tree, usable again as an overlayfs lower dir,
// and its packed blobs. Entries appear by rename only, so a reader sees a whole entry or none.
//
// Several builds may use one cache at once, and a build mounts the trees of the entries it
// looked up, by path, for as long as it runs. So a tree is never deleted while a build that may
// have looked it up lives:
// - An entry is steps/<key>/ with step.json naming its tree dir (`treeDir`; "tree" when absent,
//   as entries were written before). A build that must replace an entry (--no-cache, --refresh)
//   renames its tree into the entry dir under a fresh name and then renames a new step.json over
//   the old one: a reader sees the old step.json and tree or the new ones, and the old tree stays
//   where it was, still whole, for the builds that looked it up (overlayfs resolves lower dirs
//   at mount time, so a mount of it is unaffected either way).
// - The replaced tree is retired: a marker retired/<key>~<treeDir> names it. Retired trees are
//   deleted only when no other build is alive: each build holds a session dir tmp/<pid>-<random>
//   (its work dirs are inside) from init() to close(). A build that could have looked a retired
//   tree up registered its session before the retirement, so if no other session is alive after
//   the marker was read, nobody can still use the tree.
// - Changes to an entry's step.json (a replacement, another compressed blob) are made under a
//   lock per key, re-reading step.json, and only for the tree it still names.
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { VztplError } from '../common/errors.ts';
import { pidAlive, sweepDeadPidEntries } from '../common/pids.ts';
import { digestHex, type Digest } from '../format/digest.ts';
import type { Compression, HistoryEntry, LockedPackage } from '../format/oci.ts';
import type { PackedLayer } from '../format/tar/pack.ts';
import { holdSharedLock } from './package-cache.ts';

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
/** step.json: the layer's metadata and the name of its tree dir in the entry. */
type StoredMeta = Meta & { treeDir?: string };

export const DEFAULT_CACHE_DIR = '/var/cache/vztpl';

/** The tree dir of an entry written before tree dirs were named in step.json, and of a first put. */
const FIRST_TREE = 'tree';

export class StepCache {
  readonly root: string;
  /** This build's session dir under tmp/ (see the header), from init() to close(). */
  private session: string | undefined;
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

  /** Prepares the cache and registers this build as alive in it until close(). */
  async init(): Promise<void> {
    for (const d of ['steps', 'blobs/sha256', 'tmp', 'packages', 'retired', 'locks']) await mkdir(join(this.root, d), { recursive: true });
    await this.sweepStaleWork();
    if (!this.session) {
      this.session = join(this.root, 'tmp', `${process.pid}-${randomBytes(6).toString('hex')}`);
      await mkdir(this.session);
    }
    await this.sweepRetired();
  }

  /** Ends this build's use of the cache: its session dir goes, and retired trees if it was the last. */
  async close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session) await rm(session, { recursive: true, force: true });
    // Best effort: a tree left now is deleted by the next build that finds itself alone.
    await this.sweepRetired().catch(() => undefined);
  }

  /** Work dirs of builds whose process is gone (killed, crashed) are deleted. */
  private async sweepStaleWork(): Promise<void> {
    // Names are <pid>-<random>; anything else in tmp/ is no build's and goes too.
    sweepDeadPidEntries(join(this.root, 'tmp'), (name) => (/^\d+-/.test(name) ? Number(name.split('-')[0]) : 1 << 30));
  }

  /** Whether a build other than this one (in any process, this one's included) has a live session. */
  async otherBuildsLive(): Promise<boolean> {
    const names = await readdir(join(this.root, 'tmp')).catch(() => [] as string[]);
    const own = this.session?.split('/').pop();
    return names.some((name) => name !== own && /^\d+-/.test(name) && pidAlive(Number(name.split('-')[0])));
  }

  /** A fresh private work dir in this build's session, removed by the caller (or with the session). */
  async workDir(): Promise<string> {
    if (!this.session) await this.init();
    const dir = join(this.session!, randomBytes(6).toString('hex'));
    await mkdir(dir, { recursive: true });
    return dir;
  }

  private async readMeta(key: string): Promise<StoredMeta | undefined> {
    return readFile(join(this.stepDir(key), 'step.json'), 'utf8').then(
      (t) => JSON.parse(t) as StoredMeta,
      () => undefined,
    );
  }

  private async writeMeta(key: string, meta: StoredMeta): Promise<void> {
    const file = join(this.stepDir(key), 'step.json');
    // A name of its own: another process may be writing the same entry's step.json.
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(meta, null, 1));
      await rename(tmp, file);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  private treePath(key: string, meta: StoredMeta): string {
    return join(this.stepDir(key), meta.treeDir ?? FIRST_TREE);
  }

  /** Runs fn holding the lock of one entry's step.json (short: renames and a small write). */
  private async withEntryLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const lock = await holdSharedLock(join(this.root, 'locks', `${key}.lock`));
    try {
      return await fn();
    } finally {
      lock.release();
    }
  }

  async get(key: string): Promise<CachedLayer | undefined> {
    const stored = await this.readMeta(key);
    if (!stored) return undefined;
    // The tree step.json names: it stays, whole, for as long as this build lives (see the header).
    const tree = this.treePath(key, stored);
    if (!(await exists(tree))) return undefined;
    const { treeDir: _treeDir, ...meta } = stored;
    for (const blob of Object.values(meta.blobs)) if (!(await exists(this.blobPath(blob.digest)))) delete meta.blobs[blobCompression(blob)];
    return { ...meta, tree };
  }

  /**
   * Moves a finished tree into the cache. If another build stored the same key first, keeps
   * theirs, unless `replace` (a --no-cache build: its fresh result must be the one used); the
   * replaced tree is retired, not deleted (see the header).
   */
  async put(meta: Meta, tree: string, replace = false): Promise<CachedLayer> {
    const dir = this.stepDir(meta.key);
    const staging = `${tree}.entry`;
    await mkdir(staging, { recursive: true });
    await rename(tree, join(staging, FIRST_TREE));
    await writeFile(join(staging, 'step.json'), JSON.stringify(meta, null, 1));
    try {
      await rename(staging, dir);
      return { ...meta, tree: join(dir, FIRST_TREE) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') {
        await rm(staging, { recursive: true, force: true });
        throw err;
      }
    }
    if (!replace) {
      await rm(staging, { recursive: true, force: true });
      const theirs = await this.get(meta.key);
      if (theirs) return theirs;
      throw new VztplError(`step cache entry ${dir} exists but cannot be read; run with --no-cache`);
    }
    return this.withEntryLock(meta.key, async () => {
      const treeDir = `tree.${randomBytes(6).toString('hex')}`;
      await rename(join(staging, FIRST_TREE), join(dir, treeDir));
      await rm(staging, { recursive: true, force: true });
      const old = await this.readMeta(meta.key);
      await this.writeMeta(meta.key, { ...meta, treeDir });
      // The trees the entry had: the one its step.json named, or, if none could be read (then
      // no build can have looked one up), whatever else is there.
      const retire = old ? [old.treeDir ?? FIRST_TREE] : (await readdir(dir)).filter((n) => n !== treeDir && (n === FIRST_TREE || n.startsWith(`${FIRST_TREE}.`)));
      for (const name of retire) await writeFile(join(this.root, 'retired', `${meta.key}~${name}`), '');
      return { ...meta, tree: join(dir, treeDir) };
    });
  }

  /**
   * Deletes retired trees if no other build is alive (see the header); the markers are read
   * before the builds are looked at. One sweeper at a time.
   */
  async sweepRetired(): Promise<string[]> {
    const retired = join(this.root, 'retired');
    if (!(await readdir(retired).catch(() => [])).length) return [];
    const lock = await holdSharedLock(join(this.root, 'locks', 'sweep.lock'));
    const removed: string[] = [];
    try {
      const markers = await readdir(retired).catch(() => [] as string[]);
      if (!markers.length || (await this.otherBuildsLive())) return [];
      for (const marker of markers) {
        const m = /^([0-9a-f]+)~(tree(?:\.[0-9a-f]+)?)$/.exec(marker);
        if (m) {
          const [, key, treeDir] = m as unknown as [string, string, string];
          await this.withEntryLock(key, async () => {
            const current = await this.readMeta(key);
            // Never the tree the entry names now (a marker cannot name it, but a hand-made one could).
            if (current && (current.treeDir ?? FIRST_TREE) === treeDir) return;
            await rm(join(this.stepDir(key), treeDir), { recursive: true, force: true });
            removed.push(join(this.stepDir(key), treeDir));
          });
        }
        await rm(join(retired, marker), { force: true });
      }
    } finally {
      lock.release();
    }
    return removed;
  }

  /**
   * Records another compressed form of an entry's layer, if the entry still has the layer's
   * tree (a --no-cache build may have replaced it meanwhile: its step.json is not ours to change).
   */
  async addBlob(layer: CachedLayer, compression: Compression, blob: CachedBlob): Promise<void> {
    layer.blobs[compression] = blob;
    await this.withEntryLock(layer.key, async () => {
      const current = await this.readMeta(layer.key);
      if (!current || this.treePath(layer.key, current) !== layer.tree) return;
      // Re-read under the lock: another build may have added another compression meanwhile.
      await this.writeMeta(layer.key, { ...current, blobs: { ...current.blobs, [compression]: blob } });
    });
  }

  /** Moves a packed blob file into the blob store under its digest (a blob appears whole, by rename). */
  async storeBlob(file: string, packed: PackedLayer): Promise<CachedBlob> {
    const target = this.blobPath(packed.digest);
    if (await exists(target)) await rm(file, { force: true });
    // Another build storing the same digest at once renames the same bytes over it: harmless.
    else await rename(file, target);
    return { mediaType: packed.mediaType, digest: packed.digest, size: packed.size };
  }

  /** Deletes every entry and blob; refused while another build uses the cache. */
  async clear(): Promise<void> {
    if (await this.otherBuildsLive()) throw new VztplError(`step cache ${this.root} is in use by another build; clear it when that is done`);
    await rm(join(this.root, 'steps'), { recursive: true, force: true });
    await rm(join(this.root, 'blobs'), { recursive: true, force: true });
    await rm(join(this.root, 'retired'), { recursive: true, force: true });
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
