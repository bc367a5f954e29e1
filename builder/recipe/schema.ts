// The recipe file format (recipes/*.yaml). One zod schema is the single source of truth for
// validation, for the TypeScript types the builder uses, and for the error messages authors see.
import { z } from 'zod';

const packageName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9+._:~=\-*]*$/, 'must be a package name (optionally name=version)');

/** Template names follow OpenVZ: <distro>-<release>-<arch>[-<flavor>], optionally namespaced. */
export const templateName = z
  .string()
  .regex(
    /^([a-z0-9][a-z0-9._-]*\/)*[a-z0-9]+-[0-9][a-z0-9.]*-(x86_64|aarch64|i386|ppc64le|s390x)(-[a-z0-9][a-z0-9._-]*)?$/,
    'must be <distro>-<release>-<arch>[-<flavor>], for example debian-12-x86_64 or debian-12-x86_64-web',
  );

const semverString = z
  .string()
  .regex(/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/, 'must be a semantic version such as 1.0.0');

const envMap = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'), z.string());

const absolutePath = z
  .string()
  .regex(/^\//, 'must be an absolute path inside the template')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ".."');

const debianBootstrap = z.strictObject({
  tool: z.enum(['debootstrap', 'mmdebstrap']),
  /** Debian or Ubuntu codename: bookworm, noble, ... */
  suite: z.string().regex(/^[a-z][a-z0-9-]*$/, 'must be a codename such as bookworm'),
  mirror: z.string().url().default('http://deb.debian.org/debian'),
  variant: z.enum(['minbase', 'buildd', 'standard', 'important', 'essential', 'apt', 'required']).default('minbase'),
  components: z.array(z.string().regex(/^[a-z][a-z0-9-]*$/)).min(1).default(['main']),
  packages: z.array(packageName).default([]),
  /** Path of a keyring file on the host (for Ubuntu on a Debian host, for example). */
  keyring: z.string().optional(),
});

const rpmRepo = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a repository id'),
  baseurl: z.string().url(),
  gpgkey: z.string().optional(),
  gpgcheck: z.boolean().default(true),
});

const rpmBootstrap = z.strictObject({
  tool: z.enum(['dnf', 'yum']),
  releasever: z.string().regex(/^[0-9][0-9a-z.]*$/, 'must be a release version such as 9'),
  repos: z.array(rpmRepo).min(1),
  packages: z.array(packageName).min(1),
  /** Where the rpmdb lives in the template: /var/lib/rpm (EL) or /usr/lib/sysimage/rpm (Fedora 36+). */
  dbpath: z.enum(['/var/lib/rpm', '/usr/lib/sysimage/rpm']).default('/var/lib/rpm'),
  /** EL7/EL8 rpm cannot read the sqlite rpmdb Debian's rpm writes: rebuild it with the template's own rpm. */
  rebuilddb: z.boolean().default(false),
});

export const bootstrapSchema = z.discriminatedUnion('tool', [debianBootstrap, rpmBootstrap]);

const installStep = z.strictObject({ name: z.string().optional(), install: z.array(packageName).min(1), env: envMap.optional() });
const removeStep = z.strictObject({ name: z.string().optional(), remove: z.array(packageName).min(1), env: envMap.optional() });
const runStep = z.strictObject({
  name: z.string().optional(),
  run: z.string().min(1),
  shell: z.string().default('/bin/sh'),
  env: envMap.optional(),
});
const copyStep = z.strictObject({
  name: z.string().optional(),
  copy: z.strictObject({
    /** Relative to the recipe file's directory. */
    src: z.string().min(1),
    dest: absolutePath,
    mode: z
      .string()
      .regex(/^0?[0-7]{3,4}$/, 'must be an octal mode such as 0644')
      .optional(),
    owner: z
      .string()
      .regex(/^\d+:\d+$/, 'must be numeric uid:gid such as 0:0')
      .default('0:0'),
  }),
});

export const stepSchema = z.union([installStep, removeStep, runStep, copyStep]);

export const cleanupSchema = z.strictObject({
  /** Remove per-machine state (machine-id, ssh host keys, caches, logs, random seeds). */
  defaults: z.boolean().default(true),
  /** Extra absolute paths (globs allowed in the last component) to remove at the end of every step. */
  paths: z.array(absolutePath).default([]),
  /** Default cleanup paths to keep. */
  keep: z.array(absolutePath).default([]),
});

const recipeBase = {
  name: templateName,
  version: semverString,
  description: z.string().optional(),
  /** Architecture of the template; the host must be able to run it. */
  arch: z.enum(['x86_64', 'aarch64', 'i386', 'ppc64le', 's390x']).default('x86_64'),
  /** SOURCE_DATE_EPOCH: defaults to the date of the repository metadata the bootstrap resolved. */
  epoch: z.number().int().nonnegative().optional(),
  env: envMap.default({}),
  steps: z.array(stepSchema).default([]),
  labels: z.record(z.string(), z.string()).default({}),
  cleanup: cleanupSchema.default({ defaults: true, paths: [], keep: [] }),
  /** Default command of the image for OCI runtimes (OpenVZ boots /sbin/init). */
  cmd: z.array(z.string()).optional(),
};

export const recipeSchema = z.union([
  z.strictObject({ ...recipeBase, bootstrap: bootstrapSchema }),
  /** A flavor: the layers of another recipe (by name, or a path to its file), then this recipe's steps. */
  z.strictObject({ ...recipeBase, from: z.string().min(1) }),
]);

export type Recipe = z.infer<typeof recipeSchema>;
export type BootstrapSpec = z.infer<typeof bootstrapSchema>;
export type DebianBootstrapSpec = z.infer<typeof debianBootstrap>;
export type RpmBootstrapSpec = z.infer<typeof rpmBootstrap>;
export type Step = z.infer<typeof stepSchema>;
export type CleanupPolicy = z.infer<typeof cleanupSchema>;

/** The parsed recipe plus where it came from. */
export interface LoadedRecipe {
  recipe: Recipe;
  /** Absolute path of the recipe file. */
  file: string;
  /** sha256 of the recipe file's bytes, "sha256:<hex>". */
  digest: string;
}

export function stepKind(step: Step): 'install' | 'remove' | 'run' | 'copy' {
  if ('install' in step) return 'install';
  if ('remove' in step) return 'remove';
  if ('run' in step) return 'run';
  return 'copy';
}
