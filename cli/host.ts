// What the host-side commands share: --root/--registry/--trust-policy, the store, template sources.
import { fs } from '../common/builtins.ts';
import { ExitCode, UsageError, VztplError } from '../common/errors.ts';
import { checkTemplateRequest, hostSettings, parseTemplateRequest, type TemplateRequest } from '../cache/host-config.ts';
import { Store } from '../cache/store.ts';

export const HOST_OPTIONS = {
  root: { type: 'string' },
  registry: { type: 'string' },
  'trust-policy': { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

export const HOST_HELP = `
Global options:
      --root DIR        the store (default: $VZTPL_ROOT, /etc/vztpl/host.yaml root:, or /var/lib/vztpl)
      --registry URL    registry to pull from when a name has none (default: $VZTPL_REGISTRY or
                        /etc/vztpl/host.yaml registry:); any OCI registry works, or oci:DIR
      --trust-policy FILE  the keys templates must be signed by (a trust: list as in
                        /etc/vztpl/host.yaml, which is read when this is not given)
      --json            NDJSON events on stdout`;

/** The store the settings name; a root that exists but is no directory is refused (exit 2). */
export function openStore(values: { root?: string; registry?: string; 'trust-policy'?: string }): { store: Store; registry?: string; trustPolicy?: string } {
  const settings = hostSettings(values);
  const stat = fs.statSync(settings.root, { throwIfNoEntry: false });
  if (stat && !stat.isDirectory()) throw new UsageError(`the store ${settings.root} is not a directory (--root, VZTPL_ROOT or root: in the host config)`);
  return { store: new Store(settings.root), registry: settings.registry, trustPolicy: settings.trustPolicy };
}

/** Warnings of the trust policy (accepted without verifying): one line on stderr. */
export function warnLine(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** A template request from the command line, refused (exit 2) when no version could match it. */
export async function templateRequest(value: string): Promise<TemplateRequest> {
  const req = parseTemplateRequest(value);
  await checkTemplateRequest(req, value);
  return req;
}

/** --ca-file of the commands that reach a registry (pull, create). */
export const CA_FILE_OPTION = { 'ca-file': { type: 'string' } } as const;

export const CA_FILE_HELP = `
      --ca-file FILE    CA certificates (PEM) an HTTPS registry's certificate may chain to,
                        besides the system's (default: $VZTPL_CA_FILE)`;

/** The source a template request names, or the default registry. */
export async function sourceFor(req: TemplateRequest, registry: string | undefined, caFile?: string) {
  const id = req.source ?? registry;
  if (!id) throw new VztplError(`${req.name} is not cached and no registry is configured (use --registry URL, VZTPL_REGISTRY, or name one: 127.0.0.1:5000/${req.name})`, ExitCode.notFound);
  return sourceForId(id, caFile);
}

/** The source of a registry base URL or oci:DIR (as template references record it). */
export async function sourceForId(id: string, caFile?: string) {
  const { LayoutSource, RegistrySource } = await import('../cache/source.ts');
  if (id.startsWith('oci:')) return new LayoutSource(id.slice(4));
  // host.yaml's settings for this registry: plain HTTP when insecure; its CA file unless
  // --ca-file or $VZTPL_CA_FILE says otherwise.
  const { registrySettings, withSettings } = await import('../cache/host-config.ts');
  const settings = await registrySettings(id);
  const base = withSettings(id, settings);
  const [{ RegistryClient }, { findCredentials }] = await Promise.all([import('../client/registry-client.ts'), import('../client/credentials.ts')]);
  return new RegistrySource(base, new RegistryClient(base, { credentials: () => findCredentials(base), caFile: caFile ?? process.env.VZTPL_CA_FILE ?? settings.caFile }));
}


export function emitter(json: boolean) {
  return (event: Record<string, unknown>) => {
    if (json) process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
  };
}
