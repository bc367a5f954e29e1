// Entry point run by node inside a step's private namespaces for RPM-family templates: the
// host's dnf installs into the mounted stack ($ROOT), then the template's rpm lists packages.
// Usage: node dnf-step.(ts|js) <json request> <lock file>
import { writeFile } from 'node:fs/promises';
import { formatLockLines } from '../../format/packages/lock.ts';
import { rpmPackageLock } from '../../format/packages/rpm.ts';
import type { RpmBootstrapSpec } from '../recipe/schema.ts';
import { dnfInstall } from './dnf.ts';

export interface DnfStepRequest {
  root: string;
  spec: RpmBootstrapSpec;
  /** Packages to install or remove; none for a lock query only. */
  packages: string[];
  remove: boolean;
  cacheDir: string;
  epoch: number;
  arch: string;
}

async function main(): Promise<void> {
  const [json, lockFile] = process.argv.slice(2);
  if (!json || !lockFile) throw new Error('usage: dnf-step <request json> <lock file>');
  const req = JSON.parse(json) as DnfStepRequest;
  const signal = new AbortController().signal;
  if (req.packages.length) {
    await dnfInstall(req.root, req.spec, req.packages, {
      remove: req.remove,
      cacheDir: req.cacheDir,
      epoch: req.epoch,
      arch: req.arch,
      signal,
      log: (line) => process.stdout.write(`${line}\n`),
    });
  }
  const lock = await rpmPackageLock(req.root, req.spec.dbpath);
  await writeFile(lockFile, formatLockLines(lock));
}

main().catch((err: Error) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
