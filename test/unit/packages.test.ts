// The package-lock readers of format/packages/: the pure parsers against real dpkg status text
// and real `rpm --queryformat` output (this Debian host's dpkg and rpm), and the readers on
// small roots. The builder's locks (every step) and the host's commit rest on them.
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram, run } from '../../common/run.ts';
import { DPKG_QUERY_FORMAT, dpkgQueryCommand, parseDpkgStatus, readDpkgStatus } from '../../format/packages/dpkg.ts';
import { formatLockLines, parseLockLines } from '../../format/packages/lock.ts';
import { RPM_QUERY_FORMAT, parseRpmQuery, rpmPackageLock, rpmQueryCommand } from '../../format/packages/rpm.ts';
import { resolveInRoot } from '../../format/packages/root.ts';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'vztpl-packages-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

// Paragraphs as dpkg writes them (from a bookworm root), with the states dpkg-query -W shows
// (installed, config-files, half-installed) and the one it leaves out (not-installed).
const STATUS = `Package: adduser
Status: install ok installed
Priority: important
Section: admin
Installed-Size: 849
Maintainer: Debian Adduser Developers <adduser@packages.debian.org>
Architecture: all
Multi-Arch: foreign
Version: 3.134
Depends: passwd
Suggests: liblocale-gettext-perl, perl, cron, quota
Conffiles:
 /etc/adduser.conf cc3493ecd2d09837ffdcc3e25fdfff18
 /etc/deluser.conf 11a06baf8245fd4d9bd6f7aec0b6c2c0
Description: add and remove users and groups
 This package includes the 'adduser' and 'deluser' commands for creating
 and removing users.
 .
 Package: not-a-field (a continuation line)

Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12985
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u7
Description: GNU C Library: Shared libraries

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u7
Description: GNU C Library: Shared libraries

Package: curl
Status: deinstall ok config-files
Priority: optional
Section: web
Architecture: amd64
Version: 7.88.1-10+deb12u5
Conffiles:
 /etc/curlrc 0123456789abcdef0123456789abcdef obsolete
Description: command line tool for transferring data with URL syntax

Package: nginx
Status: purge ok not-installed
Priority: optional
Section: httpd
Architecture: amd64

Package: base-files
Status: hold reinstreq half-installed
Essential: yes
Priority: required
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
`;

describe('dpkg', () => {
  it('parseDpkgStatus lists what dpkg-query -W would: every state but not-installed, by name and arch', () => {
    expect(parseDpkgStatus(STATUS)).toEqual([
      { name: 'adduser', version: '3.134', arch: 'all' },
      { name: 'base-files', version: '12.4+deb12u5', arch: 'amd64' },
      { name: 'curl', version: '7.88.1-10+deb12u5', arch: 'amd64' },
      { name: 'libc6', version: '2.36-9+deb12u7', arch: 'amd64' },
      { name: 'libc6', version: '2.36-9+deb12u7', arch: 'i386' },
    ]);
    expect(parseDpkgStatus('')).toEqual([]);
  });

  it.skipIf(!findProgram('dpkg-query'))("parseDpkgStatus of this host's status file equals its dpkg-query -W output", async () => {
    const status = await readFile('/var/lib/dpkg/status', 'utf8');
    const out = await run('dpkg-query', ['-W', `-f=${DPKG_QUERY_FORMAT}`], { what: 'dpkg-query', env: { LC_ALL: 'C' } });
    const byNameArch = (a: { name: string; arch: string }, b: { name: string; arch: string }) => (a.name + ' ' + a.arch < b.name + ' ' + b.arch ? -1 : 1);
    const fromStatus = parseDpkgStatus(status);
    expect(fromStatus.length).toBeGreaterThan(50);
    expect(fromStatus).toEqual(parseLockLines(out).sort(byNameArch));
  });

  it.skipIf(!findProgram('dpkg-query'))('DPKG_QUERY_FORMAT: dpkg-query turns its \\t and \\n escapes into lock lines', async () => {
    const out = await run('dpkg-query', ['-W', `-f=${DPKG_QUERY_FORMAT}`, 'dpkg'], { what: 'dpkg-query', env: { LC_ALL: 'C' } });
    const [dpkg] = parseLockLines(out);
    expect(out).toMatch(/^dpkg\t[0-9][^\t\n]*\t[a-z0-9]+\n$/);
    expect(dpkg).toEqual({ name: 'dpkg', version: expect.any(String), arch: expect.any(String) });
  });

  it('dpkgQueryCommand chroots into the root with real tab and newline characters in the format', () => {
    expect(dpkgQueryCommand('/r')).toEqual(['chroot', ['/r', 'dpkg-query', '-W', '-f=${Package}\t${Version}\t${Architecture}\n']]);
  });

  it('readDpkgStatus reads the root (symlinks resolved inside it), runs nothing, and refuses a root without dpkg', async () => {
    const root = join(tmp, 'deb-root');
    await mkdir(join(root, 'usr/var-lib/dpkg'), { recursive: true });
    await mkdir(join(root, 'var'), { recursive: true });
    await symlink('/usr/var-lib', join(root, 'var/lib'));
    await writeFile(join(root, 'usr/var-lib/dpkg/status'), STATUS);
    expect(await readDpkgStatus(root)).toEqual(parseDpkgStatus(STATUS));
    await expect(readDpkgStatus(join(tmp, 'no-such-root'))).rejects.toThrow(/has no dpkg database/);
  });
});

describe('lock lines', () => {
  it('parseLockLines sorts by name and keeps the order within one name; formatLockLines writes what it reads', () => {
    const text = 'zlib1g\t1:1.2.13.dfsg-1\tamd64\nlibc6\t2.36-9\ti386\nlibc6\t2.36-9\tamd64\n\n';
    const lock = parseLockLines(text);
    expect(lock).toEqual([
      { name: 'libc6', version: '2.36-9', arch: 'i386' },
      { name: 'libc6', version: '2.36-9', arch: 'amd64' },
      { name: 'zlib1g', version: '1:1.2.13.dfsg-1', arch: 'amd64' },
    ]);
    expect(parseLockLines(formatLockLines(lock))).toEqual(lock);
    expect(formatLockLines(lock)).toBe('libc6\t2.36-9\ti386\nlibc6\t2.36-9\tamd64\nzlib1g\t1:1.2.13.dfsg-1\tamd64');
  });
});

describe('rpm', () => {
  it('parseRpmQuery sorts by name, version and arch, leaves out gpg-pubkey and refuses other lines', () => {
    const out = ['zlib\t1.2.11-40.el9\tx86_64', 'gpg-pubkey\tb86b3716-61e69f29\t(none)', 'bash\t5.1.8-9.el9\tx86_64', 'glibc\t2.34-100.el9\ti686', 'glibc\t2.34-100.el9\tx86_64', 'shadow-utils\t2:4.9-8.el9\tx86_64', ''].join('\n');
    expect(parseRpmQuery(out)).toEqual([
      { name: 'bash', version: '5.1.8-9.el9', arch: 'x86_64' },
      { name: 'glibc', version: '2.34-100.el9', arch: 'i686' },
      { name: 'glibc', version: '2.34-100.el9', arch: 'x86_64' },
      { name: 'shadow-utils', version: '2:4.9-8.el9', arch: 'x86_64' },
      { name: 'zlib', version: '1.2.11-40.el9', arch: 'x86_64' },
    ]);
    expect(() => parseRpmQuery('bash-5.1.8-9.el9.x86_64\n')).toThrow(/unexpected rpm -qa output line: bash-5.1.8-9.el9.x86_64/);
  });

  it('rpmQueryCommand: the root\'s own rpm when it has one (through usrmerge links), else the host\'s rpm on the database found', async () => {
    const withRpm = join(tmp, 'rpm-root');
    await mkdir(join(withRpm, 'usr/bin'), { recursive: true });
    await symlink('usr/bin', join(withRpm, 'bin'));
    await writeFile(join(withRpm, 'usr/bin/rpm'), '#!/bin/sh\n');
    await chmod(join(withRpm, 'usr/bin/rpm'), 0o755);
    expect(await rpmQueryCommand(withRpm)).toEqual({
      file: 'chroot',
      args: [withRpm, '/usr/bin/rpm', '-qa', '--qf', RPM_QUERY_FORMAT],
      what: 'rpm -qa in the template',
      inRoot: true,
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LC_ALL: 'C' },
    });
    const fedora = join(tmp, 'fedora-root');
    await mkdir(join(fedora, 'usr/lib/sysimage/rpm'), { recursive: true });
    await writeFile(join(fedora, 'usr/lib/sysimage/rpm/rpmdb.sqlite'), '');
    const host = await rpmQueryCommand(fedora);
    expect(host).toMatchObject({ file: 'rpm', args: ['--root', fedora, '--dbpath', '/usr/lib/sysimage/rpm', '-qa', '--qf', RPM_QUERY_FORMAT], inRoot: false });
    expect((await rpmQueryCommand(fedora, '/var/lib/rpm')).args.slice(2, 4)).toEqual(['--dbpath', '/var/lib/rpm']);
    expect((await rpmQueryCommand(join(tmp, 'empty'))).args.slice(2, 4)).toEqual(['--dbpath', '/var/lib/rpm']);
  });

  describe.skipIf(process.getuid?.() !== 0 || !findProgram('rpm') || !findProgram('rpmbuild'))("real rpm output (this host's rpm and rpmbuild)", () => {
    let rpms: string[];
    beforeAll(async () => {
      const top = join(tmp, 'rpmbuild');
      const spec = (name: string, epoch: string) => `Name: ${name}\n${epoch}Version: 1.2\nRelease: 3.fx\nSummary: s\nLicense: MIT\nBuildArch: noarch\n%description\nd\n%files\n`;
      await mkdir(join(top, 'SPECS'), { recursive: true });
      await writeFile(join(top, 'SPECS/with-epoch.spec'), spec('fx-epoch', 'Epoch: 2\n'));
      await writeFile(join(top, 'SPECS/plain.spec'), spec('fx-plain', ''));
      for (const s of ['with-epoch', 'plain']) {
        await run('rpmbuild', ['-bb', '--define', `_topdir ${top}`, join(top, 'SPECS', `${s}.spec`)], { what: 'rpmbuild', env: { HOME: tmp, SOURCE_DATE_EPOCH: '1700000000' } });
      }
      rpms = [join(top, 'RPMS/noarch/fx-epoch-1.2-3.fx.noarch.rpm'), join(top, 'RPMS/noarch/fx-plain-1.2-3.fx.noarch.rpm')];
    });

    it('RPM_QUERY_FORMAT puts the epoch before the version only where there is one', async () => {
      const out = await run('rpm', ['-qp', '--qf', RPM_QUERY_FORMAT, ...rpms], { what: 'rpm -qp', env: { LC_ALL: 'C' } });
      expect(out).toBe('fx-epoch\t2:1.2-3.fx\tnoarch\nfx-plain\t1.2-3.fx\tnoarch\n');
      expect(parseRpmQuery(out)).toEqual([
        { name: 'fx-epoch', version: '2:1.2-3.fx', arch: 'noarch' },
        { name: 'fx-plain', version: '1.2-3.fx', arch: 'noarch' },
      ]);
    });

    it("rpmPackageLock reads a root's rpmdb with the host's rpm when the root has no rpm", async () => {
      const root = join(tmp, 'rpmdb-root');
      await mkdir(root);
      const db = ['--root', root, '--dbpath', '/var/lib/rpm'];
      await run('rpm', [...db, '--initdb'], { what: 'rpm --initdb', env: { HOME: tmp } });
      await run('rpm', [...db, '-i', '--justdb', '--nodeps', '--noscripts', ...rpms], { what: 'rpm -i --justdb', env: { HOME: tmp } });
      expect(await resolveInRoot(root, '/var/lib/rpm/rpmdb.sqlite')).toBe(join(root, 'var/lib/rpm/rpmdb.sqlite'));
      expect(await rpmPackageLock(root)).toEqual([
        { name: 'fx-epoch', version: '2:1.2-3.fx', arch: 'noarch' },
        { name: 'fx-plain', version: '1.2-3.fx', arch: 'noarch' },
      ]);
    });
  });
});
