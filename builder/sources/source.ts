// A bootstrap source fills an empty directory with a distribution's base system.
// One file per source (debootstrap.ts, mmdebstrap.ts, dnf.ts), as distrobuilder lays them out;
// what is done with packages after that is its package manager's (../managers/).
import type { PackageFamily } from '../../format/packages/lock.ts';
import type { PackageManager } from '../managers/index.ts';
import type { BootstrapSpec } from '../recipe/schema.ts';

export interface BootstrapContext {
  /** Empty directory to fill; it becomes the template's first layer. */
  root: string;
  /**
   * Persistent host directory this source may use for downloaded packages and metadata, shared
   * with concurrent builds (see ../package-cache.ts).
   */
  cacheDir: string;
  /** A private work dir of the bootstrap (not the root), removed after it; a temporary one when absent. */
  workDir?: string;
  /** SOURCE_DATE_EPOCH for the build. */
  epoch: number;
  /** Template architecture as OpenVZ names it (x86_64, aarch64, ...). */
  arch: string;
  /** One line of the tool's output (for progress and for the tail shown on failure). */
  log: (line: string) => void;
  signal: AbortSignal;
}

export interface BootstrapSource<S extends BootstrapSpec = BootstrapSpec> {
  readonly tool: S['tool'];
  /** The package manager of the templates this source makes. */
  readonly manager: PackageManager<S>;
  /** Its manager's family. */
  readonly family: PackageFamily;
  /** Host programs this source runs, each with the Debian package that provides it. */
  readonly hostTools: Readonly<Record<string, string>>;
  /** The repository metadata digest the bootstrap resolves against: its manager's. */
  metadataDigest(spec: S, signal: AbortSignal): Promise<{ digest: string; date?: Date }>;
  /** Fills ctx.root. Throws BuildError with the tool's last output lines on failure. */
  bootstrap(spec: S, ctx: BootstrapContext): Promise<void>;
}
