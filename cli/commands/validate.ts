import { loadRecipe, resolveAncestors } from '../../builder/recipe/load.ts';
import { UsageError } from '../../common/errors.ts';
import { parseCommandArgs } from '../args.ts';

const HELP = `
Usage: vztpl validate RECIPE...

Checks recipes (and the recipes they are built from) without running anything.
Exits 2 and names the file, line and field of every problem.
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('validate', argv, {}, HELP);
  if (!args) return 0;
  if (!args.positionals.length) throw new UsageError(`validate: name at least one recipe file\n${HELP}`);
  const problems: string[] = [];
  for (const file of args.positionals) {
    try {
      const loaded = await loadRecipe(file);
      await resolveAncestors(loaded);
      process.stdout.write(`${file}: ok (${loaded.recipe.name} ${loaded.recipe.version})\n`);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      problems.push(err.message);
    }
  }
  if (problems.length) throw new UsageError(problems.join('\n'));
  return 0;
}
