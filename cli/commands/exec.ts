import { UsageError } from '../../common/errors.ts';
import { parseCommandArgs } from '../args.ts';
import { HOST_HELP, HOST_OPTIONS, openStore } from '../host.ts';

const HELP = `
Usage: vztpl exec CTID -- COMMAND [ARG...]

Runs a command inside a container with the host's OCI runtime (runc, else crun), mounting the
container's root first if a reboot unmounted it. Exits with the command's exit code.
${HOST_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const own = dash === -1 ? argv : argv.slice(0, dash);
  const command = dash === -1 ? [] : argv.slice(dash + 1);
  const args = parseCommandArgs('exec', own, { ...HOST_OPTIONS }, HELP);
  if (!args) return 0;
  const [ctid, ...rest] = args.positionals;
  const cmd = command.length ? command : rest;
  if (!ctid || !cmd.length) throw new UsageError(`exec: name a CTID and a command\n${HELP}`);
  const { store } = openStore(args.values);
  const { execInContainer } = await import('../../cache/runtime.ts');
  const result = await execInContainer(store, ctid, cmd);
  return result.exitCode;
}
