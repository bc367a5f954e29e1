import semver from 'semver';
import { changeSummary } from '../../format/packages/diff.ts';
import { isVersionTag } from '../../format/versions.ts';
import type { VersionChangelog } from '../../client/registry-client.ts';
import { parseCommandArgs } from '../args.ts';
import { CA_FILE_HELP, CA_FILE_OPTION, HOST_HELP, HOST_OPTIONS, openStore } from '../host.ts';

const HELP = `
Usage: vztpl outdated [--json]

For every cached template and every container, the newer versions its registry has within the
same major version, each with its package changes in a line (from the registry's catalog:
"openssl 3.0.15-1~deb12u1 -> 3.0.16-1~deb12u1"). "vztpl pull NAME --update" brings a cached
template to the newest of them. Templates from an OCI layout directory are not checked. A
registry that cannot be reached is reported, and the others are still checked (exit 1 then).

--json prints one JSON document: {"outdated": [{kind, name, version, source, ctid?, newer: [...]}], "errors": [...]}.
${HOST_HELP}${CA_FILE_HELP}
`;

interface Newer {
  version: string;
  digest: string;
  changelog?: VersionChangelog;
  summary: string;
}

interface Entry {
  kind: 'template' | 'container';
  name: string;
  version: string;
  source: string;
  ctid?: string;
  newer: Newer[];
}

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('outdated', argv, { ...HOST_OPTIONS, ...CA_FILE_OPTION }, HELP);
  if (!args) return 0;
  const { store } = openStore(args.values);
  const [{ listContainers }, { RegistryClient }, { findCredentials }, { registrySettings, withSettings }] = await Promise.all([
    import('../../cache/containers.ts'),
    import('../../client/registry-client.ts'),
    import('../../client/credentials.ts'),
    import('../../cache/host-config.ts'),
  ]);
  const entries: Entry[] = [];
  for (const ref of await store.refs()) entries.push({ kind: 'template', name: ref.name, version: ref.version, source: ref.source, newer: [] });
  for (const ct of await listContainers(store)) entries.push({ kind: 'container', ctid: ct.ctid, name: ct.template.name, version: ct.template.version, source: ct.template.source, newer: [] });

  // one client per registry, one versions list per template, one changelog per version
  const clients = new Map<string, InstanceType<typeof RegistryClient>>();
  const client = async (source: string) => {
    if (!clients.has(source)) {
      const settings = await registrySettings(source);
      const base = withSettings(source, settings);
      clients.set(source, new RegistryClient(base, { credentials: () => findCredentials(base), caFile: args.values['ca-file'] ?? process.env.VZTPL_CA_FILE ?? settings.caFile }));
    }
    return clients.get(source)!;
  };
  const versionLists = new Map<string, Promise<Array<{ version: string; digest: string }>>>();
  const changelogs = new Map<string, Promise<VersionChangelog | undefined>>();
  const errors: Array<{ source: string; name: string; message: string }> = [];
  for (const entry of entries) {
    if (entry.source.startsWith('oci:') || !isVersionTag(entry.version)) continue;
    const key = `${entry.source} ${entry.name}`;
    try {
      const c = await client(entry.source);
      if (!versionLists.has(key)) {
        versionLists.set(
          key,
          (async () => (await c.catalogVersions(entry.name)) ?? (await c.tags(entry.name)).filter(isVersionTag).map((version) => ({ version, digest: '' })))(),
        );
      }
      const versions = await versionLists.get(key)!;
      const major = semver.major(entry.version);
      const newer = versions
        .filter((v) => isVersionTag(v.version) && !semver.prerelease(v.version) && semver.major(v.version) === major && semver.gt(v.version, entry.version))
        .sort((a, b) => semver.compare(a.version, b.version));
      for (const v of newer) {
        const ckey = `${key} ${v.version}`;
        if (!changelogs.has(ckey)) changelogs.set(ckey, c.catalogChangelog(entry.name, v.version).catch(() => undefined));
        const changelog = await changelogs.get(ckey)!;
        entry.newer.push({ version: v.version, digest: v.digest || changelog?.digest || '', ...(changelog ? { changelog } : {}), summary: changelog ? changeSummary(changelog) : 'changes unknown (not a vztpl registry)' });
      }
    } catch (err) {
      errors.push({ source: entry.source, name: entry.name, message: err instanceof Error ? err.message : String(err) });
    }
  }

  if (args.values.json) {
    process.stdout.write(`${JSON.stringify({ outdated: entries, errors })}\n`);
    return errors.length ? 1 : 0;
  }
  const out: string[] = [];
  for (const e of entries.filter((x) => x.newer.length)) {
    const what = e.kind === 'container' ? `container ${e.ctid}: ${e.name} ${e.version}` : `template ${e.name} ${e.version}`;
    out.push(`${what} -> ${e.newer.at(-1)!.version}`);
    for (const n of e.newer) out.push(`  ${n.version}: ${n.summary}${n.changelog?.recipeChanged ? ' (recipe changed)' : ''}`);
  }
  const templates = entries.filter((e) => e.kind === 'template').length;
  const containers = entries.length - templates;
  const stale = entries.filter((e) => e.newer.length).length;
  out.push(stale ? `${stale} of ${entries.length} outdated (${templates} cached templates, ${containers} containers)` : `all up to date (${templates} cached templates, ${containers} containers)`);
  process.stdout.write(`${out.join('\n')}\n`);
  for (const e of errors) process.stderr.write(`vztpl: outdated: ${e.name} at ${e.source}: ${e.message}\n`);
  return errors.length ? 1 : 0;
}
