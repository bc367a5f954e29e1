import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { parseCommandArgs } from '../args.ts';
import { CA_FILE_HELP, CA_FILE_OPTION, HOST_HELP, HOST_OPTIONS } from '../host.ts';

const HELP = `
Usage: vztpl backups REGISTRY/REPO [--json]

Lists the backups in a repository, oldest first: tag, when, the container (CTID, hostname),
its template, its snapshots, the size of all its layers, and what it added (bytes of layers
the previous backup did not have).
${HOST_HELP}${CA_FILE_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('backups', argv, { ...HOST_OPTIONS, ...CA_FILE_OPTION }, HELP);
  if (!args) return 0;
  const [repo, ...extra] = args.positionals;
  if (!repo || extra.length) throw new UsageError(`backups: name one REGISTRY/REPO\n${HELP}`);
  const { backupTarget } = await import('./restore.ts');
  const src = await backupTarget('backups', repo, args.values['ca-file']);
  const { listBackups } = await import('../../cache/backup.ts');
  const list = await listBackups(src.client, src.repository);
  if (args.values.json) {
    process.stdout.write(`${JSON.stringify(list)}\n`);
    return 0;
  }
  const rows = list.map((b) => [b.tag, (b.backedUp ?? '').slice(0, 19).replace('T', ' '), b.ctid, b.hostname, b.template, String(b.snapshots), formatBytes(b.size), formatBytes(b.added)]);
  const head = ['TAG', 'DATE', 'CTID', 'HOSTNAME', 'TEMPLATE', 'SNAPSHOTS', 'SIZE', 'ADDED'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
  return 0;
}
