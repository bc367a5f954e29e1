// Recipe loading and validation: the shipped recipes load, and every kind of mistake is reported
// at the right file:line:column with the right field, as a UsageError (exit code 2).
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode, UsageError } from '../../common/errors.ts';
import { loadRecipe, parseRecipe, RecipeError, resolveAncestors, resolveParent } from '../../builder/recipe/load.ts';
import { stepKind, type LoadedRecipe } from '../../builder/recipe/schema.ts';

const recipesDir = fileURLToPath(new URL('../../recipes/', import.meta.url));

describe('shipped recipes', () => {
  const expected = [
    'almalinux-9-x86_64',
    'centos-7-x86_64',
    'debian-11-x86_64',
    'debian-12-x86_64',
    'debian-12-x86_64-web',
    'rockylinux-9-x86_64',
    'ubuntu-22.04-x86_64',
    'ubuntu-24.04-x86_64',
  ];

  it('are all there', async () => {
    const files = (await readdir(recipesDir)).filter((f) => f.endsWith('.yaml'));
    expect(files.map((f) => f.replace(/\.yaml$/, '')).sort()).toEqual(expect.arrayContaining(expected));
  });

  it.each(expected)('%s loads, is named after its file and has a version', async (name) => {
    const file = path.join(recipesDir, `${name}.yaml`);
    const loaded = await loadRecipe(file);
    expect(loaded.file).toBe(file);
    expect(loaded.recipe.name).toBe(name);
    expect(loaded.recipe.version).toBe('1.0.0');
    expect(loaded.recipe.arch).toBe('x86_64');
    expect(loaded.digest).toBe(`sha256:${createHash('sha256').update(await readFile(file)).digest('hex')}`);
    if ('from' in loaded.recipe) {
      const parent = await resolveParent(loaded);
      expect(parent.recipe.name).toBe(loaded.recipe.from);
      expect('bootstrap' in parent.recipe).toBe(true);
    } else {
      expect(loaded.recipe.bootstrap.tool).toMatch(/^(mmdebstrap|debootstrap|dnf|yum)$/);
    }
  });

  it('Debian and Ubuntu use mmdebstrap minbase; the RPM family its own tool and repositories', async () => {
    const load = async (name: string) => (await loadRecipe(path.join(recipesDir, `${name}.yaml`))).recipe;
    for (const [name, suite] of [
      ['debian-11-x86_64', 'bullseye'],
      ['debian-12-x86_64', 'bookworm'],
      ['ubuntu-22.04-x86_64', 'jammy'],
      ['ubuntu-24.04-x86_64', 'noble'],
    ] as const) {
      const r = await load(name);
      if (!('bootstrap' in r)) throw new Error(`${name} has no bootstrap`);
      expect(r.bootstrap).toMatchObject({ tool: 'mmdebstrap', suite, variant: 'minbase' });
      if (name.startsWith('ubuntu')) {
        expect(r.bootstrap).toMatchObject({
          mirror: 'http://archive.ubuntu.com/ubuntu',
          keyring: '/usr/share/keyrings/ubuntu-archive-keyring.gpg',
        });
      }
    }
    const centos = await load('centos-7-x86_64');
    if (!('bootstrap' in centos)) throw new Error('centos-7 has no bootstrap');
    expect(centos.bootstrap).toMatchObject({ tool: 'yum', releasever: '7', rebuilddb: true });
    if (centos.bootstrap.tool !== 'yum') throw new Error('unreachable');
    expect(centos.bootstrap.repos.map((r) => r.baseurl)).toEqual([
      'http://vault.centos.org/7.9.2009/os/x86_64/',
      'http://vault.centos.org/7.9.2009/updates/x86_64/',
    ]);
    for (const [name, prefix] of [
      ['almalinux-9-x86_64', 'https://repo.almalinux.org/almalinux/9/'],
      ['rockylinux-9-x86_64', 'https://dl.rockylinux.org/pub/rocky/9/'],
    ] as const) {
      const r = await load(name);
      if (!('bootstrap' in r) || r.bootstrap.tool !== 'dnf') throw new Error(`${name} does not use dnf`);
      expect(r.bootstrap.releasever).toBe('9');
      expect(r.bootstrap.repos.map((repo) => repo.baseurl)).toEqual([`${prefix}BaseOS/x86_64/os/`, `${prefix}AppStream/x86_64/os/`]);
    }
  });

  it('the web flavor builds on debian-12-x86_64, installs nginx and copies a shipped file', async () => {
    const web = await loadRecipe(path.join(recipesDir, 'debian-12-x86_64-web.yaml'));
    expect('from' in web.recipe && web.recipe.from).toBe('debian-12-x86_64');
    expect(web.recipe.steps.map(stepKind)).toEqual(['install', 'copy']);
    const [install, copy] = web.recipe.steps;
    expect(install && 'install' in install && install.install.some((p) => p.startsWith('nginx'))).toBe(true);
    if (!copy || !('copy' in copy)) throw new Error('no copy step');
    await expect(readFile(path.join(recipesDir, copy.copy.src), 'utf8')).resolves.toContain('<html');
    const ancestors = await resolveAncestors(web);
    expect(ancestors.map((a) => a.recipe.name)).toEqual(['debian-12-x86_64']);
  });
});

// --- bad recipes -----------------------------------------------------------------------------

let dir: string;
let seq = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'vztpl-recipe-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes files into a fresh directory; returns that directory. */
async function writeFiles(files: Record<string, string>): Promise<string> {
  const d = path.join(dir, `case-${++seq}`);
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(d, name)), { recursive: true });
    await writeFile(path.join(d, name), text);
  }
  return d;
}

const lines = (...l: string[]) => `${l.join('\n')}\n`;

/** A valid base recipe; line numbers are shown for the cases below that edit it. */
const good = [
  '# a test recipe', //                 1
  'name: debian-12-x86_64', //          2
  'version: 1.0.0', //                  3
  'bootstrap:', //                      4
  '  tool: mmdebstrap', //              5
  '  suite: bookworm', //               6
  'steps:', //                          7
  '  - install: [less]', //             8
];

/** `good` with line n (1-based) replaced by the given lines (none to delete it). */
const edit = (n: number, ...replacement: string[]) => [...good.slice(0, n - 1), ...replacement, ...good.slice(n)];

interface BadCase {
  what: string;
  files: Record<string, string>;
  /** The file to load; default recipe.yaml. */
  entry?: string;
  /** Also resolve the parents. */
  parents?: boolean;
  /** The file the error names; default the entry. */
  at?: string;
  line: number;
  column: number;
  field: string;
  message: RegExp;
  /** How many problems the message lists; default 1. */
  count?: number | 'any';
}

const withFile = { 'files/motd': 'hello\n' };

const badCases: BadCase[] = [
  {
    what: 'YAML syntax error',
    files: { 'recipe.yaml': lines(...edit(6, '  suite: bookworm: main')) },
    line: 6,
    column: 10,
    field: '',
    message: /^invalid YAML: Nested mappings are not allowed/,
    count: 'any',
  },
  {
    what: 'duplicate key',
    files: { 'recipe.yaml': lines(...good, 'version: 1.0.1') },
    line: 9,
    column: 1,
    field: '',
    message: /^invalid YAML: this key appears twice/,
  },
  {
    what: 'missing name (reported at the start of the mapping that lacks it)',
    files: { 'recipe.yaml': lines(...edit(2)) },
    line: 2,
    column: 1,
    field: 'name',
    message: /^required field is missing$/,
  },
  {
    what: 'bad name',
    files: { 'recipe.yaml': lines(...edit(2, 'name: Debian12')) },
    line: 2,
    column: 7,
    field: 'name',
    message: /^must be <distro>-<release>-<arch>\[-<flavor>\]/,
  },
  {
    what: 'bad version',
    files: { 'recipe.yaml': lines(...edit(3, 'version: v1')) },
    line: 3,
    column: 10,
    field: 'version',
    message: /^must be a semantic version such as 1\.0\.0$/,
  },
  {
    what: 'version YAML reads as a number',
    files: { 'recipe.yaml': lines(...edit(3, 'version: 1.10')) },
    line: 3,
    column: 10,
    field: 'version',
    message: /^must be a string: YAML reads 1\.10 as a number, so write it in quotes: "1\.10"$/,
  },
  {
    what: 'unknown top-level key',
    files: { 'recipe.yaml': lines(...edit(7, 'maintainer: me', 'steps:')) },
    line: 7,
    column: 1,
    field: 'maintainer',
    message: /^unknown field; the fields here are name, version, .*bootstrap, from, apt-sources$/,
  },
  {
    what: 'misspelt key with a suggestion',
    files: { 'recipe.yaml': lines(...edit(6, '  suite: bookworm', '  mirorr: http://deb.debian.org/debian')) },
    line: 7,
    column: 3,
    field: 'bootstrap.mirorr',
    message: /^unknown field; did you mean mirror\?$/,
  },
  {
    what: 'unknown bootstrap tool',
    files: { 'recipe.yaml': lines(...edit(5, '  tool: apk')) },
    line: 5,
    column: 9,
    field: 'bootstrap.tool',
    message: /^unknown bootstrap tool "apk": must be debootstrap or mmdebstrap .*, dnf or yum/,
  },
  {
    what: 'missing required bootstrap field (reported at the bootstrap key)',
    files: { 'recipe.yaml': lines(...edit(6)) },
    line: 4,
    column: 1,
    field: 'bootstrap.suite',
    message: /^required field is missing$/,
  },
  {
    what: 'misspelt suite, with the nearest Debian suite',
    files: { 'recipe.yaml': lines(...edit(6, '  suite: bookwrom')) },
    line: 6,
    column: 10,
    field: 'bootstrap.suite',
    message: /^unknown Debian suite "bookwrom"; did you mean bookworm\?$/,
  },
  {
    what: 'unknown suite with nothing near it',
    files: { 'recipe.yaml': lines(...edit(6, '  suite: zzzzzz')) },
    line: 6,
    column: 10,
    field: 'bootstrap.suite',
    message: /^unknown Debian suite "zzzzzz" \(a codename such as bookworm, or stable, testing, unstable\)$/,
  },
  {
    what: 'misspelt suite reported together with the schema\'s problems',
    files: { 'recipe.yaml': lines(...edit(6, '  suite: bulseye', '  variant: tiny')) },
    line: 6,
    column: 10,
    field: 'bootstrap.suite',
    message: /^unknown Debian suite "bulseye"; did you mean bullseye\?$/,
    count: 2,
  },
  {
    what: 'Ubuntu suite on the default (Debian) mirror',
    files: { 'recipe.yaml': lines(...edit(6, '  suite: jammy')) },
    line: 6,
    column: 10,
    field: 'bootstrap.suite',
    message: /^jammy is an Ubuntu suite, but the default mirror http:\/\/deb\.debian\.org\/debian is a Debian archive; for Ubuntu set mirror: http:\/\/archive\.ubuntu\.com\/ubuntu$/,
  },
  {
    what: 'Ubuntu suite on a Debian mirror the recipe names',
    files: { 'recipe.yaml': lines(...edit(6, '  mirror: http://ftp.de.debian.org/debian/', '  suite: noble')) },
    line: 7,
    column: 10,
    field: 'bootstrap.suite',
    message: /^noble is an Ubuntu suite, but the mirror http:\/\/ftp\.de\.debian\.org\/debian\/ is a Debian archive; for Ubuntu set mirror: http:\/\/archive\.ubuntu\.com\/ubuntu$/,
  },
  {
    what: 'Debian suite on an Ubuntu mirror',
    files: { 'recipe.yaml': lines(...edit(6, '  suite: bookworm', '  mirror: http://archive.ubuntu.com/ubuntu')) },
    line: 6,
    column: 10,
    field: 'bootstrap.suite',
    message: /^bookworm is a Debian suite, but the mirror http:\/\/archive\.ubuntu\.com\/ubuntu is an Ubuntu archive; for Debian set mirror: http:\/\/deb\.debian\.org\/debian$/,
  },
  {
    what: 'Debian alias on an Ubuntu mirror (a local one with an /ubuntu path)',
    files: { 'recipe.yaml': lines(...edit(6, '  suite: stable', '  mirror: http://apt.example.internal/ubuntu')) },
    line: 6,
    column: 10,
    field: 'bootstrap.suite',
    message: /^stable is a Debian suite, but the mirror http:\/\/apt\.example\.internal\/ubuntu is an Ubuntu archive; /,
  },
  {
    what: 'misspelt Ubuntu suite, with the nearest Ubuntu suite',
    files: { 'recipe.yaml': lines(...edit(6, '  suite: nobel', '  mirror: http://archive.ubuntu.com/ubuntu')) },
    line: 6,
    column: 10,
    field: 'bootstrap.suite',
    message: /^unknown Ubuntu suite "nobel"; did you mean noble\?$/,
  },
  {
    what: 'unknown suite on a mirror that names no distribution',
    files: { 'recipe.yaml': lines(...edit(6, '  suite: bookwrom', '  mirror: http://mirror.internal:8080/apt')) },
    line: 6,
    column: 10,
    field: 'bootstrap.suite',
    message: /^unknown suite "bookwrom": neither debootstrap nor mmdebstrap knows it; did you mean bookworm\?$/,
  },
  {
    what: 'RPM releasever that is not a release number',
    files: {
      'recipe.yaml': lines(
        'name: almalinux-9-x86_64',
        'version: 1.0.0',
        'bootstrap:',
        '  tool: dnf',
        '  releasever: nine',
        '  repos: [{name: baseos, baseurl: "https://repo.almalinux.org/almalinux/9/BaseOS/x86_64/os/"}]',
        '  packages: [bash]',
      ),
    },
    line: 5,
    column: 15,
    field: 'bootstrap.releasever',
    message: /^must be a release version such as 9$/,
  },
  {
    what: 'both bootstrap and from',
    files: { 'recipe.yaml': lines(...edit(7, 'from: debian-11-x86_64', 'steps:')) },
    line: 7,
    column: 7,
    field: 'from',
    message: /^a recipe has either bootstrap .* or from .*, not both$/,
  },
  {
    what: 'neither bootstrap nor from',
    files: { 'recipe.yaml': lines(...good.slice(0, 3), ...good.slice(6)) },
    line: 2,
    column: 1,
    field: '',
    message: /^a recipe needs bootstrap .* or from /,
  },
  {
    what: 'a step with no kind',
    files: { 'recipe.yaml': lines(...good, '  - name: nothing to do') },
    line: 9,
    column: 5,
    field: 'steps[1]',
    message: /^a step needs exactly one of install, remove, run, copy$/,
  },
  {
    what: 'a step with two kinds',
    files: { 'recipe.yaml': lines(...good, '  - name: both', '    install: [vim]', '    run: "true"') },
    line: 9,
    column: 5,
    field: 'steps[1]',
    message: /^a step needs exactly one of install, remove, run, copy; this one has install and run$/,
  },
  {
    what: 'a shell on a step that is not run',
    files: { 'recipe.yaml': lines(...good, '    shell: /bin/bash') },
    line: 9,
    column: 12,
    field: 'steps[0].shell',
    message: /^only a run step has a shell$/,
  },
  {
    what: 'bad copy mode',
    files: {
      ...withFile,
      'recipe.yaml': lines(...good, '  - copy:', '      src: files/motd', '      dest: /etc/motd', '      mode: "0944"'),
    },
    line: 12,
    column: 13,
    field: 'steps[1].copy.mode',
    message: /^must be an octal mode such as 0644$/,
  },
  {
    what: 'copy without dest (reported at the copy key)',
    files: { ...withFile, 'recipe.yaml': lines(...good, '  - name: motd', '    copy:', '      src: files/motd') },
    line: 10,
    column: 5,
    field: 'steps[1].copy.dest',
    message: /^required field is missing$/,
  },
  {
    what: 'copy src missing',
    files: { ...withFile, 'recipe.yaml': lines(...good, '  - copy:', '      src: files/nothere', '      dest: /etc/motd') },
    line: 10,
    column: 12,
    field: 'steps[1].copy.src',
    message: /^no such file: .*files\/nothere$/,
  },
  {
    what: 'copy src escaping with ..',
    files: {
      'outside.txt': 'secret\n',
      'r/recipe.yaml': lines(...good, '  - copy:', '      src: files/../../outside.txt', '      dest: /etc/motd'),
    },
    entry: 'r/recipe.yaml',
    line: 10,
    column: 12,
    field: 'steps[1].copy.src',
    message: /^files\/\.\.\/\.\.\/outside\.txt is outside the recipe's directory/,
  },
  {
    what: 'copy src absolute',
    files: { 'recipe.yaml': lines(...good, '  - copy: {src: /etc/passwd, dest: /etc/passwd}') },
    line: 9,
    column: 17,
    field: 'steps[1].copy.src',
    message: /^must be a path relative to the recipe's directory/,
  },
  {
    what: 'arch mismatch',
    files: { 'recipe.yaml': lines(...edit(3, 'version: 1.0.0', 'arch: aarch64')) },
    line: 4,
    column: 7,
    field: 'arch',
    message: /^aarch64 does not match the architecture in the name debian-12-x86_64 \(x86_64\)$/,
  },
  {
    what: 'bad env var name',
    files: { 'recipe.yaml': lines(...edit(7, 'env:', '  LANG: C.UTF-8', '  1FOO: bar', 'steps:')) },
    line: 9,
    column: 3,
    field: 'env["1FOO"]',
    message: /^must be an environment variable name/,
  },
  {
    what: 'from cycle',
    files: {
      'debian-12-x86_64-a.yaml': lines('name: debian-12-x86_64-a', 'version: 1.0.0', 'from: debian-12-x86_64-b'),
      'debian-12-x86_64-b.yaml': lines('# b builds on a, which builds on b', 'name: debian-12-x86_64-b', 'version: 1.0.0', 'from: debian-12-x86_64-a'),
    },
    entry: 'debian-12-x86_64-a.yaml',
    parents: true,
    at: 'debian-12-x86_64-b.yaml',
    line: 4,
    column: 7,
    field: 'from',
    message: /^"debian-12-x86_64-a" makes a cycle of parents: .*debian-12-x86_64-a\.yaml -> .*debian-12-x86_64-b\.yaml -> .*debian-12-x86_64-a\.yaml$/,
  },
  {
    what: 'from itself',
    files: { 'debian-12-x86_64-a.yaml': lines('name: debian-12-x86_64-a', 'version: 1.0.0', 'from: ./debian-12-x86_64-a.yaml') },
    entry: 'debian-12-x86_64-a.yaml',
    parents: true,
    line: 3,
    column: 7,
    field: 'from',
    message: /makes a cycle of parents/,
  },
  {
    what: 'from not found',
    files: { 'recipe.yaml': lines('name: debian-13-x86_64-web', 'version: 1.0.0', '', 'from: debian-13-x86_64') },
    parents: true,
    line: 4,
    column: 7,
    field: 'from',
    message: /^no recipe for "debian-13-x86_64": .*\/debian-13-x86_64\.yaml does not exist$/,
  },
  {
    what: 'from a parent for another architecture',
    files: {
      'base.yaml': lines(...edit(2, 'name: debian-12-aarch64')),
      'recipe.yaml': lines('name: debian-12-x86_64-web', 'version: 1.0.0', 'from: base.yaml'),
    },
    parents: true,
    line: 3,
    column: 7,
    field: 'from',
    message: /^parent debian-12-aarch64 is for aarch64, this recipe is for x86_64$/,
  },
];

describe('bad recipes', () => {
  it.each(badCases)('$what', async (c) => {
    const d = await writeFiles(c.files);
    const entry = path.join(d, c.entry ?? 'recipe.yaml');
    const err: unknown = await (async () => {
      const loaded = await loadRecipe(entry);
      if (c.parents) await resolveParent(loaded);
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UsageError);
    expect(err).toBeInstanceOf(RecipeError);
    const e = err as RecipeError;
    expect(e.exitCode).toBe(ExitCode.usage);
    expect(e.exitCode).toBe(2);
    const file = path.join(d, c.at ?? c.entry ?? 'recipe.yaml');
    const prefix = `${file}:${c.line}:${c.column}: ${c.field ? `${c.field}: ` : ''}`;
    const messageLines = e.message.split('\n');
    const hit = messageLines.find((l) => l.startsWith(prefix));
    expect(hit, `expected a line starting with\n${prefix}\nin:\n${e.message}`).toBeDefined();
    expect(hit?.slice(prefix.length)).toMatch(c.message);
    if (c.count !== 'any') expect(messageLines, e.message).toHaveLength(c.count ?? 1);
    const issue = e.issues.find((i) => i.line === c.line && i.column === c.column && i.field === c.field);
    expect(issue?.file).toBe(file);
  });

  it('reports a missing file by name', async () => {
    const file = path.join(dir, 'no-such-recipe.yaml');
    const err = await loadRecipe(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(2);
    expect((err as UsageError).message).toBe(`${file}: no such recipe file`);
  });

  it('reports every problem at once, one per line, sorted by line', async () => {
    const d = await writeFiles({
      'recipe.yaml': lines(
        'name: debian-12-x86_64', //     1
        'version: "1"', //               2
        'bootstrap:', //                 3
        '  tool: mmdebstrap', //         4
        '  suite: Bookworm', //          5
        'steps:', //                     6
        '  - instal: [less]', //         7
        '  - run: ""', //                8
        'colour: blue', //               9
      ),
    });
    const err = (await loadRecipe(path.join(d, 'recipe.yaml')).catch((e: unknown) => e)) as RecipeError;
    expect(err).toBeInstanceOf(RecipeError);
    const f = path.join(d, 'recipe.yaml');
    expect(err.message.split('\n')).toEqual([
      `${f}:2:10: version: must be a semantic version such as 1.0.0`,
      `${f}:5:10: bootstrap.suite: must be a codename such as bookworm`,
      `${f}:7:5: steps[0].instal: unknown field; did you mean install?`,
      `${f}:7:5: steps[0]: a step needs exactly one of install, remove, run, copy`,
      `${f}:8:10: steps[1].run: must not be empty`,
      `${f}:9:1: colour: unknown field; the fields here are name, version, description, arch, epoch, env, steps, labels, cleanup, cmd, bootstrap, from, apt-sources`,
    ]);
    expect(err.issues.map((i) => i.line)).toEqual([2, 5, 7, 7, 8, 9]);
  });

  it('reports an empty file', () => {
    expect(() => parseRecipe('# nothing yet\n', 'x.yaml')).toThrow(/^x\.yaml:1:1: a recipe is a YAML mapping/);
  });

  it('refuses a copy src that leaves the directory through a symbolic link', async () => {
    const d = await writeFiles({ 'outside.txt': 'x\n', 'r/recipe.yaml': lines(...good, '  - copy: {src: link, dest: /x}') });
    await symlink('../outside.txt', path.join(d, 'r', 'link'));
    const err = (await loadRecipe(path.join(d, 'r', 'recipe.yaml')).catch((e: unknown) => e)) as RecipeError;
    expect(err.message).toBe(`${path.join(d, 'r', 'recipe.yaml')}:9:17: steps[1].copy.src: link leads outside the recipe's directory through a symbolic link`);
  });
});

describe('parsing', () => {
  it('parseRecipe applies defaults and takes arch from the name', () => {
    const r = parseRecipe(lines(...edit(2, 'name: acme/debian-12-aarch64-tools'), '  - run: echo hi'), 'mem.yaml');
    expect(r.arch).toBe('aarch64');
    if (!('bootstrap' in r)) throw new Error('no bootstrap');
    expect(r.bootstrap).toEqual({
      tool: 'mmdebstrap',
      suite: 'bookworm',
      mirror: 'http://deb.debian.org/debian',
      variant: 'minbase',
      components: ['main'],
      packages: [],
    });
    expect(r.steps).toEqual([{ install: ['less'] }, { run: 'echo hi', shell: '/bin/sh' }]);
    expect(r.steps.map(stepKind)).toEqual(['install', 'run']);
    expect(r.env).toEqual({});
    expect(r.cleanup).toEqual({ defaults: true, paths: [], keep: [] });
  });

  it('resolves from: as a relative path, and a chain of parents base first', async () => {
    const d = await writeFiles({
      'base/debian-12-x86_64.yaml': lines(...good),
      'mid/debian-12-x86_64-mid.yaml': lines('name: debian-12-x86_64-mid', 'version: 1.0.0', 'from: ../base/debian-12-x86_64.yaml'),
      'top/debian-12-x86_64-top.yaml': lines('name: debian-12-x86_64-top', 'version: 2.0.0', 'from: ../mid/debian-12-x86_64-mid.yaml'),
    });
    const top: LoadedRecipe = await loadRecipe(path.join(d, 'top/debian-12-x86_64-top.yaml'));
    const parent = await resolveParent(top);
    expect(parent.recipe.name).toBe('debian-12-x86_64-mid');
    expect(parent.file).toBe(path.join(d, 'mid/debian-12-x86_64-mid.yaml'));
    const chain = await resolveAncestors(top);
    expect(chain.map((l) => l.recipe.name)).toEqual(['debian-12-x86_64', 'debian-12-x86_64-mid']);
  });
});
