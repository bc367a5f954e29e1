// debootstrap: Debian's classic bootstrapper. Slower than mmdebstrap and not reproducible by
// itself; the packer's normalization and the cleanup policy make its output reproducible.
// Its --cache-dir is a private copy of the shared .deb dir (../package-cache.ts): debootstrap
// downloads into it through partial/ and removes bad files with rm, so the hard links of the
// shared files are never written through; what it downloaded is published afterwards.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../../common/errors.ts';
import { isolated } from '../../common/isolate.ts';
import { requirePrograms, run } from '../../common/run.ts';
import type { DebianBootstrapSpec } from '../recipe/schema.ts';
import { aptManager } from '../managers/apt.ts';
import { debFiles, publishPrivateDir, seedPrivateDir, withWorkDir } from '../package-cache.ts';
import { debianArch } from './debian.ts';
import { archives, hostSuiteSources, mirrorArchive } from '../recipe/suites.ts';

/**
 * The script debootstrap should use for a suite its own scripts directory lacks (an Ubuntu
 * release newer than the host's debootstrap): every Ubuntu suite since gutsy bootstraps with the
 * gutsy script, every Debian suite with sid's. Undefined when debootstrap knows the suite.
 */
export function debootstrapScriptFor(suite: string, mirror: string, scriptsDir = hostSuiteSources.debootstrapScripts): string | undefined {
  if (existsSync(`${scriptsDir}/${suite}`)) return undefined;
  const archive = mirrorArchive(mirror) ?? (Object.keys(archives) as Array<keyof typeof archives>).find((a) => (archives[a].suites as readonly string[]).includes(suite));
  if (archive === 'ubuntu') return 'gutsy';
  if (archive === 'debian') return 'sid';
  return undefined;
}
import type { BootstrapContext, BootstrapSource } from './source.ts';

const DEBOOTSTRAP_VARIANTS: Record<string, string | undefined> = { minbase: 'minbase', buildd: 'buildd', standard: undefined };

export const debootstrapSource: BootstrapSource<DebianBootstrapSpec> = {
  tool: 'debootstrap',
  manager: aptManager,
  family: aptManager.family,
  hostTools: { debootstrap: 'debootstrap', dpkg: 'dpkg' },
  metadataDigest: aptManager.metadataDigest,
  async bootstrap(spec: DebianBootstrapSpec, ctx: BootstrapContext): Promise<void> {
    requirePrograms(this.hostTools);
    await withWorkDir(ctx.workDir, async (work) => {
      if (!(spec.variant in DEBOOTSTRAP_VARIANTS)) {
        throw new UsageError(`bootstrap.variant: debootstrap has no variant "${spec.variant}" (use minbase, buildd or standard, or tool: mmdebstrap)`);
      }
      const debs = join(ctx.cacheDir, 'debs');
      const myDebs = join(work, 'debs');
      await mkdir(debs, { recursive: true });
      await seedPrivateDir(debs, myDebs, debFiles);
      const variant = DEBOOTSTRAP_VARIANTS[spec.variant];
      const args = [
        `--arch=${debianArch(ctx.arch)}`,
        `--components=${spec.components.join(',')}`,
        `--cache-dir=${myDebs}`,
        '--merged-usr',
      ];
      if (variant) args.push(`--variant=${variant}`);
      if (spec.packages.length) args.push(`--include=${spec.packages.join(',')}`);
      if (spec.keyring) args.push(`--keyring=${spec.keyring}`);
      args.push(spec.suite, ctx.root, spec.mirror);
      const script = debootstrapScriptFor(spec.suite, spec.mirror);
      if (script) args.push(script);
      const [file, argv] = isolated(['debootstrap', ...args]);
      try {
        await run(file, argv, {
          what: `debootstrap ${spec.suite}`,
          log: ctx.log,
          signal: ctx.signal,
          killSignal: 'SIGKILL',
          env: { SOURCE_DATE_EPOCH: String(ctx.epoch), LC_ALL: 'C.UTF-8' },
        });
      } finally {
        await publishPrivateDir(myDebs, debs, debFiles, 'add');
      }
    });
  },
};
