// A build as a list of layers to make: the base recipe's bootstrap, then every recipe's steps
// from the base to the flavor. Each item knows its title, its step-cache key inputs, and
// whether it resolves packages against the repository (and so must rebuild on a mirror update).
import { readFile } from 'node:fs/promises';
import { sha256 } from '../format/digest.ts';
import { copySourcePath, loadRecipe, resolveAncestors } from './recipe/load.ts';
import { stepKind, type BootstrapSpec, type LoadedRecipe, type Step } from './recipe/schema.ts';

export type PlanItem =
  | { kind: 'bootstrap'; recipe: LoadedRecipe; spec: BootstrapSpec; title: string }
  | { kind: 'step'; recipe: LoadedRecipe; step: Step; title: string };

export interface BuildPlan {
  /** The recipe being built (the flavor, when there is a chain). */
  target: LoadedRecipe;
  /** Base first. */
  chain: LoadedRecipe[];
  bootstrap: BootstrapSpec;
  items: PlanItem[];
  /** Digest of the recipe files, base to flavor. */
  recipeDigest: `sha256:${string}`;
  env: Record<string, string>;
}

function firstLine(text: string): string {
  const line = text.trim().split('\n')[0] ?? '';
  return line.length > 60 ? `${line.slice(0, 57)}...` : line;
}

export function stepTitle(step: Step): string {
  if (step.name) return step.name;
  switch (stepKind(step)) {
    case 'install':
      return `install ${(step as { install: string[] }).install.join(' ')}`;
    case 'remove':
      return `remove ${(step as { remove: string[] }).remove.join(' ')}`;
    case 'run':
      return `run ${firstLine((step as { run: string }).run)}`;
    case 'copy': {
      const c = (step as { copy: { src: string; dest: string } }).copy;
      return `copy ${c.src} to ${c.dest}`;
    }
  }
}

export async function planBuild(recipeFile: string): Promise<BuildPlan> {
  const target = await loadRecipe(recipeFile);
  const chain = [...(await resolveAncestors(target)), target];
  const base = chain[0]!;
  if (!('bootstrap' in base.recipe)) throw new Error(`${base.file}: the base recipe has no bootstrap`);
  const bootstrap = base.recipe.bootstrap;
  const items: PlanItem[] = [
    {
      kind: 'bootstrap',
      recipe: base,
      spec: bootstrap,
      title: `bootstrap ${bootstrap.tool} ${'suite' in bootstrap ? `${bootstrap.suite} (${bootstrap.variant})` : `releasever ${bootstrap.releasever}`}`,
    },
  ];
  const env: Record<string, string> = {};
  for (const loaded of chain) {
    Object.assign(env, loaded.recipe.env);
    for (const step of loaded.recipe.steps) items.push({ kind: 'step', recipe: loaded, step, title: stepTitle(step) });
  }
  const recipeDigest = chain.length === 1 ? target.digest : sha256(chain.map((r) => r.digest).join('\n'));
  return { target, chain, bootstrap, items, recipeDigest: recipeDigest as `sha256:${string}`, env };
}

/** True for items whose result depends on the repository's current package versions. */
export function resolvesPackages(item: PlanItem): boolean {
  if (item.kind === 'bootstrap') return true;
  const kind = stepKind(item.step);
  return kind === 'install' || kind === 'remove';
}

/** Digests of the files a step reads from the host (copy sources). */
export async function stepInputs(item: PlanItem): Promise<Record<string, string>> {
  if (item.kind !== 'step' || stepKind(item.step) !== 'copy') return {};
  const { copy } = item.step as { copy: { src: string } };
  const path = copySourcePath(item.recipe, copy.src);
  return { [copy.src]: sha256(await readFile(path)) };
}
