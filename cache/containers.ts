// Containers: create from a cached template (overlay: a mount, milliseconds; reflink or copy:
// a private tree), list, re-mount after a reboot, destroy. A container's record and bundle live
// in containers/<ctid>/; its layers are never pruned while it exists.
//
// File operations are synchronous: a create is a few dozen small metadata operations in a
// short-lived process with nothing to overlap them with, and async calls would add a thread-pool
// round trip each and the fs/promises module load to the provisioning path.
import { fs, namesIn } from '../common/builtins.ts';
import { join } from 'node:path';
import { spawnQuiet } from '../common/spawn.ts';
import { sweepDeadPidEntries } from '../common/pids.ts';
import { ExitCode, UsageError, VztplError } from '../common/errors.ts';
import type { Digest } from '../format/digest.ts';
import { digestHex, isDigest } from '../format/digest.ts';
import { bundleConfig } from './bundle.ts';
import { lockExclusive } from '../common/lock.ts';
import { holdForUse, sweepDeadHolds, type Hold } from './holds.ts';
import { isMounted, mountOverlay, mountPoints, overlayOptions, unmount, type OverlaySpec } from './mounts.ts';
import type { Store, TemplateRef } from './store.ts';

export type Layout = 'overlay' | 'reflink' | 'copy';

export interface ContainerRecord {
  ctid: string;
  template: { name: string; version: string; source: string; manifestDigest: Digest };
  /** diff_ids, bottom first. */
  layers: Digest[];
  layout: Layout;
  hostname: string;
  created: string;
  /** overlay: frozen upper dirs below the live one, oldest first (cache/snapshots.ts). */
  snapshots?: SnapshotRecord[];
  /** overlay: the live upper dir's name in the container's dir (default 'upper'). */
  upper?: string;
}

export interface SnapshotRecord {
  name: string;
  /** The frozen tree's directory name in the container's dir (or else `layer`). */
  dir?: string;
  /** A restored snapshot: a read-only layer dir of the store, by diff_id (cache/backup.ts). */
  layer?: Digest;
  created: string;
  /** How a backup packed this (immutable) tree: its digest is asked of the registry, not packed again. */
  packed?: PackedSnapshot;
}

export interface PackedSnapshot {
  digest: Digest;
  diffId: Digest;
  size: number;
  mediaType: string;
}

/** Where a snapshot's tree is: its dir in the container's dir, or its layer dir in the store. */
export function snapshotPath(store: Store, ctid: string, snapshot: SnapshotRecord): string {
  if (snapshot.layer) return store.layerDir(snapshot.layer);
  if (!snapshot.dir) throw new VztplError(`snapshot ${snapshot.name} of container ${ctid} names neither a directory nor a layer`);
  return join(paths(store, ctid).dir, snapshot.dir);
}

/** The store layers a container's stack needs: its template's, and those of restored snapshots. */
export function stackLayers(record: ContainerRecord): Digest[] {
  return [...record.layers, ...(record.snapshots ?? []).flatMap((s) => (s.layer ? [s.layer] : []))];
}

const CTID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function checkCtid(ctid: string): void {
  if (!CTID.test(ctid)) throw new UsageError(`invalid CTID ${JSON.stringify(ctid)}: use a number (OpenVZ style) or a name of letters, digits, '.', '_', '-'`);
}

/** x.y.z order for plain release versions; undefined when either is not one. */
function compareReleases(a: string, b: string): number | undefined {
  const re = /^(\d+)\.(\d+)\.(\d+)$/;
  const x = re.exec(a);
  const y = re.exec(b);
  if (!x || !y) return undefined;
  for (let i = 1; i <= 3; i++) if (Number(x[i]) !== Number(y[i])) return Number(x[i]) - Number(y[i]);
  return 0;
}

/**
 * The cached version of `name` that satisfies `request` (range, version or digest), if any.
 * `latest` and exact versions are answered without loading the semver library: `create` is on
 * the provisioning path and its start-up time counts.
 */
export async function pickCached(refs: readonly TemplateRef[], name: string, request: string): Promise<TemplateRef | undefined> {
  const candidates = refs.filter((r) => r.name === name);
  if (isDigest(request)) return candidates.find((r) => r.manifestDigest === request);
  const newest = (version: string) => candidates.filter((r) => r.version === version).sort((a, b) => b.pulledAt.localeCompare(a.pulledAt))[0];
  if (candidates.some((r) => r.version === request)) return newest(request);
  const versions = [...new Set(candidates.map((r) => r.version))];
  if (request === 'latest' && versions.every((v) => compareReleases(v, v) !== undefined || v.includes('-'))) {
    const releases = versions.filter((v) => !v.includes('-')).sort((a, b) => compareReleases(a, b)!);
    return releases.length ? newest(releases.at(-1)!) : undefined;
  }
  const { resolveRange } = await import('../format/versions.ts');
  const version = resolveRange(request, versions);
  return version ? newest(version) : undefined;
}

export interface CreateOptions {
  store: Store;
  ctid: string;
  template: TemplateRef;
  layout?: Layout;
  hostname?: string;
}

function paths(store: Store, ctid: string) {
  const dir = store.containerDir(ctid);
  return { dir, upper: join(dir, 'upper'), work: join(dir, 'work'), rootfs: join(dir, 'rootfs'), record: join(dir, 'container.json'), bundle: join(dir, 'config.json') };
}

/** The template a create was about to use went away (a prune won the race): pick or pull again. */
export class TemplateGoneError extends VztplError {
  constructor(template: TemplateRef, what: string) {
    super(`template ${template.name}:${template.version} is no longer cached (${what}): pull it again`, ExitCode.notFound);
  }
}

/**
 * Creates a container whole or not at all: its tree, identity, record and bundle are made in a
 * staging directory that is renamed into place, and the root is mounted after that (a container
 * found unmounted is mounted when used, as after a reboot). A killed create leaves only the
 * staging directory, which the next command that sweeps removes.
 */
export async function createContainer(opts: CreateOptions): Promise<ContainerRecord> {
  const { store, ctid, template } = opts;
  checkCtid(ctid);
  const layout = opts.layout ?? 'overlay';
  const hostname = opts.hostname ?? `ct${ctid}`;
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(hostname)) throw new UsageError(`invalid hostname ${JSON.stringify(hostname)}`);
  const p = paths(store, ctid);
  const lock = await lockExclusive(store.lockPath(`ct-${ctid}`));
  let hold: Hold | undefined;
  try {
    sweepDeadWork(store);
    if (exists(p.dir)) throw new VztplError(`container ${ctid} exists already (vztpl destroy ${ctid} first)`, ExitCode.conflict);
    // Held until the container's record names the template: a prune meanwhile keeps it whole
    // (its reference, blobs and layers), and one that ran before is seen in what is missing.
    hold = await holdForUse(store, { layers: template.layers.map((l) => l.diffId), blobs: [template.manifestDigest, template.configDigest, ...template.layers.map((l) => l.digest)] });
    if (!store.hasRef(template)) throw new TemplateGoneError(template, 'its reference was pruned');
    for (const l of template.layers) if (!(await store.hasLayer(l.diffId))) throw new TemplateGoneError(template, `layer ${l.diffId} is missing`);
    const staging = join(store.containersDir(), `.${ctid}.creating-${process.pid}`);
    fs.rmSync(staging, { recursive: true, force: true });
    const s = { upper: join(staging, 'upper'), work: join(staging, 'work'), rootfs: join(staging, 'rootfs') };
    const record: ContainerRecord = {
      ctid,
      template: { name: template.name, version: template.version, source: template.source, manifestDigest: template.manifestDigest },
      layers: template.layers.map((l) => l.diffId),
      layout,
      hostname,
      created: new Date().toISOString(),
    };
    try {
      fs.mkdirSync(s.rootfs, { recursive: true });
      if (layout === 'overlay') {
        fs.mkdirSync(s.upper);
        fs.mkdirSync(s.work);
        personalizeUpper(join(store.root, 'layers', 'sha256'), record.layers, s.upper, hostname);
      } else {
        await privateCopy(store, record.layers, s.rootfs, layout);
        personalize(s.rootfs, hostname);
      }
      fs.writeFileSync(join(staging, 'container.json'), JSON.stringify(record, null, 1));
      fs.writeFileSync(join(staging, 'config.json'), JSON.stringify(bundleConfig({ rootfs: p.rootfs, hostname, args: template.cmd, env: template.env }), null, 1));
      fs.renameSync(staging, p.dir);
    } catch (err) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw err;
    }
    if (layout === 'overlay') mountNewContainer(store, record);
    return record;
  } finally {
    hold?.release();
    lock.release();
  }
}

/**
 * What dead commands left that costs a directory read to find: staging trees of creates and
 * destroys (they hold no mounts), holds and half-made lock files, temporary files in tmp/.
 * Every command that changes or lists the store calls this; pulls and prunes also sweep the
 * extraction temps beside the layers (cache/pull.ts).
 */
export function sweepDeadWork(store: Store): void {
  sweepDeadPidEntries(store.containersDir(), (name) => Number(/^\..+\.(?:creating|destroying)-(\d+)$/.exec(name)?.[1]) || undefined);
  sweepDeadHolds(store);
  sweepDeadPidEntries(store.tmpDir(), (name) => Number(/^[a-z]+-(\d+)-/.exec(name)?.[1]) || undefined);
}

/**
 * A private tree for hosts that need one. copy: the layers merged by a read-only overlay, copied.
 * reflink: clones only work within one filesystem, and the merged view is another one (cp from it
 * fails with EXDEV), so the copy is made inside a writable overlay whose upper dir is beside the
 * target: overlayfs passes each clone on to the real files (layer -> upper dir, one filesystem),
 * and the finished copy is moved from the upper dir into place. Mounts live in a private
 * namespace; the work dirs beside the target are removed.
 */
async function privateCopy(store: Store, layers: readonly Digest[], target: string, layout: 'reflink' | 'copy'): Promise<void> {
  const work = `${target}.${layout}`;
  const options =
    layout === 'reflink' ? overlayOptions({ layers, upper: join(work, 'upper'), work: join(work, 'work') }) : `${overlayOptions({ layers, upper: 'x', work: 'y' }).split(',')[0]!},ro`;
  const top = digestHex(layers.at(-1)!);
  const steps =
    layout === 'reflink'
      ? [
          'mkdir "$2" "$2/upper" "$2/work" "$2/merged"',
          'mount -t overlay vztpl -o "$3" "$2/merged"',
          'mkdir "$2/merged/.vztpl-copy"',
          'find "$2/merged" -mindepth 1 -maxdepth 1 ! -name .vztpl-copy -exec cp -a --reflink=always -t "$2/merged/.vztpl-copy" -- {} +',
          'umount "$2/merged"',
          'rmdir "$1"; mv "$2/upper/.vztpl-copy" "$1"; rm -rf "$2"',
          // The root's own attributes: the top layer's, as the merged view shows them.
          `chown --reference=${top} "$1"; chmod --reference=${top} "$1"; touch -r ${top} "$1"`,
        ]
      : ['mkdir "$2"', 'mount -t overlay vztpl -o "$3" "$2"', 'cp -a --reflink=never "$2"/. "$1"/', 'umount "$2"; rmdir "$2"'];
  const { isolated } = await import('../common/isolate.ts');
  const [file, argv] = isolated(['/bin/sh', '-c', ['set -e', ...steps].join('\n'), 'vztpl-copy', target, work, options]);
  const result = await spawnQuiet(file, argv, { cwd: join(store.root, 'layers', 'sha256') });
  if (result.exitCode !== 0) {
    const hint = layout === 'reflink' && /reflink|clone|Operation not supported|Invalid argument|cross-device/.test(result.stderr) ? ` (the filesystem of ${store.root} has no reflinks: use --layout copy or overlay)` : '';
    // cp reports every file it could not copy: the first lines say why.
    const lines = result.stderr.trim().split('\n');
    const shown = lines.length > 5 ? [...lines.slice(0, 5), `(${lines.length - 5} more lines)`] : lines;
    throw new VztplError(`copying the template into ${target} failed: ${shown.join('\n')}${hint}`);
  }
}

/** The container's overlay: template layers, then its snapshots, then its live upper dir. */
export function overlaySpec(store: Store, record: ContainerRecord): OverlaySpec {
  const p = paths(store, record.ctid);
  return {
    layersDir: join(store.root, 'layers', 'sha256'),
    layers: record.layers,
    // A restored snapshot's store layer by its name there (mount runs in layersDir), as the template's.
    snapshots: (record.snapshots ?? []).map((sn) => (sn.layer ? digestHex(sn.layer) : snapshotPath(store, record.ctid, sn))),
    upper: join(p.dir, record.upper ?? 'upper'),
    work: p.work,
    target: p.rootfs,
  };
}

/** Mounts an overlay container's root unless it is mounted (after a reboot, say). */
export async function mountRoot(store: Store, record: ContainerRecord): Promise<void> {
  if (record.layout !== 'overlay' || isMounted(paths(store, record.ctid).rootfs)) return;
  mountOverlay(overlaySpec(store, record));
}

function lstatOrUndefined(path: string) {
  return fs.lstatSync(path, { throwIfNoEntry: false });
}

/** Writes a file in the container without following a symlink the template put there. */
function writeInRoot(rootfs: string, rel: string, content: string, mode: number): void {
  const dir = join(rootfs, rel.split('/').slice(0, -1).join('/'));
  if (!lstatOrUndefined(dir)?.isDirectory()) throw new VztplError(`the template's ${dir.slice(rootfs.length)} is not a directory`);
  const path = join(rootfs, rel);
  const existing = lstatOrUndefined(path);
  if (existing && !existing.isFile()) fs.unlinkSync(path);
  const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, mode);
  try {
    fs.writeSync(fd, content);
  } finally {
    fs.closeSync(fd);
  }
}

/** Random bytes from the kernel, as hex (without loading node:crypto on the create path). */
export function randomHex(bytes: number): string {
  const fd = fs.openSync('/dev/urandom', 'r');
  try {
    const buf = Buffer.alloc(bytes);
    fs.readSync(fd, buf, 0, bytes, null);
    return buf.toString('hex');
  } finally {
    fs.closeSync(fd);
  }
}

/** The container's own identity: hostname and a fresh machine-id. */
function personalize(rootfs: string, hostname: string): void {
  writeInRoot(rootfs, 'etc/hostname', `${hostname}\n`, 0o644);
  writeInRoot(rootfs, 'etc/machine-id', `${randomHex(16)}\n`, 0o444);
}

/**
 * The identity written into an overlay container's upper dir before anything is mounted, so
 * that the container is complete the moment it exists. The upper /etc takes the attributes of
 * the template's /etc (the topmost layer that has it), as overlayfs's own copy-up would.
 */
function personalizeUpper(layersDir: string, layers: readonly Digest[], upper: string, hostname: string): void {
  let etc: ReturnType<typeof lstatOrUndefined>;
  for (const layer of [...layers].reverse()) {
    etc = lstatOrUndefined(join(layersDir, digestHex(layer), 'etc'));
    if (!etc) continue;
    // A whiteout (char 0/0) deletes /etc from the layers below.
    if (etc.isCharacterDevice() && etc.rdev === 0) etc = undefined;
    else if (!etc.isDirectory()) throw new VztplError("the template's /etc is not a directory");
    break;
  }
  if (!etc) throw new VztplError('the template has no /etc directory');
  const dir = join(upper, 'etc');
  fs.mkdirSync(dir);
  fs.chownSync(dir, etc.uid, etc.gid);
  fs.chmodSync(dir, etc.mode & 0o7777);
  personalize(upper, hostname);
  fs.utimesSync(dir, etc.atime, etc.mtime);
}

export async function readContainer(store: Store, ctid: string): Promise<ContainerRecord> {
  checkCtid(ctid);
  try {
    return JSON.parse(fs.readFileSync(paths(store, ctid).record, 'utf8')) as ContainerRecord;
  } catch {
    throw new VztplError(`no container ${ctid}`, ExitCode.notFound);
  }
}

export async function listContainers(store: Store): Promise<Array<ContainerRecord & { mounted: boolean }>> {
  sweepDeadWork(store);
  const out: Array<ContainerRecord & { mounted: boolean }> = [];
  const mounted = mountPoints();
  for (const name of namesIn(store.containersDir())) {
    if (name.startsWith('.')) continue;
    const record = await readContainer(store, name).catch(() => undefined);
    if (!record) continue;
    out.push({ ...record, mounted: record.layout === 'overlay' ? mounted.has(paths(store, name).rootfs) : true });
  }
  return out.sort((a, b) => a.ctid.localeCompare(b.ctid, undefined, { numeric: true }));
}

export async function destroyContainer(store: Store, ctid: string): Promise<void> {
  checkCtid(ctid);
  if (!exists(paths(store, ctid).dir)) throw new VztplError(`no container ${ctid}`, ExitCode.notFound);
  const lock = await lockExclusive(store.lockPath(`ct-${ctid}`));
  try {
    sweepDeadWork(store);
    if (!exists(paths(store, ctid).dir)) throw new VztplError(`no container ${ctid}`, ExitCode.notFound);
    removeContainer(store, ctid);
  } finally {
    lock.release();
  }
}

/**
 * Mounts the root of a container just renamed into place; if that fails, the container goes
 * again (a create or restore that cannot mount it made nothing). The caller holds its lock.
 */
export function mountNewContainer(store: Store, record: ContainerRecord): void {
  try {
    mountOverlay(overlaySpec(store, record));
  } catch (err) {
    removeContainer(store, record.ctid);
    throw err;
  }
}

/** Unmounts and removes a container; the caller holds its lock. */
export function removeContainer(store: Store, ctid: string): void {
  const p = paths(store, ctid);
  if (isMounted(p.rootfs)) unmount(p.rootfs);
  // Renamed away first, so a half-removed container is never listed; a killed destroy leaves
  // only the renamed tree, which the next command that sweeps removes.
  const doomed = join(store.containersDir(), `.${ctid}.destroying-${process.pid}`);
  fs.renameSync(p.dir, doomed);
  fs.rmSync(doomed, { recursive: true, force: true });
}

export function containerPaths(store: Store, ctid: string) {
  return paths(store, ctid);
}

function exists(path: string): boolean {
  return lstatOrUndefined(path) !== undefined;
}
