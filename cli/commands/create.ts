import { UsageError } from '../../common/errors.ts';
import { parseCommandArgs } from '../args.ts';
import { CA_FILE_HELP, CA_FILE_OPTION, emitter, HOST_HELP, HOST_OPTIONS, openStore, sourceFor, sourceForId, templateRequest, warnLine } from '../host.ts';

const HELP = `
Usage: vztpl create CTID --ostemplate [REGISTRY/]NAME[@RANGE] [--layout overlay|reflink|copy] [--hostname H]

Creates a container from a template. A cached version that satisfies the range is used (so this
works with the registry down); otherwise the template is pulled first. The trust policy applies
to both: a pull verifies the signatures first; a cached template is checked against the
signatures kept with it (offline), or those at its registry when none of those verifies.
  overlay (default): the template's layers mounted read-only under a private upper dir:
                     milliseconds, whatever the template's size
  reflink, copy:     an independent private tree (reflink needs XFS/btrfs)
The container gets its hostname, a fresh machine-id, and an OCI bundle (config.json) for runc.
${HOST_HELP}${CA_FILE_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs(
    'create',
    argv,
    { ...HOST_OPTIONS, ...CA_FILE_OPTION, ostemplate: { type: 'string' }, layout: { type: 'string', default: 'overlay' }, hostname: { type: 'string' } },
    HELP,
  );
  if (!args) return 0;
  const [ctid, ...extra] = args.positionals;
  if (!ctid || extra.length) throw new UsageError(`create: name one CTID\n${HELP}`);
  if (!args.values.ostemplate) throw new UsageError(`create: --ostemplate NAME is required\n${HELP}`);
  const layout = args.values.layout as string;
  if (layout !== 'overlay' && layout !== 'reflink' && layout !== 'copy') throw new UsageError(`create: --layout must be overlay, reflink or copy, not "${layout}"`);
  const req = await templateRequest(args.values.ostemplate);
  const { store, registry, trustPolicy } = openStore(args.values);
  const { createContainer, pickCached, checkCtid, TemplateGoneError } = await import('../../cache/containers.ts');
  checkCtid(ctid);
  await store.init();
  // Without a policy (the default) nothing of the trust code is loaded: a cached create stays fast.
  const trust = trustPolicy ? await import('../../cache/trust-policy.ts') : undefined;
  const policy = trust ? await trust.loadTrustPolicy(trustPolicy, store.root) : undefined;
  // A prune may remove the cached template between the pick and the create's hold on it: then
  // the template is picked (or pulled) again.
  let record;
  for (let attempt = 1; ; attempt++) {
    const refs = await store.refs();
    let template = await pickCached(req.source ? refs.filter((r) => r.source === req.source) : refs, req.name, req.request);
    if (!template) {
      const { pull } = await import('../../cache/pull.ts');
      template = await pull({ store, source: await sourceFor(req, registry, args.values['ca-file']), name: req.name, request: req.request, onEvent: emitter(args.values.json), trust: { policy, warn: warnLine } });
    } else {
      const decision = trust?.decide(policy, trust.trustSubject(template.source, template.name));
      if (decision?.verify) {
        const { checkCached } = await import('../../cache/trust.ts');
        const cached = template;
        await checkCached(store, cached, decision, () => sourceForId(cached.source, args.values['ca-file']));
      }
      await store.touchRef(template).catch(() => undefined);
    }
    try {
      record = await createContainer({ store, ctid, template, layout, hostname: args.values.hostname });
      break;
    } catch (err) {
      if (!(err instanceof TemplateGoneError) || attempt === 3) throw err;
    }
  }
  const { template } = record;
  if (args.values.json) emitter(true)({ event: 'created', ...record });
  else process.stdout.write(`created ${ctid} from ${template.name}:${template.version} (${layout}) at ${store.containerDir(ctid)}\n`);
  return 0;
}
