// End to end: the RPM-family bootstrap with the host's dnf against a local fixture repository.
// Needs root, rpm, rpmbuild, dnf, createrepo_c and busybox-static (scripts/setup.sh).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { lstat, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dnfInstall } from '../../builder/managers/dnf.ts';
import { dnfSource, yumSource } from '../../builder/sources/dnf.ts';
import { rpmPackageLock } from '../../format/packages/rpm.ts';
import { bootstrapSchema, type RpmBootstrapSpec } from '../../builder/recipe/schema.ts';
import type { BootstrapContext } from '../../builder/sources/source.ts';
import { CommandError, MissingToolError, VztplError } from '../../common/errors.ts';
import { findProgram, run } from '../../common/run.ts';
import { FIXTURE_EPOCH, HELLO_POST_FILE, buildRpmRepo } from '../fixtures/rpm-repo.ts';

const CACHE = '/var/tmp/vztpl-test';
/** chroot itself is in /usr/sbin: run() looks programs up on the PATH it is given. */
const CHROOT_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
const ARCH: Record<string, string> = {
  'fixture-filesystem': 'noarch',
  'fixture-shell': 'x86_64',
  'fixture-rpm': 'x86_64',
  'fixture-hello': 'noarch',
  'fixture-extra': 'noarch',
};

function rpmSpec(input: Record<string, unknown>): RpmBootstrapSpec {
  const spec = bootstrapSchema.parse({ tool: 'dnf', releasever: '1', ...input });
  if (spec.tool !== 'dnf' && spec.tool !== 'yum') throw new Error('not an RPM spec');
  return spec;
}

const exists = (path: string) => lstat(path).then(
  () => true,
  () => false,
);

/** Every device node, socket or fifo under dir. */
async function specialFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await specialFiles(path)));
    else if (entry.isCharacterDevice() || entry.isBlockDevice() || entry.isFIFO() || entry.isSocket()) found.push(path);
  }
  return found;
}

const lockOf = (names: string[]) =>
  [...names].sort().map((name) => ({ name, version: '1.0-1', arch: ARCH[name] }));

describe.skipIf(process.getuid?.() !== 0 || !findProgram('dnf') || !findProgram('rpmbuild'))('dnf bootstrap (fixture repository)', () => {
  let tmp: string;
  let repo: { baseurl: string; packages: string[] };
  let spec: RpmBootstrapSpec;
  let ctx: BootstrapContext;
  const lines: string[] = [];

  beforeAll(async () => {
    tmp = await mkdtemp('/var/tmp/vztpl-dnf-test-');
    let t0 = performance.now();
    repo = await buildRpmRepo(join(CACHE, 'rpm-repo'));
    console.log(`fixture repository: ${Math.round(performance.now() - t0)} ms`);
    spec = rpmSpec({ repos: [{ name: 'fixture', baseurl: repo.baseurl, gpgcheck: false }], packages: ['fixture-hello', 'fixture-rpm'] });
    ctx = {
      root: join(tmp, 'root'),
      cacheDir: join(tmp, 'cache'),
      epoch: FIXTURE_EPOCH,
      arch: 'x86_64',
      log: (l) => lines.push(l),
      signal: new AbortController().signal,
    };
    t0 = performance.now();
    await dnfSource.bootstrap(spec, ctx);
    console.log(`dnf bootstrap: ${Math.round(performance.now() - t0)} ms`);
  });

  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('declares its family and host tools', () => {
    expect(dnfSource.tool).toBe('dnf');
    expect(dnfSource.family).toBe('rpm');
    expect(dnfSource.hostTools).toEqual({ dnf: 'dnf', rpm: 'rpm' });
    expect(yumSource.tool).toBe('yum');
    expect(yumSource.hostTools).toEqual(findProgram('yum') ? { yum: 'yum', rpm: 'rpm' } : { dnf: 'dnf', rpm: 'rpm' });
  });

  it('streams dnf output to the log', () => {
    expect(lines.some((l) => l.includes('Complete!'))).toBe(true);
  });

  it('installs the files of every package, with usrmerge symlinks', async () => {
    const root = ctx.root;
    expect(await readFile(join(root, 'etc/os-release'), 'utf8')).toContain('ID=fixture');
    expect(await readlink(join(root, 'bin'))).toBe('usr/bin');
    expect(await readlink(join(root, 'lib64'))).toBe('usr/lib64');
    expect((await lstat(join(root, 'tmp'))).mode & 0o7777).toBe(0o1777);
    expect((await lstat(join(root, 'usr/bin/busybox'))).isFile()).toBe(true);
    expect(await readlink(join(root, 'usr/bin/sh'))).toBe('busybox');
    expect((await lstat(join(root, 'usr/bin/rpm'))).isFile()).toBe(true);
    expect(await exists(join(root, 'usr/lib/rpm/macros'))).toBe(true);
    expect(await readFile(join(root, 'etc/rpm/macros.dbpath'), 'utf8')).toContain('%_dbpath /var/lib/rpm');
    expect(await exists(join(root, 'usr/bin/hello'))).toBe(true);
    expect(await exists(join(root, 'var/lib/rpm/rpmdb.sqlite'))).toBe(true);
    // --nodocs and no weak dependencies: nothing beyond what was asked for and required.
    expect(await exists(join(root, 'root/.rpmdb'))).toBe(false);
  });

  it('runs %post scriptlets inside the root', async () => {
    expect(await readFile(join(ctx.root, HELLO_POST_FILE), 'utf8')).toBe('post ran: 1\n');
    const out = await run('chroot', [ctx.root, '/bin/sh', '-c', 'hello'], { what: 'hello', cleanEnv: true, env: { PATH: CHROOT_PATH } });
    expect(out.trim()).toBe('hello from fixture');
  });

  it("lists exactly the installed packages with the template's own rpm", async () => {
    const out = await run('chroot', [ctx.root, '/bin/sh', '-c', 'rpm -qa'], { what: 'rpm -qa', cleanEnv: true, env: { PATH: CHROOT_PATH } });
    const expected = repo.packages.map((n) => `${n}-1.0-1.${ARCH[n]}`).sort();
    expect(out.trim().split('\n').sort()).toEqual(expected);
  });

  it('lets users other than root read the rpmdb', async () => {
    const out = await run('chroot', ['--userspec=65534:65534', ctx.root, 'rpm', '-qa', '--qf', '%{NAME}\\n'], { what: 'rpm -qa as nobody', cleanEnv: true, env: { PATH: CHROOT_PATH } });
    expect(out.trim().split('\n').sort()).toEqual([...repo.packages].sort());
  });

  it('rpmPackageLock lists the packages with versions, sorted by name', async () => {
    expect(await rpmPackageLock(ctx.root)).toEqual(lockOf(repo.packages));
  });

  it('leaves no device nodes and no dnf state in the root', async () => {
    const root = ctx.root;
    expect(await specialFiles(root)).toEqual([]);
    expect((await lstat(join(root, 'dev'))).isDirectory()).toBe(true);
    expect(await exists(join(root, 'var/cache/dnf'))).toBe(false);
    expect((await readdir(join(root, 'var/log'))).filter((n) => /dnf|hawkey/.test(n))).toEqual([]);
    expect(await exists(join(root, 'var/lib/dnf'))).toBe(false);
    expect(await exists(join(root, 'etc/dnf'))).toBe(false);
    // dnf writes expired_repos.json to ROOT/<cachedir>: gone, and the directories it made too.
    expect(await exists(join(root, ctx.cacheDir))).toBe(false);
    expect(await exists(join(root, 'var/tmp'))).toBe(true);
    // The sqlite side files stay: without them only root could read the rpmdb.
    expect((await readdir(join(root, 'var/lib/rpm'))).sort()).toEqual(['.rpm.lock', 'rpmdb.sqlite', 'rpmdb.sqlite-shm', 'rpmdb.sqlite-wal']);
    // The host cache kept the metadata.
    expect((await readdir(join(ctx.cacheDir, 'dnf'))).some((n) => n.startsWith('fixture-'))).toBe(true);
  });

  it('digests the repository metadata: stable, dated, and changed by a repository update', async () => {
    const signal = new AbortController().signal;
    const a = await dnfSource.metadataDigest(spec, signal);
    const b = await dnfSource.metadataDigest(spec, signal);
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(b).toEqual(a);
    expect(a.date).toEqual(new Date(FIXTURE_EPOCH * 1000));
    const repo2 = await buildRpmRepo(join(CACHE, 'rpm-repo-extra'), { extraPackages: ['fixture-extra'] });
    expect(repo2.packages).toContain('fixture-extra');
    const spec2 = rpmSpec({ repos: [{ name: 'fixture', baseurl: repo2.baseurl, gpgcheck: false }], packages: ['fixture-hello'] });
    const c = await yumSource.metadataDigest(spec2, signal);
    expect(c.digest).not.toBe(a.digest);
  });

  it('dnfInstall installs into and removes from an existing root', async () => {
    const repo2 = await buildRpmRepo(join(CACHE, 'rpm-repo-extra'), { extraPackages: ['fixture-extra'] });
    const spec2 = rpmSpec({ repos: [{ name: 'fixture', baseurl: repo2.baseurl, gpgcheck: false }], packages: ['fixture-hello'] });
    const opts = { cacheDir: ctx.cacheDir, log: () => {}, signal: new AbortController().signal, epoch: FIXTURE_EPOCH };
    await dnfInstall(ctx.root, spec2, ['fixture-extra'], opts);
    expect(await readFile(join(ctx.root, 'usr/share/fixture-extra/README'), 'utf8')).toBe('fixture-extra\n');
    expect(await rpmPackageLock(ctx.root)).toEqual(lockOf([...repo.packages, 'fixture-extra']));
    await dnfInstall(ctx.root, spec2, ['fixture-extra'], { ...opts, remove: true });
    expect(await exists(join(ctx.root, 'usr/share/fixture-extra'))).toBe(false);
    expect(await rpmPackageLock(ctx.root)).toEqual(lockOf(repo.packages));
    expect(await specialFiles(ctx.root)).toEqual([]);
    expect(await exists(join(ctx.root, 'var/lib/dnf'))).toBe(false);
    expect(await exists(join(ctx.root, ctx.cacheDir))).toBe(false);
  });

  it("rebuilds the rpmdb with the template's own rpm when asked", async () => {
    const root = join(tmp, 'root-rebuilddb');
    const s = rpmSpec({ repos: spec.repos, packages: ['fixture-rpm'], rebuilddb: true });
    await dnfSource.bootstrap(s, { ...ctx, root, log: () => {} });
    expect(await rpmPackageLock(root)).toEqual(lockOf(['fixture-filesystem', 'fixture-rpm']));
    expect(await specialFiles(root)).toEqual([]);
  });

  it('falls back to the host rpm when the root has none', async () => {
    const root = join(tmp, 'root-norpm');
    await dnfSource.bootstrap(rpmSpec({ repos: spec.repos, packages: ['fixture-hello'] }), { ...ctx, root, log: () => {} });
    expect(await exists(join(root, 'usr/bin/rpm'))).toBe(false);
    expect(await rpmPackageLock(root)).toEqual(lockOf(['fixture-filesystem', 'fixture-hello', 'fixture-shell']));
  });

  it('bootstraps from and digests a repository served over http', async () => {
    const dir = fileURLToPath(repo.baseurl);
    const server = createServer((req, res) => {
      const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
      readFile(join(dir, path)).then(
        (body) => res.end(body),
        () => {
          res.statusCode = 404;
          res.end();
        },
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const httpSpec = rpmSpec({ repos: [{ name: 'fixture-http', baseurl: url, gpgcheck: false }], packages: ['fixture-hello'] });
      const signal = new AbortController().signal;
      expect((await dnfSource.metadataDigest(httpSpec, signal)).digest).toBe((await dnfSource.metadataDigest(spec, signal)).digest);
      const root = join(tmp, 'root-http');
      await dnfSource.bootstrap(httpSpec, { ...ctx, root, log: () => {} });
      expect(await rpmPackageLock(root)).toEqual(lockOf(['fixture-filesystem', 'fixture-hello', 'fixture-shell']));
      const missing = rpmSpec({ repos: [{ name: 'gone', baseurl: `${url}gone/`, gpgcheck: false }], packages: ['fixture-hello'] });
      await expect(dnfSource.metadataDigest(missing, signal)).rejects.toThrow(/repository gone: cannot read .*HTTP 404/);
    } finally {
      server.close();
    }
  });

  it("fails on a bad baseurl with a CommandError carrying dnf's last lines", async () => {
    const root = join(tmp, 'root-bad');
    const bad = rpmSpec({ repos: [{ name: 'broken', baseurl: `file://${tmp}/no-such-repo`, gpgcheck: false }], packages: ['fixture-hello'] });
    const err = await dnfSource.bootstrap(bad, { ...ctx, root, log: () => {} }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CommandError);
    const ce = err as CommandError;
    expect(ce.exitCodeOfCommand).toBe(1);
    expect(ce.tail.length).toBeGreaterThan(0);
    expect(ce.message).toContain("Failed to download metadata for repo 'broken'");
    expect(ce.message).toContain(ce.tail.at(-1)!);
    // The device nodes are removed on failure too.
    expect(await specialFiles(root)).toEqual([]);
    await expect(dnfSource.metadataDigest(bad, new AbortController().signal)).rejects.toThrow(VztplError);
    await expect(dnfSource.metadataDigest(bad, new AbortController().signal)).rejects.toThrow(/repository broken: cannot read/);
  });

  it('names the Debian package when dnf is missing', async () => {
    const saved = process.env.PATH;
    process.env.PATH = join(tmp, 'empty-bin');
    try {
      const err = await dnfSource.bootstrap(spec, { ...ctx, root: join(tmp, 'root-notool') }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(MissingToolError);
      expect((err as MissingToolError).program).toBe('dnf');
      expect((err as MissingToolError).debianPackage).toBe('dnf');
      expect((err as Error).message).toContain('apt-get install dnf');
    } finally {
      process.env.PATH = saved;
    }
    expect(await exists(join(tmp, 'root-notool'))).toBe(false);
  });
});
