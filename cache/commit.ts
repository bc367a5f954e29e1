// Commit: a container back into a template. Its snapshots and live changes (overlay upper dirs)
// are packed as OCI layers above its template's layers, with the builder's reproducible packer
// (whiteouts and opaque dirs converted, entries sorted, mtimes clamped to the epoch), into an
// OCI image layout whose config keeps the template's labels, adds one history entry per new
// layer, and carries the package lock read again from the container's own package database.
// The template's layers are the cached blobs, unchanged, so a push sends only the new ones.
import { lstatSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ExitCode, UsageError, VztplError } from '../common/errors.ts';
import { lockExclusive } from '../common/lock.ts';
import type { Digest } from '../format/digest.ts';
import { writeLayoutAtomically } from '../format/layout.ts';
import { Label, MediaType, type Compression, type Descriptor, type HistoryEntry, type ImageConfig, type ImageManifest, type LockedPackage } from '../format/oci.ts';
import { readDpkgStatus } from '../format/packages/dpkg.ts';
import { rpmPackageLock } from '../format/packages/rpm.ts';
import { packLayer, type PackedLayer } from '../format/tar/pack.ts';
import { walkLayer, type LayerEntry } from '../format/tar/walk.ts';
import { containerPaths, mountRoot, snapshotPath } from './containers.ts';
import { quietOverlayContainer } from './snapshots.ts';
import type { Store } from './store.ts';

/** The container's own identity, written by create: never part of a template. */
const IDENTITY = new Set(['etc/hostname', 'etc/machine-id']);

export interface CommitOptions {
  store: Store;
  ctid: string;
  /** The new template's name and version. */
  name: string;
  version: string;
  /** The OCI layout to write (replaced whole when it exists). */
  out: string;
  /** mtimes later than this are clamped to it (default: SOURCE_DATE_EPOCH, else now). */
  epoch?: number;
  compression?: Compression;
}

export interface CommitResult {
  manifestDigest: Digest;
  /** The template's layers, reused as they are. */
  templateLayers: number;
  /** Layers made from the container's snapshots and live changes (empty ones are skipped). */
  newLayers: Array<{ from: string; digest: Digest; size: number }>;
  packages: number;
}

/**
 * A layer's entries without the container's identity files, and without the directories that
 * hold only them (/etc when nothing else in it changed: nothing left under it in this layer,
 * owner and mode as below). Other directories stay even when only their times changed.
 */
function withoutIdentity(entries: LayerEntry[], lowers: readonly string[]): LayerEntry[] {
  const kept = entries.filter((e) => !IDENTITY.has(e.path));
  const holders = new Set([...IDENTITY].flatMap((p) => p.split('/').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join('/'))));
  const needed = new Set<string>();
  const mark = (path: string) => {
    for (let d = path; d.includes('/'); ) needed.add((d = d.slice(0, d.lastIndexOf('/'))));
  };
  for (const e of kept) if (e.type !== 'dir') mark(e.path);
  const unchanged = (e: LayerEntry) => {
    for (const lower of lowers) {
      const st = lstatSync(join(lower, e.path), { throwIfNoEntry: false });
      if (st) return st.isDirectory() && (st.mode & 0o7777) === e.mode && st.uid === e.uid && st.gid === e.gid && !e.xattrs?.size;
    }
    return false;
  };
  // Deepest first, so that a parent sees whether a child directory stays.
  const dirs = kept.filter((e) => e.type === 'dir').sort((a, b) => b.path.split('/').length - a.path.split('/').length);
  const dropped = new Set<string>();
  for (const d of dirs) {
    if (!holders.has(d.path) || needed.has(d.path) || !unchanged(d)) mark(d.path);
    else dropped.add(d.path);
  }
  return kept.filter((e) => !dropped.has(e.path));
}

export async function commitContainer(opts: CommitOptions): Promise<CommitResult> {
  const { store, ctid } = opts;
  const compression = opts.compression ?? 'zstd';
  const epoch = opts.epoch ?? (process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) : Math.floor(Date.now() / 1000));
  if (!Number.isInteger(epoch) || epoch < 0) throw new UsageError(`commit: SOURCE_DATE_EPOCH must be whole seconds, not ${JSON.stringify(process.env.SOURCE_DATE_EPOCH)}`);
  // Held for the whole commit: no snapshot, rollback or destroy changes the trees meanwhile.
  const lock = await lockExclusive(store.lockPath(`ct-${ctid}`));
  const work = join(store.tmpDir(), `commit-${process.pid}-${Date.now()}`);
  try {
    const record = await quietOverlayContainer(store, ctid, 'commit', 'commit needs');
    const { manifest, config } = store.templateImage(record.template.manifestDigest);
    for (const layer of manifest.layers) {
      if (!store.hasBlob(layer.digest)) throw new VztplError(`commit: layer ${layer.digest} of template ${record.template.name}:${record.template.version} is not in the host's store: pull it again`, ExitCode.notFound);
    }

    // The package lock, as the container's own database says now.
    await mountRoot(store, record);
    const p = containerPaths(store, ctid);
    const meta = config['org.openvz.template'];
    let packages: LockedPackage[] = meta?.packages ?? [];
    if (meta?.family === 'deb') packages = await readDpkgStatus(p.rootfs);
    else if (meta?.family === 'rpm') packages = await rpmPackageLock(p.rootfs);

    // One layer per snapshot, then one for the live changes; each knows the trees below it.
    await mkdir(work, { recursive: true });
    const layersDir = join(store.root, 'layers', 'sha256');
    const below = record.layers.map((d) => join(layersDir, d.slice(7)));
    const trees = [...(record.snapshots ?? []).map((s) => ({ from: `snapshot ${s.name}`, dir: snapshotPath(store, ctid, s) })), { from: 'live changes', dir: join(p.dir, record.upper ?? 'upper') }];
    const packed: Array<PackedLayer & { from: string; file: string }> = [];
    for (const [i, tree] of trees.entries()) {
      const entries = withoutIdentity(await walkLayer(tree.dir, { kind: 'upper', epoch, lowers: [...below].reverse() }), [...below].reverse());
      below.push(tree.dir);
      if (entries.length === 0) continue;
      const file = join(work, `layer-${i}`);
      packed.push({ ...(await packLayer(entries, file, compression)), from: tree.from, file });
    }

    const created = new Date(epoch * 1000).toISOString();
    const history: HistoryEntry[] = [...(config.history ?? []), ...packed.map((l) => ({ created, created_by: `vztpl commit ${ctid}: ${l.from}`, comment: `container ${ctid} (${record.hostname}) from ${record.template.name}:${record.template.version}` }))];
    const labels = { ...config.config?.Labels, [Label.title]: opts.name, [Label.version]: opts.version, [Label.created]: created };
    const newConfig: ImageConfig = {
      ...config,
      created,
      config: { ...config.config, Labels: labels },
      rootfs: { type: 'layers', diff_ids: [...config.rootfs.diff_ids, ...packed.map((l) => l.diffId)] },
      history,
      ...(meta ? { 'org.openvz.template': { ...meta, name: opts.name, version: opts.version, packages } } : {}),
    };
    let manifestDigest: Digest | undefined;
    await writeLayoutAtomically(opts.out, async (layout) => {
      for (const layer of manifest.layers) await layout.importBlob(store.blobPath(layer.digest), layer.digest);
      for (const l of packed) await layout.importBlob(l.file, l.digest);
      const newManifest: ImageManifest = {
        schemaVersion: 2,
        mediaType: MediaType.manifest,
        config: await layout.writeJson(MediaType.config, newConfig),
        layers: [...manifest.layers, ...packed.map((l): Descriptor => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }))],
      };
      const written = await layout.writeJson(MediaType.manifest, newManifest);
      manifestDigest = written.digest;
      await layout.writeIndex([{ ...written, annotations: { [Label.refName]: opts.version, [Label.title]: opts.name } }]);
    });
    return { manifestDigest: manifestDigest!, templateLayers: manifest.layers.length, newLayers: packed.map((l) => ({ from: l.from, digest: l.digest, size: l.size })), packages: packages.length };
  } finally {
    await rm(work, { recursive: true, force: true });
    lock.release();
  }
}
