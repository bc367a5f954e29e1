// A minimal promise around child_process.execFile for quick commands (mount, umount, cp):
// execa is the builder's tool, but its import costs the `create` path more than the mount.
import { execFile } from 'node:child_process';

export interface SpawnResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export function spawnQuiet(file: string, args: readonly string[], opts: { cwd?: string } = {}): Promise<SpawnResult> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: opts.cwd, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 127) : 0;
      resolve({ exitCode: code, stdout: String(stdout), stderr: String(stderr) || (err && code === 127 ? err.message : '') });
    });
  });
}
