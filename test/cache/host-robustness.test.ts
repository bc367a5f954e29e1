// End to end: the host commands as a new user and an unkind operator use them. Relative paths
// everywhere (--root, VZTPL_ROOT, oci:DIR, build --out/--cache-dir, serve fs:DIR, export -o);
// global options before the command; creates and destroys killed with SIGKILL at random moments
// on every layout leave a whole container or none; prune racing creates never removes a template
// in use; a lock without an owner never makes a command hang; broken stores and bad values give
// one line and the documented exit code. Needs root, mmdebstrap (or a warm build cache), runc and
// overlayfs.
import { spawn } from 'node:child_process';
import { mkdir, readdir, symlink, writeFile, utimes, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../common/programs.ts';
import { BUILD_CACHE, isRoot, spawnCli, tempDir, type CliResult } from '../helpers/build-env.ts';
import {
  BASE_NAME,
  buildTemplates,
  exists,
  finishHostTests,
  FLAVOR_NAME,
  host,
  hostEnv,
  mountsUnder,
  pushTemplate,
  sh,
  shOk,
  startHostRegistry,
  storeView,
  type BuiltTemplate,
  type HostRegistry,
} from '../helpers/host-env.ts';

const ready = isRoot && Boolean(findProgram('mmdebstrap')) && Boolean(findProgram('runc') ?? findProgram('crun'));

/** Runs the CLI in `cwd`; a run that outlives `ms` is killed and fails the test (nothing may hang). */
async function run(args: readonly string[], opts: { cwd?: string; env?: Record<string, string>; ms?: number } = {}): Promise<CliResult> {
  const p = spawnCli(args, { cwd: opts.cwd, env: { ...hostEnv(), ...opts.env }, cleanEnv: true });
  const ms = opts.ms ?? 60_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.child.kill('SIGKILL');
  }, ms);
  const r = await p.result;
  clearTimeout(timer);
  if (timedOut) throw new Error(`vztpl ${args.join(' ')} did not return within ${ms} ms:\n${r.stderr}`);
  return r;
}

async function ok(args: readonly string[], opts: Parameters<typeof run>[1] = {}): Promise<CliResult> {
  const r = await run(args, opts);
  if (r.code !== 0) throw new Error(`vztpl ${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stderr}\n${r.stdout}`);
  return r;
}

/** One line on stderr naming `mention` (warnings aside), no stack trace, no "internal error". */
function expectOneLine(r: CliResult, code: number, mention: string): void {
  expect(r.code, `${r.stderr}${r.stdout}`).toBe(code);
  const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('vztpl: warning:'));
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.stderr).toContain(mention);
  expect(r.stderr).not.toContain('internal error');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!ready)('vztpl host: relative paths, global options, kill -9, races, broken stores', () => {
  let work: string;
  let reg: HostRegistry;
  let base: BuiltTemplate;

  beforeAll(async () => {
    work = await tempDir('robust');
    ({ base } = await buildTemplates(work));
    reg = await startHostRegistry(join(work, 'registry'));
    await pushTemplate(base.dir, reg.host, BASE_NAME, '1.0.0');
  });

  afterAll(() => finishHostTests(work, reg));

  describe('relative paths', () => {
    it('every host command takes a relative --root (the create that used to wait on its own lock)', async () => {
      const cwd = work;
      const o = { cwd };
      await ok(['pull', `${BASE_NAME}@1.0.0`, '--root', 'rel-store', '--registry', reg.host], o);
      expect(await exists(join(work, 'rel-store', 'refs'))).toBe(true);
      expect((await ok(['templates', '--root', 'rel-store'], o)).stdout).toContain(BASE_NAME);
      await ok(['create', '73', '--ostemplate', `${BASE_NAME}@1.0.0`, '--root', 'rel-store', '--registry', `http://${reg.host}`], { cwd, ms: 30_000 });
      expect(await mountsUnder(join(work, 'rel-store'))).toEqual([join(work, 'rel-store', 'containers', '73', 'rootfs')]);
      expect((await ok(['exec', '73', '--root', 'rel-store', '--', 'cat', '/etc/hostname'], o)).stdout).toBe('ct73\n');
      expect((await ok(['list', '--root', 'rel-store'], o)).stdout).toMatch(/^73\s+\S+\s+overlay\s+ct73\s+mounted$/m);
      await ok(['create', '74', '--ostemplate', BASE_NAME, '--root', 'rel-store', '--layout', 'copy'], o);
      expect((await ok(['exec', '74', '--root', 'rel-store', '--', 'cat', '/opt/vzt-host/base'], o)).stdout).toBe('base\n');
      await ok(['destroy', '73', '--root', 'rel-store'], o);
      await ok(['destroy', '74', '--root', 'rel-store'], o);
      expect((await ok(['cache', 'prune', '--root', 'rel-store'], o)).stdout).toContain(`removed 1 templates (${BASE_NAME}:1.0.0)`);
      expect(await mountsUnder(join(work, 'rel-store'))).toEqual([]);
    });

    it('VZTPL_ROOT and oci:DIR may be relative', async () => {
      const env = { VZTPL_ROOT: 'env-store', VZTPL_REGISTRY: reg.host };
      await ok(['create', '75', '--ostemplate', BASE_NAME], { cwd: work, env });
      expect(await mountsUnder(join(work, 'env-store'))).toEqual([join(work, 'env-store', 'containers', '75', 'rootfs')]);
      await ok(['destroy', '75'], { cwd: work, env });
      // An OCI layout given relative to the working directory.
      const layoutRel = join('out', BASE_NAME);
      await ok(['create', '76', '--ostemplate', `oci:${layoutRel}`, '--root', 'oci-store'], { cwd: work });
      expect((await ok(['exec', '76', '--root', 'oci-store', '--', 'cat', '/opt/vzt-host/base'], { cwd: work })).stdout).toBe('base\n');
      await ok(['destroy', '76', '--root', 'oci-store'], { cwd: work });
      const refs = (await storeView(join(work, 'oci-store'))).refs;
      expect(refs).toHaveLength(1);
    });

    it('build --out and --cache-dir, serve --storage fs:DIR, push and export take relative paths', async () => {
      await symlink(BUILD_CACHE, join(work, 'bc'));
      const r = await ok(['build', join('recipes', `${FLAVOR_NAME}.yaml`), '--out', 'rel-out/flavor', '--cache-dir', 'bc', '--json'], { cwd: work, ms: 600_000 });
      expect(r.stdout).toContain('build-done');
      expect(await exists(join(work, 'rel-out', 'flavor', 'index.json'))).toBe(true);

      const port = reg.port + 1;
      const server = spawnCli(['serve', '--listen', `127.0.0.1:${port}`, '--storage', 'fs:rel-registry'], { cwd: work, env: hostEnv(), cleanEnv: true });
      try {
        let healthy = false;
        for (let i = 0; i < 100 && !healthy; i++) {
          healthy = await fetch(`http://127.0.0.1:${port}/healthz`).then((res) => res.ok, () => false);
          if (!healthy) await sleep(100);
        }
        expect(healthy, 'serve answered /healthz').toBe(true);
        await ok(['push', 'rel-out/flavor', `127.0.0.1:${port}/${FLAVOR_NAME}:1.0.0`], { cwd: work });
        expect((await readdir(join(work, 'rel-registry'))).length).toBeGreaterThan(0);
        await ok(['pull', `127.0.0.1:${port}/${FLAVOR_NAME}@1.0.0`, '--root', 'pull-store'], { cwd: work });
      } finally {
        server.child.kill('SIGTERM');
        await server.result;
      }
      await ok(['export', 'rel-out/flavor', '-o', 'flavor.tar.zst'], { cwd: work });
      expect(await exists(join(work, 'flavor.tar.zst'))).toBe(true);
    });
  });

  it('global options go before or after the command', async () => {
    const root = join(work, 'global-store');
    await ok(['--root', root, '--registry', reg.host, 'pull', BASE_NAME]);
    await ok(['--registry', reg.host, 'create', '80', '--root', root, '--ostemplate', BASE_NAME]);
    expect((await ok(['--root', root, 'exec', '80', '--', 'cat', '/etc/hostname'])).stdout).toBe('ct80\n');
    const listed = JSON.parse((await ok(['--json', `--root=${root}`, 'list'])).stdout) as Array<{ ctid: string }>;
    expect(listed.map((c) => c.ctid)).toEqual(['80']);
    expect(JSON.parse((await ok(['--root', root, 'templates', '--json'])).stdout).templates).toHaveLength(1);
    await ok(['--root', root, 'destroy', '80']);
    expect((await ok(['--root', root, 'cache', 'prune'])).stdout).toContain('removed 1 templates');
    const missing = await run(['--root']);
    expectOneLine(missing, 2, '--root needs a value');
    // A command without the option says so, naming it.
    const build = await run(['--root', root, 'validate', 'x.yaml']);
    expect(build.code).toBe(2);
    expect(build.stderr).toContain("'--root'");
  });

  describe('kill -9 at random moments', () => {
    // reflink needs a filesystem with reflinks: a loop-mounted XFS, made once for both tests.
    let xfs: string | undefined;
    const storeFor = async (layout: string, name: string): Promise<string> => {
      if (layout !== 'reflink') return join(work, name);
      if (!xfs) {
        const img = join(work, 'xfs.img');
        xfs = join(work, 'xfs');
        await mkdir(xfs);
        await shOk('truncate', ['-s', '1G', img]);
        await shOk('mkfs.xfs', ['-q', '-m', 'reflink=1', img]);
        await shOk('mount', ['-o', 'loop', img, xfs]);
      }
      return join(xfs, name);
    };
    afterAll(async () => {
      if (xfs) await sh('umount', [xfs]);
    });

    for (const layout of ['overlay', 'copy', ...(findProgram('mkfs.xfs') ? ['reflink' as const] : [])] as const) {
      it(`a killed create (${layout}) leaves a whole container or none, and the next command sweeps the rest`, async () => {
        const root = await storeFor(layout, `kill-create-${layout}`);
        const k = host(root, reg.host);
        await k.ok('pull', BASE_NAME);
        // A timed create, to place kills over its whole length.
        const t0 = performance.now();
        await k.ok('create', 'probe', '--ostemplate', BASE_NAME, '--layout', layout);
        const span = performance.now() - t0;
        await k.ok('destroy', 'probe');
        const rounds = layout === 'overlay' ? 12 : 5;
        const outcomes = { whole: 0, none: 0 };
        for (let i = 0; i < rounds; i++) {
          const ctid = `${100 + i}`;
          const p = k.spawn('create', ctid, '--ostemplate', BASE_NAME, '--layout', layout);
          // A random moment in each slice of the create; the last round kills late, near its end
          // or after it (copies vary in length with the page cache).
          await sleep(i === rounds - 1 ? span * (1 + Math.random() * 2) : ((i + Math.random()) / (rounds - 1)) * span);
          p.child.kill('SIGKILL');
          await p.result;
          const listed = JSON.parse((await k.ok('list', '--json')).stdout) as Array<{ ctid: string }>;
          if (listed.some((c) => c.ctid === ctid)) {
            outcomes.whole++;
            // Whole: its identity is there, mounted or mountable.
            expect((await k.ok('exec', ctid, '--', 'cat', '/etc/hostname')).stdout).toBe(`ct${ctid}\n`);
            expect((await k.ok('exec', ctid, '--', 'cat', '/etc/machine-id')).stdout).toMatch(/^[0-9a-f]{32}\n$/);
            const again = await k.run('create', ctid, '--ostemplate', BASE_NAME);
            expect(again.code, again.stderr).toBe(6);
          } else {
            outcomes.none++;
            expect(await exists(join(root, 'containers', ctid))).toBe(false);
            await k.ok('create', ctid, '--ostemplate', BASE_NAME, '--layout', layout);
          }
          await k.ok('destroy', ctid);
          // The list after the kill swept the staging tree; nothing of the container is left.
          const view = await storeView(root);
          expect(view.containers).toEqual([]);
          expect(view.locks).toEqual([]);
          expect(await mountsUnder(root)).toEqual([]);
        }
        console.log(`killed creates (${layout}): ${outcomes.whole} whole, ${outcomes.none} none`);
      });

      it(`a killed destroy (${layout}) leaves the container or nothing, and every sweeping command finishes it`, async () => {
        const root = await storeFor(layout, `kill-destroy-${layout}`);
        const k = host(root, reg.host);
        await k.ok('pull', BASE_NAME);
        await k.ok('create', 'probe', '--ostemplate', BASE_NAME, '--layout', layout);
        const t0 = performance.now();
        await k.ok('destroy', 'probe');
        const span = performance.now() - t0;
        const sweepers: string[][] = [['list'], ['templates'], ['pull', BASE_NAME], ['cache', 'prune', '--max-size', '1T'], ['create', 'other', '--ostemplate', BASE_NAME]];
        for (let i = 0; i < 5; i++) {
          const ctid = `${200 + i}`;
          await k.ok('create', ctid, '--ostemplate', BASE_NAME, '--layout', layout);
          const p = k.spawn('destroy', ctid);
          await sleep(((i + Math.random()) / 5) * span * 1.15);
          p.child.kill('SIGKILL');
          await p.result;
          const sweeper = sweepers[i % sweepers.length]!;
          await k.ok(...sweeper);
          const view = await storeView(root);
          expect(view.containers.filter((n) => n.startsWith('.')), `after ${sweeper.join(' ')}`).toEqual([]);
          if (view.containers.includes(ctid)) {
            expect((await k.ok('exec', ctid, '--', 'cat', '/etc/hostname')).stdout).toBe(`ct${ctid}\n`);
            await k.ok('destroy', ctid);
          }
          if (sweeper[0] === 'create') await k.ok('destroy', 'other');
          expect((await storeView(root)).containers).toEqual([]);
          expect(await mountsUnder(root)).toEqual([]);
        }
      });
    }
  });

  it('prune racing with creates never removes the template they use', async () => {
    const root = join(work, 'race');
    const k = host(root, reg.host);
    await k.ok('pull', BASE_NAME);
    let creating = true;
    const pruner = (async () => {
      let prunes = 0;
      while (creating) {
        await k.ok('cache', 'prune');
        prunes++;
      }
      return prunes;
    })();
    const creates = await Promise.all(Array.from({ length: 6 }, (_, i) => k.run('create', `r${i}`, '--ostemplate', BASE_NAME)));
    creating = false;
    const prunes = await pruner;
    for (const c of creates) expect(c.code, c.stderr).toBe(0);
    expect(prunes).toBeGreaterThan(0);
    // Once more, with every container in place: the template stays.
    await k.ok('cache', 'prune');
    const t = JSON.parse((await k.ok('templates', '--json')).stdout) as { templates: Array<{ name: string; bytes: number; containers: number }> };
    expect(t.templates).toHaveLength(1);
    expect(t.templates[0]).toMatchObject({ name: BASE_NAME, containers: 6 });
    expect(t.templates[0]!.bytes).toBeGreaterThan(50e6);
    // Offline, a create of the template the containers use still works.
    await reg.stop();
    try {
      await k.ok('create', 'offline', '--ostemplate', BASE_NAME);
    } finally {
      await reg.start();
    }
    for (const ctid of ['offline', ...creates.map((_, i) => `r${i}`)]) await k.ok('destroy', ctid);
  });

  it('a lock without an owner never makes create hang; a live owner is reported by name', async () => {
    const root = join(work, 'pidless');
    const k = host(root, reg.host);
    await k.ok('pull', BASE_NAME);
    await mkdir(join(root, 'locks'), { recursive: true });
    // Left by a crash between creating the file and writing the pid: taken over.
    const stale = join(root, 'locks', 'ct-90');
    await writeFile(stale, '');
    await utimes(stale, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    await ok(['create', '90', '--ostemplate', BASE_NAME, '--root', root], { ms: 20_000 });
    // Just written (its writer may still be about to write the pid): waited for briefly, then taken.
    await writeFile(join(root, 'locks', 'ct-91'), '');
    await ok(['create', '91', '--ostemplate', BASE_NAME, '--root', root], { ms: 20_000 });
    // A live owner: waited for until VZTPL_LOCK_WAIT, then an error naming the lock and the owner.
    const holder = spawn('sleep', ['60']);
    try {
      const stat = await readFile(`/proc/${holder.pid}/stat`, 'utf8');
      const boot = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
      await writeFile(join(root, 'locks', 'ct-92'), `${holder.pid} ${boot} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}\n`);
      const r = await run(['create', '92', '--ostemplate', BASE_NAME, '--root', root], { env: { VZTPL_LOCK_WAIT: '1' }, ms: 20_000 });
      expectOneLine(r, 6, join(root, 'locks', 'ct-92'));
      expect(r.stderr).toContain(`process ${holder.pid}`);
    } finally {
      holder.kill('SIGKILL');
    }
    expect((await storeView(root)).containers.sort()).toEqual(['90', '91']);
    await k.ok('destroy', '90');
    await k.ok('destroy', '91');
  });

  describe('broken stores and bad values: one line, the documented exit code', () => {
    it('a store path that is a file: exit 2 from every host command', async () => {
      const file = join(work, 'store-is-a-file');
      await writeFile(file, 'not a directory\n');
      const commands = [
        ['create', '1', '--ostemplate', BASE_NAME],
        ['list'],
        ['templates'],
        ['pull', BASE_NAME],
        ['destroy', '1'],
        ['cache', 'prune'],
      ];
      for (const c of commands) expectOneLine(await run([...c, '--root', file, '--registry', reg.host]), 2, file);
      expectOneLine(await run(['exec', '1', '--root', file, '--', 'true']), 2, file);
    });

    it('a read-only store: exit 1 with the path, from create, exec, destroy, prune and pull', async () => {
      const rw = join(work, 'ro-source');
      const k = host(rw, reg.host);
      await k.ok('pull', BASE_NAME);
      await k.ok('create', '5', '--ostemplate', BASE_NAME, '--layout', 'copy');
      const ro = join(work, 'ro-store');
      const empty = join(work, 'ro-empty');
      await mkdir(ro);
      await mkdir(empty);
      await shOk('mount', ['--bind', rw, ro]);
      await shOk('mount', ['--bind', empty, empty]);
      try {
        await shOk('mount', ['-o', 'remount,bind,ro', ro]);
        await shOk('mount', ['-o', 'remount,bind,ro', empty]);
        const o = (...args: string[]) => run(['--root', ro, '--registry', reg.host, ...args]);
        expectOneLine(await o('create', '6', '--ostemplate', BASE_NAME), 1, ro);
        expectOneLine(await o('destroy', '5'), 1, ro);
        expectOneLine(await o('cache', 'prune'), 1, ro);
        expectOneLine(await o('exec', '5', '--', 'true'), 1, ro);
        const emptyPull = await run(['pull', BASE_NAME, '--root', empty, '--registry', reg.host]);
        expectOneLine(emptyPull, 1, empty);
        expect(emptyPull.stderr).toContain('read-only');
        // Reading still works.
        expect((await o('list')).code).toBe(0);
        expect((await o('templates')).stdout).toContain(BASE_NAME);
      } finally {
        await sh('umount', [ro]);
        await sh('umount', [empty]);
      }
      await k.ok('destroy', '5');
    });

    it('a bad version range exits 2 whatever the registry; a malformed --registry exits 2', async () => {
      const root = join(work, 'bad-values');
      for (const registry of [reg.host, '127.0.0.1:1', undefined]) {
        for (const cmd of [['pull', `${BASE_NAME}@^^1`], ['create', '7', '--ostemplate', `${BASE_NAME}@^^1`]]) {
          const r = await run([...cmd, '--root', root, ...(registry ? ['--registry', registry] : [])]);
          expectOneLine(r, 2, '^^1');
        }
      }
      expectOneLine(await run(['pull', `${BASE_NAME}@sha256:abc`, '--root', root, '--registry', reg.host]), 2, 'sha256:abc');
      for (const registry of ['http://exa mple', '127.0.0.1:99999', 'http://', 'ftp://127.0.0.1:5000', 'http://127.0.0.1:5000/v2/x?y']) {
        for (const cmd of [['pull', BASE_NAME], ['create', '7', '--ostemplate', BASE_NAME]]) {
          expectOneLine(await run([...cmd, '--root', root, '--registry', registry]), 2, JSON.stringify(registry));
        }
      }
      expect((await storeView(root)).containers).toEqual([]);
    });
  });
});
