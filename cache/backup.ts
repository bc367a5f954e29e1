// Backups, restores and moves of overlay containers, as OCI images in any registry.
//
// A backup is the container's stack: its template's layers (mounted from the template's
// repository, or uploaded once), then one layer per snapshot, packed reproducibly (no mtime
// clamping, sorted entries, whiteouts as OCI whiteouts), and the container's identity in the
// config under org.openvz.backup. The live changes are first frozen as a snapshot
// (backup-TAG), so every backup's layers are immutable trees: a snapshot backed up once has the
// same digest every time (its packing is remembered in the record and asked of the registry,
// not repeated), and the next backup sends only what changed since. Identity files stay in the
// layers.
//
// A restore is hostile input exactly like a template: the manifest and config are read with
// limits and checked, the template comes through the ordinary pull (trust policy, verified
// digests, layers shared with a cached template), the backup's own layers through the same
// verified, safe extraction into read-only store layers, which the restored container's
// snapshots name by diff_id. The container is made in a staging dir renamed into place (as
// createContainer does), so a killed restore leaves no container or a whole one.
import { join } from 'node:path';
import { fs } from '../common/builtins.ts';
import { ExitCode, VztplError } from '../common/errors.ts';
import { lockExclusive } from '../common/lock.ts';
import { RegistryClient } from '../client/registry-client.ts';
import { isDigest, sha256, type Digest } from '../format/digest.ts';
import { MediaType, type Compression, type Descriptor, type HistoryEntry, type ImageConfig, type ImageManifest } from '../format/oci.ts';
import { packLayer } from '../format/tar/pack.ts';
import { walkLayer } from '../format/tar/walk.ts';
import { bundleConfig } from './bundle.ts';
import { checkCtid, containerPaths, mountNewContainer, readContainer, removeContainer, snapshotPath, sweepDeadWork, type ContainerRecord, type PackedSnapshot, type SnapshotRecord } from './containers.ts';
import { holdForUse } from './holds.ts';
import { commitRecord, quietOverlayContainer, snapshotContainer, SNAPSHOT_NAME } from './snapshots.ts';
import { RegistrySource, type TemplateSource } from './source.ts';
import type { LayerRecord, Store, TemplateRef } from './store.ts';
import type { TrustPolicy } from './trust-policy.ts';

/** The config key of a backup's identity. */
export const BACKUP_KEY = 'org.openvz.backup';
const MAX_JSON = 4 << 20;
/** No clamping: a tree's own times are kept, and the same tree packs to the same bytes. */
const NO_EPOCH = Number.MAX_SAFE_INTEGER;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;

export interface BackupIdentity {
  ctid: string;
  hostname: string;
  machineId: string;
  layout: 'overlay';
  created: string;
  template: { name: string; version: string; manifestDigest: Digest; source: string };
  /** The snapshots, oldest first: the layers after the template's, one each. */
  snapshots: Array<{ name: string; created: string }>;
  tag: string;
  backedUp: string;
}

export type BackupConfig = Omit<ImageConfig, 'org.openvz.template'> & { [BACKUP_KEY]: BackupIdentity };

export interface BackupTarget {
  client: RegistryClient;
  /** Base URL of the registry (as parseImageReference gives it). */
  registry: string;
  repository: string;
  tag: string;
}

export interface BackupResult {
  digest: Digest;
  tag: string;
  /** The snapshot the live changes were frozen as (none when there were none). */
  frozen?: string;
  layers: Array<{ from: string; digest: Digest; size: number; sent: boolean; mounted?: boolean }>;
  /** Bytes of blobs uploaded (layers and config). */
  sent: number;
  manifest: ImageManifest;
}

export type BackupEvent = { event: 'frozen'; snapshot: string } | { event: 'layer'; from: string; digest: Digest; size: number; sent: boolean; mounted?: boolean };

/** A UTC timestamp tag: 20261206T004700Z. */
export function timestampTag(now = new Date()): string {
  return now.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
}

/**
 * A small file's content as the stack shows it (dirs topmost first, overlay upper format): the
 * first dir that has it as a regular file; a whiteout or another kind of entry hides it.
 */
export function readStackFile(dirs: readonly string[], rel: string): string | undefined {
  const parts = rel.split('/');
  for (const dir of dirs) {
    let hidden = false;
    for (let i = 1; i <= parts.length; i++) {
      const st = fs.lstatSync(join(dir, ...parts.slice(0, i)), { throwIfNoEntry: false });
      if (!st) break;
      const last = i === parts.length;
      if (st.isCharacterDevice() && st.rdev === 0) return undefined;
      if (last) {
        if (!st.isFile() || st.size > 4096) return undefined;
        return fs.readFileSync(join(dir, rel), 'utf8');
      }
      if (!st.isDirectory()) {
        hidden = true;
        break;
      }
    }
    if (hidden) return undefined;
  }
  return undefined;
}

/** The container's stack dirs, topmost first: live upper, snapshots, template layers. */
function stackDirs(store: Store, record: ContainerRecord): string[] {
  const p = containerPaths(store, record.ctid);
  return [join(p.dir, record.upper ?? 'upper'), ...(record.snapshots ?? []).map((s) => snapshotPath(store, record.ctid, s)).reverse(), ...[...record.layers].reverse().map((d) => store.layerDir(d))];
}

function isEmptyDir(dir: string): boolean {
  return fs.readdirSync(dir).length === 0;
}

function frozenName(record: ContainerRecord, tag: string): string {
  const base = `backup-${tag}`.slice(0, 60).replace(/[^A-Za-z0-9_.-]/g, '_');
  const taken = new Set((record.snapshots ?? []).map((s) => s.name));
  let name = base;
  for (let n = 2; taken.has(name); n++) name = `${base}-${n}`;
  return name;
}

/**
 * Backs a container up to `target`. Holds the container's lock throughout; `beforeUnlock` runs
 * with it still held (move destroys the container there).
 */
export async function backupContainer(opts: {
  store: Store;
  ctid: string;
  target: BackupTarget;
  compression?: Compression;
  onEvent?: (e: BackupEvent) => void;
  beforeUnlock?: (result: BackupResult) => Promise<void>;
}): Promise<BackupResult> {
  const { store, ctid, target } = opts;
  const { client, repository } = target;
  const emit = opts.onEvent ?? (() => undefined);
  checkCtid(ctid);
  const lock = await lockExclusive(store.lockPath(`ct-${ctid}`));
  const work = join(store.tmpDir(), `backup-${process.pid}-${Date.now()}`);
  try {
    let record = await quietOverlayContainer(store, ctid, 'backup', 'backups need');
    const { manifest, config } = store.templateImage(record.template.manifestDigest);

    // The live changes become a snapshot: every layer of a backup is an immutable tree.
    let frozen: string | undefined;
    const p = containerPaths(store, ctid);
    if (!isEmptyDir(join(p.dir, record.upper ?? 'upper'))) {
      frozen = (await snapshotContainer(store, ctid, frozenName(record, target.tag), { locked: true })).name;
      emit({ event: 'frozen', snapshot: frozen });
      record = await readContainer(store, ctid);
    }
    const machineId = (readStackFile(stackDirs(store, record), 'etc/machine-id') ?? '').trim();
    const hostname = (readStackFile(stackDirs(store, record), 'etc/hostname') ?? `${record.hostname}\n`).trim() || record.hostname;

    let sent = 0;
    const layers: BackupResult['layers'] = [];
    // The template's layers: in the repository already, mounted from the template's own
    // repository on the same registry, or uploaded from the store once.
    const sameRegistry = !record.template.source.startsWith('oci:') && new URL(record.template.source).host === new URL(target.registry).host;
    for (const l of manifest.layers) {
      const from = `template ${record.template.name}:${record.template.version}`;
      if (await client.hasBlob(repository, l.digest)) {
        layers.push({ from, digest: l.digest, size: l.size, sent: false });
      } else if (sameRegistry && (await client.mountBlob(repository, l.digest, record.template.name))) {
        layers.push({ from, digest: l.digest, size: l.size, sent: false, mounted: true });
      } else {
        if (!store.hasBlob(l.digest)) throw new VztplError(`backup: layer ${l.digest} of template ${record.template.name}:${record.template.version} is neither at ${target.registry} nor in the host's store: pull the template again`, ExitCode.notFound);
        await client.pushBlobFile(repository, l.digest, store.blobPath(l.digest));
        sent += l.size;
        layers.push({ from, digest: l.digest, size: l.size, sent: true });
      }
      emit({ event: 'layer', ...layers.at(-1)! });
    }

    // One layer per snapshot, each knowing the trees below it (opaque markers need them).
    fs.mkdirSync(work, { recursive: true });
    const below = record.layers.map((d) => store.layerDir(d));
    const snapshots = record.snapshots ?? [];
    const packedNow: PackedSnapshot[] = [];
    for (const [i, s] of snapshots.entries()) {
      const dir = snapshotPath(store, ctid, s);
      const from = `snapshot ${s.name}`;
      let packed = s.packed;
      let sentNow = false;
      if (!packed || !(await client.hasBlob(repository, packed.digest))) {
        const file = join(work, `layer-${i}`);
        const entries = await walkLayer(dir, { kind: 'upper', epoch: NO_EPOCH, lowers: [...below].reverse() });
        const made = await packLayer(entries, file, opts.compression ?? 'zstd');
        packed = { digest: made.digest, diffId: made.diffId, size: made.size, mediaType: made.mediaType };
        if (!(await client.hasBlob(repository, packed.digest))) {
          await client.pushBlobFile(repository, packed.digest, file);
          sent += packed.size;
          sentNow = true;
        }
        fs.rmSync(file, { force: true });
      }
      below.push(dir);
      packedNow.push(packed);
      layers.push({ from, digest: packed.digest, size: packed.size, sent: sentNow });
      emit({ event: 'layer', ...layers.at(-1)! });
    }

    const backedUp = new Date().toISOString();
    const identity: BackupIdentity = {
      ctid,
      hostname,
      machineId,
      layout: 'overlay',
      created: record.created,
      template: { ...record.template },
      snapshots: snapshots.map((s) => ({ name: s.name, created: s.created })),
      tag: target.tag,
      backedUp,
    };
    const { 'org.openvz.template': _template, ...rest } = config;
    const history: HistoryEntry[] = [
      ...(config.history ?? []),
      ...snapshots.map((s) => ({ created: s.created, created_by: `vztpl backup ${ctid}: snapshot ${s.name}`, comment: `container ${ctid} (${hostname}) from ${record.template.name}:${record.template.version}` })),
    ];
    const backupConfig: BackupConfig = { ...rest, created: backedUp, rootfs: { type: 'layers', diff_ids: [...config.rootfs.diff_ids, ...packedNow.map((l) => l.diffId)] }, history, [BACKUP_KEY]: identity };
    const configBytes = Buffer.from(JSON.stringify(backupConfig));
    const configDigest = sha256(configBytes);
    if (!(await client.hasBlob(repository, configDigest))) {
      await client.pushBlob(repository, configDigest, configBytes);
      sent += configBytes.length;
    }
    const newManifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.manifest,
      config: { mediaType: MediaType.config, digest: configDigest, size: configBytes.length },
      layers: [...manifest.layers.map((l): Descriptor => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })), ...packedNow.map((l): Descriptor => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }))],
      annotations: { [`${BACKUP_KEY}.ctid`]: ctid, 'org.opencontainers.image.created': backedUp },
    };
    const manifestBytes = Buffer.from(JSON.stringify(newManifest));
    await client.putManifest(repository, target.tag, MediaType.manifest, manifestBytes);
    const digest = sha256(manifestBytes);

    // Remember how each snapshot packed, so that the next backup asks the registry, not the CPU.
    const current = await readContainer(store, ctid);
    const remembered = (current.snapshots ?? []).map((s, i) => (snapshots[i] && snapshots[i]!.name === s.name && !s.packed ? { ...s, packed: packedNow[i] } : s));
    if (remembered.some((s, i) => s !== current.snapshots![i])) commitRecord(store, { ...current, snapshots: remembered });

    const result: BackupResult = { digest, tag: target.tag, frozen, layers, sent, manifest: newManifest };
    await opts.beforeUnlock?.(result);
    return result;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    lock.release();
  }
}

/**
 * Moves a container away: a backup, then every blob of the pushed manifest checked at the
 * registry (HEAD), then the local container destroyed, all under the container's lock.
 */
export async function moveContainer(opts: Parameters<typeof backupContainer>[0]): Promise<BackupResult> {
  return backupContainer({
    ...opts,
    beforeUnlock: async (result) => {
      for (const blob of [result.manifest.config, ...result.manifest.layers]) {
        if (!(await opts.target.client.hasBlob(opts.target.repository, blob.digest))) {
          throw new VztplError(`move: ${opts.target.registry}/${opts.target.repository} does not hold ${blob.digest} of backup ${result.tag}; container ${opts.ctid} is kept`);
        }
      }
      const back = await opts.target.client.getManifest(opts.target.repository, result.tag, [MediaType.manifest]);
      if (sha256(back.bytes) !== result.digest) throw new VztplError(`move: ${opts.target.repository}:${result.tag} is not the backup just pushed (${sha256(back.bytes)}); container ${opts.ctid} is kept`);
      removeContainer(opts.store, opts.ctid);
    },
  });
}

// ---- reading backups (hostile input) ---------------------------------------------------------

export interface ReadBackup {
  digest: Digest;
  manifest: ImageManifest;
  config: BackupConfig;
  identity: BackupIdentity;
  /** The template's layers (the first ones) and the snapshots' (the rest), with diff_ids. */
  templateLayers: LayerRecord[];
  snapshotLayers: LayerRecord[];
}

function bad(where: string, why: string): never {
  throw new VztplError(`${where} is not a usable backup: ${why}`, ExitCode.failure);
}

const isString = (v: unknown): v is string => typeof v === 'string';

/** Reads and checks a backup's manifest and config; anything malformed or inconsistent is refused. */
export async function readBackup(client: RegistryClient, repository: string, reference: string): Promise<ReadBackup> {
  const where = `${repository}:${reference}`;
  const m = await client.getManifestLimited(repository, reference, [MediaType.manifest], MAX_JSON);
  if (!m) throw new VztplError(`no backup ${where} at ${client.base}`, ExitCode.notFound);
  const digest = sha256(m.bytes);
  if (isDigest(reference) && digest !== reference) bad(where, `the registry served a manifest with another digest (${digest})`);
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(m.bytes.toString('utf8')) as ImageManifest;
  } catch {
    bad(where, 'its manifest is not JSON');
  }
  if (!manifest || typeof manifest !== 'object' || !manifest.config || !isDigest(manifest.config.digest) || !Array.isArray(manifest.layers)) bad(where, 'not an image manifest');
  for (const l of manifest.layers) if (!l || !isDigest(l.digest) || !Number.isSafeInteger(l.size) || l.size < 0 || !isString(l.mediaType)) bad(where, 'a layer descriptor is malformed');
  const configBytes = await client.getBlobLimited(repository, manifest.config.digest, MAX_JSON);
  if (sha256(configBytes) !== manifest.config.digest) bad(where, `its config does not match its digest ${manifest.config.digest}`);
  let config: BackupConfig;
  try {
    config = JSON.parse(configBytes.toString('utf8')) as BackupConfig;
  } catch {
    bad(where, 'its config is not JSON');
  }
  const id = config?.[BACKUP_KEY];
  if (!id || typeof id !== 'object') bad(where, `its config has no ${BACKUP_KEY} identity (not a vztpl backup)`);
  const diffIds = config.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || !diffIds.every(isDigest)) bad(where, 'its config lists no valid diff_ids');
  if (diffIds.length !== manifest.layers.length) bad(where, `its config names ${diffIds.length} layers, its manifest has ${manifest.layers.length}`);
  if (!isString(id.ctid) || !isString(id.created) || !isString(id.hostname) || !HOSTNAME.test(id.hostname)) bad(where, 'its identity has no valid CTID, hostname or creation date');
  if (!isString(id.machineId) || !/^([0-9a-f]{32})?$/.test(id.machineId)) bad(where, 'its machine-id is not 32 hex digits');
  if (id.layout !== 'overlay') bad(where, `layout ${JSON.stringify(id.layout)} (only overlay containers are backed up)`);
  const t = id.template;
  if (!t || !isString(t.name) || !/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(t.name) || !isString(t.version) || !isDigest(t.manifestDigest) || !isString(t.source)) bad(where, 'its template is not named properly');
  if (!Array.isArray(id.snapshots)) bad(where, 'its snapshots are not a list');
  const names = new Set<string>();
  for (const s of id.snapshots) {
    if (!s || !isString(s.name) || !SNAPSHOT_NAME.test(s.name) || names.has(s.name) || !isString(s.created)) bad(where, 'a snapshot has no valid (unique) name or date');
    names.add(s.name);
  }
  const templateCount = manifest.layers.length - id.snapshots.length;
  if (templateCount < 1) bad(where, `it names ${id.snapshots.length} snapshots but has only ${manifest.layers.length} layers`);
  const records = manifest.layers.map((l, i): LayerRecord => ({ digest: l.digest, diffId: diffIds[i]!, mediaType: l.mediaType, size: l.size }));
  return { digest, manifest, config, identity: id, templateLayers: records.slice(0, templateCount), snapshotLayers: records.slice(templateCount) };
}

export interface BackupListing {
  tag: string;
  digest: Digest;
  backedUp: string;
  ctid: string;
  hostname: string;
  template: string;
  snapshots: number;
  /** All layers (template included), compressed. */
  size: number;
  /** The container's own layers. */
  own: number;
  /** Layer bytes the previous backup (by date) did not have. */
  added: number;
}

/** The backups in a repository, oldest first; tags that are no backup are left out. */
export async function listBackups(client: RegistryClient, repository: string): Promise<BackupListing[]> {
  const tags = await client.tags(repository);
  const found: Array<BackupListing & { layers: Set<Digest>; ownDigests: Descriptor[] }> = [];
  for (const tag of tags) {
    const b = await readBackup(client, repository, tag).catch(() => undefined);
    if (!b) continue;
    found.push({
      tag,
      digest: b.digest,
      backedUp: b.identity.backedUp,
      ctid: b.identity.ctid,
      hostname: b.identity.hostname,
      template: `${b.identity.template.name}:${b.identity.template.version}`,
      snapshots: b.identity.snapshots.length,
      size: b.manifest.layers.reduce((n, l) => n + l.size, 0),
      own: b.snapshotLayers.reduce((n, l) => n + l.size, 0),
      added: 0,
      layers: new Set(b.manifest.layers.map((l) => l.digest)),
      ownDigests: b.snapshotLayers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    });
  }
  found.sort((a, b) => (isString(a.backedUp) ? a.backedUp : '').localeCompare(isString(b.backedUp) ? b.backedUp : ''));
  return found.map(({ layers: _l, ownDigests, ...b }, i) => {
    const previous = found[i - 1]?.layers ?? new Set<Digest>();
    const added = [...new Map(ownDigests.filter((l) => !previous.has(l.digest)).map((l) => [l.digest, l.size])).values()].reduce((n, s) => n + s, 0);
    return { ...b, added };
  });
}

// ---- restore --------------------------------------------------------------------------------

export interface RestoreOptions {
  store: Store;
  ctid: string;
  client: RegistryClient;
  registry: string;
  repository: string;
  reference: string;
  /** A template source for a registry base URL (the template's own, or the backup's registry). */
  sourceFor: (id: string) => Promise<TemplateSource>;
  trust?: { policy: TrustPolicy | undefined; warn: (line: string) => void };
  onEvent?: (e: Record<string, unknown> & { event: string }) => void;
}

export interface RestoreResult {
  record: ContainerRecord;
  digest: Digest;
  /** Compressed bytes fetched for the backup's own layers (the template's pull reports its own). */
  downloaded: number;
  templatePulled: boolean;
}

/** Recreates a container from a backup, with its identity and snapshots; whole or not at all. */
export async function restoreBackup(opts: RestoreOptions): Promise<RestoreResult> {
  const { store, ctid } = opts;
  const emit = opts.onEvent ?? (() => undefined);
  checkCtid(ctid);
  const b = await readBackup(opts.client, opts.repository, opts.reference);
  const id = b.identity;
  await store.init();
  if (fs.existsSync(store.containerDir(ctid))) throw new VztplError(`container ${ctid} exists already (vztpl destroy ${ctid} first)`, ExitCode.conflict);

  // The template: cached (by digest), else pulled as any template is, from its own registry or
  // from the backup's (which holds its layers, and its manifest when it was pushed there).
  let template = (await store.refs()).find((r) => r.name === id.template.name && r.manifestDigest === id.template.manifestDigest);
  let templatePulled = false;
  if (!template) {
    const { pull } = await import('./pull.ts');
    const sources = [...new Set([id.template.source, opts.registry].filter((s) => !s.startsWith('oci:')))];
    let lastError: unknown;
    for (const source of sources) {
      try {
        template = await pull({ store, source: await opts.sourceFor(source), name: id.template.name, request: id.template.manifestDigest, trust: opts.trust, onEvent: (e) => emit(e) });
        templatePulled = true;
        break;
      } catch (err) {
        lastError = err;
        if (err instanceof VztplError && err.exitCode !== ExitCode.notFound && err.exitCode !== ExitCode.unavailable) throw err;
      }
    }
    if (!template) throw new VztplError(`restore: template ${id.template.name}@${id.template.manifestDigest} of backup ${opts.repository}:${opts.reference} could not be pulled: ${(lastError as Error)?.message ?? 'no registry to pull it from'}`, ExitCode.notFound);
  }
  if (template.layers.length !== b.templateLayers.length || template.layers.some((l, i) => l.diffId !== b.templateLayers[i]!.diffId || l.digest !== b.templateLayers[i]!.digest)) {
    bad(`${opts.repository}:${opts.reference}`, `its first ${b.templateLayers.length} layers are not those of its template ${template.name}:${template.version}`);
  }

  const allLayers = [...template.layers, ...b.snapshotLayers];
  const hold = await holdForUse(store, { layers: allLayers.map((l) => l.diffId), blobs: [template.manifestDigest, template.configDigest, ...allLayers.map((l) => l.digest)] });
  try {
    // The backup's own layers: verified and safely extracted as any template layer.
    const { fetchLayer } = await import('./pull.ts');
    const source = new RegistrySource(opts.registry, opts.client);
    let downloaded = 0;
    for (const l of b.snapshotLayers) downloaded += await fetchLayer(store, source, opts.repository, l, (e) => emit(e));
    const record = await createRestored(store, ctid, template, b, downloaded);
    return { record, digest: b.digest, downloaded, templatePulled };
  } finally {
    hold.release();
  }
}

async function createRestored(store: Store, ctid: string, template: TemplateRef, b: ReadBackup, _downloaded: number): Promise<ContainerRecord> {
  const id = b.identity;
  const p = containerPaths(store, ctid);
  const lock = await lockExclusive(store.lockPath(`ct-${ctid}`));
  try {
    sweepDeadWork(store);
    if (fs.existsSync(p.dir)) throw new VztplError(`container ${ctid} exists already (vztpl destroy ${ctid} first)`, ExitCode.conflict);
    for (const l of [...template.layers, ...b.snapshotLayers]) if (!(await store.hasLayer(l.diffId))) throw new VztplError(`restore: layer ${l.diffId} went missing from the store`);
    const snapshots: SnapshotRecord[] = id.snapshots.map((s, i) => {
      const l = b.snapshotLayers[i]!;
      return { name: s.name, layer: l.diffId, created: s.created, packed: { digest: l.digest, diffId: l.diffId, size: l.size, mediaType: l.mediaType } };
    });
    const record: ContainerRecord = {
      ctid,
      template: { name: template.name, version: template.version, source: template.source, manifestDigest: template.manifestDigest },
      layers: template.layers.map((l) => l.diffId),
      layout: 'overlay',
      hostname: id.hostname,
      created: id.created,
      snapshots,
      upper: 'upper',
    };
    const staging = join(store.containersDir(), `.${ctid}.creating-${process.pid}`);
    fs.rmSync(staging, { recursive: true, force: true });
    try {
      for (const d of ['upper', 'work', 'rootfs']) fs.mkdirSync(join(staging, d), { recursive: true });
      // The identity the backup names, when its layers do not show it (restored from the config).
      const dirs = [...b.snapshotLayers.map((l) => store.layerDir(l.diffId)).reverse(), ...[...record.layers].reverse().map((d) => store.layerDir(d))];
      writeIdentity(dirs, join(staging, 'upper'), id.hostname, id.machineId);
      fs.writeFileSync(join(staging, 'container.json'), JSON.stringify(record, null, 1));
      fs.writeFileSync(join(staging, 'config.json'), JSON.stringify(bundleConfig({ rootfs: p.rootfs, hostname: id.hostname, args: template.cmd, env: template.env }), null, 1));
      fs.renameSync(staging, p.dir);
    } catch (err) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw err;
    }
    mountNewContainer(store, record);
    return record;
  } finally {
    lock.release();
  }
}

/** Writes hostname and machine-id into the new upper dir where the stack below does not show them. */
function writeIdentity(dirs: readonly string[], upper: string, hostname: string, machineId: string): void {
  const wanted: Array<[string, string, number]> = [['etc/hostname', `${hostname}\n`, 0o644]];
  if (machineId) wanted.push(['etc/machine-id', `${machineId}\n`, 0o444]);
  const missing = wanted.filter(([rel, content]) => readStackFile(dirs, rel) !== content);
  if (!missing.length) return;
  // /etc as the stack shows it (the topmost dir that has it), as overlayfs's copy-up would.
  let etc: import("node:fs").Stats | undefined;
  for (const dir of dirs) {
    const st = fs.lstatSync(join(dir, 'etc'), { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) etc = st;
    break;
  }
  if (!etc) throw new VztplError("restore: the backup's tree has no /etc directory");
  const dir = join(upper, 'etc');
  fs.mkdirSync(dir);
  for (const [rel, content, mode] of missing) fs.writeFileSync(join(upper, rel), content, { mode });
  fs.chownSync(dir, etc.uid, etc.gid);
  fs.chmodSync(dir, etc.mode & 0o7777);
  fs.utimesSync(dir, etc.atime, etc.mtime);
}
