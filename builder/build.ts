// Recipe to template: runs the plan's items through the step cache, packs each new layer, and
// writes the OCI image layout only when everything succeeded.
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CommandError, VztplError } from '../common/errors.ts';
import { silentReporter, type Reporter } from '../common/progress.ts';
import { requirePrograms } from '../common/run.ts';
import { canonicalJson, Label, MediaType, ociArchitecture, type Compression, type Descriptor, type HistoryEntry, type ImageConfig, type ImageManifest, type LockedPackage } from '../format/oci.ts';
import { sha256, type Digest } from '../format/digest.ts';
import { writeLayoutAtomically } from '../format/layout.ts';
import { packLayer } from '../format/tar/pack.ts';
import { layerEntries, nonEmptyLayerEntries } from '../format/tar/walk.ts';
import { parseLockLines } from '../format/packages/lock.ts';
import { chrootCommand, chrootEnv, runStepScript, type Bind } from './chroot.ts';
import { cleanTree } from './cleanup.ts';
import { makeInjectedLayer } from './injected.ts';
import { planBuild, resolvesPackages, stepInputs, type BuildPlan, type PlanItem } from './plan.ts';
import { copySourcePath } from './recipe/load.ts';
import type { PackageManager, StepRequest } from './managers/index.ts';
import { stepKind, type AptSource, type Step } from './recipe/schema.ts';
import { aptSourceDigest, aptSourceLine } from './managers/apt.ts';
import { sourceFor } from './sources/index.ts';
import { StepCache, DEFAULT_CACHE_DIR, type CachedLayer } from './step-cache.ts';
import { holdSharedLock, PACKAGE_LOCK_WAIT_MS } from './package-cache.ts';

export interface BuildOptions {
  recipe: string;
  /** Output OCI layout directory (default: out/<name>). */
  out?: string;
  cacheDir?: string;
  compression?: Compression;
  /** Ignore the step cache (everything runs; results are still stored). */
  noCache?: boolean;
  /** Re-resolve packages: rerun bootstrap and package steps even when cached. */
  refresh?: boolean;
  reporter?: Reporter;
  signal?: AbortSignal;
}

export interface BuildResult {
  name: string;
  version: string;
  out: string;
  manifestDigest: Digest;
  manifest: ImageManifest;
  config: ImageConfig;
  layers: CachedLayer[];
  seconds: number;
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  const reporter = opts.reporter ?? silentReporter;
  const signal = opts.signal ?? new AbortController().signal;
  const compression = opts.compression ?? 'zstd';
  const plan = await planBuild(opts.recipe);
  const source = sourceFor(plan.bootstrap);
  // Before anything runs: a missing host tool names the Debian package to install.
  requirePrograms(source.hostTools);
  // Absolute: steps run in other directories and namespaces, where a relative path means another place.
  const cache = new StepCache(resolve(opts.cacheDir ?? process.env.VZTPL_CACHE_DIR ?? DEFAULT_CACHE_DIR));
  await cache.init();
  try {
    return await buildWith(cache, plan, source, opts, started, reporter, signal, compression);
  } finally {
    // The trees this build looked up may be deleted once it is gone (step-cache.ts).
    await cache.close();
  }
}

async function buildWith(
  cache: StepCache,
  plan: BuildPlan,
  source: ReturnType<typeof sourceFor>,
  opts: BuildOptions,
  started: number,
  reporter: Reporter,
  signal: AbortSignal,
  compression: Compression,
): Promise<BuildResult> {
  const { recipe } = plan.target;
  const out = resolve(opts.out ?? join('out', recipe.name));

  reporter.emit({ event: 'build-start', name: recipe.name, version: recipe.version, recipe: plan.target.file, steps: plan.items.length });
  const manager = source.manager;
  const metadata = await manager.metadataDigest(plan.bootstrap, signal);
  const epoch = recipe.epoch ?? plan.chain[0]!.recipe.epoch ?? envEpoch() ?? Math.floor((metadata.date?.getTime() ?? 0) / 1000);

  const sourceDigests = await aptSourceDigests(plan, signal);
  const ctx: StepContext = { plan, cache, epoch, manager, compression, signal, reporter, metadataDigest: metadata.digest, sourceDigests, replace: Boolean(opts.noCache || opts.refresh) };
  const layers: CachedLayer[] = [];
  let chainId = 'sha256:empty';
  for (const [i, item] of plan.items.entries()) {
    signal.throwIfAborted();
    const index = i + 1;
    const total = plan.items.length;
    reporter.emit({ event: 'step-start', index, total, title: item.title });
    const key = await stepKey(item, chainId, ctx);
    const reuse = !opts.noCache && !(opts.refresh && resolvesPackages(item));
    let layer = reuse ? await cache.get(key) : undefined;
    const cached = layer !== undefined;
    const t0 = performance.now();
    if (!layer) {
      const what = `step ${index}/${total} (${item.title})`;
      try {
        layer = await runItem(item, key, layers, ctx, (line) => reporter.emit({ event: 'step-log', index, line }));
      } catch (err) {
        if (err instanceof CommandError) throw new VztplError(`${plan.target.file}: ${what} failed: ${err.message}`, err.exitCode, { cause: err });
        throw err;
      }
      layer.seconds = (performance.now() - t0) / 1000;
    }
    await ensureBlob(layer, ctx, lowerTrees(layers));
    layers.push(layer);
    if (!layer.emptyLayer) chainId = sha256(`${chainId} ${layer.diffId}`);
    const blob = layer.blobs[compression];
    reporter.emit({ event: 'step-done', index, total, title: item.title, cached, seconds: (performance.now() - t0) / 1000, emptyLayer: layer.emptyLayer, digest: blob?.digest, size: blob?.size });
  }

  const { manifest, config } = imageFor(plan, layers, ctx);
  let manifestDescriptor: Descriptor | undefined;
  await writeLayoutAtomically(out, async (layout) => {
    for (const layer of layers) {
      const blob = layer.blobs[compression];
      if (blob) await layout.importBlob(cache.blobPath(blob.digest), blob.digest);
    }
    manifest.config = await layout.writeJson(MediaType.config, config);
    const written = await layout.writeJson(MediaType.manifest, manifest);
    manifestDescriptor = { ...written, annotations: { [Label.refName]: recipe.version, [Label.title]: recipe.name } };
    await layout.writeIndex([manifestDescriptor]);
  });
  const seconds = (performance.now() - started) / 1000;
  const size = manifest.layers.reduce((n, l) => n + l.size, 0);
  reporter.emit({ event: 'build-done', name: recipe.name, version: recipe.version, digest: manifestDescriptor!.digest, out, layers: manifest.layers.length, size, packages: config['org.openvz.template']?.packages.length ?? 0, seconds });
  return { name: recipe.name, version: recipe.version, out, manifestDigest: manifestDescriptor!.digest, manifest, config, layers, seconds };
}

interface StepContext {
  plan: BuildPlan;
  cache: StepCache;
  epoch: number;
  /** The package manager of the bootstrap's family. */
  manager: PackageManager;
  compression: Compression;
  signal: AbortSignal;
  reporter: Reporter;
  metadataDigest: string;
  /** The Release digests of the apt-sources each recipe of the chain (by file) sees: its own and its ancestors'. */
  sourceDigests?: ReadonlyMap<string, readonly string[]>;
  /** Fresh results replace cached ones (--no-cache, --refresh). */
  replace: boolean;
}

/** The recipes' apt-sources (schema.ts), each recipe's own and its ancestors', in chain order. */
export function visibleAptSources(plan: BuildPlan, recipeFile: string): AptSource[] {
  const out: AptSource[] = [];
  for (const loaded of plan.chain) {
    out.push(...loaded.recipe['apt-sources']);
    if (loaded.file === recipeFile) break;
  }
  return out;
}

async function aptSourceDigests(plan: BuildPlan, signal: AbortSignal): Promise<Map<string, string[]>> {
  const digests = new Map<string, string[]>();
  const any = plan.chain.some((r) => r.recipe['apt-sources'].length);
  if (!any) return digests;
  if (!('suite' in plan.bootstrap)) throw new VztplError(`${plan.target.file}: apt-sources need a Debian or Ubuntu base (apt)`, 2);
  const byUri = new Map<string, Promise<string>>();
  for (const loaded of plan.chain) {
    const list = await Promise.all(
      visibleAptSources(plan, loaded.file).map((src) => {
        const id = aptSourceLine(src);
        if (!byUri.has(id)) byUri.set(id, aptSourceDigest(src, signal));
        return byUri.get(id)!;
      }),
    );
    digests.set(loaded.file, list);
  }
  return digests;
}

/** What a package step resolves against: the bootstrap's metadata, and the apt-sources it sees. */
function repositoryDigest(item: PlanItem, ctx: Pick<StepContext, 'metadataDigest' | 'sourceDigests'>): string {
  const extra = ctx.sourceDigests?.get(item.recipe.file) ?? [];
  return extra.length ? sha256([ctx.metadataDigest, ...extra].join(' ')) : ctx.metadataDigest;
}

function envEpoch(): number | undefined {
  const value = process.env.SOURCE_DATE_EPOCH;
  return value && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** The step-cache key: everything that determines the layer's content, nothing else. */
export async function stepKey(item: PlanItem, parentChainId: string, ctx: Pick<StepContext, 'plan' | 'epoch' | 'metadataDigest' | 'sourceDigests'>): Promise<string> {
  const recipe = item.recipe.recipe;
  const input = {
    v: 1,
    parent: parentChainId,
    arch: ctx.plan.target.recipe.arch,
    epoch: ctx.epoch,
    cleanup: recipe.cleanup,
    env: item.kind === 'step' ? { ...ctx.plan.env, ...recipe.env, ...stepEnv(item.step) } : {},
    item: item.kind === 'bootstrap' ? { bootstrap: item.spec } : { step: item.step },
    inputs: await stepInputs(item),
    // A mirror update must rebuild what resolved packages against the old one.
    repository: resolvesPackages(item) ? repositoryDigest(item, ctx) : undefined,
    bootstrap: item.kind === 'step' && resolvesPackages(item) ? ctx.plan.bootstrap : undefined,
  };
  return sha256(canonicalJson(input)).slice('sha256:'.length);
}

async function runItem(item: PlanItem, key: string, below: readonly CachedLayer[], ctx: StepContext, log: (line: string) => void): Promise<CachedLayer> {
  const work = await ctx.cache.workDir();
  try {
    return item.kind === 'bootstrap' ? await runBootstrap(item, key, work, ctx, log) : await runStep(item, key, below, work, ctx, log);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function runBootstrap(item: Extract<PlanItem, { kind: 'bootstrap' }>, key: string, work: string, ctx: StepContext, log: (line: string) => void): Promise<CachedLayer> {
  const rootfs = join(work, 'rootfs');
  await mkdir(rootfs);
  const source = sourceFor(item.spec);
  await source.bootstrap(item.spec, { root: rootfs, workDir: work, cacheDir: ctx.cache.packagesDir(ctx.manager.family), epoch: ctx.epoch, arch: ctx.plan.target.recipe.arch, log, signal: ctx.signal });
  await cleanTree({ dir: rootfs, kind: 'rootfs' }, item.recipe.recipe.cleanup);
  const packages = await ctx.manager.packageLock(rootfs, ctx.plan.bootstrap, ctx.signal);
  return packAndStore(rootfs, 'rootfs', key, packages, historyFor(item, ctx), ctx);
}

async function runStep(
  item: Extract<PlanItem, { kind: 'step' }>,
  key: string,
  below: readonly CachedLayer[],
  work: string,
  ctx: StepContext,
  log: (line: string) => void,
): Promise<CachedLayer> {
  const lowers = lowerTrees(below);
  const upper = join(work, 'upper');
  const overlayWork = join(work, 'work');
  const injected = join(work, 'injected');
  const lockFile = join(work, 'packages.lock');
  await mkdir(upper);
  await mkdir(overlayWork);
  const kind = stepKind(item.step);
  const recipe = item.recipe.recipe;
  const env = chrootEnv(ctx.epoch, { ...ctx.plan.env, ...recipe.env, ...stepEnv(item.step) });
  const binds: Bind[] = [];
  const lines: string[] = [];
  const args: string[] = [];
  const step: StepRequest = { root: join(work, 'merged'), work, env, lockFile, cacheRoot: ctx.cache.root, packagesDir: ctx.cache.packagesDir(ctx.manager.family), epoch: ctx.epoch, arch: recipe.arch };
  let system = true;
  let exclusive: string | undefined;
  let finish: (() => Promise<void>) | undefined;

  if (kind === 'install' || kind === 'remove') {
    const packages = kind === 'install' ? (item.step as { install: string[] }).install : (item.step as { remove: string[] }).remove;
    const commands = await ctx.manager.changeCommands(ctx.plan.bootstrap, packages, kind === 'remove', step);
    lines.push(...commands.lines);
    binds.push(...commands.binds);
    system = commands.system;
    exclusive = commands.exclusive;
    finish = commands.finish;
  } else {
    if (kind === 'run') {
      const { run: script, shell } = item.step as { run: string; shell: string };
      lines.push(chrootCommand(env, [shell, '-c', script]));
    } else if (kind === 'copy') {
      const { copy } = item.step as { copy: { src: string; dest: string; mode?: string; owner: string } };
      const src = copySourcePath(item.recipe, copy.src);
      const st = await stat(src);
      if (!st.isFile()) throw new VztplError(`${item.recipe.file}: copy.src ${copy.src} is not a regular file`);
      const mode = copy.mode ?? (st.mode & 0o7777).toString(8).padStart(4, '0');
      args.push(src, copy.dest, copy.owner, mode);
      lines.push(`${chrootCommand(env, ['/bin/sh', '-c', 'mkdir -p "$(dirname "$1")" && cat > "$1" && chown "$2" "$1" && chmod "$3" "$1"', 'copy'])} "$2" "$3" "$4" < "$1"`);
    }
    lines.push(ctx.manager.lockCommand(ctx.plan.bootstrap, step));
  }

  // Extra apt sources: in the package steps' injected layer only, never in the template.
  const sourceFiles = kind === 'install' || kind === 'remove' ? visibleAptSources(ctx.plan, item.recipe.file).map((src, i) => ({ path: `etc/apt/sources.list.d/vztpl-${i}.list`, content: aptSourceLine(src), mode: 0o644 })) : [];
  await makeInjectedLayer(injected, lowers, [...ctx.manager.stepFiles, ...sourceFiles], binds.map((b) => b.target));
  // Where the manager cannot give the step a private copy of the shared package cache, the
  // builds sharing the cache take turns (package-cache.ts).
  const lock = exclusive ? await holdSharedLock(exclusive, { signal: ctx.signal, timeoutMs: PACKAGE_LOCK_WAIT_MS }) : undefined;
  try {
    await runStepScript({
      mount: { lowers: [injected, ...lowers], upper, work: overlayWork, merged: join(work, 'merged'), binds, system },
      script: lines.join('\n'),
      args,
      what: `${item.title}`,
      log,
      signal: ctx.signal,
    });
  } finally {
    lock?.release();
    // Packages downloaded into the step's private copy go to the shared cache, also after a failure.
    await finish?.();
  }
  await cleanTree({ dir: upper, kind: 'upper', lowers }, recipe.cleanup);
  const packages = parseLockLines(await readFile(lockFile, 'utf8').then((t) => t.replace(/\\t/g, '\t')));
  return packAndStore(upper, 'upper', key, packages, historyFor(item, ctx), ctx, lowers);
}

/** The trees of the layers below, topmost first, as overlayfs takes its lowerdir list. */
function lowerTrees(below: readonly CachedLayer[]): string[] {
  return below.filter((l) => !l.emptyLayer).map((l) => l.tree).reverse();
}

function stepEnv(step: Step): Record<string, string> {
  return ('env' in step && step.env) || {};
}

function historyFor(item: PlanItem, ctx: StepContext): HistoryEntry {
  const createdBy = item.kind === 'bootstrap' ? `vztpl ${item.title}` : `vztpl ${stepKind(item.step)}: ${JSON.stringify(item.step)}`;
  return { created: new Date(ctx.epoch * 1000).toISOString(), created_by: createdBy, comment: item.title };
}

async function packAndStore(
  tree: string,
  kind: 'rootfs' | 'upper',
  key: string,
  packages: LockedPackage[],
  history: HistoryEntry,
  ctx: StepContext,
  lowers?: readonly string[],
): Promise<CachedLayer> {
  // The walk streams into the packer: packing starts before the tree is listed.
  const entries = await nonEmptyLayerEntries(tree, { kind, epoch: ctx.epoch, lowers });
  if (!entries) {
    return ctx.cache.put({ key, treeKind: kind, emptyLayer: true, blobs: {}, packages, history: { ...history, empty_layer: true }, seconds: 0 }, tree, ctx.replace);
  }
  const tmp = join(tree, '..', `layer.${ctx.compression}`);
  const packed = await packLayer(entries, tmp, ctx.compression);
  const blob = await ctx.cache.storeBlob(tmp, packed);
  return ctx.cache.put({ key, treeKind: kind, emptyLayer: false, diffId: packed.diffId, tarSize: packed.tarSize, blobs: { [ctx.compression]: blob }, packages, history, seconds: 0 }, tree, ctx.replace);
}

/** A cached layer may lack the requested compression: pack it again from its tree. */
async function ensureBlob(layer: CachedLayer, ctx: StepContext, lowers: readonly string[]): Promise<void> {
  if (layer.emptyLayer || layer.blobs[ctx.compression]) return;
  const work = await ctx.cache.workDir();
  try {
    const packed = await packLayer(layerEntries(layer.tree, { kind: layer.treeKind, epoch: ctx.epoch, lowers }), join(work, 'layer'), ctx.compression);
    if (packed.diffId !== layer.diffId) throw new VztplError(`step cache entry ${layer.key} is corrupt: its tree no longer matches its layer; run with --no-cache`);
    await ctx.cache.addBlob(layer, ctx.compression, await ctx.cache.storeBlob(join(work, 'layer'), packed));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function parseName(name: string): { distro: string; release: string; arch: string; flavor?: string } {
  const bare = name.split('/').pop()!;
  const m = /^([a-z0-9]+)-([0-9][a-z0-9.]*)-(x86_64|aarch64|i386|ppc64le|s390x)(?:-(.+))?$/.exec(bare);
  if (!m) throw new VztplError(`template name ${name} is not <distro>-<release>-<arch>[-<flavor>]`);
  return { distro: m[1]!, release: m[2]!, arch: m[3]!, flavor: m[4] };
}

function imageFor(plan: BuildPlan, layers: readonly CachedLayer[], ctx: StepContext): { manifest: ImageManifest; config: ImageConfig } {
  const { recipe } = plan.target;
  const parts = parseName(recipe.name);
  const created = new Date(ctx.epoch * 1000).toISOString();
  const labels: Record<string, string> = {
    ...Object.assign({}, ...plan.chain.map((r) => r.recipe.labels)),
    [Label.distro]: parts.distro,
    [Label.release]: parts.release,
    [Label.arch]: parts.arch,
    ...(parts.flavor ? { [Label.flavor]: parts.flavor } : {}),
    [Label.recipeDigest]: plan.recipeDigest,
    [Label.title]: recipe.name,
    [Label.version]: recipe.version,
  };
  const nonEmpty = layers.filter((l) => !l.emptyLayer);
  const config: ImageConfig = {
    created,
    architecture: ociArchitecture(recipe.arch),
    os: 'linux',
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...Object.entries(plan.env).map(([k, v]) => `${k}=${v}`)],
      Cmd: recipe.cmd ?? ['/bin/sh'],
      Labels: labels,
    },
    rootfs: { type: 'layers', diff_ids: nonEmpty.map((l) => l.diffId!) },
    history: layers.map((l) => l.history),
    'org.openvz.template': {
      name: recipe.name,
      version: recipe.version,
      ...parts,
      recipeDigest: plan.recipeDigest,
      family: ctx.manager.family,
      packages: layers.at(-1)?.packages ?? [],
    },
  };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.manifest,
    config: { mediaType: MediaType.config, digest: 'sha256:', size: 0 },
    layers: nonEmpty.map((l) => {
      const blob = l.blobs[ctx.compression]!;
      return { mediaType: blob.mediaType, digest: blob.digest, size: blob.size };
    }),
    annotations: { [Label.title]: recipe.name, [Label.version]: recipe.version, [Label.created]: created },
  };
  return { manifest, config };
}
