// What the host-side commands share: --root/--registry, the store, and template sources.
import { fs } from '../common/builtins.ts';
import { ExitCode, UsageError, VztplError } from '../common/errors.ts';
import { checkTemplateRequest, hostSettings, parseTemplateRequest, type TemplateRequest } from '../cache/host-config.ts';
import { Store } from '../cache/store.ts';

export const HOST_OPTIONS = {
  root: { type: 'string' },
  registry: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

export const HOST_HELP = `
Global options:
      --root DIR        the store (default: $VZTPL_ROOT, /etc/vztpl/host.yaml root:, or /var/lib/vztpl)
      --registry URL    registry to pull from when a name has none (default: $VZTPL_REGISTRY or
                        /etc/vztpl/host.yaml registry:); any OCI registry works, or oci:DIR
      --json            NDJSON events on stdout`;

/** The store the settings name; a root that exists but is no directory is refused (exit 2). */
export function openStore(values: { root?: string; registry?: string }): { store: Store; registry?: string } {
  const settings = hostSettings(values);
  const stat = fs.statSync(settings.root, { throwIfNoEntry: false });
  if (stat && !stat.isDirectory()) throw new UsageError(`the store ${settings.root} is not a directory (--root, VZTPL_ROOT or root: in the host config)`);
  return { store: new Store(settings.root), registry: settings.registry };
}

/** A template request from the command line, refused (exit 2) when no version could match it. */
export async function templateRequest(value: string): Promise<TemplateRequest> {
  const req = parseTemplateRequest(value);
  await checkTemplateRequest(req, value);
  return req;
}

/** The source a template request names, or the default registry. */
export async function sourceFor(req: TemplateRequest, registry: string | undefined) {
  const id = req.source ?? registry;
  if (!id) throw new VztplError(`${req.name} is not cached and no registry is configured (use --registry URL, VZTPL_REGISTRY, or name one: 127.0.0.1:5000/${req.name})`, ExitCode.notFound);
  const { LayoutSource, RegistrySource } = await import('../cache/source.ts');
  if (id.startsWith('oci:')) return new LayoutSource(id.slice(4));
  const [{ RegistryClient }, { findCredentials }] = await Promise.all([import('../client/registry-client.ts'), import('../client/credentials.ts')]);
  return new RegistrySource(id, new RegistryClient(id, { credentials: () => findCredentials(id) }));
}


export function emitter(json: boolean) {
  return (event: Record<string, unknown>) => {
    if (json) process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
  };
}
