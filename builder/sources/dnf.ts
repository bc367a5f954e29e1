// RPM-family bootstrap (EL, Fedora, ...): the host's dnf installs the recipe's packages into an
// empty root with --installroot. How dnf is run on a Debian host, and what it leaves behind to
// clean up, is the package manager's (../managers/dnf.ts).
import { dnfBootstrap, dnfHostTools, dnfManager } from '../managers/dnf.ts';
import type { RpmBootstrapSpec } from '../recipe/schema.ts';
import type { BootstrapContext, BootstrapSource } from './source.ts';

function makeSource(tool: 'dnf' | 'yum'): BootstrapSource<RpmBootstrapSpec> {
  return {
    tool,
    manager: dnfManager,
    family: dnfManager.family,
    get hostTools() {
      return dnfHostTools(tool);
    },
    metadataDigest: dnfManager.metadataDigest,
    async bootstrap(spec: RpmBootstrapSpec, ctx: BootstrapContext): Promise<void> {
      await dnfBootstrap(tool, ctx.root, spec, { cacheDir: ctx.cacheDir, log: ctx.log, signal: ctx.signal, epoch: ctx.epoch, arch: ctx.arch });
    },
  };
}

/** dnf with --installroot. */
export const dnfSource: BootstrapSource<RpmBootstrapSpec> = makeSource('dnf');
/** yum where the host has it (yum 4 is dnf), the host's dnf otherwise (Debian has no yum). */
export const yumSource: BootstrapSource<RpmBootstrapSpec> = makeSource('yum');
