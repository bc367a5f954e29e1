// A small OCI Distribution client (fetch-based): what `vztpl push` and the host cache need.
// Blobs go up in one streamed PUT after a HEAD shows they are missing, so a re-push of a
// template sends only the layers the registry lacks.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { VztplError } from '../common/errors.ts';
import type { Digest } from './digest.ts';

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
  let rest = value;
  let scheme: string | undefined;
  const m = /^(https?):\/\/(.*)$/.exec(rest);
  if (m) {
    scheme = m[1];
    rest = m[2]!;
  }
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  if (!first || !(first.includes('.') || first.includes(':') || first === 'localhost')) {
    throw new VztplError(`${value}: name the registry, as in 127.0.0.1:5000/${rest}`, 2);
  }
  let path = rest.slice(slash + 1);
  let reference: string | undefined;
  const at = path.indexOf('@');
  if (at !== -1) {
    reference = path.slice(at + 1);
    path = path.slice(0, at);
  } else {
    const colon = path.lastIndexOf(':');
    if (colon !== -1) {
      reference = path.slice(colon + 1);
      path = path.slice(0, colon);
    }
  }
  const host = first.replace(/:\d+$/, '');
  const loopback = host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
  return { registry: `${scheme ?? (loopback ? 'http' : 'https')}://${first}`, repository: path, reference };
}

export class RegistryError extends VztplError {
  readonly status: number;
  readonly code?: string;
  constructor(what: string, status: number, body: string) {
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
    super(`${what}: HTTP ${status}${message ? ` ${message}` : ''}`);
    this.status = status;
    this.code = code;
  }
}

export class RegistryClient {
  readonly base: string;
  private readonly headers: Record<string, string>;
  constructor(base: string, opts: { authorization?: string } = {}) {
    this.base = base.replace(/\/+$/, '');
    this.headers = opts.authorization ? { authorization: opts.authorization } : {};
  }

  private async request(method: string, path: string, init: { headers?: Record<string, string>; body?: Buffer | Readable; what: string; ok?: number[] }) {
    const url = path.startsWith('http') ? path : `${this.base}${path}`;
    const body = init.body instanceof Readable ? (Readable.toWeb(init.body) as ReadableStream) : init.body;
    let res: Response;
    try {
      res = await fetch(url, { method, headers: { ...this.headers, ...init.headers }, body, duplex: body ? 'half' : undefined, redirect: 'follow' } as RequestInit);
    } catch (err) {
      throw new VztplError(`${init.what}: cannot reach ${this.base}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
    }
    if (!(init.ok ?? [200]).includes(res.status)) throw new RegistryError(init.what, res.status, await res.text());
    return res;
  }

  async hasBlob(repo: string, digest: Digest): Promise<boolean> {
    const res = await this.request('HEAD', `/v2/${repo}/blobs/${digest}`, { what: `HEAD blob ${digest}`, ok: [200, 404] });
    return res.status === 200;
  }

  /** Uploads a file as a blob in one streamed PUT. */
  async pushBlobFile(repo: string, digest: Digest, file: string): Promise<void> {
    const start = await this.request('POST', `/v2/${repo}/blobs/uploads/`, { what: `start upload of ${digest}`, ok: [202] });
    const location = start.headers.get('location');
    if (!location) throw new VztplError(`start upload of ${digest}: the registry gave no Location`);
    const url = new URL(location, this.base);
    url.searchParams.set('digest', digest);
    const { size } = await stat(file);
    await this.request('PUT', url.toString(), {
      what: `upload of ${digest}`,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: createReadStream(file, { highWaterMark: 1 << 20 }),
      ok: [201],
    });
  }

  async pushBlob(repo: string, digest: Digest, content: Buffer): Promise<void> {
    await this.request('POST', `/v2/${repo}/blobs/uploads/?digest=${digest}`, {
      what: `upload of ${digest}`,
      headers: { 'content-type': 'application/octet-stream' },
      body: content,
      ok: [201],
    });
  }

  async putManifest(repo: string, reference: string, mediaType: string, content: Buffer): Promise<Digest> {
    const res = await this.request('PUT', `/v2/${repo}/manifests/${reference}`, {
      what: `PUT manifest ${repo}:${reference}`,
      headers: { 'content-type': mediaType },
      body: content,
      ok: [201],
    });
    return res.headers.get('docker-content-digest') as Digest;
  }

  async getManifest(repo: string, reference: string, accept: string[]): Promise<{ mediaType: string; digest: Digest; bytes: Buffer }> {
    const res = await this.request('GET', `/v2/${repo}/manifests/${reference}`, { what: `GET manifest ${repo}:${reference}`, headers: { accept: accept.join(', ') } });
    const bytes = Buffer.from(await res.arrayBuffer());
    return { mediaType: res.headers.get('content-type') ?? '', digest: res.headers.get('docker-content-digest') as Digest, bytes };
  }

  async getBlob(repo: string, digest: Digest): Promise<Response> {
    return this.request('GET', `/v2/${repo}/blobs/${digest}`, { what: `GET blob ${digest}` });
  }

  async tags(repo: string): Promise<string[]> {
    const res = await this.request('GET', `/v2/${repo}/tags/list`, { what: `tags of ${repo}` });
    return ((await res.json()) as { tags?: string[] }).tags ?? [];
  }
}
