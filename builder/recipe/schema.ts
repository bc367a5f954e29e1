// The recipe file format (recipes/*.yaml). One zod schema is the single source of truth for
// validation, for the TypeScript types the builder uses, and for the error messages authors see.
//
// zod's plain unions answer "Invalid input" for any mistake in any branch, so the two places a
// recipe has alternatives are validated differently:
// - a step is one object holding every step field, plus a rule that exactly one of install,
//   remove, run, copy is present; the transform then yields the precise step type;
// - a recipe is one object with optional `bootstrap` and `from`, plus a rule that exactly one
//   is present; the bootstrap itself is discriminated by `tool`.
// Every field error therefore carries its exact path (steps[2].copy.mode), which the loader
// (load.ts) turns into file:line:column.
import { z } from 'zod';
import { archives, suitePattern } from './suites.ts';

export const architectures = ['x86_64', 'aarch64', 'i386', 'ppc64le', 's390x'] as const;
export type Architecture = (typeof architectures)[number];

const packageName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9+._:~=\-*]*$/, 'must be a package name (optionally name=version)');

const templateNamePattern =
  /^([a-z0-9][a-z0-9._-]*\/)*[a-z0-9]+-[0-9][a-z0-9.]*-(x86_64|aarch64|i386|ppc64le|s390x)(-[a-z0-9][a-z0-9._-]*)?$/;

/** Template names follow OpenVZ: <distro>-<release>-<arch>[-<flavor>], optionally namespaced. */
export const templateName = z
  .string()
  .regex(
    templateNamePattern,
    'must be <distro>-<release>-<arch>[-<flavor>], for example debian-12-x86_64 or debian-12-x86_64-web',
  );

/** The architecture a template name carries (debian-12-x86_64-web: x86_64), if it is a valid name. */
export function nameArch(name: string): Architecture | undefined {
  return templateNamePattern.exec(name)?.[2] as Architecture | undefined;
}

const semverString = z
  .string()
  .regex(/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/, 'must be a semantic version such as 1.0.0');

const envMap = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name (letters, digits and _, not starting with a digit)'),
  z.string(),
);

const absolutePath = z
  .string()
  .regex(/^\//, 'must be an absolute path inside the template')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ".."');

export const debianTools = ['debootstrap', 'mmdebstrap'] as const;
export const rpmTools = ['dnf', 'yum'] as const;

const debianBootstrap = z.strictObject({
  tool: z.enum(debianTools),
  /**
   * Debian or Ubuntu codename: bookworm, noble, ... The loader (load.ts) also checks that the
   * bootstrappers know it for the mirror's distribution (suites.ts): that needs the host.
   */
  suite: z.string().regex(suitePattern, 'must be a codename such as bookworm'),
  mirror: z.string().url().default(archives.debian.mirror),
  variant: z.enum(['minbase', 'buildd', 'standard', 'important', 'essential', 'apt', 'required']).default('minbase'),
  components: z.array(z.string().regex(/^[a-z][a-z0-9-]*$/, 'must be an archive component such as main')).min(1).default(['main']),
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
  tool: z.enum(rpmTools),
  releasever: z.string().regex(/^[0-9][0-9a-z.]*$/, 'must be a release version such as 9'),
  repos: z.array(rpmRepo).min(1),
  packages: z.array(packageName).min(1),
  /** Where the rpmdb lives in the template: /var/lib/rpm (EL) or /usr/lib/sysimage/rpm (Fedora 36+). */
  dbpath: z.enum(['/var/lib/rpm', '/usr/lib/sysimage/rpm']).default('/var/lib/rpm'),
  /** EL7/EL8 rpm cannot read the sqlite rpmdb Debian's rpm writes: rebuild it with the template's own rpm. */
  rebuilddb: z.boolean().default(false),
});

export const bootstrapSchema = z.discriminatedUnion('tool', [debianBootstrap, rpmBootstrap], {
  error: (iss) => {
    if (iss.code !== 'invalid_union') return undefined;
    const tool = (iss.input as Record<string, unknown> | undefined)?.['tool'];
    const allowed = 'debootstrap or mmdebstrap (Debian, Ubuntu), dnf or yum (RPM family)';
    return tool === undefined ? `required field is missing: one of ${allowed}` : `unknown bootstrap tool ${JSON.stringify(tool)}: must be ${allowed}`;
  },
});

// --- steps ---------------------------------------------------------------------------------

const stepName = z.string().optional();

const copySpec = z.strictObject({
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
});

const installStep = z.strictObject({ name: stepName, install: z.array(packageName).min(1), env: envMap.optional() });
const removeStep = z.strictObject({ name: stepName, remove: z.array(packageName).min(1), env: envMap.optional() });
const runStep = z.strictObject({
  name: stepName,
  run: z.string().min(1),
  shell: z.string().default('/bin/sh'),
  env: envMap.optional(),
});
const copyStep = z.strictObject({ name: stepName, copy: copySpec });

export const stepKinds = ['install', 'remove', 'run', 'copy'] as const;
export type StepKind = (typeof stepKinds)[number];
const stepSchemas = { install: installStep, remove: removeStep, run: runStep, copy: copyStep } as const;
type StepOutput = z.output<(typeof stepSchemas)[StepKind]>;

/** Every field any step may have; the rules below say which combinations are valid. */
const anyStep = z.strictObject({
  name: stepName,
  install: installStep.shape.install.optional(),
  remove: removeStep.shape.remove.optional(),
  run: runStep.shape.run.optional(),
  shell: z.string().optional(),
  copy: copySpec.optional(),
  env: envMap.optional(),
});

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export const stepSchema = anyStep
  .superRefine(
    (step, ctx) => {
      const kinds = stepKinds.filter((k) => step[k] !== undefined);
      if (kinds.length !== 1) {
        const found = kinds.length ? `; this one has ${kinds.join(' and ')}` : '';
        ctx.addIssue({ code: 'custom', path: [], message: `a step needs exactly one of ${stepKinds.join(', ')}${found}` });
        return;
      }
      if (step.shell !== undefined && kinds[0] !== 'run') {
        ctx.addIssue({ code: 'custom', path: ['shell'], message: 'only a run step has a shell' });
      }
      if (step.env !== undefined && kinds[0] === 'copy') {
        ctx.addIssue({ code: 'custom', path: ['env'], message: 'a copy step runs nothing, so it takes no env' });
      }
    },
    // Also when some field is invalid, so that every mistake is reported at once.
    { when: (payload) => isRecord(payload.value) },
  )
  .transform((step): StepOutput => {
    const kind = stepKinds.find((k) => step[k] !== undefined) ?? 'copy';
    // The rules above guarantee this parse succeeds; it applies the kind's defaults and types.
    return stepSchemas[kind].parse(step);
  });

export const cleanupSchema = z.strictObject({
  /** Remove per-machine state (machine-id, ssh host keys, caches, logs, random seeds). */
  defaults: z.boolean().default(true),
  /** Extra absolute paths (globs allowed in the last component) to remove at the end of every step. */
  paths: z.array(absolutePath).default([]),
  /** Default cleanup paths to keep. */
  keep: z.array(absolutePath).default([]),
});

// --- recipe --------------------------------------------------------------------------------

/** `from:` is a template name (its recipe is <name>.yaml next to this one) or a path to a .yaml file. */
const parentRef = z
  .string()
  .min(1)
  .refine(
    (v) => templateNamePattern.test(v) || /\.ya?ml$/.test(v),
    'must be a template name such as debian-12-x86_64, or a path to a recipe file ending in .yaml',
  );

/**
 * An extra apt repository the recipe's install and remove steps (and those of its flavors) use.
 * It is there during those steps only (a build-time file, /etc/apt/sources.list.d/vztpl-*.list,
 * never in the template), and its Release file is part of their step-cache key, so a package
 * upgraded there rebuilds them as a mirror update does. Debian and Ubuntu templates only.
 */
const aptSource = z.strictObject({
  uri: z.string().url(),
  /** A codename (then components are needed), or a path ending in / for a flat repository (./). */
  suite: z.string().regex(/^(\.\/|[A-Za-z0-9][A-Za-z0-9._/-]*)$/, 'must be a codename such as bookworm, or ./ for a flat repository'),
  components: z.array(z.string().regex(/^[a-z][a-z0-9-]*$/, 'must be an archive component such as main')).default([]),
  /** Accept the repository without a signature ([trusted=yes]): for local and test repositories. */
  trusted: z.boolean().default(false),
});

export type AptSource = z.infer<typeof aptSource>;

const recipeObject = z.strictObject({
  name: templateName,
  version: semverString,
  description: z.string().optional(),
  /** Architecture of the template; the host must be able to run it. Defaults to the one in the name. */
  arch: z.enum(architectures).optional(),
  /** SOURCE_DATE_EPOCH: defaults to the date of the repository metadata the bootstrap resolved. */
  epoch: z.number().int().nonnegative().optional(),
  env: envMap.default({}),
  steps: z.array(stepSchema).default([]),
  labels: z.record(z.string(), z.string()).default({}),
  cleanup: cleanupSchema.default({ defaults: true, paths: [], keep: [] }),
  /** Default command of the image for OCI runtimes (OpenVZ boots /sbin/init). */
  cmd: z.array(z.string()).optional(),
  /** A base template: bootstrap a distribution. */
  bootstrap: bootstrapSchema.optional(),
  /** A flavor: the layers of another recipe (by name, or a path to its file), then this recipe's steps. */
  from: parentRef.optional(),
  /** Extra apt repositories for the package steps (aptSource above). */
  'apt-sources': z.array(aptSource).default([]),
});

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type RecipeFields = Omit<z.output<typeof recipeObject>, 'bootstrap' | 'from' | 'arch'> & { arch: Architecture };
type RecipeOutput =
  | Simplify<RecipeFields & { bootstrap: z.output<typeof bootstrapSchema> }>
  | Simplify<RecipeFields & { from: string }>;

export const recipeSchema = recipeObject
  .superRefine(
    (r, ctx) => {
      if (r.bootstrap !== undefined && r.from !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['from'],
          message: 'a recipe has either bootstrap (a base system) or from (a parent template), not both',
        });
      } else if (r.bootstrap === undefined && r.from === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [],
          message: 'a recipe needs bootstrap (to build a base system) or from (to build on a parent template)',
        });
      }
      for (const [i, src] of (Array.isArray(r['apt-sources']) ? r['apt-sources'] : []).entries()) {
        const flat = typeof src?.suite === 'string' && src.suite.endsWith('/');
        if (flat && src.components?.length) ctx.addIssue({ code: 'custom', path: ['apt-sources', i, 'components'], message: 'a flat repository (suite ending in /) has no components' });
        if (!flat && typeof src?.suite === 'string' && !src.components?.length) ctx.addIssue({ code: 'custom', path: ['apt-sources', i, 'components'], message: 'a suite needs at least one component, such as main' });
      }
      const fromName = typeof r.name === 'string' ? nameArch(r.name) : undefined;
      if (fromName !== undefined && (architectures as readonly unknown[]).includes(r.arch) && r.arch !== fromName) {
        ctx.addIssue({
          code: 'custom',
          path: ['arch'],
          message: `${r.arch} does not match the architecture in the name ${r.name} (${fromName})`,
        });
      }
    },
    { when: (payload) => isRecord(payload.value) },
  )
  .transform((r): RecipeOutput => ({ ...r, arch: r.arch ?? nameArch(r.name) ?? 'x86_64' }) as RecipeOutput);

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

export function stepKind(step: Step): StepKind {
  if ('install' in step) return 'install';
  if ('remove' in step) return 'remove';
  if ('run' in step) return 'run';
  return 'copy';
}
