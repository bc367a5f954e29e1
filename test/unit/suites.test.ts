// Debian-family suites: what the bootstrappers know (debootstrap's scripts, distro-info-data,
// the built-in list), which distribution a mirror serves, which suites a recipe may name for
// it, and `vztpl validate` refusing the rest with exit code 2.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRecipe, RecipeError } from '../../builder/recipe/load.ts';
import { archives, hostSuiteSources, knownSuites, mirrorArchive, suiteProblem } from '../../builder/recipe/suites.ts';
import { runCli } from '../helpers/build-env.ts';
import { debootstrapScriptFor } from '../../builder/sources/debootstrap.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'vztpl-suites-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const recipe = (suite: string, mirror?: string, tool = 'mmdebstrap') =>
  ['name: debian-12-x86_64', 'version: 1.0.0', 'bootstrap:', `  tool: ${tool}`, `  suite: ${suite}`, ...(mirror ? [`  mirror: ${mirror}`] : []), ''].join('\n');

const accepts = (suite: string, mirror?: string, tool?: string) => () => parseRecipe(recipe(suite, mirror, tool), 'r.yaml');

describe('mirrorArchive', () => {
  it.each([
    ['http://deb.debian.org/debian', 'debian'],
    ['https://ftp.de.debian.org/debian/', 'debian'],
    ['http://archive.debian.org/debian-archive/debian', 'debian'],
    ['http://security.debian.org/debian-security', 'debian'],
    ['http://mirror.example.com/pub/debian', 'debian'],
    ['file:///srv/mirrors/debian', 'debian'],
    ['http://archive.ubuntu.com/ubuntu', 'ubuntu'],
    ['http://ports.ubuntu.com/ubuntu-ports', 'ubuntu'],
    ['http://de.archive.ubuntu.com/ubuntu/', 'ubuntu'],
    ['https://mirror.example.com/ubuntu', 'ubuntu'],
    ['http://mirror.internal:8080/apt', undefined],
    ['http://mirror.example.com/debian-mirror', undefined],
    ['http://mirror.example.com/ubuntu/debian', undefined],
    ['not a url', undefined],
  ] as const)('%s: %s', (mirror, archive) => {
    expect(mirrorArchive(mirror)).toBe(archive);
  });
});

describe('the suites a recipe may name', () => {
  it('a Debian mirror takes Debian codenames and the aliases', () => {
    for (const suite of ['bullseye', 'bookworm', 'trixie', 'stable', 'testing', 'unstable', 'sid', 'oldstable']) {
      expect(accepts(suite), suite).not.toThrow();
      expect(accepts(suite, 'http://ftp.de.debian.org/debian', 'debootstrap'), suite).not.toThrow();
    }
  });

  it('an Ubuntu mirror takes Ubuntu codenames', () => {
    for (const suite of ['focal', 'jammy', 'noble']) expect(accepts(suite, 'http://archive.ubuntu.com/ubuntu'), suite).not.toThrow();
  });

  it('a mirror that names no distribution takes any known suite, aliases included', () => {
    for (const mirror of ['http://mirror.internal:8080/apt', 'file:///srv/apt']) {
      for (const suite of ['bookworm', 'jammy', 'noble', 'stable', 'unstable', 'sid']) {
        expect(accepts(suite, mirror), `${suite} on ${mirror}`).not.toThrow();
      }
    }
  });

  it('an unknown suite on such a mirror is refused, with a suggestion when one is near', () => {
    const err = (() => {
      try {
        parseRecipe(recipe('jamy', 'http://mirror.internal:8080/apt'), 'r.yaml');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(RecipeError);
    expect((err as RecipeError).exitCode).toBe(2);
    expect((err as RecipeError).message).toBe('r.yaml:5:10: bootstrap.suite: unknown suite "jamy": neither debootstrap nor mmdebstrap knows it; did you mean jammy?');
    expect(() => parseRecipe(recipe('acme-internal', 'http://mirror.internal:8080/apt'), 'r.yaml')).toThrow(
      /^r\.yaml:5:10: bootstrap\.suite: unknown suite "acme-internal": neither debootstrap nor mmdebstrap knows it$/,
    );
  });

  it('a suite the schema refuses is reported once, by the schema', () => {
    expect(() => parseRecipe(recipe('Bookworm'), 'r.yaml')).toThrow(/^r\.yaml:5:10: bootstrap\.suite: must be a codename such as bookworm$/);
  });
});

describe('knownSuites', () => {
  const nowhere = { debootstrapScripts: '/nonexistent/scripts', distroInfo: '/nonexistent/distro-info' };

  it('without debootstrap or distro-info-data: the built-in list, and the checks still work', () => {
    const known = knownSuites(nowhere);
    for (const [dist, archive] of Object.entries(archives)) {
      for (const suite of archive.suites) expect(known.get(suite)?.has(dist), `${suite} ${dist}`).toBe(true);
    }
    expect([...known.keys()].sort()).toEqual(Object.values(archives).flatMap((a) => [...a.suites]).sort());
    const deb = 'http://deb.debian.org/debian';
    expect(suiteProblem('bookworm', deb, true, known)).toBeUndefined();
    expect(suiteProblem('bookwrom', deb, true, known)).toBe('unknown Debian suite "bookwrom"; did you mean bookworm?');
    expect(suiteProblem('jammy', deb, false, known)).toBe(
      'jammy is an Ubuntu suite, but the default mirror http://deb.debian.org/debian is a Debian archive; for Ubuntu set mirror: http://archive.ubuntu.com/ubuntu',
    );
    expect(suiteProblem('noble', 'http://archive.ubuntu.com/ubuntu', true, known)).toBeUndefined();
  });

  it("reads debootstrap's scripts (the distribution from the keyring or default mirror of the script a link leads to) and distro-info-data", async () => {
    const scripts = path.join(dir, 'scripts');
    const info = path.join(dir, 'distro-info');
    await mkdir(scripts, { recursive: true });
    await mkdir(info, { recursive: true });
    const files: Record<string, string> = {
      sid: 'mirror_style release\nkeyring /usr/share/keyrings/debian-archive-keyring.gpg\n',
      gutsy: 'default_mirror http://old-releases.ubuntu.com/ubuntu\nkeyring /usr/share/keyrings/ubuntu-archive-keyring.gpg\n',
      warty: 'default_mirror http://old-releases.ubuntu.com/ubuntu\n',
      kali: 'keyring /usr/share/keyrings/kali-archive-keyring.gpg\ndefault_mirror http://http.kali.org/kali\n',
      'debian-common': 'work_out_debs () { :; }\n',
      'sarge.buildd': 'keyring /usr/share/keyrings/debian-archive-removed-keys.gpg\n',
    };
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(scripts, name), text);
    for (const [link, target] of [
      ['zebrafish', 'sid'],
      ['yakfish', 'gutsy'],
      ['xfish', 'yakfish'], // a link to a link
      ['kali-rolling', 'kali'],
      ['dangling', 'nothere'],
    ]) {
      await symlink(target!, path.join(scripts, link!));
    }
    await writeFile(path.join(info, 'debian.csv'), 'version,codename,series,created\n12,Bookworm,bookworm,2021-08-14\n,Sid,sid,1993-08-16\n,Experimental,experimental,1993-08-16\n');
    await writeFile(path.join(info, 'ubuntu.csv'), 'version,codename,series,created\n99.04,Wobbly Wombat,wombat,2099-01-01\n');

    const known = knownSuites({ debootstrapScripts: scripts, distroInfo: info });
    const dists = (suite: string) => [...(known.get(suite) ?? [])].sort();
    expect(dists('zebrafish')).toEqual(['debian']);
    expect(dists('sid')).toEqual(['debian']);
    expect(dists('yakfish')).toEqual(['ubuntu']);
    expect(dists('xfish')).toEqual(['ubuntu']);
    expect(dists('gutsy')).toEqual(['ubuntu']);
    expect(dists('warty')).toEqual(['ubuntu']);
    expect(dists('kali-rolling')).toEqual(['kali']);
    expect(dists('wombat')).toEqual(['ubuntu']);
    expect(dists('bookworm')).toEqual(['debian']);
    expect(dists('noble')).toEqual(['ubuntu']); // built in, whatever the host's debootstrap knows
    for (const notSuite of ['debian-common', 'sarge.buildd', 'dangling', 'experimental']) expect(known.has(notSuite), notSuite).toBe(false);

    const deb = 'http://deb.debian.org/debian';
    expect(suiteProblem('zebrafish', deb, true, known)).toBeUndefined();
    expect(suiteProblem('zebrafsh', deb, true, known)).toBe('unknown Debian suite "zebrafsh"; did you mean zebrafish?');
    expect(suiteProblem('xfish', deb, true, known)).toMatch(/^xfish is an Ubuntu suite, but the mirror http:\/\/deb\.debian\.org\/debian is a Debian archive; /);
    expect(suiteProblem('kali-rolling', deb, true, known)).toBe('kali-rolling is a Kali suite, but the mirror http://deb.debian.org/debian is a Debian archive');
    expect(suiteProblem('kali-rolling', 'http://http.kali.org/kali', true, known)).toBeUndefined();
    expect(suiteProblem('wombat', 'http://archive.ubuntu.com/ubuntu', true, known)).toBeUndefined();
  });

  it.skipIf(!existsSync(hostSuiteSources.debootstrapScripts))("this host's debootstrap: its Debian and Ubuntu links are classified", () => {
    const known = knownSuites();
    expect(known.get('bookworm')?.has('debian')).toBe(true);
    expect(known.get('bookworm')?.has('ubuntu')).toBe(false);
    expect(known.get('jammy')?.has('ubuntu')).toBe(true);
    expect(known.get('jammy')?.has('debian')).toBe(false);
    expect(known.get('stable')?.has('debian')).toBe(true);
  });
});

describe('vztpl validate', () => {
  it('exits 2 and names file:line:column, field and the problem of each recipe', async () => {
    const d = await mkdtemp(path.join(dir, 'cli-'));
    const write = async (name: string, text: string) => {
      await writeFile(path.join(d, name), text);
      return path.join(d, name);
    };
    const ok = await write('ok.yaml', recipe('noble', 'http://mirror.internal/apt'));
    const typo = await write('typo.yaml', recipe('bookwrom'));
    const ubuntuOnDebian = await write('ubuntu-on-debian.yaml', recipe('jammy', 'http://deb.debian.org/debian'));
    const debianOnUbuntu = await write('debian-on-ubuntu.yaml', recipe('bookworm', 'http://archive.ubuntu.com/ubuntu'));
    const result = await runCli(['validate', ok, typo, ubuntuOnDebian, debianOnUbuntu]);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stdout).toBe(`${ok}: ok (debian-12-x86_64 1.0.0)\n`);
    expect(result.stderr).toBe(
      [
        `vztpl: ${typo}:5:10: bootstrap.suite: unknown Debian suite "bookwrom"; did you mean bookworm?`,
        `${ubuntuOnDebian}:5:10: bootstrap.suite: jammy is an Ubuntu suite, but the mirror http://deb.debian.org/debian is a Debian archive; for Ubuntu set mirror: http://archive.ubuntu.com/ubuntu`,
        `${debianOnUbuntu}:5:10: bootstrap.suite: bookworm is a Debian suite, but the mirror http://archive.ubuntu.com/ubuntu is an Ubuntu archive; for Debian set mirror: http://deb.debian.org/debian`,
        '',
      ].join('\n'),
    );
  });

  it('passes the shipped recipes', async () => {
    const recipes = path.resolve(import.meta.dirname, '../../recipes');
    const names = ['debian-11-x86_64', 'debian-12-x86_64', 'debian-12-x86_64-web', 'ubuntu-22.04-x86_64', 'ubuntu-24.04-x86_64'];
    const result = await runCli(['validate', ...names.map((n) => path.join(recipes, `${n}.yaml`))]);
    expect(result.code, result.stderr).toBe(0);
  });
});

describe('debootstrap: the script for a suite the host debootstrap lacks', () => {
  let scripts: string;
  beforeAll(async () => {
    scripts = await mkdtemp(path.join(tmpdir(), 'vztpl-debootstrap-scripts-'));
    await writeFile(path.join(scripts, 'sid'), '');
    await symlink('sid', path.join(scripts, 'bookworm'));
    await writeFile(path.join(scripts, 'gutsy'), '');
  });
  afterAll(() => rm(scripts, { recursive: true, force: true }));

  it('a suite debootstrap knows needs no script; a newer Ubuntu one takes gutsy, a newer Debian one sid', () => {
    expect(debootstrapScriptFor('bookworm', 'http://deb.debian.org/debian', scripts)).toBeUndefined();
    expect(debootstrapScriptFor('noble', 'http://archive.ubuntu.com/ubuntu', scripts)).toBe('gutsy');
    expect(debootstrapScriptFor('trixie', 'http://deb.debian.org/debian', scripts)).toBe('sid');
    // A local mirror: the suite's distribution from the built-in list; an unknown suite is left to debootstrap.
    expect(debootstrapScriptFor('noble', 'http://127.0.0.1:8080/mirror', scripts)).toBe('gutsy');
    expect(debootstrapScriptFor('mysuite', 'http://127.0.0.1:8080/mirror', scripts)).toBeUndefined();
  });
});
