// Small wrappers around child_process for quick commands (mount, umount, cp): execa is the
// builder's tool, but its import costs the `create` path more than the mount does.
import { execFile, spawnSync } from 'node:child_process';

export interface SpawnResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

const MAX_OUTPUT = 16 << 20;

/** Runs a command to the end without blocking the event loop (long work: cp of a tree). */
export function spawnQuiet(file: string, args: readonly string[], opts: { cwd?: string } = {}): Promise<SpawnResult> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: opts.cwd, maxBuffer: MAX_OUTPUT }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 127) : 0;
      resolve({ exitCode: code, stdout: String(stdout), stderr: String(stderr) || (err && code === 127 ? err.message : '') });
    });
  });
}

/**
 * Runs a command that takes milliseconds (mount, umount) synchronously. On the create path this
 * matters: a first spawnSync costs ~4 ms where a first execFile costs ~12 ms (it sets up pipes,
 * streams and signal handling lazily), and there is nothing to overlap with a mount anyway.
 */
export function runQuick(file: string, args: readonly string[], opts: { cwd?: string } = {}): SpawnResult {
  const r = spawnSync(file, args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: MAX_OUTPUT, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) return { exitCode: 127, stdout: '', stderr: r.error.message };
  // status is null when a signal ended it: 128, as a shell would say (plus the signal's number).
  return { exitCode: r.status ?? 128, stdout: r.stdout, stderr: r.stderr || (r.signal ? `killed by ${r.signal}` : '') };
}
