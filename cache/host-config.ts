// The host's settings: the store root and the default registry, from options, VZTPL_ROOT /
// VZTPL_REGISTRY, or /etc/vztpl/host.yaml (`root:`, `registry:`), in that order; and where the
// trust policy is (--trust-policy FILE, or host.yaml's `trust:` section: cache/trust-policy.ts).
import { dirname, resolve } from 'node:path';
import { fs } from '../common/builtins.ts';
import { UsageError } from '../common/errors.ts';
import { isDigest } from '../format/digest.ts';
import { registryBaseURL, splitReference, splitRegistry } from '../format/reference.ts';
import { DEFAULT_ROOT } from './store.ts';

export const HOST_CONFIG = '/etc/vztpl/host.yaml';

interface FileSettings {
  root?: string;
  registry?: string;
  /** CA certificates (PEM) every registry's certificate may chain to. */
  caFile?: string;
  /** The file has a `trust:` section (read by cache/trust-policy.ts, with the YAML library). */
  trust?: boolean;
  /** The file has a `registries:` section (per-registry settings: registrySettings). */
  registries?: boolean;
  text?: string;
}

function fileSettings(path: string): FileSettings {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch {
    return {};
  }
  // Flat keys: a line parser keeps `create` free of the YAML library's start-up cost. The
  // `trust:` and `registries:` sections (their lines indented, or "- " items) are skipped here
  // and read with the YAML library only by the commands that need them, when they are there.
  const out: FileSettings = { text };
  let inSection = false;
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith('#')) continue;
    if (inSection && (/^\s/.test(line) || line.startsWith('-'))) continue;
    inSection = false;
    const m = /^\s*(root|registry|caFile)\s*:\s*["']?([^"'#\s]+)["']?\s*(#.*)?$/.exec(line);
    if (m) out[m[1] as 'root' | 'registry' | 'caFile'] = m[2]!;
    else if (/^trust\s*:/.test(line)) out.trust = inSection = true;
    else if (/^registries\s*:/.test(line)) out.registries = inSection = true;
    else throw new UsageError(`${path}: cannot read line "${trimmed}" (expected root: DIR, registry: URL, caFile: FILE, a trust: list or a registries: map)`);
  }
  return out;
}

export interface RegistrySettings {
  /** CA certificates (PEM) the registry's certificate may chain to, besides the system's. */
  caFile?: string;
  /** Plain HTTP: a bare HOST:PORT of this registry means http://, as for loopback addresses. */
  insecure?: boolean;
}

/**
 * The host config's settings for one registry (base URL): its entry under `registries:` (keyed
 * by HOST[:PORT]), over the file's `caFile:`. Paths are relative to the config file.
 *   caFile: /etc/vztpl/ca.pem
 *   registries:
 *     registry.example.net:5000: { insecure: true }
 *     templates.example.org: { caFile: example-ca.pem }
 */
export async function registrySettings(base: string): Promise<RegistrySettings> {
  const path = hostConfigPath();
  const file = fileSettings(path);
  const relative = (p: string | undefined) => (p === undefined ? undefined : resolve(dirname(path), p));
  let own: RegistrySettings = {};
  if (file.registries) {
    const [{ parse }, { z }] = await Promise.all([import('yaml'), import('zod')]);
    const schema = z.object({ registries: z.record(z.string(), z.strictObject({ caFile: z.string().min(1).optional(), insecure: z.boolean().optional() })) });
    let doc: unknown;
    try {
      doc = parse(file.text!);
    } catch (err) {
      throw new UsageError(`${path}: ${(err as Error).message}`);
    }
    const checked = schema.safeParse(doc);
    if (!checked.success) {
      const issue = checked.error.issues[0]!;
      throw new UsageError(`${path}: ${issue.path.join('.')}: ${issue.message} (registries: maps HOST[:PORT] to { caFile: FILE, insecure: true })`);
    }
    own = checked.data.registries[new URL(base).host] ?? {};
  }
  return { caFile: relative(own.caFile ?? file.caFile), insecure: own.insecure };
}

/** The base URL to use for a registry: http:// for one its settings call insecure. */
export function withSettings(base: string, settings: RegistrySettings): string {
  return settings.insecure && base.startsWith('https://') ? `http://${base.slice('https://'.length)}` : base;
}

/** The host config file: VZTPL_HOST_CONFIG, else /etc/vztpl/host.yaml. */
export function hostConfigPath(): string {
  return process.env.VZTPL_HOST_CONFIG ?? HOST_CONFIG;
}

export interface HostSettings {
  root: string;
  registry?: string;
  /** Where the trust policy is: --trust-policy FILE, else the host config when it has a trust: section. */
  trustPolicy?: string;
}

export function hostSettings(flags: { root?: string; registry?: string; 'trust-policy'?: string }): HostSettings {
  const configFile = hostConfigPath();
  const file = fileSettings(configFile);
  const root = flags.root ?? process.env.VZTPL_ROOT ?? file.root ?? DEFAULT_ROOT;
  if (!root) throw new UsageError('the store root is empty (--root, VZTPL_ROOT or root: in the host config)');
  const registry = flags.registry ?? process.env.VZTPL_REGISTRY ?? file.registry;
  if (flags['trust-policy'] === '') throw new UsageError('--trust-policy: give a file');
  const trustPolicy = flags['trust-policy'] !== undefined ? resolve(flags['trust-policy']) : file.trust ? resolve(configFile) : undefined;
  // Relative paths are the working directory's: resolved once, here, so that no later step
  // (a mount run in another directory, a lock path) reads them differently.
  return { root: resolve(root), registry: registry ? normalizeRegistry(registry) : undefined, ...(trustPolicy ? { trustPolicy } : {}) };
}

/** A registry setting as a base URL; oci:DIR as an absolute layout directory. */
export function normalizeRegistry(value: string): string {
  if (value.startsWith('oci:')) {
    if (value.length === 4) throw new UsageError(`invalid registry ${JSON.stringify(value)}: oci: needs a directory`);
    return `oci:${resolve(value.slice(4))}`;
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(value)?.[1];
  const refuse = () => new UsageError(`invalid registry ${JSON.stringify(value)}: give HOST[:PORT], http://HOST[:PORT] or https://HOST[:PORT]`);
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') throw refuse();
  if (!value.slice(scheme === undefined ? 0 : scheme.length + 3).replace(/\/+$/, '')) throw refuse();
  const base = registryBaseURL(value);
  let url: URL | undefined;
  try {
    url = new URL(base);
  } catch {
    url = undefined;
  }
  if (!url || !url.hostname || url.search || url.hash || url.username || url.password || (url.pathname !== '/' && url.pathname !== '')) throw refuse();
  return base;
}

/** OCI tag grammar: latest, versions, aliases and any other tag. */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/**
 * Refuses a version request that can never match: neither a tag, a digest, nor a semver range.
 * The semver library is loaded only for what looks like a range (`^1.4`, `>=1 <2`).
 */
export async function checkTemplateRequest(req: TemplateRequest, given: string): Promise<void> {
  const r = req.request;
  if (r.startsWith('sha256:')) {
    if (!isDigest(r)) throw new UsageError(`invalid digest ${JSON.stringify(r)} in ${JSON.stringify(given)}: expected sha256: and 64 hex digits`);
    return;
  }
  if (TAG.test(r)) return;
  const { isValidRange } = await import('../format/versions.ts');
  if (!isValidRange(r)) throw new UsageError(`invalid version ${JSON.stringify(r)} in ${JSON.stringify(given)}: expected a version (1.2.3), a range (^1.4, ~12.2, >=1 <2), a tag or a digest`);
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
    return { source: normalizeRegistry(`oci:${dir}`), name: dir.split('/').filter(Boolean).pop() ?? dir, request: at === -1 ? 'latest' : value.slice(at + 1) };
  }
  const { registry: source, rest } = splitRegistry(value);
  const { name, reference } = splitReference(rest);
  const request = reference ?? 'latest';
  if (!/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(name)) throw new UsageError(`invalid template name ${JSON.stringify(name)} in ${JSON.stringify(value)}`);
  if (!request) throw new UsageError(`empty version after "@" in ${JSON.stringify(value)}`);
  return { source: source === undefined ? undefined : normalizeRegistry(source), name, request };
}
