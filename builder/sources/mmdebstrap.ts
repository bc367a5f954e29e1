// mmdebstrap: the fast, reproducible Debian/Ubuntu bootstrapper (bit-identical output with
// SOURCE_DATE_EPOCH). Downloaded .debs are kept in the host cache between builds: copied in
// from the shared dir, copied out into a private one and published from there (whole files
// only, see ../package-cache.ts), never written into the shared dir in place.
import { mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isolated } from '../../common/isolate.ts';
import { requirePrograms, run } from '../../common/run.ts';
import type { DebianBootstrapSpec } from '../recipe/schema.ts';
import { aptManager } from '../managers/apt.ts';
import { debFiles, publishPrivateDir, withWorkDir } from '../package-cache.ts';
import { debianArch } from './debian.ts';
import type { BootstrapContext, BootstrapSource } from './source.ts';

// maybe-merged-usr runs the merged-usr hook only for suites that have the usr-is-merged
// package (Debian 12 and later); merged-usr itself fails on older suites
// (bullseye, jammy: "command failed: .../merged-usr/essential00.sh"). mmdebstrap(1) names
// maybe-merged-usr for builders that do not know the suite upfront.
const MERGED_USR_HOOKS = ['/usr/share/mmdebstrap/hooks/maybe-merged-usr', '/usr/share/mmdebstrap/hooks/merged-usr'];
const MERGED_USR_HOOK = MERGED_USR_HOOKS.find((dir) => existsSync(dir));

export const mmdebstrapSource: BootstrapSource<DebianBootstrapSpec> = {
  tool: 'mmdebstrap',
  manager: aptManager,
  family: aptManager.family,
  hostTools: { mmdebstrap: 'mmdebstrap', apt: 'apt', dpkg: 'dpkg' },
  metadataDigest: aptManager.metadataDigest,
  async bootstrap(spec: DebianBootstrapSpec, ctx: BootstrapContext): Promise<void> {
    requirePrograms(this.hostTools);
    await withWorkDir(ctx.workDir, async (work) => {
      const debs = join(ctx.cacheDir, 'debs');
      const myDebs = join(work, 'debs-out');
      await mkdir(debs, { recursive: true });
      await mkdir(myDebs, { recursive: true });
      const args = [
        '--mode=root',
        '--format=directory',
        `--variant=${spec.variant}`,
        `--arch=${debianArch(ctx.arch)}`,
        `--components=${spec.components.join(',')}`,
        '--aptopt=Acquire::Retries "3"',
        // The mmdebstrap manual's recipe for a persistent package cache.
        `--setup-hook=mkdir -p "$1"/var/cache/apt/archives/`,
        `--setup-hook=sync-in ${debs} /var/cache/apt/archives/`,
        `--customize-hook=sync-out /var/cache/apt/archives ${myDebs}`,
      ];
      // Without the hook apt merges /usr by installing usrmerge and perl (+47 MB).
      if (MERGED_USR_HOOK) args.push(`--hook-dir=${MERGED_USR_HOOK}`);
      if (spec.packages.length) args.push(`--include=${spec.packages.join(',')}`);
      if (spec.keyring) args.push(`--keyring=${spec.keyring}`);
      args.push(spec.suite, ctx.root, spec.mirror);
      const [file, argv] = isolated(['mmdebstrap', ...args]);
      await run(file, argv, {
        what: `mmdebstrap ${spec.suite}`,
        log: ctx.log,
        signal: ctx.signal,
        killSignal: 'SIGKILL',
        env: { SOURCE_DATE_EPOCH: String(ctx.epoch), LC_ALL: 'C.UTF-8' },
      });
      await publishPrivateDir(myDebs, debs, debFiles, 'add');
    });
  },
};
