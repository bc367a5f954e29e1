// apt and dpkg: the package manager of Debian and Ubuntu templates. Steps run the template's
// own apt-get in the chroot, with the package lists and downloaded .debs kept on the host,
// shared by the builds on one cache: each step's apt works on private copies of them (hard
// links, see ../package-cache.ts), so that concurrent builds neither fail on apt's locks nor
// wait for each other, and what it downloaded is published into the shared dirs afterwards.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VztplError } from '../../common/errors.ts';
import { sha256, type Digest } from '../../format/digest.ts';
import { DPKG_QUERY_FORMAT, dpkgPackageLock } from '../../format/packages/dpkg.ts';
import { chrootCommand, shellQuote as q } from '../chroot.ts';
import { aptListFiles, debFiles, publishPrivateDir, seedPrivateDir } from '../package-cache.ts';
import type { AptSource, DebianBootstrapSpec } from '../recipe/schema.ts';
import type { PackageManager, StepCommands, StepRequest } from './index.ts';

/** Reads a URL of the mirror: http(s) with fetch, file:// from disk. */
export async function readMirrorFile(url: string, signal: AbortSignal): Promise<Buffer> {
  if (url.startsWith('file://')) return readFile(fileURLToPath(url));
  const res = await fetch(url, { signal, redirect: 'follow' }).catch((err: Error) => {
    throw new VztplError(`cannot reach ${url}: ${err.message}`);
  });
  if (!res.ok) throw new VztplError(`${url}: HTTP ${res.status} ${res.statusText}`);
  return Buffer.from(await res.arrayBuffer());
}

/**
 * Digest of the suite's InRelease: it names the hash of every index, so any change to the
 * archive's packages changes it, and the step cache rebuilds.
 */
export async function inReleaseDigest(spec: DebianBootstrapSpec, signal: AbortSignal): Promise<{ digest: Digest; date?: Date }> {
  const url = `${spec.mirror.replace(/\/+$/, '')}/dists/${spec.suite}/InRelease`;
  const bytes = await readMirrorFile(url, signal);
  const dateLine = /^Date: (.+)$/m.exec(bytes.toString('utf8'));
  const date = dateLine ? new Date(dateLine[1]!) : undefined;
  return { digest: sha256(bytes), date: date && !Number.isNaN(date.getTime()) ? date : undefined };
}

/** The sources.list line of a recipe's extra apt source (schema.ts aptSource). */
export function aptSourceLine(src: AptSource): string {
  const options = src.trusted ? '[trusted=yes] ' : '';
  return `deb ${options}${src.uri} ${src.suite}${src.components.length ? ` ${src.components.join(' ')}` : ''}\n`;
}

/**
 * Digest of an extra apt source's InRelease (or Release, for the unsigned repositories
 * apt-ftparchive makes): it names the hash of every index, as the mirror's does.
 */
export async function aptSourceDigest(src: AptSource, signal: AbortSignal): Promise<Digest> {
  const base = src.suite.endsWith('/') ? `${src.uri.replace(/\/+$/, '')}/${src.suite.replace(/^\.\/$/, '')}` : `${src.uri.replace(/\/+$/, '')}/dists/${src.suite}/`;
  try {
    return sha256(await readMirrorFile(`${base}InRelease`, signal));
  } catch {
    return sha256(await readMirrorFile(`${base}Release`, signal));
  }
}

const APT_GET = ['apt-get', '-q', '-o', 'Dir::Cache::pkgcache=', '-o', 'Dir::Cache::srcpkgcache=', '-o', 'APT::Sandbox::User=root', '-o', 'Acquire::Retries=3'];

function lockCommand(_spec: DebianBootstrapSpec, req: StepRequest): string {
  return `${chrootCommand(['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL=C'], ['dpkg-query', '-W', `-f=${DPKG_QUERY_FORMAT}`])} > ${q(req.lockFile)}`;
}

export const aptManager: PackageManager<DebianBootstrapSpec> = {
  family: 'deb',
  metadataDigest: inReleaseDigest,
  packageLock: (root, _spec, signal) => dpkgPackageLock(root, signal),

  async changeCommands(spec, packages, remove, req): Promise<StepCommands> {
    // Package lists per mirror and suite; downloaded .debs in the family's package directory.
    const lists = join(req.cacheRoot, 'apt-lists', sha256(`${spec.mirror} ${spec.suite}`).slice(7, 23));
    const debs = join(req.packagesDir, 'debs');
    await mkdir(join(lists, 'partial'), { recursive: true });
    await mkdir(join(debs, 'partial'), { recursive: true });
    // The step's own copies: apt's locks and partial downloads in them are this step's alone.
    const myLists = join(req.work, 'apt-lists');
    const myDebs = join(req.work, 'apt-archives');
    await seedPrivateDir(lists, myLists, aptListFiles);
    await seedPrivateDir(debs, myDebs, debFiles);
    const lines = [chrootCommand(req.env, [...APT_GET, 'update'])];
    if (!remove) {
      lines.push(chrootCommand(req.env, [...APT_GET, 'install', '-y', '--no-install-recommends', '--', ...packages]));
    } else {
      lines.push(chrootCommand(req.env, [...APT_GET, 'purge', '-y', '--', ...packages]));
      lines.push(chrootCommand(req.env, [...APT_GET, 'autoremove', '--purge', '-y']));
    }
    lines.push(lockCommand(spec, req));
    return {
      lines,
      binds: [
        { host: myLists, target: '/var/lib/apt/lists' },
        { host: myDebs, target: '/var/cache/apt/archives' },
      ],
      system: true,
      finish: async () => {
        await publishPrivateDir(myDebs, debs, debFiles, 'add');
        await publishPrivateDir(myLists, lists, aptListFiles, 'replace');
      },
    };
  },

  lockCommand,

  // Package scripts must not start services in a chroot.
  stepFiles: [{ path: 'usr/sbin/policy-rc.d', content: '#!/bin/sh\n# vztpl build: no services start in a chroot\nexit 101\n', mode: 0o755 }],
};
