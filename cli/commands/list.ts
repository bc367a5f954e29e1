import { parseCommandArgs } from '../args.ts';
import { HOST_HELP, HOST_OPTIONS, openStore } from '../host.ts';

const HELP = `
Usage: vztpl list [--json]

Lists the host's containers: CTID, template and version, layout, hostname, and whether the root
is mounted (after a reboot it is not, until the container is used again).
${HOST_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('list', argv, { ...HOST_OPTIONS }, HELP);
  if (!args) return 0;
  const { store } = openStore(args.values);
  const { listContainers } = await import('../../cache/containers.ts');
  const containers = await listContainers(store);
  if (args.values.json) {
    process.stdout.write(`${JSON.stringify(containers)}\n`);
    return 0;
  }
  const rows = containers.map((c) => [c.ctid, `${c.template.name}:${c.template.version}`, c.layout, c.hostname, c.mounted ? 'mounted' : 'unmounted']);
  const head = ['CTID', 'TEMPLATE', 'LAYOUT', 'HOSTNAME', 'ROOT'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
  return 0;
}
