// Liveness of other vztpl processes on this host, for locks and for sweeping what a killed
// process left behind (entries named with the owner's pid).
import { fs, namesIn } from './builtins.ts';
import { join } from 'node:path';

/** Kernel boot id and a process's start time (clock ticks since boot), from /proc. */
function bootId(): string {
  return (bootIdCache ??= fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
}
let bootIdCache: string | undefined;

function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22, counted after the command name, which may itself hold spaces and parentheses.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

let identityCache: string | undefined;

/**
 * This process as a lock owner: "pid boot-id start-time". A pid alone is not enough: after a
 * reboot, or once the pid is reused, another program can have it.
 */
export function processIdentity(): string {
  return (identityCache ??= `${process.pid} ${bootId()} ${startTime(process.pid) ?? 0}`);
}

/** Whether the owner a lock names still runs; undefined when the text names no process. */
export function ownerAlive(owner: string): boolean | undefined {
  const [pidText, boot, start] = owner.split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  // An owner written by an older vztpl: a pid alone.
  if (boot === undefined) return pidAlive(pid);
  if (boot !== bootId()) return false;
  return startTime(pid) === start;
}

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
