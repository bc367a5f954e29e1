import { UsageError } from '../../common/errors.ts';
import { parseCommandArgs } from '../args.ts';
import { HOST_HELP, HOST_OPTIONS, openStore } from '../host.ts';

const HELP = `
Usage: vztpl rollback CTID NAME [--force]

Returns an overlay container to snapshot NAME: the snapshots taken after it and the changes
made since are dropped (asked on a terminal; elsewhere --force says so). Milliseconds, whatever
the container's size. Refused while a process of the container runs.
${HOST_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('rollback', argv, { ...HOST_OPTIONS, force: { type: 'boolean', default: false } }, HELP);
  if (!args) return 0;
  const [ctid, name, ...extra] = args.positionals;
  if (!ctid || !name || extra.length) throw new UsageError(`rollback: name a CTID and a snapshot\n${HELP}`);
  const { store } = openStore(args.values);
  if (!args.values.force) {
    if (!process.stdin.isTTY) throw new UsageError(`rollback: the changes to ${ctid} since snapshot ${name} would be lost: add --force`);
    const { readContainer } = await import('../../cache/containers.ts');
    const record = await readContainer(store, ctid);
    const later = (record.snapshots ?? []).slice((record.snapshots ?? []).findIndex((s) => s.name === name) + 1).map((s) => s.name);
    const { promptLine } = await import('../prompt.ts');
    const answer = await promptLine(`Roll ${ctid} back to ${name}, dropping ${later.length ? `snapshots ${later.join(', ')} and ` : ''}the changes since? [y/N] `);
    if (!/^y(es)?$/i.test(answer)) {
      process.stderr.write('rollback: nothing changed\n');
      return 1;
    }
  }
  const { rollbackContainer } = await import('../../cache/snapshots.ts');
  const started = performance.now();
  const { dropped } = await rollbackContainer(store, ctid, name);
  const ms = performance.now() - started;
  if (args.values.json) process.stdout.write(`${JSON.stringify({ event: 'rollback', ctid, name, dropped, ms })}\n`);
  else process.stdout.write(`rolled ${ctid} back to ${name}${dropped.length ? ` (dropped ${dropped.join(', ')})` : ''} in ${ms.toFixed(0)} ms\n`);
  return 0;
}
