// The host's settings: the store root and the default registry, from options, VZTPL_ROOT /
// VZTPL_REGISTRY, or /etc/vztpl/host.yaml (`root:`, `registry:`), in that order.
import { fs } from '../common/builtins.ts';
import { UsageError } from '../common/errors.ts';
import { registryBaseURL, splitReference, splitRegistry } from '../format/reference.ts';
import { DEFAULT_ROOT } from './store.ts';

export const HOST_CONFIG = '/etc/vztpl/host.yaml';

function fileSettings(path: string): { root?: string; registry?: string } {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch {
    return {};
  }
  // Two flat keys: a line parser keeps `create` free of the YAML library's start-up cost.
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*(root|registry)\s*:\s*["']?([^"'#\s]+)["']?\s*(#.*)?$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
    else if (line.trim() && !line.trim().startsWith('#')) throw new UsageError(`${path}: cannot read line "${line.trim()}" (expected root: DIR or registry: URL)`);
  }
  return out;
}

export function hostSettings(flags: { root?: string; registry?: string }): { root: string; registry?: string } {
  const file = fileSettings(process.env.VZTPL_HOST_CONFIG ?? HOST_CONFIG);
  const root = flags.root ?? process.env.VZTPL_ROOT ?? file.root ?? DEFAULT_ROOT;
  const registry = flags.registry ?? process.env.VZTPL_REGISTRY ?? file.registry;
  return { root, registry: registry ? normalizeRegistry(registry) : undefined };
}

/** A registry setting as a base URL (oci:DIR stays as it is). */
export function normalizeRegistry(value: string): string {
  return value.startsWith('oci:') ? value.replace(/\/+$/, '') : registryBaseURL(value);
}

export interface TemplateRequest {
  /** Registry base URL or oci:DIR, when the request names one. */
  source?: string;
  name: string;
  /** Range, version, tag or digest. */
  request: string;
}

/** [REGISTRY/]NAME[@RANGE|@sha256:DIGEST|:TAG], or oci:DIR[@RANGE]. */
export function parseTemplateRequest(value: string): TemplateRequest {
  if (value.startsWith('oci:')) {
    const at = value.indexOf('@');
    const dir = at === -1 ? value.slice(4) : value.slice(4, at);
    return { source: `oci:${dir}`, name: dir.split('/').filter(Boolean).pop() ?? dir, request: at === -1 ? 'latest' : value.slice(at + 1) };
  }
  const { registry: source, rest } = splitRegistry(value);
  const { name, reference } = splitReference(rest);
  const request = reference ?? 'latest';
  if (!/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(name)) throw new UsageError(`invalid template name ${JSON.stringify(name)} in ${JSON.stringify(value)}`);
  if (!request) throw new UsageError(`empty version after "@" in ${JSON.stringify(value)}`);
  return { source, name, request };
}
