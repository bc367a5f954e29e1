import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { parseCommandArgs } from '../args.ts';
import { HOST_HELP, HOST_OPTIONS, openStore } from '../host.ts';

const HELP = `
Usage: vztpl cache prune [--max-size SIZE]

Removes least recently used templates until the cache fits SIZE (e.g. 20G, 500M; default 0:
every template no container uses), then every layer nothing needs. Layers of existing
containers are never removed.
${HOST_HELP}
`;

function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(value.trim());
  if (!m) throw new UsageError(`cache prune: --max-size must be a size such as 20G or 500M, not "${value}"`);
  const unit = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * unit);
}

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('cache', argv, { ...HOST_OPTIONS, 'max-size': { type: 'string', default: '0' } }, HELP);
  if (!args) return 0;
  const [sub, ...extra] = args.positionals;
  if (sub !== 'prune' || extra.length) throw new UsageError(`cache: unknown subcommand ${JSON.stringify(args.positionals.join(' '))}\n${HELP}`);
  const { store } = openStore(args.values);
  const { prune } = await import('../../cache/prune.ts');
  const report = await prune(store, parseSize(args.values['max-size'] as string));
  if (args.values.json) process.stdout.write(`${JSON.stringify({ event: 'pruned', ...report })}\n`);
  else process.stdout.write(`removed ${report.removedTemplates.length} templates (${report.removedTemplates.join(', ') || 'none'}) and ${report.removedLayers.length} layers: ${formatBytes(report.freedBytes)} freed, ${formatBytes(report.totalBytes)} left\n`);
  return 0;
}
