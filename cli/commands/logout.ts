import { UsageError } from '../../common/errors.ts';
import { authFilePath, registryKey, removeCredentials } from '../../client/credentials.ts';
import { parseCommandArgs } from '../args.ts';
import { registryBase } from './login.ts';

const HELP = `
Usage: vztpl logout REGISTRY [--auth-file FILE]
       vztpl logout --all [--auth-file FILE]

Removes the credentials "vztpl login" stored for a registry (or all of them) from
$REGISTRY_AUTH_FILE when set, else ~/.config/vztpl/auth.json.
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('logout', argv, { all: { type: 'boolean', default: false }, 'auth-file': { type: 'string' } }, HELP);
  if (!args) return 0;
  const [registry, ...extra] = args.positionals;
  if (extra.length || (!registry && !args.values.all) || (registry && args.values.all)) throw new UsageError(`logout: name one registry, or give --all\n${HELP}`);
  const file = args.values['auth-file'] ?? authFilePath();
  const base = registry ? registryBase(registry) : undefined;
  const removed = await removeCredentials(file, base);
  const what = base ? registryKey(base) : 'all registries';
  if (!removed) {
    process.stderr.write(`not logged in to ${what} (in ${file})\n`);
    return base ? 1 : 0;
  }
  process.stderr.write(`Removed login credentials for ${what} from ${file}\n`);
  return 0;
}
