import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { loadConfig } from '../../registry/config.ts';
import { parseCommandArgs } from '../args.ts';

const HELP = `
Usage: vztpl gc [--storage fs:DIR|s3://BUCKET[/PREFIX]] [--config FILE] [--grace DURATION] [--dry-run] [--json]

Collects garbage in a registry's storage while it keeps serving: blobs no manifest names
and uploads abandoned for longer than the grace period (default 1h; e.g. 30m, 2h, 0s).
Runs against the same storage settings as "vztpl serve" (flags, VZTPL_* variables, config file).
--dry-run lists what would be deleted and changes nothing.
`;

function parseDuration(value: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(value);
  if (!m) throw new UsageError(`gc: --grace must be a duration such as 30m or 2h, not "${value}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs(
    'gc',
    argv,
    {
      storage: { type: 'string' },
      config: { type: 'string' },
      's3-endpoint': { type: 'string' },
      's3-path-style': { type: 'boolean' },
      grace: { type: 'string', default: '1h' },
      'dry-run': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    HELP,
  );
  if (!args) return 0;
  const config = await loadConfig({
    file: args.values.config,
    flags: { storage: args.values.storage, 's3.endpoint': args.values['s3-endpoint'], 's3.pathStyle': args.values['s3-path-style'] },
  });
  const gracePeriodMs = parseDuration(args.values.grace as string);
  const { createDriver } = await import('../../registry/storage/factory.ts');
  const { Registry } = await import('../../registry/registry.ts');
  const { collectGarbage } = await import('../../registry/gc.ts');
  const registry = new Registry(await createDriver(config));
  const json = args.values.json;
  const report = await collectGarbage(registry, {
    gracePeriodMs,
    dryRun: args.values['dry-run'],
    log: (event) => {
      if (json) process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
      else if (event.event === 'gc-would-delete' || event.event === 'gc-deleted') process.stdout.write(`${event.event === 'gc-deleted' ? 'deleted' : 'would delete'} ${event.digest}\n`);
      else if (event.event === 'gc-would-delete-upload' || event.event === 'gc-deleted-upload') process.stdout.write(`${event.event === 'gc-deleted-upload' ? 'deleted' : 'would delete'} upload ${event.upload}\n`);
    },
  });
  if (json) process.stdout.write(`${JSON.stringify({ event: 'gc-done', ...report, blobs: report.blobs.length })}\n`);
  else {
    const verb = report.dryRun ? 'would free' : 'freed';
    process.stderr.write(
      `gc: ${report.marked} blobs in use; ${verb} ${formatBytes(report.bytes)} in ${report.blobs.length} blobs and ${report.uploads.length} stale uploads` +
        `${report.restored ? `; ${report.restored} restored for pushes that ran meanwhile` : ''} (${report.seconds.toFixed(1)}s)\n`,
    );
  }
  return 0;
}
