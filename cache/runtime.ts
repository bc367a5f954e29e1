// Running a process in a container with a real OCI runtime: runc or crun, whichever the host
// has (runc first: on hosts with the hybrid cgroup v1 layout crun refuses to start).
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MissingToolError } from '../common/errors.ts';
import { findProgram } from '../common/programs.ts';
import { containerPaths, mountRoot, readContainer } from './containers.ts';
import type { Store } from './store.ts';

export function findRuntime(): string {
  const runtime = findProgram('runc') ?? findProgram('crun');
  if (!runtime) throw new MissingToolError('runc', 'runc');
  return runtime;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs argv in the container (mounting its root first if a reboot unmounted it), as a one-off
 * process in fresh namespaces, through a bundle that shares the container's root.
 */
export async function execInContainer(store: Store, ctid: string, argv: string[], opts: { capture?: boolean } = {}): Promise<ExecResult> {
  const record = await readContainer(store, ctid);
  await mountRoot(store, record);
  const runtime = findRuntime();
  const p = containerPaths(store, ctid);
  const id = `vztpl-${ctid}-${randomBytes(4).toString('hex')}`;
  const bundle = join(p.dir, `exec-${id}`);
  const config = JSON.parse(await readFile(p.bundle, 'utf8')) as { process: { args: string[]; terminal: boolean } };
  config.process.args = argv;
  config.process.terminal = false;
  await mkdir(bundle);
  await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
  try {
    return await new Promise<ExecResult>((resolve, reject) => {
      const child = spawn(runtime, ['run', '--bundle', bundle, id], { stdio: opts.capture ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ exitCode: code ?? (signal ? 128 : 1), stdout, stderr }));
    });
  } finally {
    await new Promise<void>((resolve) => spawn(runtime, ['delete', '--force', id], { stdio: 'ignore' }).on('close', () => resolve()).on('error', () => resolve()));
    await rm(bundle, { recursive: true, force: true });
  }
}
