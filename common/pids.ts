// Liveness of other vztpl processes on this host, for locks and for sweeping what a killed
// process left behind (entries named with the owner's pid).
import { fs, namesIn } from './builtins.ts';
import { join } from 'node:path';

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the entries of `dir` whose name carries the pid of a process that is gone
 * (`pidOf` extracts it; undefined skips the entry). Returns the removed paths.
 */
export function sweepDeadPidEntries(dir: string, pidOf: (name: string) => number | undefined): string[] {
  const removed: string[] = [];
  for (const name of namesIn(dir)) {
    const pid = pidOf(name);
    if (!pid || pid === process.pid || pidAlive(pid)) continue;
    // Synchronous: leftovers are rare, and the common case (nothing to remove) then costs one
    // readdir and no fs/promises load on the create path.
    fs.rmSync(join(dir, name), { recursive: true, force: true });
    removed.push(join(dir, name));
  }
  return removed;
}
