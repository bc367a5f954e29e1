import { UsageError } from '../../common/errors.ts';
import { parseCommandArgs } from '../args.ts';
import { HOST_HELP, HOST_OPTIONS, openStore } from '../host.ts';

const HELP = `
Usage: vztpl snapshot CTID [--name NAME]
       vztpl snapshot delete CTID NAME

Freezes an overlay container's changes as a read-only snapshot and starts a fresh layer of
changes above it: a rename and a remount, milliseconds whatever the container's size. The
default name is snapN. "delete" merges a snapshot into the one above it (or into the live
changes); the container's files stay as they are. Refused while a process of the container runs.
See also: vztpl snapshots CTID, vztpl rollback CTID NAME.
${HOST_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('snapshot', argv, { ...HOST_OPTIONS, name: { type: 'string' } }, HELP);
  if (!args) return 0;
  const { store } = openStore(args.values);
  const snapshots = await import('../../cache/snapshots.ts');
  const out = (event: Record<string, unknown>, line: string) => process.stdout.write(args.values.json ? `${JSON.stringify(event)}\n` : `${line}\n`);
  if (args.positionals[0] === 'delete') {
    const [, ctid, name, ...extra] = args.positionals;
    if (!ctid || !name || extra.length) throw new UsageError(`snapshot delete: name a CTID and a snapshot\n${HELP}`);
    const { mergedInto } = await snapshots.deleteSnapshot(store, ctid, name);
    out({ event: 'snapshot-deleted', ctid, name, mergedInto }, `deleted snapshot ${name} of ${ctid} (merged into ${mergedInto})`);
    return 0;
  }
  const [ctid, ...extra] = args.positionals;
  if (!ctid || extra.length) throw new UsageError(`snapshot: name one CTID\n${HELP}`);
  const started = performance.now();
  const snapshot = await snapshots.snapshotContainer(store, ctid, args.values.name);
  const ms = performance.now() - started;
  out({ event: 'snapshot', ctid, ...snapshot, ms }, `snapshot ${snapshot.name} of ${ctid} taken in ${ms.toFixed(0)} ms`);
  return 0;
}
