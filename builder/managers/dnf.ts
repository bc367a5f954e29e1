// dnf (yum where the host has it) and rpm: the package manager of RPM-family templates (EL,
// Fedora, ...). The host's dnf works on the root with --installroot: it bootstraps an empty root
// (../sources/dnf.ts) and installs or removes packages in a step's stack (dnf-step.ts).
// On a Debian host (dnf 4.14, rpm 4.18) the traps are:
// - Debian's rpm macros put the rpmdb at ~/.rpmdb, so dnf runs with HOME pointing at a private
//   directory whose .rpmmacros sets %_dbpath to the template's dbpath.
// - dnf prefixes cachedir with the installroot before --setopt overrides it: the package caches
//   go to the host cachedir, but expired_repos.json lands in ROOT/<cachedir>; logs and history
//   always go into the root. All of it is removed afterwards.
// - Debian's dnf.conf says skip_if_unavailable=True: an unreachable repository would be skipped
//   silently. A template build must fail instead.
// - A scriptlet run without /dev/null turns it into a regular file: create the usual nodes
//   first, and remove them again (the runtime provides /dev; layers must not ship device nodes).
// - rpmdb.sqlite-shm/-wal must stay (non-root rpm cannot open the database without them).
// - `rpm --rebuilddb` is a popt alias that execs rpmdb: the template needs /usr/bin/rpmdb.
// - The rpmdb is sqlite; EL7/EL8 need it rebuilt by the template's own rpm (spec.rebuilddb).
// - The cachedir is shared by the builds on one cache, and dnf's own locks there
//   (metadata_lock.pid, download_lock.pid) hold pids: a step's dnf runs in a private pid
//   namespace, where another build's dnf has the same small pid ("already locked by this
//   process") or its pid names a host process. So concurrent builds take turns with a vztpl lock
//   (dnfCacheLock) around every dnf run on the shared cachedir: bootstraps and package steps.
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommandError, VztplError } from '../../common/errors.ts';
import { holdSharedLock, PACKAGE_LOCK_WAIT_MS } from '../package-cache.ts';
import { findProgram, requirePrograms, run } from '../../common/run.ts';
import { rpmPackageLock } from '../../format/packages/rpm.ts';
import { resolveInRoot, TEMPLATE_PATH } from '../../format/packages/root.ts';
import { shellQuote as q } from '../chroot.ts';
import type { RpmBootstrapSpec } from '../recipe/schema.ts';
import type { DnfStepRequest } from './dnf-step.ts';
import type { PackageManager, StepRequest } from './index.ts';

/** Device nodes a package scriptlet may need: [name, mode, major, minor]. */
const DEV_NODES: ReadonlyArray<readonly [string, number, number, number]> = [
  ['null', 0o666, 1, 3],
  ['zero', 0o666, 1, 5],
  ['full', 0o666, 1, 7],
  ['random', 0o666, 1, 8],
  ['urandom', 0o666, 1, 9],
  ['tty', 0o666, 5, 0],
  ['console', 0o600, 5, 1],
];

/** Programs every RPM bootstrap runs besides dnf and rpm (always present on Debian). */
const BASE_TOOLS = { chroot: 'coreutils', mknod: 'coreutils' } as const;

/** Host environment variables passed through to dnf (repository access through a proxy). */
const PASS_ENV = ['PATH', 'http_proxy', 'https_proxy', 'ftp_proxy', 'no_proxy', 'all_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'NO_PROXY', 'ALL_PROXY'];

export interface DnfInstallOptions {
  /** Remove the packages instead of installing them. */
  remove?: boolean;
  /** Persistent host cache directory; dnf's cache goes to <cacheDir>/dnf. */
  cacheDir: string;
  log: (line: string) => void;
  signal: AbortSignal;
  /** SOURCE_DATE_EPOCH. */
  epoch: number;
  /** Template architecture, when it differs from the host's (passed as --forcearch). */
  arch?: string;
}

/** The host's architecture as RPM names it. */
export function hostRpmArch(): string {
  const map: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ppc64: 'ppc64le', s390x: 's390x', ia32: 'i386' };
  return map[process.arch] ?? process.arch;
}

/** The dnf-compatible program for a tool: yum where the host has it (EL hosts), dnf otherwise (Debian). */
function hostProgram(tool: 'dnf' | 'yum'): 'dnf' | 'yum' {
  return tool === 'yum' && findProgram('yum') ? 'yum' : 'dnf';
}

/** The host programs a dnf or yum bootstrap runs, each with the Debian package providing it. */
export function dnfHostTools(tool: 'dnf' | 'yum'): Record<string, string> {
  const program = hostProgram(tool);
  return { [program]: program, rpm: 'rpm' };
}

/** Creates the missing /dev nodes in root; returns the host paths of those it created. */
async function createDevNodes(root: string, signal: AbortSignal): Promise<string[]> {
  const devDir = join(root, 'dev');
  const st = await lstat(devDir).catch(() => undefined);
  if (st?.isSymbolicLink()) return [];
  if (!st) await mkdir(devDir, { mode: 0o755 });
  const created: string[] = [];
  for (const [name, mode, major, minor] of DEV_NODES) {
    const path = join(devDir, name);
    if (await lstat(path).catch(() => undefined)) continue;
    await run('mknod', ['-m', mode.toString(8), path, 'c', String(major), String(minor)], { what: `mknod ${path}`, signal });
    created.push(path);
  }
  return created;
}

/** Removes the device nodes createDevNodes made (if they are still character devices). */
async function removeDevNodes(paths: string[]): Promise<void> {
  for (const path of paths) {
    const st = await lstat(path).catch(() => undefined);
    if (st?.isCharacterDevice()) await rm(path, { force: true });
  }
}

/** A private HOME whose .rpmmacros puts the rpmdb where the template's rpm looks for it. */
async function privateHome(dbpath: string): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'vztpl-rpm-home-'));
  await writeFile(join(home, '.rpmmacros'), `%_dbpath ${dbpath}\n`);
  return home;
}

function dnfEnv(home: string, epoch: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of PASS_ENV) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, HOME: home, LC_ALL: 'C', LANG: 'C', SOURCE_DATE_EPOCH: String(epoch) };
}

function forceArch(arch: string | undefined): string[] {
  if (!arch || arch === hostRpmArch()) return [];
  return [`--forcearch=${arch === 'i386' ? 'i686' : arch}`];
}

/** The options every dnf run gets: the recipe's repositories only, caches on the host, no docs. */
export function dnfArguments(root: string, spec: RpmBootstrapSpec, cacheDir: string, arch?: string): string[] {
  const args = [
    `--installroot=${root}`,
    `--releasever=${spec.releasever}`,
    '--setopt=reposdir=/dev/null',
    '--noplugins',
  ];
  for (const repo of spec.repos) {
    args.push(`--repofrompath=${repo.name},${repo.baseurl}`, `--repo=${repo.name}`, `--setopt=${repo.name}.gpgcheck=${repo.gpgcheck ? 1 : 0}`);
    if (repo.gpgkey) {
      const key = repo.gpgkey.startsWith('/') ? `file://${repo.gpgkey}` : repo.gpgkey;
      args.push(`--setopt=${repo.name}.gpgkey=${key}`);
    }
  }
  if (spec.repos.every((r) => !r.gpgcheck)) args.push('--nogpgcheck');
  args.push(
    `--setopt=cachedir=${posix.join(cacheDir, 'dnf')}`,
    '--setopt=keepcache=1',
    '--setopt=install_weak_deps=False',
    '--setopt=skip_if_unavailable=False',
    // Metadata cached on the host may be older than what metadataDigest saw.
    '--refresh',
    ...forceArch(arch),
    '--nodocs',
    '-y',
  );
  return args;
}

/** True when a package in the root's rpmdb owns path (read with the host's rpm). */
async function ownedByPackage(root: string, dbpath: string, path: string, signal: AbortSignal): Promise<boolean> {
  try {
    await run('rpm', ['--root', root, '--dbpath', dbpath, '-qf', path], { what: `rpm -qf ${path}`, signal, env: { LC_ALL: 'C' } });
    return true;
  } catch (e) {
    if (e instanceof CommandError && e.exitCodeOfCommand === 1) return false;
    throw e;
  }
}

/** Removes the directories (deepest first) while they are empty, real and owned by no package. */
async function pruneDirs(root: string, dbpath: string, dirs: string[], signal: AbortSignal): Promise<void> {
  for (const dir of [...dirs].sort((a, b) => b.length - a.length)) {
    if (dir === '/') continue;
    const host = join(root, dir);
    const st = await lstat(host).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    if ((await readdir(host)).length) continue;
    if (await ownedByPackage(root, dbpath, dir, signal)) continue;
    await rmdir(host);
  }
}

/** The in-root path of an existing directory with symlinks resolved, if it is inside root. */
async function canonicalDir(root: string, path: string): Promise<string | undefined> {
  const host = await resolveInRoot(root, path);
  if (!host) return undefined;
  const st = await lstat(host).catch(() => undefined);
  if (!st?.isDirectory()) return undefined;
  return '/' + posix.relative(root, host);
}

/** Removes dnf's per-machine state from a root: caches, logs, history, stray rpmdbs. */
async function removeDnfResidue(root: string, dbpath: string, cacheDir: string, signal: AbortSignal): Promise<void> {
  const prune: string[] = [];

  const logDir = await canonicalDir(root, '/var/log');
  if (logDir) {
    for (const name of await readdir(join(root, logDir))) {
      if (/^(dnf\b.*\.log|hawkey\.log)/.test(name)) await rm(join(root, logDir, name), { force: true });
    }
  }

  const dnfLib = await canonicalDir(root, '/var/lib/dnf');
  if (dnfLib) {
    for (const name of await readdir(join(root, dnfLib))) {
      if (name.startsWith('history')) await rm(join(root, dnfLib, name), { recursive: true, force: true });
    }
    prune.push(dnfLib);
  }

  const dnfCache = await canonicalDir(root, '/var/cache/dnf');
  if (dnfCache) {
    for (const name of await readdir(join(root, dnfCache))) await rm(join(root, dnfCache, name), { recursive: true, force: true });
    prune.push(dnfCache);
  }

  // dnf's RepoPersistor writes expired_repos.json to ROOT/<cachedir> (see the header).
  const hostCache = posix.resolve(cacheDir, 'dnf');
  const persisted = await canonicalDir(root, hostCache);
  if (persisted) {
    await rm(join(root, persisted, 'expired_repos.json'), { force: true });
    for (let d = persisted; d !== '/'; d = posix.dirname(d)) prune.push(d);
  }

  for (const d of ['/etc/dnf/modules.d', '/etc/dnf']) {
    const c = await canonicalDir(root, d);
    if (c) prune.push(c);
  }

  // Debian's default %_dbpath, should anything have run without the private HOME.
  const rootHome = await canonicalDir(root, '/root');
  if (rootHome) await rm(join(root, rootHome, '.rpmdb'), { recursive: true, force: true });

  // rpmdb.sqlite-shm and -wal stay: rpm keeps them (SQLITE_FCNTL_PERSIST_WAL) so that users
  // other than root can read the database; without them `rpm -qa` as non-root fails.

  await pruneDirs(root, dbpath, [...new Set(prune)], signal);
}

/** Runs the template's own rpm --rebuilddb (for rpm versions that cannot read sqlite). */
async function rebuildDb(root: string, dbpath: string, log: (line: string) => void, signal: AbortSignal): Promise<void> {
  await run('chroot', [root, 'rpm', '--rebuilddb'], {
    what: 'rpm --rebuilddb in the template',
    log,
    signal,
    cleanEnv: true,
    env: { PATH: TEMPLATE_PATH, HOME: '/root', LC_ALL: 'C' },
  });
  // Berkeley DB environment files are per machine.
  const db = await canonicalDir(root, dbpath);
  if (db) for (const name of await readdir(join(root, db))) if (/^__db\.\d+$/.test(name)) await rm(join(root, db, name), { force: true });
}

async function runDnf(
  program: string,
  root: string,
  spec: RpmBootstrapSpec,
  packages: string[],
  opts: DnfInstallOptions & { what: string },
): Promise<void> {
  // dnf requires an absolute --installroot.
  root = resolve(root);
  const created = await createDevNodes(root, opts.signal);
  const home = await privateHome(spec.dbpath);
  try {
    const args = [...dnfArguments(root, spec, opts.cacheDir, opts.arch), opts.remove ? 'remove' : 'install', '--', ...packages];
    await run(program, args, { what: opts.what, log: opts.log, signal: opts.signal, cleanEnv: true, env: dnfEnv(home, opts.epoch) });
    await removeDnfResidue(root, spec.dbpath, opts.cacheDir, opts.signal);
    if (spec.rebuilddb) await rebuildDb(root, spec.dbpath, opts.log, opts.signal);
  } finally {
    await removeDevNodes(created);
    await rm(home, { recursive: true, force: true });
  }
}

/** The host's dnf (or yum) for `tool`, checked for, run on root. */
async function runHostDnf(tool: 'dnf' | 'yum', root: string, spec: RpmBootstrapSpec, packages: string[], opts: DnfInstallOptions & { createRoot?: boolean }, what: (program: string) => string): Promise<void> {
  requirePrograms({ ...dnfHostTools(tool), ...BASE_TOOLS });
  const program = hostProgram(tool);
  if (opts.createRoot) await mkdir(root, { recursive: true });
  await runDnf(program, root, spec, packages, { ...opts, what: what(program) });
}

/**
 * Installs (or with opts.remove, removes) packages in an existing root with the host's dnf and
 * the recipe's repositories, as the bootstrap did. Used by the builder for install/remove steps.
 */
export async function dnfInstall(root: string, spec: RpmBootstrapSpec, packages: string[], opts: DnfInstallOptions): Promise<void> {
  await runHostDnf(spec.tool, root, spec, packages, opts, (program) => `${program} ${opts.remove ? 'remove' : 'install'} ${packages.join(' ')}`);
}

/** The lock concurrent builds take around dnf runs on the cachedir under `cacheDir` (see the header). */
export function dnfCacheLock(cacheDir: string): string {
  return join(cacheDir, 'dnf.lock');
}

/** Fills an empty root with spec.packages: the bootstrap of ../sources/dnf.ts, by `tool`. */
export async function dnfBootstrap(tool: 'dnf' | 'yum', root: string, spec: RpmBootstrapSpec, opts: DnfInstallOptions): Promise<void> {
  await mkdir(opts.cacheDir, { recursive: true });
  const lock = await holdSharedLock(dnfCacheLock(opts.cacheDir), { signal: opts.signal, timeoutMs: PACKAGE_LOCK_WAIT_MS });
  try {
    await runHostDnf(tool, root, spec, spec.packages, { ...opts, createRoot: true }, (program) => `${program} bootstrap of ${spec.packages.join(' ')}`);
  } finally {
    lock.release();
  }
}

/** Replaces the dnf variables a baseurl may contain. */
function substituteVars(url: string, spec: RpmBootstrapSpec): string {
  const vars: Record<string, string> = { releasever: spec.releasever, basearch: hostRpmArch(), arch: hostRpmArch() };
  return url.replace(/\$\{?(releasever|basearch|arch)\}?/g, (_, name: string) => vars[name] ?? '');
}

async function readRepomd(url: URL, repo: string, signal: AbortSignal): Promise<Buffer> {
  try {
    if (url.protocol === 'file:') return await readFile(fileURLToPath(url), { signal });
    const res = await fetch(url, { signal });
    if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`);
    return Buffer.from(await res.arrayBuffer());
  } catch (e) {
    if (signal.aborted) throw signal.reason ?? e;
    throw new VztplError(`repository ${repo}: cannot read ${url.href}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

/**
 * sha256 over the repomd.xml of every repository, in recipe order, and the newest metadata date
 * (repomd's <revision> when it is a unix time, else its newest <timestamp>).
 */
export async function rpmMetadataDigest(spec: RpmBootstrapSpec, signal: AbortSignal): Promise<{ digest: string; date?: Date }> {
  const hash = createHash('sha256');
  let newest: number | undefined;
  for (const repo of spec.repos) {
    const base = substituteVars(repo.baseurl, spec);
    const url = new URL('repodata/repomd.xml', base.endsWith('/') ? base : `${base}/`);
    const bytes = await readRepomd(url, repo.name, signal);
    hash.update(bytes);
    const xml = bytes.toString('utf8');
    const revision = /<revision>\s*(\d{9,})\s*<\/revision>/.exec(xml)?.[1];
    const stamps = revision ? [Number(revision)] : [...xml.matchAll(/<timestamp>\s*(\d+)\s*<\/timestamp>/g)].map((m) => Number(m[1]));
    for (const s of stamps) if (Number.isFinite(s) && (newest === undefined || s > newest)) newest = s;
  }
  const result: { digest: string; date?: Date } = { digest: `sha256:${hash.digest('hex')}` };
  if (newest !== undefined) result.date = new Date(newest * 1000);
  return result;
}

/** The step command: node runs dnf-step.ts inside the step's namespaces (see there). */
function dnfStepCommand(spec: RpmBootstrapSpec, packages: readonly string[], remove: boolean, req: StepRequest): string {
  const request: DnfStepRequest = { root: req.root, spec, packages: [...packages], remove, cacheDir: req.packagesDir, epoch: req.epoch, arch: req.arch };
  const self = fileURLToPath(import.meta.url);
  const entry = join(self, '..', `dnf-step${extname(self)}`);
  return [process.execPath, entry, JSON.stringify(request), req.lockFile].map(q).join(' ');
}

export const dnfManager: PackageManager<RpmBootstrapSpec> = {
  family: 'rpm',
  metadataDigest: rpmMetadataDigest,
  packageLock: (root, spec) => rpmPackageLock(root, spec.dbpath),
  // The host's dnf makes the /dev nodes scriptlets need (createDevNodes): no /proc, /sys, /dev mounts.
  // The step's dnf (in its namespaces) uses the shared cachedir: the build holds dnfCacheLock for it.
  changeCommands: async (spec, packages, remove, req) => ({ lines: [dnfStepCommand(spec, packages, remove, req)], binds: [], system: false, exclusive: dnfCacheLock(req.packagesDir) }),
  lockCommand: (spec, req) => dnfStepCommand(spec, [], false, req),
  stepFiles: [],
};
