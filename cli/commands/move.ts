import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { parseCommandArgs } from '../args.ts';
import { CA_FILE_HELP, CA_FILE_OPTION, HOST_HELP, HOST_OPTIONS, openStore } from '../host.ts';

const HELP = `
Usage: vztpl move CTID --to REGISTRY/REPO[:TAG]

Moves a container off this host: backs it up (as vztpl backup), checks that the registry holds
every blob of the pushed backup, and only then destroys the local container, all under the
container's lock. "vztpl restore REGISTRY/REPO:TAG CTID" on the target host brings it up.
${HOST_HELP}${CA_FILE_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('move', argv, { ...HOST_OPTIONS, ...CA_FILE_OPTION, to: { type: 'string' }, compression: { type: 'string', default: 'zstd' } }, HELP);
  if (!args) return 0;
  const [ctid, ...extra] = args.positionals;
  if (!ctid || extra.length || !args.values.to) throw new UsageError(`move: name a CTID and --to REGISTRY/REPO\n${HELP}`);
  const compression = args.values.compression;
  if (compression !== 'zstd' && compression !== 'gzip') throw new UsageError(`move: --compression must be zstd or gzip, not "${compression}"`);
  const { store } = openStore(args.values);
  const { backupTarget } = await import('./restore.ts');
  const { moveContainer, timestampTag } = await import('../../cache/backup.ts');
  const dest = await backupTarget('move', args.values.to, args.values['ca-file'], timestampTag());
  const result = await moveContainer({ store, ctid, target: dest, compression });
  const where = `${dest.repository}:${result.tag}`;
  if (args.values.json) process.stdout.write(`${JSON.stringify({ event: 'moved', ctid, repository: dest.repository, tag: result.tag, digest: result.digest, sent: result.sent })}\n`);
  else process.stdout.write(`moved ${ctid} to ${where} (${formatBytes(result.sent)} sent); on the target: vztpl restore ${args.values.to.replace(/:[^/:]*$/, '')}:${result.tag} ${ctid}\n`);
  return 0;
}
