// Liveness of other vztpl processes on this host, for locks and for sweeping what a killed
// process left behind (entries named with the owner's pid).
import { readdir, rm } from 'node:fs/promises';
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
export async function sweepDeadPidEntries(dir: string, pidOf: (name: string) => number | undefined): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const pid = pidOf(name);
    if (!pid || pid === process.pid || pidAlive(pid)) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    removed.push(join(dir, name));
  }
  return removed;
}
