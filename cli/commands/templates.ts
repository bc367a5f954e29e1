import { formatBytes } from '../../common/progress.ts';
import { parseCommandArgs } from '../args.ts';
import { HOST_HELP, HOST_OPTIONS, openStore } from '../host.ts';

const HELP = `
Usage: vztpl templates [--json]

Lists the cached templates: name, version, size of their extracted layers, the bytes they share
with other cached templates, the containers using them, and when each was last used.
${HOST_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('templates', argv, { ...HOST_OPTIONS }, HELP);
  if (!args) return 0;
  const { store } = openStore(args.values);
  const { templateUsage } = await import('../../cache/prune.ts');
  const { templates, totalBytes } = await templateUsage(store);
  if (args.values.json) {
    process.stdout.write(`${JSON.stringify({ totalBytes, templates: templates.map((t) => ({ name: t.ref.name, version: t.ref.version, digest: t.ref.manifestDigest, source: t.ref.source, bytes: t.bytes, shared: t.shared, containers: t.containers, lastUsed: t.ref.lastUsed })) })}\n`);
    return 0;
  }
  const rows = templates.map((t) => [t.ref.name, t.ref.version, formatBytes(t.bytes), formatBytes(t.shared), String(t.containers), t.ref.lastUsed.slice(0, 19).replace('T', ' ')]);
  const head = ['NAME', 'VERSION', 'SIZE', 'SHARED', 'CONTAINERS', 'LAST USED'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
  process.stdout.write(`total on disk: ${formatBytes(totalBytes)} (shared layers counted once)\n`);
  return 0;
}
