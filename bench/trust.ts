// Trust policy benchmark (issue 13: verification adds at most 5 ms to the p50 of a create from
// the cache). One small signed template (a one-layer image made here with GNU tar, pushed with
// `vztpl push --sign-key` to a `vztpl serve` on 127.0.0.1) is pulled into a store, then:
//   1. the whole `vztpl create` process (overlay, from the cache) without a policy and with a
//      policy whose entry requires the key (the checked policy read from the store's copy, the
//      kept signature verified with node:crypto), alternated round by round, each container
//      destroyed (untimed) after it;
//   2. in process, what the policy adds to a create: loading the policy (store copy), deciding
//      (reading the key file) and matching the verification recorded with the kept signature;
//      and, for scale, what is avoided: checking the policy's text (YAML and zod, and loading
//      them), parsing the key and verifying the signature (and loading node:crypto).
// The CLI is compiled from the working tree into a temporary directory (tsc), as dist/ would be.
// Also what signing adds to a push (issue 13: at most 200 ms): push of the same layout to fresh
// repositories with and without --sign-key, alternated.
// Usage: node bench/trust.ts [--rounds 40] [--push-rounds 10] [--no-results]
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { Store } from '../cache/store.ts';
import { checkCached } from '../cache/trust.ts';
import { decide, loadTrustPolicy, parseTrustPolicy, publicKeys, trustSubject } from '../cache/trust-policy.ts';
import { verifySignatureLayers, type SignatureLayer } from '../format/sigstore/index.ts';
import { sha256 } from '../format/digest.ts';
import { OciLayout } from '../format/layout.ts';
import { Label, MediaType } from '../format/oci.ts';
import { loadAverage, machine, runChecked, runTimed, running, secs, table, runBench } from './lib.ts';
import { REPO, env, freePort, gitRevision, ms, percentile, report, say } from './support.ts';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '40' },
    'in-process-rounds': { type: 'string', default: '500' },
    'push-rounds': { type: 'string', default: '10' },
    'no-results': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write('Usage: node bench/trust.ts [--rounds 40] [--in-process-rounds 500] [--push-rounds 10] [--no-results]\n');
  process.exit(0);
}
const ROUNDS = Number(opt.rounds);
const IN_PROCESS = Number(opt['in-process-rounds']);
const PUSH_ROUNDS = Number(opt['push-rounds']);
const WARMUP = 3;
const PASSWORD = 'bench';

let work = '';
let server: ChildProcess | undefined;
let cli = '';
let root = '';
const created: string[] = [];

async function cleanup(): Promise<void> {
  for (const child of running) child.kill('SIGKILL');
  if (cli && root) for (const ct of created.splice(0)) await runTimed(process.execPath, [cli, 'destroy', ct, '--root', root], { env }).catch(() => undefined);
  server?.kill('SIGKILL');
  if (work) await rm(work, { recursive: true, force: true });
}

/** The CLI compiled from the working tree, with node_modules and package.json beside it. */
function compile(dir: string): string {
  execFileSync(join(REPO, 'node_modules', '.bin', 'tsc'), ['-p', join(REPO, 'tsconfig.json'), '--outDir', join(dir, 'dist'), '--sourceMap', 'false'], { cwd: REPO, env, stdio: 'inherit' });
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'package.json'), readFileSync(join(REPO, 'package.json')));
  return join(dir, 'dist', 'cli', 'main.js');
}

/** A one-layer image (a few files, GNU tar, gzip) in an OCI layout under the ref 1.0.0. */
async function smallLayout(dir: string): Promise<void> {
  const tree = join(dir, '..', 'tree');
  for (const sub of ['etc', 'bin', 'usr/share/doc']) mkdirSync(join(tree, sub), { recursive: true });
  writeFileSync(join(tree, 'etc', 'os-release'), 'ID=bench\nVERSION_ID=1\n');
  writeFileSync(join(tree, 'etc', 'hostname'), 'bench\n');
  for (let i = 0; i < 50; i++) writeFileSync(join(tree, 'usr/share/doc', `f${i}`), `file ${i}\n`.repeat(100));
  const tar = execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@1700000000', '--format=pax', '-C', tree, '-cf', '-', '.'], { maxBuffer: 64 << 20 });
  const layer = gzipSync(tar);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: [sha256(tar)] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.manifest,
      config: { mediaType: MediaType.config, digest: sha256(config), size: config.length },
      layers: [{ mediaType: MediaType.layerGzip, digest: sha256(layer), size: layer.length }],
    }),
  );
  const layout = new OciLayout(dir);
  await layout.init();
  for (const b of [config, layer, manifest]) writeFileSync(layout.blobPath(sha256(b)), b);
  await layout.writeIndex([{ mediaType: MediaType.manifest, digest: sha256(manifest), size: manifest.length, annotations: { [Label.refName]: '1.0.0' } }]);
}

async function waitHealthy(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer`);
}

function quantiles(xs: number[]) {
  return { p50: percentile(xs, 0.5), p90: percentile(xs, 0.9), min: percentile(xs, 0), max: percentile(xs, 1) };
}

async function main(): Promise<void> {
  const m = machine();
  const revision = gitRevision();
  say(`vztpl trust policy benchmark, ${m.date}`);
  say(`machine: ${m.cores} cores (nproc), ${m.cpu}, kernel ${m.kernel}, node ${m.node}; load average before: ${m.load}; code ${revision}`);
  const started = performance.now();
  work = await mkdtemp(join(tmpdir(), 'vztpl-bench-trust-'));
  cli = compile(join(work, 'build'));
  say(`compiled the CLI to ${cli}`);
  const host = `127.0.0.1:${await freePort()}`;
  server = spawn(process.execPath, [cli, 'serve', '--listen', host, '--storage', `fs:${join(work, 'registry')}`], { env: { ...env, VZTPL_LOG_LEVEL: 'warn' }, stdio: 'ignore' });
  await waitHealthy(`http://${host}/healthz`);
  const childEnv = { ...env, VZTPL_KEY_PASSWORD: PASSWORD, VZTPL_HOST_CONFIG: join(work, 'no-host.yaml') };
  const vztpl = (what: string, ...args: string[]) => runChecked(what, process.execPath, [cli, ...args], { env: childEnv });
  await smallLayout(join(work, 'layout'));
  await vztpl('key generate', 'key', 'generate', join(work, 'acme'));
  await vztpl('push', 'push', `${join(work, 'layout')}:1.0.0`, `${host}/acme/bench:1.0.0`, '--sign-key', join(work, 'acme.key'));
  const policyFile = join(work, 'policy.yaml');
  writeFileSync(policyFile, `trust:\n  - match: "${host}/acme/**"\n    keys: [${join(work, 'acme.pub')}]\n  - match: "**"\n    insecureAcceptAnything: true\n`);
  root = join(work, 'store');
  await vztpl('pull', 'pull', `${host}/acme/bench:1.0.0`, '--root', root, '--trust-policy', policyFile);
  if (!existsSync(join(root, 'refs', host.replace(':', '_'), 'acme', 'bench', '1.0.0.sig'))) throw new Error('the pull kept no signature');
  say(`template ${host}/acme/bench:1.0.0 signed, pulled with the policy (signature kept beside the ref)`);

  // 0. what signing adds to a push: the same layout to fresh repositories, alternated
  const pushTimes = { plain: [] as number[], signed: [] as number[] };
  for (let r = 1; r <= WARMUP + PUSH_ROUNDS; r++) {
    const order: Array<'plain' | 'signed'> = r % 2 ? ['plain', 'signed'] : ['signed', 'plain'];
    for (const kind of order) {
      const args = [cli, 'push', `${join(work, 'layout')}:1.0.0`, `${host}/push/${kind}${r}:1.0.0`, ...(kind === 'signed' ? ['--sign-key', join(work, 'acme.key')] : [])];
      const run = await runTimed(process.execPath, args, { env: childEnv });
      if (run.code !== 0) throw new Error(`push ${kind} exited ${run.code}: ${run.stderr}`);
      if (r > WARMUP) pushTimes[kind].push(run.ms);
    }
  }
  const pu = quantiles(pushTimes.plain);
  const ps = quantiles(pushTimes.signed);
  say(`push: p50 ${ms(pu.p50)} unsigned, ${ms(ps.p50)} with --sign-key (${PUSH_ROUNDS} rounds each)`);

  // 1. whole processes, alternated
  const times = { none: [] as number[], policy: [] as number[] };
  let n = 0;
  for (let r = 1; r <= WARMUP + ROUNDS; r++) {
    const order: Array<'none' | 'policy'> = r % 2 ? ['none', 'policy'] : ['policy', 'none'];
    for (const kind of order) {
      const ct = `bt${++n}`;
      const args = [cli, 'create', ct, '--ostemplate', `${host}/acme/bench:1.0.0`, '--root', root, ...(kind === 'policy' ? ['--trust-policy', policyFile] : [])];
      const run = await runTimed(process.execPath, args, { env: childEnv });
      if (run.code !== 0) throw new Error(`create ${kind} exited ${run.code}: ${run.stderr}`);
      created.push(ct);
      if (r > WARMUP) times[kind].push(run.ms);
      await runChecked('destroy', process.execPath, [cli, 'destroy', ct, '--root', root], { env: childEnv });
      created.splice(created.indexOf(ct), 1);
    }
  }
  const a = quantiles(times.none);
  const b = quantiles(times.policy);
  say(`create without a policy: p50 ${ms(a.p50)}, p90 ${ms(a.p90)}; with the policy: p50 ${ms(b.p50)}, p90 ${ms(b.p90)} (${ROUNDS} rounds each)`);

  // 2. in process: what the policy adds
  const store = new Store(root);
  const ref = (await store.refs()).find((x) => x.name === 'acme/bench')!;
  const noSource = async (): Promise<never> => {
    throw new Error('the kept signature should have verified');
  };
  const check: number[] = [];
  const full: number[] = [];
  const parse: number[] = [];
  const kept = store.readSignatures(ref)!;
  const policyText = readFileSync(policyFile, 'utf8');
  for (let i = 0; i < WARMUP + IN_PROCESS; i++) {
    const t0 = performance.now();
    const policy = await loadTrustPolicy(policyFile, root);
    const decision = decide(policy, trustSubject(ref.source, ref.name));
    if (!decision.verify) throw new Error('the policy should ask for the key');
    await checkCached(store, ref, decision, noSource);
    const t1 = performance.now();
    await parseTrustPolicy(policyText, policyFile);
    const t2 = performance.now();
    // What a create does when no recorded key matches: parse the key, verify the kept signature.
    const [key] = await publicKeys(decision);
    const layers = kept.signatures.map(({ layer, payload }) => ({ layer: layer as SignatureLayer, payload: Buffer.from(payload as string, 'base64') }));
    if (!verifySignatureLayers(layers, key!, { digest: kept.signedDigest, repository: kept.repository }).verified) throw new Error('the kept signature does not verify');
    const t3 = performance.now();
    if (i >= WARMUP) {
      check.push(t1 - t0);
      parse.push(t2 - t1);
      full.push(t3 - t2);
    }
  }
  // The first load of YAML and zod in a fresh process (what the store's copy of the policy saves).
  const first = await runTimed(process.execPath, ['--input-type=module', '-e', `const t=performance.now(); await Promise.all([import('yaml'), import('zod')]); console.log(performance.now()-t)`], { env, cwd: join(work, 'build') });
  const libsMs = Number(first.lines[0]?.line);
  const cryptoRun = await runTimed(process.execPath, ['--input-type=module', '-e', `const t=performance.now(); process.getBuiltinModule('node:crypto').createHash('sha256'); console.log(performance.now()-t)`], { env });
  const cryptoMs = Number(cryptoRun.lines[0]?.line);
  const f = quantiles(full);
  const c = quantiles(check);
  const p = quantiles(parse);
  say(`in process: policy (store copy) + key + verify p50 ${ms(c.p50, 2)}; YAML + zod check of the text (libraries loaded) p50 ${ms(p.p50, 2)}; loading YAML + zod in a new process ${ms(libsMs)}`);
  await cleanup();
  const totalMs = performance.now() - started;

  const delta = b.p50 - a.p50;
  const signCost = ps.p50 - pu.p50;
  const rows = [
    [`vztpl push of the template to a new repository, unsigned (${pushTimes.plain.length} rounds)`, `p50 ${ms(pu.p50)}, p90 ${ms(pu.p90)}`, '', 'whole process; the SBOM referrer is pushed too'],
    [`vztpl push --sign-key (${pushTimes.signed.length} rounds)`, `p50 ${ms(ps.p50)}, p90 ${ms(ps.p90)}`, '', 'decrypts the key (scrypt), signs the manifest and the SBOM'],
    ['added by signing (p50 difference)', ms(signCost), `<= 200 ms: ${signCost <= 200 ? 'met' : 'NOT met'}`, 'alternated round by round'],
    [`vztpl create from the cache, overlay, no policy (${times.none.length} rounds)`, `p50 ${ms(a.p50)}, p90 ${ms(a.p90)}`, '', `min ${ms(a.min)}, max ${ms(a.max)}`],
    [`vztpl create from the cache, overlay, policy requiring the key (${times.policy.length} rounds)`, `p50 ${ms(b.p50)}, p90 ${ms(b.p90)}`, '', `min ${ms(b.min)}, max ${ms(b.max)}`],
    ['added by the policy (p50 difference)', ms(delta), `<= 5 ms: ${delta <= 5 ? 'met' : 'NOT met'}`, 'whole processes, alternated round by round'],
    [`in process: load policy (store copy), read key file, match the recorded verification (${check.length} rounds)`, `p50 ${ms(c.p50, 2)}`, '', `p90 ${ms(c.p90, 2)}, max ${ms(c.max, 2)}; what the policy costs a create besides loading cache/trust*.ts`],
    [`in process: parse the key, verify the kept ECDSA P-256 signature (${full.length} rounds)`, `p50 ${ms(f.p50, 2)}`, '(information)', `the path when no recorded key matches; plus ${ms(cryptoMs)} to load node:crypto in a new process`],
    [`in process: YAML parse + zod check of the policy text (${parse.length} rounds)`, `p50 ${ms(p.p50, 2)}`, '(information)', `plus ${ms(libsMs)} to load yaml and zod in a new process: what the store's copy saves a create`],
  ];
  await report({
    heading: `${m.date}: trust policy on create (bench/trust.ts)`,
    machine: m,
    loadAfter: loadAverage(),
    totalMs,
    summary: table(['measurement', 'result', 'goal', 'details'], rows),
    record: !opt['no-results'],
    about: () =>
      `Code: ${revision}. Options: --rounds ${ROUNDS} --in-process-rounds ${IN_PROCESS}. Total ${secs(totalMs, 0)}. CLI compiled from the working tree (tsc) into a temporary directory; ` +
      'template: one gzip layer of 52 small files, signed with a vztpl key (ECDSA P-256) by push --sign-key; registry vztpl serve (fs) on 127.0.0.1; store on the host filesystem.',
  });
}

runBench(main, cleanup);
