// The package managers' step commands, pinned: the shell a step runs for apt and for dnf is the
// one build.ts wrote itself before issue 12 moved it here (checked line for line then).
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aptManager } from '../../builder/managers/apt.ts';
import { dnfManager } from '../../builder/managers/dnf.ts';
import type { StepRequest } from '../../builder/managers/index.ts';
import { bootstrapSchema } from '../../builder/recipe/schema.ts';
import { sourceFor } from '../../builder/sources/index.ts';

const deb = bootstrapSchema.parse({ tool: 'mmdebstrap', suite: 'bookworm', mirror: 'http://deb.debian.org/debian' });
const rpm = bootstrapSchema.parse({ tool: 'yum', releasever: '9', repos: [{ name: 'x', baseurl: 'file:///r' }], packages: ['a'] });
if (deb.tool !== 'mmdebstrap' || rpm.tool !== 'yum') throw new Error('unexpected specs');

describe('package managers', () => {
  let cacheRoot: string;
  let req: StepRequest;
  beforeAll(async () => {
    cacheRoot = await mkdtemp(join(tmpdir(), 'vztpl-managers-'));
    req = { root: '/w/merged', work: join(cacheRoot, 'work'), env: ['PATH=/usr/bin', 'A=1'], lockFile: '/w/packages.lock', cacheRoot, packagesDir: join(cacheRoot, 'packages/x'), epoch: 1_700_000_000, arch: 'x86_64' };
  });
  afterAll(async () => {
    await rm(cacheRoot, { recursive: true, force: true });
  });

  it('each source names the manager of its family', () => {
    expect(sourceFor({ tool: 'mmdebstrap' }).manager).toBe(aptManager);
    expect(sourceFor({ tool: 'debootstrap' }).manager).toBe(aptManager);
    expect(sourceFor({ tool: 'dnf' }).manager).toBe(dnfManager);
    expect(sourceFor({ tool: 'yum' }).manager).toBe(dnfManager);
    for (const tool of ['mmdebstrap', 'debootstrap', 'dnf', 'yum'] as const) expect(sourceFor({ tool }).family).toBe(sourceFor({ tool }).manager.family);
  });

  it('apt: update, install or purge and autoremove in the chroot, then the dpkg-query lock; private copies of the lists and .debs bound from the host', async () => {
    const apt = "'apt-get' '-q' '-o' 'Dir::Cache::pkgcache=' '-o' 'Dir::Cache::srcpkgcache=' '-o' 'APT::Sandbox::User=root' '-o' 'Acquire::Retries=3'";
    const chroot = `env -i 'PATH=/usr/bin' 'A=1' chroot "$ROOT"`;
    const lock = `env -i 'PATH=/usr/sbin:/usr/bin:/sbin:/bin' 'LC_ALL=C' chroot "$ROOT" 'dpkg-query' '-W' '-f=\${Package}\\t\${Version}\\t\${Architecture}\\n' > '/w/packages.lock'`;
    const install = await aptManager.changeCommands(deb, ['nginx', 'curl'], false, req);
    expect(install.lines).toEqual([`${chroot} ${apt} 'update'`, `${chroot} ${apt} 'install' '-y' '--no-install-recommends' '--' 'nginx' 'curl'`, lock]);
    expect(install.system).toBe(true);
    expect(install.binds.map((b) => b.target)).toEqual(['/var/lib/apt/lists', '/var/cache/apt/archives']);
    // The step's own copies (package-cache.ts), published into the shared dirs by finish().
    expect(install.binds.map((b) => b.host)).toEqual([join(cacheRoot, 'work/apt-lists'), join(cacheRoot, 'work/apt-archives')]);
    for (const b of install.binds) expect((await stat(join(b.host, 'partial'))).isDirectory()).toBe(true);
    expect(install.exclusive).toBeUndefined();
    // Shared: per mirror and suite, the first 16 hex digits of sha256('<mirror> <suite>'); the family's debs/.
    const sharedLists = join(cacheRoot, 'apt-lists/7da776932c8acb54');
    const sharedDebs = join(cacheRoot, 'packages/x/debs');
    expect((await stat(join(sharedLists, 'partial'))).isDirectory()).toBe(true);
    await writeFile(join(install.binds[1]!.host, 'new_1.0_all.deb'), 'deb');
    await writeFile(join(install.binds[0]!.host, 'deb.debian.org_debian_dists_bookworm_InRelease'), 'release');
    await writeFile(join(install.binds[0]!.host, 'lock'), '');
    await install.finish!();
    expect(await readFile(join(sharedDebs, 'new_1.0_all.deb'), 'utf8')).toBe('deb');
    expect(await readFile(join(sharedLists, 'deb.debian.org_debian_dists_bookworm_InRelease'), 'utf8')).toBe('release');
    expect((await readdir(sharedLists)).sort()).toEqual(['deb.debian.org_debian_dists_bookworm_InRelease', 'partial']);
    // The next step's copies start from what was published: hard links of the shared files.
    const remove = await aptManager.changeCommands(deb, ['curl'], true, { ...req, work: join(cacheRoot, 'work2') });
    expect((await stat(join(cacheRoot, 'work2/apt-archives/new_1.0_all.deb'))).ino).toBe((await stat(join(sharedDebs, 'new_1.0_all.deb'))).ino);
    expect(remove.lines).toEqual([`${chroot} ${apt} 'update'`, `${chroot} ${apt} 'purge' '-y' '--' 'curl'`, `${chroot} ${apt} 'autoremove' '--purge' '-y'`, lock]);
    expect(aptManager.lockCommand(deb, req)).toBe(lock);
    expect(aptManager.stepFiles.map((f) => [f.path, f.mode])).toEqual([['usr/sbin/policy-rc.d', 0o755]]);
  });

  it('dnf: one node dnf-step command that changes packages and writes the lock, without /proc, /sys, /dev mounts, holding the cachedir lock', async () => {
    const command = (packages: string[], remove: boolean) => {
      const request = JSON.stringify({ root: '/w/merged', spec: rpm, packages, remove, cacheDir: join(cacheRoot, 'packages/x'), epoch: 1_700_000_000, arch: 'x86_64' });
      const entry = join(import.meta.dirname, '../../builder/managers/dnf-step.ts');
      return [process.execPath, entry, request, '/w/packages.lock'].map((w) => `'${w}'`).join(' ');
    };
    // The step's dnf uses the shared cachedir: concurrent builds take turns (dnf.ts dnfCacheLock).
    expect(await dnfManager.changeCommands(rpm, ['less'], true, req)).toEqual({ lines: [command(['less'], true)], binds: [], system: false, exclusive: join(cacheRoot, 'packages/x/dnf.lock') });
    expect(dnfManager.lockCommand(rpm, req)).toBe(command([], false));
    expect(dnfManager.stepFiles).toEqual([]);
  });
});
