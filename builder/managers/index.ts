// A package manager installs and removes packages in a template's root, lists what is installed
// (the package lock) and names the repository metadata it resolves against. One per package
// family (apt.ts, dnf.ts), kept apart from the bootstrappers (../sources/) as distrobuilder keeps
// its managers/ apart from its sources/: a source fills an empty root, its manager works on it
// from then on (BootstrapSource.manager).
import type { LockedPackage } from '../../format/oci.ts';
import type { PackageFamily } from '../../format/packages/lock.ts';
import type { Bind } from '../chroot.ts';
import type { BootstrapSpec } from '../recipe/schema.ts';

/** What a step's package commands need to know about the step and the build. */
export interface StepRequest {
  /** Host path the step's stack is mounted on ($ROOT in the step script). */
  root: string;
  /** The step's private work dir (for private copies of shared package dirs), removed after it. */
  work: string;
  /** The environment of the step's commands inside the template (chroot.ts chrootEnv). */
  env: readonly string[];
  /** Host file the commands write the step's lock lines to (format/packages/lock.ts). */
  lockFile: string;
  /** The step cache's root directory, and the host directory this family keeps packages in. */
  cacheRoot: string;
  packagesDir: string;
  /** SOURCE_DATE_EPOCH. */
  epoch: number;
  /** Template architecture as OpenVZ names it. */
  arch: string;
}

/** The part of a step script (chroot.ts runStepScript) that changes packages. */
export interface StepCommands {
  /** Shell lines run after the mounts, with $ROOT set. */
  lines: string[];
  /** Host directories bound into the root for the step (package lists, downloaded packages). */
  binds: Bind[];
  /** Mount /proc, /sys and /dev in the root (off where the manager makes its own /dev nodes). */
  system: boolean;
  /**
   * A lock (package-cache.ts holdSharedLock) held around the step's script, for a manager whose
   * commands use a shared package dir directly, so concurrent builds on one cache take turns.
   */
  exclusive?: string;
  /** Runs after the step's script, also when it failed (publishes downloaded packages). */
  finish?: () => Promise<void>;
}

/** A file put into a step's injected layer (builder/injected.ts): there during the step only. */
export interface StepFile {
  /** Relative to the root. */
  path: string;
  content: string;
  mode: number;
}

export interface PackageManager<S extends BootstrapSpec = BootstrapSpec> {
  readonly family: PackageFamily;
  /**
   * Digest of the repository metadata packages resolve against (Debian's InRelease, the RPM
   * repomd.xml), so that a mirror update changes the step-cache keys, and its date.
   */
  metadataDigest(spec: S, signal: AbortSignal): Promise<{ digest: string; date?: Date }>;
  /** The packages installed in a root (a bootstrap's), sorted by name. */
  packageLock(root: string, spec: S, signal: AbortSignal): Promise<LockedPackage[]>;
  /** The commands of a step that installs (or with `remove`, removes) packages; they also write the lock. */
  changeCommands(spec: S, packages: readonly string[], remove: boolean, req: StepRequest): Promise<StepCommands>;
  /** The command that writes the lock after a step that changes no packages by itself (run, copy). */
  lockCommand(spec: S, req: StepRequest): string;
  /** Files every step sees in its injected layer. */
  readonly stepFiles: readonly StepFile[];
}
