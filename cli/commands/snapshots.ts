import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { parseCommandArgs } from '../args.ts';
import { HOST_HELP, HOST_OPTIONS, openStore } from '../host.ts';

const HELP = `
Usage: vztpl snapshots CTID [--json]

Lists a container's snapshots, oldest first: name, when it was taken, and the size and number
of the files it changed.
${HOST_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('snapshots', argv, { ...HOST_OPTIONS }, HELP);
  if (!args) return 0;
  const [ctid, ...extra] = args.positionals;
  if (!ctid || extra.length) throw new UsageError(`snapshots: name one CTID\n${HELP}`);
  const { store } = openStore(args.values);
  const { listSnapshots } = await import('../../cache/snapshots.ts');
  const list = await listSnapshots(store, ctid);
  if (args.values.json) {
    process.stdout.write(`${JSON.stringify(list.map(({ dir: _dir, ...s }) => s))}\n`);
    return 0;
  }
  const rows = list.map((s) => [s.name, s.created.slice(0, 19).replace('T', ' '), formatBytes(s.bytes), String(s.entries)]);
  const head = ['NAME', 'TAKEN', 'SIZE', 'ENTRIES'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
  return 0;
}
