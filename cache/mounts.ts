// Mounting a container's root: an overlayfs of the template's layers with the container's own
// upper dir. Layer dirs are passed relative to the store's layer directory (mount runs there),
// so a deep stack of layers fits in the kernel's one-page limit on mount options.
import { fs } from '../common/builtins.ts';
import { runQuick } from '../common/spawn.ts';
import { ExitCode, VztplError } from '../common/errors.ts';
import { digestHex, type Digest } from '../format/digest.ts';

export interface OverlaySpec {
  /** The store's layers/sha256 directory. */
  layersDir: string;
  /** diff_ids, bottom layer first (config order). */
  layers: readonly Digest[];
  /** Absolute dirs stacked above the layers, bottom first (a container's snapshots). */
  snapshots?: readonly string[];
  upper: string;
  work: string;
  target: string;
}

export function overlayOptions(spec: Omit<OverlaySpec, 'target' | 'layersDir'>): string {
  const lower = [...(spec.snapshots ?? [])].reverse().concat([...spec.layers].reverse().map(digestHex)).join(':');
  for (const p of [spec.upper, spec.work, ...(spec.snapshots ?? [])]) if (/[,:\\]/.test(p)) throw new VztplError(`overlayfs cannot use a path with ',' ':' or '\\': ${p}`);
  // Fixed options: the upper dir must stay valid across remounts (after a reboot), so no
  // index/xino state ties it to the lower inodes.
  return `lowerdir=${lower},upperdir=${spec.upper},workdir=${spec.work},index=off,xino=off,redirect_dir=off,metacopy=off`;
}

// Synchronous: these take milliseconds, and `create` is a short-lived process with nothing else
// to do meanwhile (see runQuick).
export function mountOverlay(spec: OverlaySpec): void {
  const result = runQuick('mount', ['-t', 'overlay', 'vztpl', '-o', overlayOptions(spec), spec.target], { cwd: spec.layersDir });
  if (result.exitCode !== 0) throw new VztplError(`mounting the container root at ${spec.target} failed: ${result.stderr || result.stdout}`);
}

export function unmount(target: string): void {
  const result = runQuick('umount', [target]);
  if (result.exitCode !== 0 && isMounted(target)) throw new VztplError(`unmounting ${target} failed: ${result.stderr}`, ExitCode.failure);
}

/** Mount points from the host's mount table (octal escapes decoded). */
export function mountPoints(): Set<string> {
  const table = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const points = new Set<string>();
  for (const line of table.split('\n')) {
    const field = line.split(' ')[4];
    if (field) points.add(field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return points;
}

export function isMounted(target: string): boolean {
  return mountPoints().has(target);
}
