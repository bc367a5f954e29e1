import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { parseCommandArgs } from '../args.ts';
import { CA_FILE_HELP, CA_FILE_OPTION, emitter, HOST_HELP, HOST_OPTIONS, openStore, sourceForId, warnLine } from '../host.ts';

const HELP = `
Usage: vztpl restore REGISTRY/REPO:TAG CTID

Recreates a container from a backup (vztpl backup) on this host, with its hostname,
machine-id and snapshots. Only what the host lacks is fetched: the template through the usual
pull (trust policy, verified digests, layers shared with a cached template), the backup's own
layers verified and safely extracted into the store. The container appears whole or not at
all; a backup is refused, with nothing created, when anything in it is malformed or unsafe.
${HOST_HELP}${CA_FILE_HELP}
`;

/** REGISTRY/REPO[:TAG] of backup, backups, move: the client and where. */
export async function backupTarget(command: string, value: string, caFile: string | undefined, defaultTag?: string) {
  const { parseImageReference, RegistryClient } = await import('../../client/registry-client.ts');
  const { findCredentials } = await import('../../client/credentials.ts');
  const ref = parseImageReference(value);
  const tag = ref.reference ?? defaultTag;
  if (tag !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(tag) && !/^sha256:[0-9a-f]{64}$/.test(tag)) throw new UsageError(`${command}: invalid tag ${JSON.stringify(tag)}`);
  if (!/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(ref.repository)) throw new UsageError(`${command}: invalid repository ${JSON.stringify(ref.repository)}`);
  const client = new RegistryClient(ref.registry, { credentials: () => findCredentials(ref.registry), caFile });
  return { client, registry: ref.registry, repository: ref.repository, tag: tag ?? '' };
}

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('restore', argv, { ...HOST_OPTIONS, ...CA_FILE_OPTION }, HELP);
  if (!args) return 0;
  const [from, ctid, ...extra] = args.positionals;
  if (!from || !ctid || extra.length) throw new UsageError(`restore: name a backup REGISTRY/REPO:TAG and a CTID\n${HELP}`);
  const { store, trustPolicy } = openStore(args.values);
  const src = await backupTarget('restore', from, args.values['ca-file']);
  if (!src.tag) throw new UsageError(`restore: ${from}: name the backup's tag (vztpl backups ${from} lists them)`);
  const { checkCtid } = await import('../../cache/containers.ts');
  checkCtid(ctid);
  await store.init();
  const trust = trustPolicy ? await import('../../cache/trust-policy.ts') : undefined;
  const policy = trust ? await trust.loadTrustPolicy(trustPolicy, store.root) : undefined;
  const { restoreBackup } = await import('../../cache/backup.ts');
  const started = performance.now();
  const result = await restoreBackup({
    store,
    ctid,
    client: src.client,
    registry: src.registry,
    repository: src.repository,
    reference: src.tag,
    sourceFor: (id) => sourceForId(id, args.values['ca-file']),
    trust: { policy, warn: warnLine },
    onEvent: emitter(args.values.json),
  });
  const seconds = (performance.now() - started) / 1000;
  const r = result.record;
  if (args.values.json) emitter(true)({ event: 'restored', ...r, digest: result.digest, downloaded: result.downloaded, templatePulled: result.templatePulled, seconds });
  else process.stdout.write(`restored ${ctid} (${r.hostname}) from ${src.repository}:${src.tag}: ${r.template.name}:${r.template.version}${result.templatePulled ? ' (pulled)' : ' (cached)'}, ${r.snapshots?.length ?? 0} snapshots, ${formatBytes(result.downloaded)} fetched in ${seconds.toFixed(2)} s\n`);
  return 0;
}
