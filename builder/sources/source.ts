// A bootstrap source fills an empty directory with a distribution's base system.
// One file per source (debootstrap.ts, mmdebstrap.ts, dnf.ts), as distrobuilder lays them out.
import type { BootstrapSpec } from '../recipe/schema.ts';

export interface BootstrapContext {
  /** Empty directory to fill; it becomes the template's first layer. */
  root: string;
  /** Persistent host directory this source may use for downloaded packages and metadata. */
  cacheDir: string;
  /** SOURCE_DATE_EPOCH for the build. */
  epoch: number;
  /** Template architecture as OpenVZ names it (x86_64, aarch64, ...). */
  arch: string;
  /** One line of the tool's output (for progress and for the tail shown on failure). */
  log: (line: string) => void;
  signal: AbortSignal;
}

/** How packages are installed and listed in a template built from this source. */
export type PackageFamily = 'deb' | 'rpm';

export interface BootstrapSource<S extends BootstrapSpec = BootstrapSpec> {
  readonly tool: S['tool'];
  readonly family: PackageFamily;
  /** Host programs this source runs, each with the Debian package that provides it. */
  readonly hostTools: Readonly<Record<string, string>>;
  /**
   * Digest of the repository metadata the bootstrap resolves against (Debian's InRelease,
   * the RPM repomd.xml), so that a mirror update changes the step-cache key.
   */
  metadataDigest(spec: S, signal: AbortSignal): Promise<{ digest: string; date?: Date }>;
  /** Fills ctx.root. Throws BuildError with the tool's last output lines on failure. */
  bootstrap(spec: S, ctx: BootstrapContext): Promise<void>;
}
