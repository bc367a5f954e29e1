// RPM-family bootstrap (EL, Fedora, ...) with the host's dnf and --installroot.
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
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommandError, VztplError } from '../../common/errors.ts';
import { findProgram, requirePrograms, run } from '../../common/run.ts';
import type { RpmBootstrapSpec } from '../recipe/schema.ts';
import type { BootstrapContext, BootstrapSource } from './source.ts';

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

/** PATH inside a template (chroot). */
const CHROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

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

export interface RpmPackage {
  name: string;
  /** [epoch:]version-release */
  version: string;
  arch: string;
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

function toolsFor(tool: 'dnf' | 'yum'): Record<string, string> {
  const program = hostProgram(tool);
  return { [program]: program, rpm: 'rpm' };
}

/**
 * Resolves an absolute path inside a root as the root's own processes would see it: symlinks
 * (absolute ones included) are followed relative to the root and never lead out of it.
 * Returns the host path, or undefined when the path does not exist.
 */
export async function resolveInRoot(root: string, path: string, depth = 0): Promise<string | undefined> {
  const parts = path.split('/').filter((p) => p && p !== '.');
  let cur = '/';
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === '..') {
      cur = posix.dirname(cur);
      continue;
    }
    const next = posix.join(cur, part);
    let st;
    try {
      st = await lstat(join(root, next));
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      if (depth >= 40) return undefined;
      const target = await readlink(join(root, next));
      const base = target.startsWith('/') ? target : posix.join(cur, target);
      return resolveInRoot(root, posix.join(base, ...parts.slice(i + 1)), depth + 1);
    }
    cur = next;
  }
  return join(root, cur);
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
    env: { PATH: CHROOT_PATH, HOME: '/root', LC_ALL: 'C' },
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

/**
 * Installs (or with opts.remove, removes) packages in an existing root with the host's dnf and
 * the recipe's repositories, as the bootstrap did. Used by the builder for install/remove steps.
 */
export async function dnfInstall(root: string, spec: RpmBootstrapSpec, packages: string[], opts: DnfInstallOptions): Promise<void> {
  const tools = toolsFor(spec.tool);
  requirePrograms({ ...tools, ...BASE_TOOLS });
  const program = hostProgram(spec.tool);
  const verb = opts.remove ? 'remove' : 'install';
  await runDnf(program, root, spec, packages, { ...opts, what: `${program} ${verb} ${packages.join(' ')}` });
}

const QUERY_FORMAT = '%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\n';

function parseLock(out: string): RpmPackage[] {
  const pkgs: RpmPackage[] = [];
  for (const line of out.split('\n')) {
    if (!line.trim()) continue;
    const [name, version, arch] = line.split('\t');
    if (!name || version === undefined || arch === undefined) throw new VztplError(`unexpected rpm -qa output line: ${line}`);
    // Imported signing keys are headers in the rpmdb, not packages.
    if (name === 'gpg-pubkey') continue;
    pkgs.push({ name, version, arch });
  }
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return pkgs.sort((a, b) => cmp(a.name, b.name) || cmp(a.version, b.version) || cmp(a.arch, b.arch));
}

/** The rpmdb location of a root: the given one, or the first of the usual ones holding a database. */
async function findDbPath(root: string, dbpath?: string): Promise<string> {
  if (dbpath) return dbpath;
  for (const candidate of ['/var/lib/rpm', '/usr/lib/sysimage/rpm']) {
    const dir = await resolveInRoot(root, candidate);
    if (!dir) continue;
    const names = await readdir(dir).catch(() => [] as string[]);
    if (names.some((n) => n === 'rpmdb.sqlite' || n === 'Packages' || n === 'Packages.db')) return candidate;
  }
  return '/var/lib/rpm';
}

/**
 * The packages installed in a root, sorted by name, as the template's own rpm lists them
 * (chroot ROOT rpm -qa). When the root has no rpm, the host's rpm reads the root's database
 * at dbpath (default: wherever one is found).
 */
export async function rpmPackageLock(root: string, dbpath?: string): Promise<RpmPackage[]> {
  root = resolve(root);
  for (const candidate of ['/usr/bin/rpm', '/bin/rpm']) {
    const host = await resolveInRoot(root, candidate);
    const st = host ? await stat(host).catch(() => undefined) : undefined;
    if (!st?.isFile() || !(st.mode & 0o111)) continue;
    const out = await run('chroot', [root, candidate, '-qa', '--qf', QUERY_FORMAT], {
      what: 'rpm -qa in the template',
      cleanEnv: true,
      env: { PATH: CHROOT_PATH, HOME: '/root', LC_ALL: 'C' },
    });
    return parseLock(out);
  }
  requirePrograms({ rpm: 'rpm' });
  const db = await findDbPath(root, dbpath);
  const out = await run('rpm', ['--root', root, '--dbpath', db, '-qa', '--qf', QUERY_FORMAT], { what: 'rpm -qa (host rpm on the template)', env: { LC_ALL: 'C' } });
  return parseLock(out);
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

function makeSource(tool: 'dnf' | 'yum'): BootstrapSource<RpmBootstrapSpec> {
  return {
    tool,
    family: 'rpm',
    get hostTools() {
      return toolsFor(tool);
    },
    metadataDigest: rpmMetadataDigest,
    async bootstrap(spec: RpmBootstrapSpec, ctx: BootstrapContext): Promise<void> {
      requirePrograms({ ...toolsFor(tool), ...BASE_TOOLS });
      const program = hostProgram(tool);
      await mkdir(ctx.root, { recursive: true });
      await runDnf(program, ctx.root, spec, spec.packages, {
        cacheDir: ctx.cacheDir,
        log: ctx.log,
        signal: ctx.signal,
        epoch: ctx.epoch,
        arch: ctx.arch,
        what: `${program} bootstrap of ${spec.packages.join(' ')}`,
      });
    },
  };
}

/** dnf with --installroot. */
export const dnfSource: BootstrapSource<RpmBootstrapSpec> = makeSource('dnf');
/** yum where the host has it (yum 4 is dnf), the host's dnf otherwise (Debian has no yum). */
export const yumSource: BootstrapSource<RpmBootstrapSpec> = makeSource('yum');
