#!/usr/bin/env node
// vztpl: the command line. Each command lives in its own module, imported only when it runs,
// so that a quick command (create, list) does not pay for the builder's or the server's imports.
import module from 'node:module';
import { ExitCode, UsageError, VztplError } from '../common/errors.ts';

// Compiled code is cached on disk between runs: start-up matters for `create`.
module.enableCompileCache?.();

interface Command {
  summary: string;
  load: () => Promise<{ main: (argv: string[]) => Promise<number> }>;
}

const COMMANDS: Record<string, Command> = {
  build: { summary: 'build a template from a recipe into an OCI image layout', load: () => import('./commands/build.ts') },
  validate: { summary: 'check recipes without building them', load: () => import('./commands/validate.ts') },
  inspect: { summary: "show a built template's layers, sizes, labels and packages", load: () => import('./commands/inspect.ts') },
  push: { summary: 'publish a built template to a registry as a version', load: () => import('./commands/push.ts') },
  publish: { summary: 'build recipes and publish each changed one as its next patch version, with a changelog', load: () => import('./commands/publish.ts') },
  serve: { summary: 'run the template registry (OCI Distribution API + template catalog)', load: () => import('./commands/serve.ts') },
  gc: { summary: "delete a registry's unreferenced blobs and stale uploads, while it serves", load: () => import('./commands/gc.ts') },
  login: { summary: 'check and store credentials for a registry (vztpl push, host cache)', load: () => import('./commands/login.ts') },
  logout: { summary: 'remove stored credentials for a registry', load: () => import('./commands/logout.ts') },
  user: { summary: "manage the registry's users file (add, passwd, scopes, del, list)", load: () => import('./commands/user.ts') },
  pull: { summary: 'pull a template into the host store (verified, deduplicated, safely extracted)', load: () => import('./commands/pull.ts') },
  templates: { summary: 'list cached templates, their sizes and shared bytes', load: () => import('./commands/templates.ts') },
  outdated: { summary: 'newer versions (same major) of the cached templates and containers, with their package changes', load: () => import('./commands/outdated.ts') },
  create: { summary: 'create a container from a template (create CTID --ostemplate NAME[@RANGE])', load: () => import('./commands/create.ts') },
  exec: { summary: 'run a command in a container with runc/crun', load: () => import('./commands/exec.ts') },
  list: { summary: "list the host's containers", load: () => import('./commands/list.ts') },
  destroy: { summary: 'unmount and remove a container', load: () => import('./commands/destroy.ts') },
  snapshot: { summary: "freeze a container's changes as a snapshot (snapshot delete CTID NAME merges one away)", load: () => import('./commands/snapshot.ts') },
  snapshots: { summary: "list a container's snapshots", load: () => import('./commands/snapshots.ts') },
  rollback: { summary: 'return a container to one of its snapshots', load: () => import('./commands/rollback.ts') },
  commit: { summary: 'turn a container into a new template version (its changes as layers above the template)', load: () => import('./commands/commit.ts') },
  backup: { summary: "back a container up to a registry (its snapshots as layers; incremental)", load: () => import('./commands/backup.ts') },
  backups: { summary: 'list the backups in a repository', load: () => import('./commands/backups.ts') },
  restore: { summary: 'recreate a container from a backup, with its identity and snapshots', load: () => import('./commands/restore.ts') },
  move: { summary: 'back a container up, check the registry holds it, then destroy it here', load: () => import('./commands/move.ts') },
  cache: { summary: 'cache prune [--max-size SIZE]: drop least recently used templates', load: () => import('./commands/cache.ts') },
  export: { summary: 'flatten a template into one tarball for existing hosts (.tar.gz, .tar.xz, .tar.zst)', load: () => import('./commands/export.ts') },
  key: { summary: 'key generate PREFIX: a cosign key pair (PREFIX.key encrypted, PREFIX.pub) for signing templates', load: () => import('./commands/key.ts') },
  sign: { summary: 'sign a published template version (sigstore/cosign format, tag sha256-<hex>.sig)', load: () => import('./commands/sign.ts') },
  verify: { summary: "check a published template version's signature against a public key", load: () => import('./commands/verify.ts') },
  sbom: { summary: "print a published template version's SBOM (SPDX 2.3 JSON, found as an OCI referrer)", load: () => import('./commands/sbom.ts') },
};

/** The version in the package's own package.json (beside dist/ when built, beside cli/ from source). */
async function version(): Promise<string> {
  const { readFileSync } = await import('node:fs');
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'vztpl' && pkg.version) return pkg.version;
    } catch {
      // not this one
    }
  }
  return 'unknown';
}

/**
 * Options every command that has them takes, also before the command name (as git and podman
 * allow): `vztpl --root DIR pull NAME`. The value says whether the option takes a value.
 */
const GLOBAL_OPTIONS: Record<string, boolean> = { '--root': true, '--registry': true, '--trust-policy': true, '--json': false };

/**
 * Splits leading global options from the command. They are handed to the command after its own
 * arguments, before a `--` that ends them (exec's command line stays as it was given).
 */
function splitGlobals(argv: string[]): { name: string | undefined; rest: string[] } {
  const globals: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    const option = arg.split('=')[0]!;
    if (!(option in GLOBAL_OPTIONS)) break;
    globals.push(arg);
    if (GLOBAL_OPTIONS[option] && !arg.includes('=')) {
      if (i + 1 >= argv.length) throw new UsageError(`option ${option} needs a value`);
      globals.push(argv[++i]!);
    }
  }
  const [name, ...rest] = argv.slice(i);
  const end = rest.indexOf('--');
  if (end === -1) rest.push(...globals);
  else rest.splice(end, 0, ...globals);
  return { name, rest };
}

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'vztpl: OS templates for OpenVZ-style hosts',
    '',
    'Usage: vztpl [--root DIR] [--registry URL] [--trust-policy FILE] [--json] <command> [options]',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Run "vztpl <command> --help" for a command\'s options.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const { name, rest } = splitGlobals(argv);
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name ? ExitCode.ok : ExitCode.usage;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${await version()}\n`);
    return ExitCode.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`vztpl: unknown command "${name}"\n\n${usage()}\n`);
    return ExitCode.usage;
  }
  const module = await command.load();
  return module.main(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof VztplError) {
      process.stderr.write(`vztpl: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else if (isSystemError(err)) {
      // The host refused an operation (a read-only or full disk, a path that is a file): the
      // message names the call and the path; a stack would say nothing more to the user.
      process.stderr.write(`vztpl: ${err.message}\n`);
      process.exitCode = ExitCode.failure;
    } else {
      process.stderr.write(`vztpl: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = ExitCode.failure;
    }
  },
);

function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return err instanceof Error && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}
