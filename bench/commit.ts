// Commit benchmark: a container with a 10 MB change turned into a new image, in one run,
// vztpl against podman. The same Debian 12 template is served by `vztpl serve` on 127.0.0.1;
// vztpl pulls it into a store and creates a container, podman pulls it into a private root and
// runs a container; the same change (1000 files of 10 KB, written by a shell inside each) is made
// in both; then, alternated, `vztpl commit CTID NAME:VERSION --out DIR` (a local OCI layout)
// against `podman commit CONTAINER NAME:VERSION` (its local storage): whole processes, each
// round a new version of the same change.
// (podman run's default rlimits exceed this machine's hard limits: the bench sets the ones runc
// uses for vztpl containers.)
// Usage: node bench/commit.ts [--rounds 5] [--no-results]
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadAverage, machine, median, ratio, runChecked, runTimed, runBench, table } from './lib.ts';
import { buildTemplate, CLI, env, ms, report, requireDist, say, startVztpl, stopServers, unmountAll } from './support.ts';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'cache-dir': { type: 'string', default: '/var/tmp/vztpl-test/build-cache' },
    'bench-dir': { type: 'string', default: '/var/tmp/vztpl-bench-commit' },
    'no-results': { type: 'boolean', default: false },
  },
});
const dir = opt['bench-dir'];
const podmanDir = join(dir, 'podman');
const podman = (...args: string[]) => ['--root', join(podmanDir, 'root'), '--runroot', join(podmanDir, 'run'), '--tmpdir', join(podmanDir, 'tmp'), ...args];
const CHANGE = 'mkdir -p /srv/data && for i in $(seq 1000); do head -c 10000 /dev/urandom > /srv/data/f$i; done';

async function main(): Promise<void> {
  requireDist();
  const m = machine();
  const started = performance.now();
  await rm(dir, { recursive: true, force: true });
  for (const d of ['root', 'run', 'tmp']) await mkdir(join(podmanDir, d), { recursive: true });
  say('building debian-12-x86_64 (step cache) and serving it');
  const { layout } = await buildTemplate('debian-12-x86_64.yaml', opt['cache-dir'], join(dir, 'layout'));
  const registry = await startVztpl({ kind: 'fs', dir: join(dir, 'registry') }, join(dir, 'registry.log'));
  await runChecked('vztpl push', process.execPath, [CLI, 'push', `${layout.dir}:${layout.version}`, `${registry.host}/${layout.name}`], { env });
  const image = `${registry.host}/${layout.name}:${layout.version}`;

  const root = join(dir, 'store');
  const vz = (...args: string[]) => [CLI, ...args, '--root', root, '--registry', registry.host];
  await runChecked('vztpl create', process.execPath, vz('create', 'c1', '--ostemplate', `${layout.name}@${layout.version}`), { env });
  await runChecked('vztpl exec', process.execPath, [CLI, 'exec', 'c1', '--root', root, '--', '/bin/sh', '-c', CHANGE], { env });
  await runChecked('podman pull', 'podman', podman('pull', '--quiet', '--tls-verify=false', image), { env });
  await runChecked('podman run', 'podman', podman('run', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', '--name', 'c1', image, '/bin/sh', '-c', CHANGE), { env });

  const rounds = Number(opt.rounds);
  const times = { vztpl: [] as number[], podman: [] as number[] };
  for (let r = 1; r <= rounds; r++) {
    for (const kind of r % 2 ? (['vztpl', 'podman'] as const) : (['podman', 'vztpl'] as const)) {
      const run =
        kind === 'vztpl'
          ? await runTimed(process.execPath, [CLI, 'commit', 'c1', `${layout.name}-changed:1.0.${r}`, '--out', join(dir, `commit-${r}`), '--root', root], { env })
          : await runTimed('podman', podman('commit', '--quiet', 'c1', `localhost/${layout.name}-changed:1.0.${r}`), { env });
      if (run.code !== 0) throw new Error(`${kind} commit exited ${run.code}: ${run.stderr}`);
      times[kind].push(run.ms);
    }
    await rm(join(dir, `commit-${r}`), { recursive: true, force: true });
    say(`round ${r}/${rounds}: vztpl ${ms(times.vztpl.at(-1)!)}, podman ${ms(times.podman.at(-1)!)}`);
  }
  await runTimed(process.execPath, [CLI, 'destroy', 'c1', '--root', root], { env });
  await runTimed('podman', podman('rm', '--all', '--force'), { env });
  await runTimed('podman', podman('rmi', '--all', '--force'), { env });
  await stopServers();

  const v = median(times.vztpl);
  const p = median(times.podman);
  const rows = [
    ['vztpl commit --out (whole process)', ms(v), ratio(v, v)],
    ['podman commit (whole process)', ms(p), ratio(p, v)],
  ];
  await report({
    heading: `${m.date}: Commit (bench/commit.ts)`,
    machine: m,
    loadAfter: loadAverage(),
    totalMs: performance.now() - started,
    summary: [`A Debian 12 container with a 10 MB change (1000 random files of 10 KB) committed to a new image, ${rounds} alternated rounds; p50:`, '', table(['commit', 'p50', 'vs vztpl'], rows)].join('\n'),
    about: () => `vztpl writes an OCI layout (zstd layers); podman commits into its own storage under ${podmanDir} (overlay driver).`,
    record: !opt['no-results'],
  });
  await rm(dir, { recursive: true, force: true });
}

runBench(main, async () => {
  await stopServers();
  await runTimed('podman', podman('rm', '--all', '--force'), { env }).catch(() => undefined);
  unmountAll(dir);
  await rm(dir, { recursive: true, force: true });
});
