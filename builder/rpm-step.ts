// Entry point run by node inside a step's private namespaces for RPM-family templates: the
// host's dnf installs into the mounted stack ($ROOT), then the template's rpm lists packages.
// Usage: node rpm-step.(ts|js) <json request> <lock file>
import { writeFile } from 'node:fs/promises';
import { dnfInstall, rpmPackageLock } from './sources/dnf.ts';
import type { RpmBootstrapSpec } from './recipe/schema.ts';

export interface RpmStepRequest {
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
  if (!json || !lockFile) throw new Error('usage: rpm-step <request json> <lock file>');
  const req = JSON.parse(json) as RpmStepRequest;
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
  await writeFile(lockFile, lock.map((p) => `${p.name}\t${p.version}\t${p.arch}`).join('\n'));
}

main().catch((err: Error) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
