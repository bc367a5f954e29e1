// The OCI Distribution API v1.1 under /v2/, as a fastify plugin over a Registry.
// Repository names contain slashes, so one wildcard route dispatches on the path's tail.
import type { OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isDigest, type Digest } from '../../format/digest.ts';
import { MediaType } from '../../format/oci.ts';
import { OciError, RequestBodyError } from '../errors.ts';
import type { Registry } from '../registry.ts';
import { MAX_MANIFEST_SIZE } from '../store/manifests.ts';
import type { UploadState } from '../store/uploads.ts';
import { directSendOf, InvalidOffsetError, StorageUnavailableError } from '../storage/driver.ts';

export interface V2Options {
  registry: Registry;
  /** Called after a manifest was stored under a tag (versions, aliases, catalog records). */
  onManifestPut?: (repo: string, reference: string, digest: Digest, request: FastifyRequest) => Promise<void>;
  /** Called after tags were deleted, by name or with their manifest (the catalog's summaries). */
  onTagsDeleted?: (repo: string, tags: string[]) => Promise<void>;
  /** Redirect blob GETs to presigned storage URLs when the driver offers them. */
  redirectBlobs?: boolean;
}

type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; repo: string }
  | { kind: 'manifest'; repo: string; reference: string }
  | { kind: 'uploads'; repo: string }
  | { kind: 'upload'; repo: string; id: string }
  | { kind: 'blob'; repo: string; digest: string }
  | { kind: 'referrers'; repo: string; digest: string };

/** Maps a path below /v2/ to a route; undefined for paths the API does not have. */
export function matchRoute(path: string): Route | undefined {
  if (path === '' || path === '/') return { kind: 'base' };
  if (path === '_catalog') return { kind: 'catalog' };
  let m = /^(.+)\/tags\/list$/.exec(path);
  if (m) return { kind: 'tags', repo: m[1]! };
  m = /^(.+)\/manifests\/([^/]+)$/.exec(path);
  if (m) return { kind: 'manifest', repo: m[1]!, reference: m[2]! };
  m = /^(.+)\/blobs\/uploads\/?$/.exec(path);
  if (m) return { kind: 'uploads', repo: m[1]! };
  m = /^(.+)\/blobs\/uploads\/([^/]+)$/.exec(path);
  if (m) return { kind: 'upload', repo: m[1]!, id: m[2]! };
  m = /^(.+)\/blobs\/([^/]+)$/.exec(path);
  if (m) return { kind: 'blob', repo: m[1]!, digest: m[2]! };
  m = /^(.+)\/referrers\/([^/]+)$/.exec(path);
  if (m) return { kind: 'referrers', repo: m[1]!, digest: m[2]! };
  return undefined;
}

function requireDigest(value: string | undefined, what: string): Digest {
  if (!value || !isDigest(value)) throw new OciError('DIGEST_INVALID', `invalid ${what} digest ${JSON.stringify(value ?? '')}`);
  return value;
}

/** A digest in a blob URL: one that is malformed or of another algorithm names no blob here (404). */
function blobDigest(value: string): Digest {
  if (!isDigest(value)) throw new OciError('BLOB_UNKNOWN', `blob unknown: ${JSON.stringify(value)} is not a sha256 digest`, { digest: value });
  return value;
}

/** Digests of the algorithms the OCI image spec registers: valid syntax, if not all stored here. */
const OCI_DIGEST = /^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$/;

function query(req: FastifyRequest): Record<string, string | undefined> {
  return req.query as Record<string, string | undefined>;
}

function contentLength(req: FastifyRequest): number | undefined {
  const value = req.headers['content-length'];
  return value === undefined ? undefined : Number(value);
}

/**
 * The request body as chunks. Leaving the loop early (an error mid-body) must not destroy the
 * request: that destroys the socket, and the error could no longer be answered. The error
 * handler closes such a connection instead (see ociErrorHandler).
 */
async function* bodyOf(req: FastifyRequest): AsyncIterable<Buffer> {
  try {
    yield* req.raw.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
  } catch (err) {
    // Errors of the body stream are the connection's (the client hung up), not the storage's.
    throw new RequestBodyError(err);
  }
}

/** Reads a small request body whole, refusing more than `limit` bytes (413). */
async function readBody(req: FastifyRequest, limit: number): Promise<Buffer> {
  const declared = contentLength(req);
  if (declared !== undefined && declared > limit) throw new OciError('MANIFEST_TOO_LARGE', `body exceeds ${limit} bytes`, undefined, 413);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of bodyOf(req)) {
    size += chunk.length;
    if (size > limit) throw new OciError('MANIFEST_TOO_LARGE', `body exceeds ${limit} bytes`, undefined, 413);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Parses "bytes=a-b" (one range) against a size; undefined for no header. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (!header) return undefined;
  // RFC 9110 14.2: a range unit other than bytes MUST be ignored; several ranges (which would
  // need multipart/byteranges) may be: the whole blob is answered.
  if (!/^\s*bytes=/i.test(header) || header.includes(',')) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/i.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) throw new OciError('RANGE_INVALID', `unsupported Range ${header}`, { size }, 416);
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || end < start) throw new OciError('RANGE_INVALID', `range ${header} is outside the blob (${size} bytes)`, { size }, 416);
  return { start, end };
}

function paginate(items: readonly string[], req: FastifyRequest): { page: string[]; next?: { n: number; last: string } } {
  const q = query(req);
  const last = q.last;
  let list = last ? items.filter((t) => t > last) : [...items];
  if (q.n !== undefined) {
    // Digits only: Number() would take '' (as 0), ' 2', '1e3' and '0x10'.
    if (!/^\d{1,9}$/.test(q.n)) throw new OciError('UNSUPPORTED', `invalid n=${JSON.stringify(q.n)}: a count of entries is expected`, undefined, 400);
    const n = Number(q.n);
    if (list.length > n) {
      list = list.slice(0, n);
      return { page: list, next: n > 0 ? { n, last: list[list.length - 1]! } : undefined };
    }
  }
  return { page: list };
}

export async function v2Routes(app: FastifyInstance, opts: V2Options): Promise<void> {
  const { registry } = opts;
  // Bodies are read by the handlers themselves, as streams (blobs) or bounded buffers.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  // Graceful shutdown: once the server is closing, every answer closes its connection, so the
  // close completes as soon as the in-flight requests are done. A keep-alive connection that
  // becomes idle after close() began would otherwise hold the process until the shutdown timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  // A callback hook, not an async one: it runs for every answer.
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (closing) reply.header('Connection', 'close');
    done(null, payload);
  });

  app.route({
    method: ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'],
    url: '/v2/*',
    handler: async (req, reply) => {
      reply.header('Docker-Distribution-API-Version', 'registry/2.0');
      const tail = (req.params as { '*': string })['*'];
      const route = matchRoute(tail);
      if (!route) throw new OciError('UNSUPPORTED', `no such endpoint: ${req.method} /v2/${tail}`, undefined, 404);
      if ('repo' in route) registry.checkName(route.repo);
      // A manifest reference that is neither a digest nor a tag never reaches storage (it would
      // be a path): the manifest store answers it as unknown (GET, HEAD, DELETE) or invalid (PUT).
      const key = `${req.method} ${route.kind}`;
      switch (key) {
        case 'GET base':
        case 'HEAD base':
          return reply.send({});
        case 'GET catalog':
          return catalog(req, reply);
        case 'GET tags':
          return tagsList(req, reply, route as Extract<Route, { kind: 'tags' }>);
        case 'GET manifest':
        case 'HEAD manifest':
          return getManifest(req, reply, route as Extract<Route, { kind: 'manifest' }>);
        case 'PUT manifest':
          return putManifest(req, reply, route as Extract<Route, { kind: 'manifest' }>);
        case 'DELETE manifest':
          return deleteManifest(reply, route as Extract<Route, { kind: 'manifest' }>);
        case 'GET blob':
        case 'HEAD blob':
          return getBlob(req, reply, route as Extract<Route, { kind: 'blob' }>);
        case 'DELETE blob':
          return deleteBlob(reply, route as Extract<Route, { kind: 'blob' }>);
        case 'POST uploads':
          return startUpload(req, reply, route as Extract<Route, { kind: 'uploads' }>);
        case 'GET upload':
          return uploadStatus(reply, route as Extract<Route, { kind: 'upload' }>);
        case 'PATCH upload':
          return patchUpload(req, reply, route as Extract<Route, { kind: 'upload' }>);
        case 'PUT upload':
          return putUpload(req, reply, route as Extract<Route, { kind: 'upload' }>);
        case 'DELETE upload':
          return deleteUpload(reply, route as Extract<Route, { kind: 'upload' }>);
        case 'GET referrers':
          return referrers(req, reply, route as Extract<Route, { kind: 'referrers' }>);
        default:
          throw new OciError('UNSUPPORTED', `${req.method} is not supported on /v2/${tail}`, undefined, 405);
      }
    },
  });

  async function catalog(req: FastifyRequest, reply: FastifyReply) {
    const { page, next } = paginate(await registry.repositories(), req);
    if (next) reply.header('Link', `</v2/_catalog?n=${next.n}&last=${encodeURIComponent(next.last)}>; rel="next"`);
    return reply.send({ repositories: page });
  }

  async function tagsList(req: FastifyRequest, reply: FastifyReply, route: { repo: string }) {
    const tags = await registry.manifests.tags(route.repo);
    if (!tags.length && !(await registry.repositories()).includes(route.repo)) throw new OciError('NAME_UNKNOWN', `repository ${route.repo} is not known`);
    const { page, next } = paginate(tags, req);
    if (next) reply.header('Link', `</v2/${route.repo}/tags/list?n=${next.n}&last=${encodeURIComponent(next.last)}>; rel="next"`);
    return reply.send({ name: route.repo, tags: page });
  }

  async function getManifest(req: FastifyRequest, reply: FastifyReply, route: { repo: string; reference: string }) {
    const m = await registry.manifests.get(route.repo, route.reference);
    reply.header('Content-Type', m.mediaType).header('Docker-Content-Digest', m.digest).header('Content-Length', m.bytes.length);
    if (req.method === 'HEAD') return reply.send();
    return reply.send(m.bytes);
  }

  async function putManifest(req: FastifyRequest, reply: FastifyReply, route: { repo: string; reference: string }) {
    const bytes = await readBody(req, MAX_MANIFEST_SIZE);
    const contentType = req.headers['content-type']?.split(';')[0]?.trim();
    // Registered once the manifest is accepted and before its revision is written: garbage
    // collection marks from the repositories it can enumerate, and a refused push leaves no trace.
    const result = await registry.manifests.put(route.repo, route.reference, bytes, contentType, { beforeWrite: () => registry.registerRepository(route.repo) });
    if (!isDigest(route.reference) && opts.onManifestPut) await opts.onManifestPut(route.repo, route.reference, result.digest, req);
    if (result.parsed.manifest.subject) reply.header('OCI-Subject', result.parsed.manifest.subject.digest);
    return reply.code(201).header('Location', `/v2/${route.repo}/manifests/${result.digest}`).header('Docker-Content-Digest', result.digest).send();
  }

  async function deleteManifest(reply: FastifyReply, route: { repo: string; reference: string }) {
    let tags: string[];
    if (isDigest(route.reference)) {
      tags = await registry.manifests.deleteDigest(route.repo, route.reference);
      reply.request.log.info({ repo: route.repo, digest: route.reference, tags, audit: 'manifest-delete' }, 'deleted manifest');
    } else {
      await registry.manifests.deleteTag(route.repo, route.reference);
      tags = [route.reference];
      reply.request.log.info({ repo: route.repo, tag: route.reference, audit: 'tag-delete' }, 'deleted tag');
    }
    if (tags.length && opts.onTagsDeleted) await opts.onTagsDeleted(route.repo, tags);
    return reply.code(202).send();
  }

  async function getBlob(req: FastifyRequest, reply: FastifyReply, route: { repo: string; digest: string }) {
    const digest = blobDigest(route.digest);
    const info = await registry.blobs.stat(route.repo, digest);
    if (opts.redirectBlobs) {
      const url = await registry.blobs.redirectURL(digest, req.method === 'HEAD' ? 'HEAD' : 'GET');
      if (url) return reply.code(307).header('Location', url).header('Docker-Content-Digest', digest).send();
    }
    reply.header('Docker-Content-Digest', digest).header('Accept-Ranges', 'bytes').header('Content-Type', 'application/octet-stream');
    const range = parseRange(req.headers.range, info.size);
    if (!range) {
      reply.header('Content-Length', info.size);
      if (req.method === 'HEAD') return reply.send();
      // With its length: a driver may choose how to read by size.
      return sendBody(reply, await registry.blobs.open(digest, 0, info.size));
    }
    const length = range.end - range.start + 1;
    reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${info.size}`).header('Content-Length', length);
    if (req.method === 'HEAD') return reply.send();
    return sendBody(reply, await registry.blobs.open(digest, range.start, length));
  }

  /**
   * Sends a blob body: with the reader's own sender when it has one (fs: pooled buffers from
   * the file; s3: the object's socket relayed), else through fastify's stream handling. The
   * onResponse hooks (log, metrics) run either way.
   */
  function sendBody(reply: FastifyReply, body: Readable) {
    const sendTo = directSendOf(body);
    if (!sendTo) return reply.send(body);
    // A hijacked reply skips the onSend hooks: the shutdown header is set here.
    if (closing) reply.header('Connection', 'close');
    reply.hijack();
    reply.raw.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
    sendTo(reply.raw, (err) => {
      if (err) reply.log.warn({ err: err.message }, 'blob body not sent whole');
    });
    return reply;
  }

  async function deleteBlob(reply: FastifyReply, route: { repo: string; digest: string }) {
    const digest = blobDigest(route.digest);
    await registry.blobs.unlink(route.repo, digest);
    return reply.code(202).send();
  }

  function uploadHeaders(reply: FastifyReply, repo: string, id: string, size: number) {
    return reply
      .header('Location', `/v2/${repo}/blobs/uploads/${id}`)
      .header('Range', `0-${Math.max(0, size - 1)}`)
      .header('Docker-Upload-UUID', id)
      .header('OCI-Chunk-Min-Length', 0);
  }

  async function startUpload(req: FastifyRequest, reply: FastifyReply, route: { repo: string }) {
    const q = query(req);
    // A mount the registry cannot do (no such blob there, or a malformed digest or source name)
    // starts an ordinary upload instead (202), as the spec asks.
    if (q.mount && isDigest(q.mount) && q.from && registry.isValidName(q.from)) {
      const digest = q.mount;
      const from = q.from;
      if ((await registry.blobs.isLinked(from, digest)) && (await registry.blobs.statGlobal(digest))) {
        await registry.blobs.link(route.repo, digest);
        return reply.code(201).header('Location', `/v2/${route.repo}/blobs/${digest}`).header('Docker-Content-Digest', digest).send();
      }
    }
    // A malformed digest is refused before anything is written.
    const digest = q.digest === undefined ? undefined : requireDigest(q.digest, 'upload');
    const state = await registry.uploads.start(route.repo);
    if (digest) {
      // One request, one session: whatever fails (a wrong digest, a body cut off), the session goes.
      try {
        const filled = await registry.uploads.append(state, bodyOf(req), { length: contentLength(req) });
        await registry.uploads.complete(filled, digest);
      } catch (err) {
        await registry.uploads.cancel(state).catch(() => undefined);
        throw err;
      }
      return reply.code(201).header('Location', `/v2/${route.repo}/blobs/${digest}`).header('Docker-Content-Digest', digest).send();
    }
    return uploadHeaders(reply.code(202), route.repo, state.id, 0).send();
  }

  async function uploadStatus(reply: FastifyReply, route: { repo: string; id: string }) {
    const state = await registry.uploads.state(route.repo, route.id);
    return uploadHeaders(reply.code(204), route.repo, state.id, state.size).send();
  }

  /**
   * The chunk a PATCH or PUT carries: where it starts (Content-Range, checked against the upload
   * by append) and how long it is. A Content-Range that is malformed, past its own total, or not
   * the Content-Length is a chunk out of order (416), refused before anything is appended.
   */
  function chunkOf(req: FastifyRequest): { start?: number; length?: number; lengthFrom?: 'content-range' } {
    const declared = contentLength(req);
    const header = req.headers['content-range'];
    if (!header) return { length: declared };
    const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(\d+|\*))?$/.exec(header.trim());
    if (!m) throw new OciError('RANGE_INVALID', `invalid Content-Range ${header}`);
    const start = Number(m[1]);
    const end = Number(m[2]);
    if (!Number.isSafeInteger(end) || end < start) throw new OciError('RANGE_INVALID', `invalid Content-Range ${header}`);
    if (m[3] !== undefined && m[3] !== '*' && end >= Number(m[3])) throw new OciError('RANGE_INVALID', `Content-Range ${header} ends past its total`);
    const length = end - start + 1;
    if (declared !== undefined && declared !== length) {
      throw new OciError('RANGE_INVALID', `Content-Range ${header} is ${length} bytes, Content-Length says ${declared}`);
    }
    return { start, length, lengthFrom: 'content-range' };
  }

  /**
   * Appends a request's chunk to an upload. A 416 answers where the upload stands (Location,
   * Range), so the client can go on from there.
   */
  async function appendChunk(req: FastifyRequest, reply: FastifyReply, state: UploadState) {
    try {
      return await registry.uploads.append(state, bodyOf(req), chunkOf(req));
    } catch (err) {
      if (err instanceof OciError && err.code === 'RANGE_INVALID') uploadHeaders(reply, state.repo, state.id, state.size);
      throw err;
    }
  }

  async function patchUpload(req: FastifyRequest, reply: FastifyReply, route: { repo: string; id: string }) {
    const state = await registry.uploads.state(route.repo, route.id);
    const next = await appendChunk(req, reply, state);
    return uploadHeaders(reply.code(202), route.repo, next.id, next.size).send();
  }

  async function putUpload(req: FastifyRequest, reply: FastifyReply, route: { repo: string; id: string }) {
    const digest = requireDigest(query(req).digest, 'upload');
    const state = await registry.uploads.state(route.repo, route.id);
    const filled = await appendChunk(req, reply, state);
    await registry.uploads.complete(filled, digest).catch(async (err: unknown) => {
      // Content that is not what the client said it is: the session is of no further use and
      // goes, as in CNCF Distribution. Storage failures keep it, so the client may try again.
      if (err instanceof OciError) await registry.uploads.cancel(filled).catch(() => undefined);
      throw err;
    });
    return reply.code(201).header('Location', `/v2/${route.repo}/blobs/${digest}`).header('Docker-Content-Digest', digest).send();
  }

  async function deleteUpload(reply: FastifyReply, route: { repo: string; id: string }) {
    const state = await registry.uploads.state(route.repo, route.id);
    await registry.uploads.cancel(state);
    return reply.code(204).send();
  }

  async function referrers(req: FastifyRequest, reply: FastifyReply, route: { repo: string; digest: string }) {
    // Malformed: 400, as the spec says; a valid digest of another algorithm: no referrers here.
    if (!OCI_DIGEST.test(route.digest)) throw new OciError('DIGEST_INVALID', `invalid subject digest ${JSON.stringify(route.digest)}`);
    const filter = query(req).artifactType;
    const manifests = [];
    const referrers = isDigest(route.digest) ? await registry.manifests.referrers(route.repo, route.digest) : [];
    for (const digest of referrers) {
      const m = await registry.manifests.get(route.repo, digest).catch(() => undefined);
      if (!m) continue;
      const parsed = JSON.parse(m.bytes.toString('utf8')) as { artifactType?: string; config?: { mediaType?: string }; annotations?: Record<string, string> };
      const artifactType = parsed.artifactType ?? parsed.config?.mediaType;
      if (filter && artifactType !== filter) continue;
      manifests.push({ mediaType: m.mediaType, digest, size: m.bytes.length, ...(artifactType ? { artifactType } : {}), ...(parsed.annotations ? { annotations: parsed.annotations } : {}) });
    }
    if (filter) reply.header('OCI-Filters-Applied', 'artifactType');
    // Bytes: for an object or a string fastify appends '; charset=utf-8' to a JSON media type,
    // and the spec (and its conformance tests) want exactly the index media type.
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.index, manifests }));
    return reply.header('Content-Type', MediaType.index).send(index);
  }
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH']);

/** Turns errors into OCI error bodies; storage range errors become 416. */
export function ociErrorHandler(err: Error & { statusCode?: number }, req: FastifyRequest, reply: FastifyReply) {
  // Failed before the whole request body arrived (a storage error mid-upload, a body refused
  // early): the rest of the body is still on the wire, so the connection cannot carry another
  // request. Close it after this answer; a client reusing it would hang or be reset.
  if (!req.raw.complete) reply.header('Connection', 'close');
  if (err instanceof OciError) {
    if (err.status >= 500) req.log.error({ err }, 'request failed');
    if (err.code === 'RANGE_INVALID' && typeof (err.detail as { size?: number })?.size === 'number') reply.header('Content-Range', `bytes */${(err.detail as { size: number }).size}`);
    return reply.code(err.status).header('Content-Type', 'application/json').send(err.body());
  }
  if (err instanceof InvalidOffsetError) return reply.code(416).send(new OciError('RANGE_INVALID', err.message).body());
  if (err instanceof RequestBodyError) {
    // Nobody hears this answer; the log says what happened, at the level of a client's doing.
    req.log.warn({ err: err.message, method: req.method, url: req.url }, 'client hung up mid-body');
    return reply.code(400).send(new OciError('BLOB_UPLOAD_INVALID', err.message).body());
  }
  if (err.statusCode && err.statusCode < 500) return reply.code(err.statusCode).send(new OciError('UNSUPPORTED', err.message, undefined, err.statusCode).body());
  req.log.error({ err }, 'request failed');
  // The storage is down, unreachable or failing: 503 tells clients to retry, as the spec's
  // UNAVAILABLE. Drivers say so with StorageUnavailableError; a connection error straight from a
  // body stream (a read that failed before anything was sent) means the same.
  const cause = err as Error & { code?: string; cause?: { code?: string } };
  if (err instanceof StorageUnavailableError || NETWORK_CODES.has(cause.code ?? cause.cause?.code ?? '')) {
    return reply.code(503).header('Retry-After', '1').send(new OciError('UNAVAILABLE', 'storage unavailable, try again').body());
  }
  return reply.code(500).send({ errors: [{ code: 'UNKNOWN', message: 'internal error' }] });
}
