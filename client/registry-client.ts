// A small OCI Distribution client (fetch-based): what `vztpl push` and the host cache need.
// Blobs go up in one streamed PUT after a HEAD shows they are missing, so a re-push of a
// template sends only the layers the registry lacks.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ExitCode, VztplError } from '../common/errors.ts';
import { splitReference, splitRegistry } from '../format/reference.ts';
import { registryKey, type Credentials } from './credentials.ts';
import { httpsDispatcher, httpsHint, tlsFailure, type Dispatcher } from './tls.ts';
import type { Digest } from '../format/digest.ts';
import type { Descriptor, TemplateChangelog } from '../format/oci.ts';

/** A version's changelog as the catalog API gives it (registry/catalog.ts VersionChangelog). */
export interface VersionChangelog extends TemplateChangelog {
  name: string;
  version: string;
  digest: Digest;
  recorded: boolean;
}

export interface ImageReference {
  /** Base URL of the registry, e.g. http://127.0.0.1:5000 */
  registry: string;
  repository: string;
  /** Tag or digest. */
  reference?: string;
}

/**
 * Parses REGISTRY/NAME[:TAG|@DIGEST]. The registry is the first component when it has a '.'
 * or ':' or is 'localhost'; plain http is used for loopback hosts unless a scheme is given.
 */
export function parseImageReference(value: string): ImageReference {
  const { registry, rest } = splitRegistry(value);
  if (!registry) throw new VztplError(`${value}: name the registry, as in 127.0.0.1:5000/${rest.replace(/^https?:\/\//, '')}`, 2);
  const { name, reference } = splitReference(rest);
  return { registry, repository: name, reference };
}

export class RegistryError extends VztplError {
  readonly status: number;
  readonly code?: string;
  constructor(what: string, status: number, body: string, hint?: string) {
    let code: string | undefined;
    let message = body.slice(0, 300);
    try {
      const parsed = JSON.parse(body) as { errors?: Array<{ code: string; message: string }> };
      const first = parsed.errors?.[0];
      if (first) {
        code = first.code;
        message = `${first.code}: ${first.message}`;
      }
    } catch {
      /* not JSON */
    }
    // HEAD answers have no body: name the standard code of an auth failure anyway.
    if (!message && status === 401) message = 'UNAUTHORIZED: authentication required';
    if (!message && status === 403) message = 'DENIED: access denied';
    super(`${what}: HTTP ${status}${message ? ` ${message}` : ''}${hint ? `\n${hint}` : ''}`);
    this.status = status;
    this.code = code;
  }
}

/** A WWW-Authenticate challenge: Bearer realm="...",service="...",scope="..." or Basic realm="...". */
export interface Challenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

export function parseChallenge(header: string | null | undefined): Challenge | undefined {
  const m = /^\s*(bearer|basic)\b(.*)$/i.exec(header ?? '');
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme: m[1]!.toLowerCase() as Challenge['scheme'], params };
}

export interface RegistryClientOptions {
  /** A fixed Authorization header (sent until the registry asks for something else). */
  authorization?: string;
  /** For the registry's token endpoint (or Basic auth); a function is called once, when first needed. */
  credentials?: Credentials | (() => Promise<Credentials | undefined>);
  /**
   * A PEM file of CA certificates trusted for HTTPS besides the system's (--ca-file); default
   * $VZTPL_CA_FILE. Unused for plain http:// registries.
   */
  caFile?: string;
}

type Body = Buffer | (() => Readable);

interface RequestInit2 {
  headers?: Record<string, string>;
  body?: Body;
  what: string;
  ok?: number[];
  /** The repository the request acts on, for the token's scope (pull for reads, pull+push else). */
  repo?: string;
}

/**
 * Handles registry auth as docker and podman do: on a 401 with a Bearer challenge it gets a token
 * for the repository's scope from the realm (with the credentials, or anonymously) and retries
 * once; later requests reuse the token, or get one with more actions before they are sent, so a
 * streamed upload is never refused half-way for want of a token.
 */
/** The registry's token endpoint refused the user name and password. */
export class CredentialsRejectedError extends VztplError {}

export class RegistryClient {
  readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly credentialSource: RegistryClientOptions['credentials'];
  private credentials: Credentials | undefined | null = null;
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, { token: string; actions: Set<string>; expires: number }>();
  readonly caFile: string | undefined;

  constructor(base: string, opts: RegistryClientOptions = {}) {
    this.base = base.replace(/\/+$/, '');
    this.headers = opts.authorization ? { authorization: opts.authorization } : {};
    this.credentialSource = opts.credentials;
    this.caFile = opts.caFile || process.env.VZTPL_CA_FILE || undefined;
  }

  /**
   * fetch with this client's trust for https: URLs (the system CAs and the CA file); a failed
   * TLS verification is a CertificateError naming the host and the reason.
   */
  private async fetch(url: string | URL, init: RequestInit, what: string): Promise<Response> {
    const href = String(url);
    const dispatcher: Dispatcher | undefined = href.startsWith('https:') ? await httpsDispatcher(this.caFile) : undefined;
    try {
      return await fetch(url, (dispatcher ? { ...init, dispatcher } : init) as RequestInit);
    } catch (err) {
      const tls = tlsFailure(href, err, this.caFile);
      if (tls) {
        tls.message = `${what}: ${tls.message}`;
        throw tls;
      }
      throw err;
    }
  }

  private async creds(): Promise<Credentials | undefined> {
    if (this.credentials === null) this.credentials = typeof this.credentialSource === 'function' ? await this.credentialSource() : this.credentialSource;
    return this.credentials;
  }

  /** The Authorization header for a request, fetching a token when the registry wants one. */
  private async authorization(repo: string | undefined, actions: string[], fresh: boolean): Promise<string | undefined> {
    const challenge = this.challenge;
    if (!challenge) return this.headers.authorization;
    const creds = await this.creds();
    if (challenge.scheme === 'basic') return creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : this.headers.authorization;
    const key = repo ? `repository:${repo}` : '';
    const cached = this.tokens.get(key);
    const wanted = new Set([...(repo ? actions : []), ...(cached?.actions ?? [])]);
    if (!fresh && cached && cached.expires > Date.now() && [...wanted].every((a) => cached.actions.has(a))) return `Bearer ${cached.token}`;
    const scopes = repo ? [`${key}:${[...wanted].join(',')}`] : [];
    const token = await this.fetchToken(challenge, scopes, creds);
    this.tokens.set(key, { token: token.token, actions: wanted, expires: Date.now() + (token.expiresIn - 10) * 1000 });
    return `Bearer ${token.token}`;
  }

  private async fetchToken(challenge: Challenge, scopes: string[], creds: Credentials | undefined): Promise<{ token: string; expiresIn: number }> {
    const realm = challenge.params.realm;
    if (!realm) throw new VztplError(`${this.base} asked for a token but named no realm`);
    const url = new URL(realm, this.base);
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    if (creds) url.searchParams.set('account', creds.username);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = creds ? { authorization: `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` } : {};
    let res: Response;
    try {
      res = await this.fetch(url, { headers }, `token from ${url.origin}${url.pathname}`);
    } catch (err) {
      if (err instanceof VztplError) throw err;
      throw new VztplError(`token from ${url.origin}${url.pathname}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
    }
    if (res.status === 401 && creds) {
      await res.body?.cancel();
      throw new CredentialsRejectedError(`${registryKey(this.base)} rejected the credentials of ${creds.username}: wrong user name or password (log in again with "vztpl login ${registryKey(this.base)}")`);
    }
    if (res.status !== 200) throw new RegistryError(`token from ${url.origin}${url.pathname}`, res.status, await res.text());
    const body = (await res.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new VztplError(`token from ${url.origin}${url.pathname}: the response has no token`);
    return { token, expiresIn: typeof body.expires_in === 'number' && body.expires_in > 10 ? body.expires_in : 60 };
  }

  private async send(method: string, url: string, init: RequestInit2, authorization: string | undefined): Promise<Response> {
    const raw = typeof init.body === 'function' ? init.body() : init.body;
    const body = raw instanceof Readable ? (Readable.toWeb(raw) as ReadableStream) : raw;
    const headers = { ...this.headers, ...init.headers };
    if (authorization) headers.authorization = authorization;
    else delete headers.authorization;
    try {
      return await this.fetch(url, { method, headers, body, duplex: body ? 'half' : undefined, redirect: 'follow' } as RequestInit, init.what);
    } catch (err) {
      if (raw instanceof Readable) raw.destroy();
      if (err instanceof VztplError) throw err;
      const hint = httpsHint(url, err);
      throw new VztplError(`${init.what}: cannot reach ${this.base}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}${hint ? ` (${hint})` : ''}`, ExitCode.unavailable);
    }
  }

  private async request(method: string, path: string, init: RequestInit2) {
    const url = path.startsWith('http') ? path : `${this.base}${path}`;
    const actions = method === 'GET' || method === 'HEAD' ? ['pull'] : ['pull', 'push'];
    let res = await this.send(method, url, init, await this.authorization(init.repo, actions, false));
    if (res.status === 401) {
      const challenge = parseChallenge(res.headers.get('www-authenticate'));
      const retry = challenge && (challenge.scheme === 'bearer' || (await this.creds()));
      if (challenge && retry) {
        await res.body?.cancel();
        this.challenge = challenge;
        const scoped = challenge.params.scope?.split(' ').find((s) => init.repo && s.startsWith(`repository:${init.repo}:`));
        const extra = scoped ? scoped.slice(scoped.lastIndexOf(':') + 1).split(',') : [];
        res = await this.send(method, url, init, await this.authorization(init.repo, [...new Set([...actions, ...extra])], true));
      }
    }
    if (!(init.ok ?? [200]).includes(res.status)) throw new RegistryError(init.what, res.status, await res.text(), await this.hint(res.status, init.repo, actions));
    return res;
  }

  /** What to do about a 401 or 403, in words. */
  private async hint(status: number, repo: string | undefined, actions: string[]): Promise<string | undefined> {
    const creds = await this.creds();
    const host = registryKey(this.base);
    const what = `${actions.includes('push') ? 'push to' : 'pull from'} ${repo ?? 'this registry'}`;
    if (status === 401 && !creds) return `${host} requires credentials for ${repo ?? 'this'}: log in with "vztpl login ${host}"`;
    if (status === 401) return `${host} did not accept ${creds!.username} to ${what}`;
    if (status === 403 && creds) return `${creds.username} may not ${what} on ${host}`;
    return undefined;
  }

  /**
   * Checks the credentials against the registry (GET /v2/, through its token endpoint when it has
   * one): 'open' when the registry asks for none, 'ok' when they are accepted; throws otherwise.
   */
  async login(): Promise<'open' | 'ok'> {
    const what = `log in to ${registryKey(this.base)}`;
    const res = await this.send('GET', `${this.base}/v2/`, { what }, undefined);
    await res.body?.cancel();
    if (res.status === 200) return 'open';
    const challenge = parseChallenge(res.headers.get('www-authenticate'));
    if (res.status !== 401 || !challenge) throw new RegistryError(`${what}: GET /v2/`, res.status, '');
    if (!(await this.creds())) throw new VztplError(`${what}: no credentials given`);
    this.challenge = challenge;
    const authorization = await this.authorization(undefined, [], true).catch((err: Error) => {
      throw err instanceof CredentialsRejectedError ? new CredentialsRejectedError(`${what}: wrong user name or password`) : err;
    });
    const again = await this.send('GET', `${this.base}/v2/`, { what }, authorization);
    const text = await again.text();
    if (again.status === 200) return 'ok';
    if (again.status === 401) throw new VztplError(`${what}: wrong user name or password`);
    throw new RegistryError(`${what}: GET /v2/`, again.status, text);
  }

  async hasBlob(repo: string, digest: Digest): Promise<boolean> {
    const res = await this.request('HEAD', `/v2/${repo}/blobs/${digest}`, { what: `HEAD blob ${digest}`, ok: [200, 404], repo });
    return res.status === 200;
  }

  /**
   * Mounts a blob the registry keeps in another repository (OCI cross-repository mount): true
   * when it did, false when the registry started an ordinary upload instead (the blob is not in
   * `from`, or the caller may not read it), which is cancelled.
   */
  async mountBlob(repo: string, digest: Digest, from: string): Promise<boolean> {
    const query = new URLSearchParams({ mount: digest, from });
    const res = await this.request('POST', `/v2/${repo}/blobs/uploads/?${query}`, { what: `mount of ${digest} from ${from}`, ok: [201, 202], repo });
    await res.body?.cancel();
    if (res.status === 201) return true;
    const location = res.headers.get('location');
    if (location) await this.request('DELETE', new URL(location, this.base).toString(), { what: `cancel of the upload of ${digest}`, ok: [204, 404], repo }).catch(() => undefined);
    return false;
  }

  /** Uploads a file as a blob in one streamed PUT. */
  async pushBlobFile(repo: string, digest: Digest, file: string): Promise<void> {
    const start = await this.request('POST', `/v2/${repo}/blobs/uploads/`, { what: `start upload of ${digest}`, ok: [202], repo });
    const location = start.headers.get('location');
    if (!location) throw new VztplError(`start upload of ${digest}: the registry gave no Location`);
    const url = new URL(location, this.base);
    url.searchParams.set('digest', digest);
    const { size } = await stat(file);
    await this.request('PUT', url.toString(), {
      what: `upload of ${digest}`,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: () => createReadStream(file, { highWaterMark: 1 << 20 }),
      ok: [201],
      repo,
    });
  }

  async pushBlob(repo: string, digest: Digest, content: Buffer): Promise<void> {
    await this.request('POST', `/v2/${repo}/blobs/uploads/?digest=${digest}`, {
      what: `upload of ${digest}`,
      headers: { 'content-type': 'application/octet-stream' },
      body: content,
      ok: [201],
      repo,
    });
  }

  async putManifest(repo: string, reference: string, mediaType: string, content: Buffer): Promise<Digest> {
    const res = await this.request('PUT', `/v2/${repo}/manifests/${reference}`, {
      what: `PUT manifest ${repo}:${reference}`,
      headers: { 'content-type': mediaType },
      body: content,
      ok: [201],
      repo,
    });
    return res.headers.get('docker-content-digest') as Digest;
  }

  /**
   * PUT of a manifest that has a subject: the digest, and the registry's OCI-Subject header
   * (distribution-spec 1.1: a registry that indexes referrers names the subject there).
   */
  async putReferrer(repo: string, mediaType: string, content: Buffer, digest: Digest): Promise<{ digest: Digest; subject: string | undefined }> {
    const res = await this.request('PUT', `/v2/${repo}/manifests/${digest}`, {
      what: `PUT manifest ${repo}@${digest}`,
      headers: { 'content-type': mediaType },
      body: content,
      ok: [201],
      repo,
    });
    return { digest: (res.headers.get('docker-content-digest') as Digest | null) ?? digest, subject: res.headers.get('oci-subject') ?? undefined };
  }

  /**
   * The referrers of `digest` (GET /v2/NAME/referrers/DIGEST[?artifactType=]): the index's
   * descriptors, and whether the registry applied the filter (OCI-Filters-Applied); the caller
   * filters again when it did not. `undefined` when the registry has no referrers API (404).
   */
  async referrers(repo: string, digest: Digest, artifactType?: string, maxBytes = 4 * 1024 * 1024): Promise<{ manifests: Descriptor[]; filtered: boolean } | undefined> {
    const what = `referrers of ${repo}@${digest}`;
    const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
    const res = await this.request('GET', `/v2/${repo}/referrers/${digest}${query}`, { what, headers: { accept: 'application/vnd.oci.image.index.v1+json' }, repo, ok: [200, 404] });
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    const text = (await readLimited(res, maxBytes, what)).toString('utf8');
    let index: { manifests?: unknown };
    try {
      index = JSON.parse(text) as { manifests?: unknown };
    } catch {
      throw new VztplError(`${what}: the registry's answer is not JSON`);
    }
    if (!index || !Array.isArray(index.manifests)) throw new VztplError(`${what}: the registry's answer is not an image index`);
    const filtered = Boolean(artifactType) && (res.headers.get('oci-filters-applied') ?? '').split(',').some((f) => f.trim() === 'artifactType');
    return { manifests: index.manifests as Descriptor[], filtered };
  }

  async getManifest(repo: string, reference: string, accept: string[]): Promise<{ mediaType: string; digest: Digest; bytes: Buffer }> {
    const res = await this.request('GET', `/v2/${repo}/manifests/${reference}`, { what: `GET manifest ${repo}:${reference}`, headers: { accept: accept.join(', ') }, repo });
    const bytes = Buffer.from(await res.arrayBuffer());
    return { mediaType: res.headers.get('content-type') ?? '', digest: res.headers.get('docker-content-digest') as Digest, bytes };
  }

  /**
   * A manifest read only up to `maxBytes` (a larger one is refused before more is read): for
   * manifests anyone may push, such as signatures. `undefined` when the registry has none (404).
   */
  async getManifestLimited(repo: string, reference: string, accept: string[], maxBytes: number): Promise<{ mediaType: string; bytes: Buffer } | undefined> {
    const what = `GET manifest ${repo}:${reference}`;
    const res = await this.request('GET', `/v2/${repo}/manifests/${reference}`, { what, headers: { accept: accept.join(', ') }, repo, ok: [200, 404] });
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    return { mediaType: res.headers.get('content-type') ?? '', bytes: await readLimited(res, maxBytes, what) };
  }

  /** A small blob's bytes, refused past `maxBytes`. */
  async getBlobLimited(repo: string, digest: Digest, maxBytes: number): Promise<Buffer> {
    const res = await this.getBlob(repo, digest);
    return readLimited(res, maxBytes, `GET blob ${repo}@${digest}`);
  }

  async getBlob(repo: string, digest: Digest): Promise<Response> {
    return this.request('GET', `/v2/${repo}/blobs/${digest}`, { what: `GET blob ${digest}`, repo });
  }

  /**
   * Resolves a version range with the vztpl catalog API. `undefined` when the registry has no
   * such API (a plain OCI registry): the caller then resolves from the tags list.
   */
  async resolveVersion(repo: string, range: string): Promise<{ version: string; digest: Digest } | undefined> {
    const res = await this.request('GET', `/api/v1/templates/${repo}/resolve?range=${encodeURIComponent(range)}`, {
      what: `resolve ${repo}@${range}`,
      repo,
      ok: [200, 400, 404],
    });
    const text = await res.text();
    let body: { version?: string; digest?: Digest; errors?: Array<{ code: string; message: string }> };
    try {
      body = JSON.parse(text);
    } catch {
      return undefined; // not our API
    }
    if (res.status === 200 && body.version && body.digest) return { version: body.version, digest: body.digest };
    if (body.errors?.length) throw new RegistryError(`resolve ${repo}@${range}`, res.status, text);
    return undefined;
  }

  /** The versions a vztpl registry's catalog lists for `repo`; undefined from another registry. */
  async catalogVersions(repo: string): Promise<Array<{ version: string; digest: Digest }> | undefined> {
    const res = await this.request('GET', `/api/v1/templates/${repo}/versions`, { what: `versions of ${repo}`, repo, ok: [200, 404] });
    const text = await res.text();
    try {
      const body = JSON.parse(text) as { versions?: Array<{ version: string; digest: Digest }> };
      return Array.isArray(body.versions) ? body.versions : undefined;
    } catch {
      return undefined; // not our API
    }
  }

  /**
   * A version's changelog from a vztpl registry's catalog (versions/VERSION/changelog);
   * undefined from another registry, or one without that route.
   */
  async catalogChangelog(repo: string, version: string): Promise<VersionChangelog | undefined> {
    const res = await this.request('GET', `/api/v1/templates/${repo}/versions/${encodeURIComponent(version)}/changelog`, { what: `changelog of ${repo}:${version}`, repo, ok: [200, 404] });
    const text = await res.text();
    try {
      const body = JSON.parse(text) as Partial<VersionChangelog>;
      return res.status === 200 && Array.isArray(body.upgraded) ? (body as VersionChangelog) : undefined;
    } catch {
      return undefined; // not our API
    }
  }

  async tags(repo: string): Promise<string[]> {
    const res = await this.request('GET', `/v2/${repo}/tags/list`, { what: `tags of ${repo}`, repo });
    return ((await res.json()) as { tags?: string[] }).tags ?? [];
  }
}

/** A response larger than the reader accepts. */
export class TooLargeError extends VztplError {
  readonly limit: number;
  constructor(message: string, limit: number) {
    super(message);
    this.limit = limit;
  }
}

/** A response body, refused with a clear error once it passes `maxBytes`. */
export async function readLimited(res: Response, maxBytes: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel();
    throw new TooLargeError(`${what}: ${declared} bytes, more than the ${maxBytes} accepted`, maxBytes);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  if (res.body) {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      total += chunk.length;
      // leaving the loop by a throw cancels the body
      if (total > maxBytes) throw new TooLargeError(`${what}: more than the ${maxBytes} bytes accepted`, maxBytes);
      chunks.push(Buffer.from(chunk));
    }
  }
  return Buffer.concat(chunks);
}
