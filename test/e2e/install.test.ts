// The installed command: scripts/install-cli.sh (what setup.sh runs) installs a copy of vztpl,
// not a link into the clone, so it keeps working when the clone is deleted; and the README's
// first two commands are the ones CI runs, without sudo.
import { execFile } from 'node:child_process';
import { cp, mkdir, readFile, realpath, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, tempDir } from '../helpers/build-env.ts';

function run(file: string, args: readonly string[], opts: { cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: opts.cwd, timeout: 300_000, maxBuffer: 16 << 20, env: { ...process.env, PATH: `/usr/local/bin:${process.env.PATH}` } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };

describe('installing the vztpl command', () => {
  it('install-cli.sh installs a copy that still works once its clone is deleted', async () => {
    const work = await tempDir('install');
    try {
      // A clone of the working tree: the tracked and new files, with the dependencies beside it.
      const clone = join(work, 'clone');
      const files = (await run('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: REPO_ROOT })).stdout.split('\0').filter(Boolean);
      for (const f of files) {
        await mkdir(join(clone, f, '..'), { recursive: true });
        await cp(join(REPO_ROOT, f), join(clone, f)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err; // deleted in the working tree
        });
      }
      await symlink(join(REPO_ROOT, 'node_modules'), join(clone, 'node_modules'));
      const prefix = join(work, 'prefix');
      const installed = await run('bash', [join(clone, 'scripts', 'install-cli.sh'), prefix]);
      expect(installed.code, installed.stderr).toBe(0);
      const bin = join(prefix, 'bin', 'vztpl');
      expect(await realpath(bin)).not.toContain(clone);

      await rm(clone, { recursive: true, force: true });
      const version = await run(bin, ['--version']);
      expect(version.code, version.stderr).toBe(0);
      expect(version.stdout.trim()).toBe(pkg.version);
      // A real command: the recipes ship with the package.
      const recipe = join(prefix, 'lib', 'node_modules', 'vztpl', 'recipes', 'debian-12-x86_64.yaml');
      const validated = await run(bin, ['validate', recipe]);
      expect(validated.code, validated.stderr).toBe(0);
      const help = await run(bin, ['--root', work, 'list']);
      expect(help.code, help.stderr).toBe(0);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it('the vztpl that setup.sh installed on this machine is a copy, not a link into a checkout', async () => {
    const target = await realpath('/usr/local/bin/vztpl');
    expect(target).toMatch(/\/lib\/node_modules\/vztpl\/dist\/cli\/main\.js$/);
    expect(target.startsWith(await realpath(REPO_ROOT))).toBe(false);
    expect(await realpath(join(target, '..', '..', '..'))).not.toBe(await realpath(REPO_ROOT));
  });

  it("the README's first two commands need no sudo, and .ci/run runs the second as written", async () => {
    const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
    const block = /```sh\n([\s\S]*?)```/.exec(readme)![1]!.split('\n');
    const [main, tests] = block.map((l) => l.replace(/\s*#.*$/, ''));
    expect(main).toBe('bash scripts/setup.sh && bash scripts/demo.sh');
    expect(tests).toBe('bash scripts/setup.sh && npm test');
    expect(readme.split('\n').slice(0, 8).join('\n')).not.toContain('sudo');
    const ci = await readFile(join(REPO_ROOT, '.ci', 'run'), 'utf8');
    expect(ci).toContain('README.md');
    expect(ci).not.toContain('npm test');
  });
});
