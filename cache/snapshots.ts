// Snapshots of an overlay container. Its stack is the template's layers, then its snapshots
// (frozen upper dirs, oldest first), then the live upper dir; container.json names them.
// Every operation prepares new directories beside the old ones, then rewrites the record with
// one rename (the commit point), and only then removes what the record no longer names. Killed
// at any moment, the container is as it was before or as it is after; the next operation on it
// sweeps the leftovers (under the container's lock, so nothing another one prepares is taken).
//   snapshot:  the live upper becomes the newest snapshot; a fresh empty upper goes above it.
//   rollback:  the snapshots above the target and the live upper are dropped; a fresh upper.
//   delete:    a snapshot is merged into the one above it (or into the live upper).
import { join } from 'node:path';
import { fs, namesIn } from '../common/builtins.ts';
import { ExitCode, UsageError, VztplError } from '../common/errors.ts';
import { lockExclusive } from '../common/lock.ts';
import { pidAlive } from '../common/pids.ts';
import { spawnQuiet } from '../common/spawn.ts';
import { readXattrs } from '../format/tar/xattrs.ts';
import { containerPaths, mountRoot, randomHex, readContainer, snapshotPath, type ContainerRecord, type SnapshotRecord } from './containers.ts';
import { isMounted, unmount } from './mounts.ts';
import { restoreXattrs, xattrDump } from './set-xattrs.ts';
import type { Store } from './store.ts';

export const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** Directories of a container's stack: the first upper ('upper'), later ones, merge results. */
const TREE_DIR = /^(upper(-[0-9a-f]{12})?|merge-[0-9a-f]{12})$/;
const RUNC_ROOT = '/run/runc';

export interface SnapshotInfo extends SnapshotRecord {
  /** Bytes of the files the snapshot changed or added. */
  bytes: number;
  entries: number;
}


/** Pids of the container's processes that runc still runs (vztpl exec names them vztpl-CTID-HEX). */
export function runningProcesses(ctid: string): number[] {
  const id = new RegExp(`^vztpl-${ctid.replace(/[.]/g, '\\.')}-[0-9a-f]{8}$`);
  const pids: number[] = [];
  for (const name of namesIn(RUNC_ROOT)) {
    if (!id.test(name)) continue;
    try {
      const state = JSON.parse(fs.readFileSync(join(RUNC_ROOT, name, 'state.json'), 'utf8')) as { init_process_pid?: number };
      if (state.init_process_pid && pidAlive(state.init_process_pid)) pids.push(state.init_process_pid);
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/**
 * The record of an overlay container that no process runs in: what snapshots, commits and
 * backups work on (the caller holds the container's lock). `needs` completes the refusal of
 * another layout ("snapshots need", "commit needs").
 */
export async function quietOverlayContainer(store: Store, ctid: string, what: string, needs: string): Promise<ContainerRecord> {
  const record = await readContainer(store, ctid);
  if (record.layout !== 'overlay') throw new UsageError(`${what}: container ${ctid} has the ${record.layout} layout; ${needs} the overlay layout`);
  const running = runningProcesses(ctid);
  if (running.length) throw new VztplError(`${what}: container ${ctid} has running processes (pid ${running.join(', ')}); stop them first`, ExitCode.conflict);
  return record;
}

/** The record written whole: a temporary file renamed over container.json. */
export function commitRecord(store: Store, record: ContainerRecord): void {
  const path = containerPaths(store, record.ctid).record;
  const tmp = `${path}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(record, null, 1));
  fs.renameSync(tmp, path);
}

/** Stack directories the record does not name: an interrupted operation's, or replaced ones. */
function sweepTrees(store: Store, record: ContainerRecord): void {
  const dir = containerPaths(store, record.ctid).dir;
  const named = new Set([record.upper ?? 'upper', ...(record.snapshots ?? []).flatMap((s) => (s.dir ? [s.dir] : []))]);
  for (const name of namesIn(dir)) {
    if ((TREE_DIR.test(name) && !named.has(name)) || /^container\.json\.tmp-\d+$/.test(name)) fs.rmSync(join(dir, name), { recursive: true, force: true });
  }
}

/**
 * Runs `change` on a quiet, unmounted overlay container under its lock: `change` prepares new
 * directories and returns the new record, which is committed; then leftovers go and the root
 * is mounted again if it was.
 */
async function changeStack<T>(store: Store, ctid: string, what: string, change: (record: ContainerRecord) => Promise<{ record: ContainerRecord; result: T }>, opts: Locked = {}): Promise<T> {
  const lock = opts.locked ? undefined : await lockExclusive(store.lockPath(`ct-${ctid}`));
  try {
    const record = await quietOverlayContainer(store, ctid, what, 'snapshots need');
    sweepTrees(store, record);
    const rootfs = containerPaths(store, ctid).rootfs;
    const wasMounted = isMounted(rootfs);
    if (wasMounted) unmount(rootfs);
    const { record: next, result } = await change(record);
    commitRecord(store, next);
    sweepTrees(store, next);
    if (wasMounted) await mountRoot(store, next);
    return result;
  } finally {
    lock?.release();
  }
}

/** For callers that hold the container's lock already (backup, move). */
export interface Locked {
  locked?: boolean;
}

function newUpper(store: Store, ctid: string): string {
  const name = `upper-${randomHex(6)}`;
  fs.mkdirSync(join(containerPaths(store, ctid).dir, name));
  return name;
}

function findSnapshot(record: ContainerRecord, name: string, what: string): number {
  const i = (record.snapshots ?? []).findIndex((s) => s.name === name);
  if (i === -1) {
    const names = (record.snapshots ?? []).map((s) => s.name);
    throw new VztplError(`${what}: container ${record.ctid} has no snapshot ${JSON.stringify(name)} (${names.length ? `it has ${names.join(', ')}` : 'it has none'})`, ExitCode.notFound);
  }
  return i;
}

/** Freezes the live upper dir as the newest snapshot and starts an empty one above it. */
export async function snapshotContainer(store: Store, ctid: string, name?: string, opts: Locked = {}): Promise<SnapshotRecord> {
  if (name !== undefined && !SNAPSHOT_NAME.test(name)) throw new UsageError(`snapshot: invalid name ${JSON.stringify(name)}: letters, digits, '.', '_', '-' (64 at most)`);
  return changeStack(store, ctid, opts.locked ? 'backup' : 'snapshot', async (record) => {
    const snapshots = record.snapshots ?? [];
    let chosen = name;
    for (let n = snapshots.length + 1; !chosen; n++) if (!snapshots.some((s) => s.name === `snap${n}`)) chosen = `snap${n}`;
    if (snapshots.some((s) => s.name === chosen)) throw new VztplError(`snapshot: container ${ctid} already has a snapshot ${JSON.stringify(chosen)}`, ExitCode.conflict);
    const snapshot: SnapshotRecord = { name: chosen, dir: record.upper ?? 'upper', created: new Date().toISOString() };
    return { record: { ...record, snapshots: [...snapshots, snapshot], upper: newUpper(store, ctid) }, result: snapshot };
  }, opts);
}

/** Drops the snapshots above `name` and the live changes: the container is as it was then. */
export async function rollbackContainer(store: Store, ctid: string, name: string): Promise<{ dropped: string[] }> {
  return changeStack(store, ctid, 'rollback', async (record) => {
    const snapshots = record.snapshots ?? [];
    const i = findSnapshot(record, name, 'rollback');
    return { record: { ...record, snapshots: snapshots.slice(0, i + 1), upper: newUpper(store, ctid) }, result: { dropped: snapshots.slice(i + 1).map((s) => s.name) } };
  });
}

/** Removes a snapshot by merging its changes into the one above it (or the live upper). */
export async function deleteSnapshot(store: Store, ctid: string, name: string): Promise<{ mergedInto: string }> {
  return changeStack(store, ctid, 'snapshot delete', async (record) => {
    const snapshots = record.snapshots ?? [];
    const i = findSnapshot(record, name, 'snapshot delete');
    const dir = containerPaths(store, ctid).dir;
    const above = snapshots[i + 1];
    const merged = `merge-${randomHex(6)}`;
    // A restored snapshot (a store layer) is only read: the merge is a new tree in the container.
    await mergeTrees(snapshotPath(store, ctid, snapshots[i]!), above ? snapshotPath(store, ctid, above) : join(dir, record.upper ?? 'upper'), join(dir, merged));
    const rest = snapshots.filter((_, k) => k !== i);
    const mergedSnapshot = (s: SnapshotRecord): SnapshotRecord => ({ name: s.name, dir: merged, created: s.created });
    if (above) return { record: { ...record, snapshots: rest.map((s) => (s === above ? mergedSnapshot(s) : s)) }, result: { mergedInto: above.name } };
    return { record: { ...record, snapshots: rest, upper: merged }, result: { mergedInto: 'the live changes' } };
  });
}

/** The container's snapshots with what each holds. */
export async function listSnapshots(store: Store, ctid: string): Promise<SnapshotInfo[]> {
  const record = await readContainer(store, ctid);
  return (record.snapshots ?? []).map((s) => ({ ...s, ...treeSize(snapshotPath(store, ctid, s)) }));
}

function treeSize(root: string): { bytes: number; entries: number } {
  let bytes = 0;
  let entries = 0;
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      entries++;
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.isFile()) bytes += fs.lstatSync(path).size;
    }
  };
  walk(root);
  return { bytes, entries };
}

const OPAQUE_XATTR = 'trusted.overlay.opaque';

/**
 * out = lower with upper applied, both overlay upper dirs (whiteouts as char 0/0 devices,
 * opaque dirs by xattr): what overlayfs shows of upper over lower, keeping the whiteouts and
 * opaque marks that still hide what lies below lower. Copies share data where the filesystem
 * can (reflinks).
 */
export async function mergeTrees(lower: string, upper: string, out: string): Promise<void> {
  const copied = await spawnQuiet('cp', ['-a', '--reflink=auto', '-T', lower, out]);
  if (copied.exitCode !== 0) throw new VztplError(`copying ${lower} to ${out} failed: ${copied.stderr.trim()}`);
  const xattrs = await readXattrs(upper);
  const isOpaque = (path: string) => xattrs.get(path)?.get(OPAQUE_XATTR)?.toString() === 'y';
  const copies: string[] = [];
  const dirs: string[] = [];
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(join(upper, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      const source = fs.lstatSync(join(upper, path));
      const target = fs.lstatSync(join(out, path), { throwIfNoEntry: false });
      if (source.isDirectory() && !isOpaque(join(upper, path))) {
        if (target && !target.isDirectory()) fs.rmSync(join(out, path), { force: true });
        if (!target?.isDirectory()) fs.mkdirSync(join(out, path));
        dirs.push(path);
        walk(path);
      } else {
        // A file, link, device, whiteout or opaque dir replaces whatever lower had there.
        if (target) fs.rmSync(join(out, path), { recursive: true, force: true });
        copies.push(path);
      }
    }
  };
  walk('');
  for (let i = 0; i < copies.length; i += 500) {
    const r = await spawnQuiet('cp', ['-a', '--reflink=auto', '--no-dereference', '--parents', '-t', out, '--', ...copies.slice(i, i + 500)], { cwd: upper });
    if (r.exitCode !== 0) throw new VztplError(`merging ${upper} into ${out} failed: ${r.stderr.trim()}`);
  }
  // Directories take upper's attributes (as the merged view shows them), deepest first, after
  // their contents changed their times.
  restoreXattrs(out, xattrDump(dirs.map((d) => [d, xattrs.get(join(upper, d)) ?? new Map()])));
  for (const d of ['', ...dirs].reverse()) {
    const st = fs.lstatSync(join(upper, d));
    const target = join(out, d);
    fs.chownSync(target, st.uid, st.gid);
    fs.chmodSync(target, st.mode & 0o7777);
    fs.utimesSync(target, st.atime, st.mtime);
  }
}
