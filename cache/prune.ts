// What the cache holds (templates, their sizes, bytes shared between them) and LRU pruning to a
// size budget. A layer a container uses is never removed, nor the template it came from.
import { readdir, rm, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../format/digest.ts';
import { listContainers, stackLayers } from './containers.ts';
import { liveHolds, whilePruning } from './holds.ts';
import type { Store, TemplateRef } from './store.ts';

export interface TemplateUsage {
  ref: TemplateRef;
  /** Extracted bytes of all its layers. */
  bytes: number;
  /** Of those, bytes in layers another cached template also uses. */
  shared: number;
  containers: number;
}

export async function templateUsage(store: Store): Promise<{ templates: TemplateUsage[]; totalBytes: number }> {
  const refs = await store.refs();
  const users = new Map<Digest, number>();
  for (const r of refs) for (const l of new Set(r.layers.map((x) => x.diffId))) users.set(l, (users.get(l) ?? 0) + 1);
  const sizes = new Map<Digest, number>();
  for (const d of users.keys()) sizes.set(d, (await store.layerInfo(d))?.bytes ?? 0);
  const containers = await listContainers(store);
  const templates = refs.map((ref) => {
    const layers = [...new Set(ref.layers.map((l) => l.diffId))];
    return {
      ref,
      bytes: layers.reduce((n, d) => n + (sizes.get(d) ?? 0), 0),
      shared: layers.filter((d) => (users.get(d) ?? 0) > 1).reduce((n, d) => n + (sizes.get(d) ?? 0), 0),
      containers: containers.filter((c) => c.template.manifestDigest === ref.manifestDigest).length,
    };
  });
  return { templates, totalBytes: [...sizes.values()].reduce((a, b) => a + b, 0) };
}

export interface PruneReport {
  removedTemplates: string[];
  removedLayers: Digest[];
  /** Manifests, configs and compressed layers no remaining template refers to. */
  removedBlobs: Digest[];
  freedBytes: number;
  totalBytes: number;
}

/**
 * Removes least recently used templates until the extracted layers fit `maxBytes` (all unused
 * ones with maxBytes 0), then every layer no remaining template or container needs.
 */
export async function prune(store: Store, maxBytes: number): Promise<PruneReport> {
  return whilePruning(store, () => pruneHeld(store, maxBytes));
}

/** prune, holding the prune lock: running pulls and creates have written their holds. */
async function pruneHeld(store: Store, maxBytes: number): Promise<PruneReport> {
  const { sweepLeftovers } = await import('./pull.ts');
  await sweepLeftovers(store);
  const held = liveHolds(store);
  const containers = await listContainers(store);
  const pinned = new Set([...containers.flatMap((c) => stackLayers(c)), ...held.layers]);
  // A template is in use while a container was made from it or a create holds its manifest.
  const inUse = new Set([...containers.map((c) => c.template.manifestDigest), ...held.blobs]);
  let refs = await store.refs();
  const report: PruneReport = { removedTemplates: [], removedLayers: [], removedBlobs: [], freedBytes: 0, totalBytes: 0 };
  const layerBytes = async (d: Digest) => (await store.layerInfo(d))?.bytes ?? 0;
  const needed = () => new Set([...pinned, ...refs.flatMap((r) => r.layers.map((l) => l.diffId))]);
  const total = async () => {
    let n = 0;
    for (const d of await storedLayers(store)) n += await layerBytes(d);
    return n;
  };
  let current = await total();
  for (const ref of [...refs].sort((a, b) => a.lastUsed.localeCompare(b.lastUsed))) {
    if (current <= maxBytes) break;
    if (inUse.has(ref.manifestDigest)) continue;
    await store.removeRef(ref);
    refs = refs.filter((r) => r !== ref);
    report.removedTemplates.push(`${ref.name}:${ref.version}`);
    const keep = needed();
    for (const l of ref.layers) {
      if (keep.has(l.diffId) || report.removedLayers.includes(l.diffId)) continue;
      current -= await layerBytes(l.diffId);
    }
  }
  const keep = needed();
  for (const d of await storedLayers(store)) {
    if (keep.has(d)) continue;
    const bytes = await layerBytes(d);
    // The info file goes first: without it the layer counts as absent, never as half there.
    await rm(store.layerInfoPath(d), { force: true });
    await removeLayerDir(store, d);
    report.removedLayers.push(d);
    report.freedBytes += bytes;
  }
  // Layer dirs without an info file that no running pull holds: a pull killed between the
  // rename into place and the info file (they count as absent; the space is freed here).
  for (const d of await orphanLayerDirs(store)) {
    if (pinned.has(d)) continue;
    await removeLayerDir(store, d);
  }
  // The blobs of the removed templates (their compressed layers are as large as the rest).
  const blobs = join(store.root, 'blobs', 'sha256');
  const referenced = new Set([...refs.flatMap((r) => [r.manifestDigest, r.configDigest, ...r.layers.map((l) => l.digest)]), ...held.blobs]);
  for (const name of await readdir(blobs).catch(() => [] as string[])) {
    const digest = `sha256:${name}` as Digest;
    if (!/^[0-9a-f]{64}$/.test(name) || referenced.has(digest)) continue;
    await rm(join(blobs, name), { force: true });
    report.removedBlobs.push(digest);
  }
  report.totalBytes = await total();
  return report;
}

/** Moves a layer's directory out of the layers at once, then deletes it. */
async function removeLayerDir(store: Store, d: Digest): Promise<void> {
  const doomed = join(store.tmpDir(), `prune-${process.pid}-${d.slice(7, 19)}`);
  await rename(store.layerDir(d), doomed).catch(() => undefined);
  await rm(doomed, { recursive: true, force: true });
}

async function orphanLayerDirs(store: Store): Promise<Digest[]> {
  const names = new Set(await readdir(join(store.root, 'layers', 'sha256')).catch(() => [] as string[]));
  return [...names].filter((n) => /^[0-9a-f]{64}$/.test(n) && !names.has(`${n}.json`)).map((n) => `sha256:${n}` as Digest);
}

async function storedLayers(store: Store): Promise<Digest[]> {
  const names = await readdir(join(store.root, 'layers', 'sha256')).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('.json')).map((n) => `sha256:${n.slice(0, -5)}` as Digest);
}
