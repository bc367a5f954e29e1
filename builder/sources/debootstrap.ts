// debootstrap: Debian's classic bootstrapper. Slower than mmdebstrap and not reproducible by
// itself; the packer's normalization and the cleanup policy make its output reproducible.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../../common/errors.ts';
import { isolated } from '../../common/isolate.ts';
import { requirePrograms, run } from '../../common/run.ts';
import type { DebianBootstrapSpec } from '../recipe/schema.ts';
import { aptManager } from '../managers/apt.ts';
import { debianArch } from './debian.ts';
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
    if (!(spec.variant in DEBOOTSTRAP_VARIANTS)) {
      throw new UsageError(`bootstrap.variant: debootstrap has no variant "${spec.variant}" (use minbase, buildd or standard, or tool: mmdebstrap)`);
    }
    const debs = join(ctx.cacheDir, 'debs');
    await mkdir(debs, { recursive: true });
    const variant = DEBOOTSTRAP_VARIANTS[spec.variant];
    const args = [
      `--arch=${debianArch(ctx.arch)}`,
      `--components=${spec.components.join(',')}`,
      `--cache-dir=${debs}`,
      '--merged-usr',
    ];
    if (variant) args.push(`--variant=${variant}`);
    if (spec.packages.length) args.push(`--include=${spec.packages.join(',')}`);
    if (spec.keyring) args.push(`--keyring=${spec.keyring}`);
    args.push(spec.suite, ctx.root, spec.mirror);
    const [file, argv] = isolated(['debootstrap', ...args]);
    await run(file, argv, {
      what: `debootstrap ${spec.suite}`,
      log: ctx.log,
      signal: ctx.signal,
      killSignal: 'SIGKILL',
      env: { SOURCE_DATE_EPOCH: String(ctx.epoch), LC_ALL: 'C.UTF-8' },
    });
  },
};
