import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { parseCommandArgs } from '../args.ts';
import { CA_FILE_HELP, CA_FILE_OPTION, HOST_HELP, HOST_OPTIONS, openStore } from '../host.ts';

const HELP = `
Usage: vztpl backup CTID REGISTRY/REPO[:TAG] [--compression zstd|gzip]

Backs an overlay container up as an OCI image (default tag: the UTC time, 20261206T004700Z).
The live changes are first frozen as a snapshot (backup-TAG); the template's layers are
mounted from its repository on the same registry (else uploaded once), and each snapshot is
one layer, packed reproducibly: a snapshot already in the repository is not packed or sent
again, so a backup sends what changed since the previous one. The config carries the
container's identity (CTID, hostname, machine-id, template, snapshots). Refused while a
process of the container runs. See also: vztpl backups, vztpl restore, vztpl move.
Options:
      --compression C    zstd (default) or gzip
${HOST_HELP}${CA_FILE_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('backup', argv, { ...HOST_OPTIONS, ...CA_FILE_OPTION, compression: { type: 'string', default: 'zstd' } }, HELP);
  if (!args) return 0;
  const [ctid, target, ...extra] = args.positionals;
  if (!ctid || !target || extra.length) throw new UsageError(`backup: name a CTID and REGISTRY/REPO[:TAG]\n${HELP}`);
  const compression = args.values.compression;
  if (compression !== 'zstd' && compression !== 'gzip') throw new UsageError(`backup: --compression must be zstd or gzip, not "${compression}"`);
  const { store } = openStore(args.values);
  const { backupTarget } = await import('./restore.ts');
  const { backupContainer, timestampTag } = await import('../../cache/backup.ts');
  const dest = await backupTarget('backup', target, args.values['ca-file'], timestampTag());
  const json = args.values.json;
  const result = await backupContainer({
    store,
    ctid,
    target: dest,
    compression,
    onEvent: (e) => {
      if (json) process.stdout.write(`${JSON.stringify(e)}\n`);
    },
  });
  const summary = { event: 'backed-up', ctid, repository: dest.repository, tag: result.tag, digest: result.digest, sent: result.sent, frozen: result.frozen ?? null, layers: result.layers };
  if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    const own = result.layers.filter((l) => l.from.startsWith('snapshot'));
    process.stdout.write(`backed up ${ctid} to ${dest.repository}:${result.tag} (${result.digest}): ${own.length} snapshot layers, ${formatBytes(result.sent)} sent\n`);
  }
  return 0;
}
