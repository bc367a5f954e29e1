import { UsageError } from '../../common/errors.ts';
import { authFilePath, registryKey, storeCredentials } from '../../client/credentials.ts';
import { parseImageReference, RegistryClient } from '../../client/registry-client.ts';
import { parseCommandArgs } from '../args.ts';
import { promptHidden, promptLine, readSecretFromStdin } from '../prompt.ts';

const HELP = `
Usage: vztpl login REGISTRY [-u USER] [--password-stdin] [--auth-file FILE] [--ca-file FILE]

Checks a user name and password against the registry (its /token endpoint, as podman login
does) and stores them for vztpl push and the host cache, in the containers auth file format
({"auths":{"HOST:PORT":{"auth":"base64(user:password)"}}}, mode 0600):
$REGISTRY_AUTH_FILE when set, else ~/.config/vztpl/auth.json. Credentials from "podman login"
(its auth.json) and docker's config.json are also used when vztpl has none of its own.

Without --password-stdin the password is asked at the terminal. Undo with "vztpl logout".

REGISTRY is HOST:PORT (HTTPS; plain HTTP only for loopback addresses) or a URL with http:// or
https://. The registry's certificate is verified against the system's CAs and --ca-file FILE
(default $VZTPL_CA_FILE), a PEM file of the CA certificates of a private CA.

Example:
  echo "$PW" | vztpl login registry.example.com:5000 -u ci --password-stdin
`;

/** REGISTRY as given on the command line ("host:port", or with http:// / https://) -> base URL. */
export function registryBase(value: string): string {
  const ref = parseImageReference(`${value.replace(/\/+$/, '')}/x`);
  return ref.registry;
}

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs(
    'login',
    argv,
    {
      username: { type: 'string', short: 'u' },
      'password-stdin': { type: 'boolean', default: false },
      'auth-file': { type: 'string' },
      'ca-file': { type: 'string' },
    },
    HELP,
  );
  if (!args) return 0;
  const [registry, ...extra] = args.positionals;
  if (!registry || extra.length) throw new UsageError(`login: name one registry\n${HELP}`);
  const base = registryBase(registry);
  const username = args.values.username ?? (await promptLine('Username: '));
  if (!username) throw new UsageError('login: no user name');
  const password = args.values['password-stdin'] ? await readSecretFromStdin('password') : await promptHidden('Password: ', 'password');
  const client = new RegistryClient(base, { credentials: { username, password }, caFile: args.values['ca-file'] });
  const result = await client.login();
  const file = args.values['auth-file'] ?? authFilePath();
  await storeCredentials(file, base, { username, password });
  const host = registryKey(base);
  if (result === 'open') process.stderr.write(`${host} does not ask for credentials; stored them in ${file} anyway\n`);
  else process.stderr.write(`Login Succeeded: ${username} at ${host} (credentials in ${file})\n`);
  return 0;
}
