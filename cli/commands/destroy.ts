import { UsageError } from '../../common/errors.ts';
import { parseCommandArgs } from '../args.ts';
import { HOST_HELP, HOST_OPTIONS, openStore } from '../host.ts';

const HELP = `
Usage: vztpl destroy CTID

Unmounts the container's root and removes the container: its upper dir or private tree, its
bundle and record. The template stays cached.
${HOST_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('destroy', argv, { ...HOST_OPTIONS }, HELP);
  if (!args) return 0;
  const [ctid, ...extra] = args.positionals;
  if (!ctid || extra.length) throw new UsageError(`destroy: name one CTID\n${HELP}`);
  const { store } = openStore(args.values);
  const { destroyContainer } = await import('../../cache/containers.ts');
  await destroyContainer(store, ctid);
  if (!args.values.json) process.stdout.write(`destroyed ${ctid}\n`);
  return 0;
}
