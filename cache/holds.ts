// Holds: what keeps `cache prune` from removing layers and blobs that a pull or a create is
// about to use but that no template reference or container names yet (a pull writes its
// reference last, a create its container record after checking the layers).
//
// A process writes its hold (locks/hold-<pid>-<n>: the diff_ids and blob digests, written whole
// through the store's tmp/) first, and only then waits for a running prune to finish and checks
// what the store has. Prune takes the prune lock first, and only then reads the holds. Whichever comes second sees the other: a
// prune that started before the hold was written is waited for, and a hold written before the
// prune read the holds is honoured. The hold of a process that died counts for nothing.
import { join } from 'node:path';
import { fs, namesIn } from '../common/builtins.ts';
import { lockExclusive, lockTempOwner } from '../common/lock.ts';
import { sweepDeadPidEntries } from '../common/pids.ts';
import type { Digest } from '../format/digest.ts';
import type { Store } from './store.ts';

export interface Held {
  layers: Digest[];
  blobs: Digest[];
}

let holdSequence = 0;
const HOLD_RE = /^hold-(\d+)-\d+$/;
const PRUNE_LOCK = 'prune';

export interface Hold {
  release(): void;
}

/**
 * Holds `held` until release(), having waited out any prune running when it was written, so
 * that what the caller then finds in the store stays there.
 */
export async function holdForUse(store: Store, held: Held, opts: { signal?: AbortSignal } = {}): Promise<Hold> {
  const path = store.lockPath(`hold-${process.pid}-${++holdSequence}`);
  // Whole or not at all: a prune must never read half a hold.
  await store.writeFileAtomic(path, JSON.stringify(held));
  const release = () => fs.rmSync(path, { force: true });
  try {
    // Taken and released at once: only a prune holds this lock for any length of time.
    (await lockExclusive(store.lockPath(PRUNE_LOCK), { signal: opts.signal })).release();
  } catch (err) {
    release();
    throw err;
  }
  return { release };
}

/** Runs fn (a prune) holding the prune lock; fn reads the holds with liveHolds. */
export async function whilePruning<T>(store: Store, fn: () => Promise<T>): Promise<T> {
  const lock = await lockExclusive(store.lockPath(PRUNE_LOCK));
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/** Removes the holds, and the half-made lock files, of processes that are gone (a killed pull's). */
export function sweepDeadHolds(store: Store): void {
  sweepDeadPidEntries(join(store.root, 'locks'), (name) => Number(HOLD_RE.exec(name)?.[1]) || lockTempOwner(name));
}

/**
 * What the holds in the store name. A prune sweeps dead processes' holds first (sweepLeftovers);
 * one whose process dies after that counts once more, which keeps, never removes.
 */
export function liveHolds(store: Store): { layers: Set<Digest>; blobs: Set<Digest> } {
  const out = { layers: new Set<Digest>(), blobs: new Set<Digest>() };
  const dir = join(store.root, 'locks');
  for (const name of namesIn(dir)) {
    if (!HOLD_RE.test(name)) continue;
    let held: Held;
    try {
      held = JSON.parse(fs.readFileSync(join(dir, name), 'utf8')) as Held;
    } catch {
      continue; // released meanwhile
    }
    for (const d of held.layers ?? []) out.layers.add(d);
    for (const d of held.blobs ?? []) out.blobs.add(d);
  }
  return out;
}
