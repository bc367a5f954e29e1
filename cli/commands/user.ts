import { UsageError, VztplError } from '../../common/errors.ts';
import { isValidPattern } from '../../registry/auth/glob.ts';
import { hashPassword } from '../../registry/auth/password.ts';
import { ACTIONS, readUsers, updateUsers, USER_NAME, type Action, type User, type UserScope } from '../../registry/auth/users.ts';
import { parseCommandArgs } from '../args.ts';
import { promptHidden, readSecretFromStdin } from '../prompt.ts';

const HELP = `
Usage: vztpl user add NAME [--scope PATTERN:ACTIONS]... [--password-stdin] [--file USERS]
       vztpl user passwd NAME [--password-stdin] [--file USERS]
       vztpl user scopes NAME [--scope PATTERN:ACTIONS]... [--file USERS]
       vztpl user del NAME [--file USERS]
       vztpl user list [--json] [--file USERS]

Manages the registry's users file (auth.usersFile; --file defaults to $VZTPL_AUTH_USERS_FILE).
Passwords are stored as scrypt hashes and never printed; the file is written atomically with
mode 0600, and a running registry picks up changes within a second.

A scope is a repository pattern and actions: * matches within a name component, ** across
components. Actions: pull, push, delete, admin (all three; admin on ** also lists the catalog).
  --scope 'acme/**:pull,push'     read and publish everything under acme/
  --scope 'debian-*:pull'         read debian-12-x86_64, but not debian/x
  --scope '**:admin'              everything
"scopes" replaces a user's scopes. Without --password-stdin the password is asked twice at the
terminal.

Example:
  echo "$PW" | vztpl user add ci --file /etc/vztpl/users.yaml --scope 'acme/**:pull,push' --password-stdin
`;

function parseScopeArg(value: string): UserScope {
  const colon = value.lastIndexOf(':');
  if (colon <= 0) throw new UsageError(`user: --scope ${value}: give PATTERN:ACTIONS, as in 'acme/**:pull,push'`);
  const repositories = value.slice(0, colon);
  if (!isValidPattern(repositories)) throw new UsageError(`user: --scope ${value}: ${repositories} is not a repository pattern (lower-case names, /, *, **)`);
  const actions = [...new Set(value.slice(colon + 1).split(','))].map((a) => a.trim());
  for (const a of actions) if (!(ACTIONS as readonly string[]).includes(a)) throw new UsageError(`user: --scope ${value}: unknown action "${a}" (${ACTIONS.join(', ')})`);
  return { repositories, actions: actions as Action[] };
}

export function formatScopes(user: Pick<User, 'scopes'>): string {
  return user.scopes.map((s) => `${s.repositories}:${s.actions.join(',')}`).join(' ') || '(none)';
}

async function newPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin) return readSecretFromStdin('password');
  const first = await promptHidden('Password: ', 'password');
  if (!first) throw new UsageError('user: the password is empty');
  const again = await promptHidden('Password again: ', 'password');
  if (first !== again) throw new UsageError('user: the passwords differ');
  return first;
}

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs(
    'user',
    argv,
    {
      file: { type: 'string' },
      scope: { type: 'string', multiple: true },
      'password-stdin': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    HELP,
  );
  if (!args) return 0;
  const [action, name, ...extra] = args.positionals;
  const file = args.values.file ?? process.env.VZTPL_AUTH_USERS_FILE;
  if (!file) throw new UsageError(`user: name the users file with --file (or VZTPL_AUTH_USERS_FILE)\n${HELP}`);
  if (extra.length) throw new UsageError(`user: unexpected argument ${extra[0]}`);
  const scopes = (args.values.scope ?? []).map(parseScopeArg);
  const needName = () => {
    if (!name) throw new UsageError(`user ${action}: name the user\n${HELP}`);
    if (!USER_NAME.test(name)) throw new UsageError(`user: invalid user name ${JSON.stringify(name)} (letters, digits, . _ @ + -; no ':')`);
    return name;
  };
  const edit = (fn: (users: User[]) => User[] | Promise<User[]>) =>
    updateUsers(file, fn).catch((err: Error) => {
      throw err instanceof VztplError ? err : new VztplError(`user ${action}: ${err.message}`);
    });
  switch (action) {
    case 'add': {
      const n = needName();
      const existing = await readUsers(file, { missingOk: true });
      if (existing.some((u) => u.name === n)) throw new UsageError(`user add: ${n} exists in ${file} (use "vztpl user passwd" or "vztpl user scopes")`);
      const hash = await hashPassword(await newPassword(args.values['password-stdin']));
      await edit((users) => {
        if (users.some((u) => u.name === n)) throw new UsageError(`user add: ${n} exists in ${file}`);
        return [...users, { name: n, password: hash, scopes }];
      });
      process.stderr.write(`added user ${n} to ${file} (scopes: ${formatScopes({ scopes })})\n`);
      return 0;
    }
    case 'passwd': {
      const n = needName();
      if (!(await readUsers(file, { missingOk: true })).some((u) => u.name === n)) throw new UsageError(`user passwd: no user ${n} in ${file}`);
      const hash = await hashPassword(await newPassword(args.values['password-stdin']));
      await edit((users) => {
        const user = users.find((u) => u.name === n);
        if (!user) throw new UsageError(`user passwd: no user ${n} in ${file}`);
        user.password = hash;
        return users;
      });
      process.stderr.write(`changed the password of ${n} (its tokens stop working)\n`);
      return 0;
    }
    case 'scopes': {
      const n = needName();
      await edit((users) => {
        const user = users.find((u) => u.name === n);
        if (!user) throw new UsageError(`user scopes: no user ${n} in ${file}`);
        user.scopes = scopes;
        return users;
      });
      process.stderr.write(`${n}: scopes ${formatScopes({ scopes })}\n`);
      return 0;
    }
    case 'del': {
      const n = needName();
      await edit((users) => {
        if (!users.some((u) => u.name === n)) throw new UsageError(`user del: no user ${n} in ${file}`);
        return users.filter((u) => u.name !== n);
      });
      process.stderr.write(`removed user ${n} (its tokens stop working)\n`);
      return 0;
    }
    case 'list': {
      if (name) throw new UsageError(`user list: unexpected argument ${name}`);
      const users = await readUsers(file, { missingOk: true }).catch((err: Error) => {
        throw new VztplError(err.message);
      });
      if (args.values.json) {
        process.stdout.write(`${JSON.stringify({ users: users.map((u) => ({ name: u.name, scopes: u.scopes })) })}\n`);
      } else {
        const width = Math.max(4, ...users.map((u) => u.name.length));
        process.stdout.write(`${'NAME'.padEnd(width)}  SCOPES\n`);
        for (const u of users) process.stdout.write(`${u.name.padEnd(width)}  ${formatScopes(u)}\n`);
      }
      return 0;
    }
    default:
      throw new UsageError(`user: ${action ? `unknown action "${action}"` : 'give an action'} (add, passwd, scopes, del, list)\n${HELP}`);
  }
}
