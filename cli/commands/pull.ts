import { UsageError } from '../../common/errors.ts';
import { formatBytes } from '../../common/progress.ts';
import { parseCommandArgs } from '../args.ts';
import { CA_FILE_HELP, CA_FILE_OPTION, emitter, HOST_HELP, HOST_OPTIONS, openStore, sourceFor, templateRequest, warnLine } from '../host.ts';

const HELP = `
Usage: vztpl pull [REGISTRY/]NAME[@RANGE|@sha256:DIGEST] [options]

Pulls a template into the host's store: resolves the version (latest, ^1.4, ~12.2, 1.2.3, a
digest, or any tag), fetches only the layers the host lacks, several at once, verifies every
digest while it streams, and extracts each layer once, safely. Concurrent pulls share layers.
Before any layer is fetched, the trust policy is applied: a template whose entry lists keys must
carry a signature by one of them for this repository and digest (else exit 1, nothing stored);
the signatures are kept with the cached template, for the checks of later creates.

      --update          for a NAME without a version: the newest version within the major
                        version of the highest cached one (NAME@MAJOR.x), not latest; "vztpl
                        outdated" lists what it would bring
${HOST_HELP}${CA_FILE_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const args = parseCommandArgs('pull', argv, { ...HOST_OPTIONS, ...CA_FILE_OPTION, update: { type: 'boolean', default: false } }, HELP);
  if (!args) return 0;
  const [target, ...extra] = args.positionals;
  if (!target || extra.length) throw new UsageError(`pull: name one template\n${HELP}`);
  const req = await templateRequest(target);
  const { store, registry, trustPolicy } = openStore(args.values);
  if (args.values.update && req.request === 'latest') {
    // within the major version of the highest cached version of this name (from this source)
    const { default: semver } = await import('semver');
    const cached = (await store.refs()).filter((r) => r.name === req.name && (!req.source || r.source === req.source) && semver.valid(r.version));
    const highest = cached.map((r) => r.version).sort(semver.compare).at(-1);
    if (!highest) throw new UsageError(`pull --update: ${req.name} is not cached; pull it without --update first`);
    req.request = `${semver.major(highest)}.x`;
    if (!req.source) req.source = cached.find((r) => r.version === highest)!.source;
  }
  const { loadTrustPolicy } = await import('../../cache/trust-policy.ts');
  const policy = await loadTrustPolicy(trustPolicy, store.root);
  const source = await sourceFor(req, registry, args.values['ca-file']);
  const { pull } = await import('../../cache/pull.ts');
  const json = args.values.json;
  const emit = emitter(json);
  const tty = !json && process.stderr.isTTY;
  const progress = new Map<string, { received: number; size: number }>();
  const draw = () => {
    if (!tty) return;
    const received = [...progress.values()].reduce((n, p) => n + p.received, 0);
    const size = [...progress.values()].reduce((n, p) => n + p.size, 0);
    const width = 30;
    const filled = size ? Math.round((received / size) * width) : 0;
    process.stderr.write(`\r\x1b[K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${formatBytes(received)} / ${formatBytes(size)}`);
  };
  const ref = await pull({
    store,
    source,
    name: req.name,
    request: req.request,
    signal: undefined,
    trust: { policy, warn: warnLine },
    onEvent: (e) => {
      emit(e);
      if (e.event === 'layer-start') progress.set(e.digest, { received: 0, size: e.size });
      if (e.event === 'layer-progress') progress.set(e.digest, { received: e.received, size: e.size });
      if (e.event === 'layer-done' && progress.has(e.digest)) progress.set(e.digest, { received: e.size, size: e.size });
      if (e.event === 'resolved' && !json) process.stderr.write(`${e.name}@${req.request} -> ${e.version} (${e.digest.slice(0, 19)}): ${e.layers} layers, ${e.missing} to fetch\n`);
      draw();
      if (e.event === 'pulled' && !json) process.stderr.write(`${tty ? '\n' : ''}pulled ${e.name}:${e.version}: ${formatBytes(e.downloaded)} downloaded in ${e.seconds.toFixed(1)}s\n`);
    },
  });
  if (!json) process.stdout.write(`${ref.name}:${ref.version} ${ref.manifestDigest}\n`);
  return 0;
}
