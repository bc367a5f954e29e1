// Image references as users write them: [scheme://]REGISTRY/NAME[:TAG|@REF]. Shared by
// `vztpl push` (client/registry-client.ts) and the host's template requests (cache/host-config.ts); kept
// free of imports so that `vztpl create` loads nothing more for it.

/** "127.0.0.1:5000" -> "http://127.0.0.1:5000": plain http for loopback hosts, https otherwise; a given scheme is kept. */
export function registryBaseURL(value: string): string {
  const trimmed = value.replace(/\/+$/, '');
  if (/^https?:\/\//.test(trimmed)) return trimmed;
  const host = trimmed.replace(/\/.*$/, '').replace(/:\d+$/, '');
  const loopback = host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
  return `${loopback ? 'http' : 'https'}://${trimmed}`;
}

/**
 * Splits a leading registry off a reference. The first component names a registry when it has
 * a '.' or ':' or is 'localhost' (as docker and podman decide).
 */
export function splitRegistry(value: string): { registry?: string; rest: string } {
  const scheme = /^(https?:\/\/)/.exec(value)?.[1] ?? '';
  const rest = value.slice(scheme.length);
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  if (!first || !(first.includes('.') || first.includes(':') || first === 'localhost')) return { rest: value };
  return { registry: registryBaseURL(`${scheme}${first}`), rest: rest.slice(slash + 1) };
}

/** NAME@REF or NAME:TAG (a ':' after the last '/'), or NAME alone. */
export function splitReference(path: string): { name: string; reference?: string } {
  const at = path.indexOf('@');
  if (at !== -1) return { name: path.slice(0, at), reference: path.slice(at + 1) };
  const colon = path.lastIndexOf(':');
  if (colon > path.lastIndexOf('/')) return { name: path.slice(0, colon), reference: path.slice(colon + 1) };
  return { name: path };
}
