// Builds the registry's fastify app: the OCI Distribution API, the template catalog API, its web
// pages (at /) and the health endpoint, over one storage driver. Plugins are encapsulated; errors are OCI JSON.
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { prepareAuth, type AuthConfig } from './auth/setup.ts';
import { SignOuts } from './auth/sign-outs.ts';
import { Catalog } from './catalog.ts';
import { authRoutes } from './http/auth.ts';
import { catalogRoutes } from './http/catalog.ts';
import { ociErrorHandler, v2Routes } from './http/v2.ts';
import { webRoutes } from './http/web.ts';
import { Metrics, metricsPlugin } from './metrics.ts';
import { Registry } from './registry.ts';
import type { PublicKey } from '../format/sigstore/public-key.ts';
import type { StorageDriver } from './storage/driver.ts';

export interface ServerOptions {
  driver: StorageDriver;
  logger?: FastifyServerOptions['logger'];
  /** A pino logger of the caller's (wins over `logger`). */
  loggerInstance?: FastifyServerOptions['loggerInstance'];
  redirectBlobs?: boolean;
  /** Users, scopes and tokens (config `auth`); absent or disabled: an open registry. */
  auth?: AuthConfig;
  /**
   * At start, what interrupted uploads left in storage (temp files, multipart uploads) untouched
   * for this long is removed (default one hour, garbage collection's default); fs temp files of
   * a process that is gone go at once.
   */
  staleUploadGraceMs?: number;
  /**
   * Serve HTTPS with this certificate (chain) and key, PEM (registry/tls.ts reads and checks
   * them, and swaps them later with app.server.setSecureContext). Absent: plain HTTP.
   */
  https?: { cert: Buffer; key: Buffer };
  /** Public keys of the template signers the catalog names by fingerprint (config signatureKeys). */
  signatureKeys?: readonly PublicKey[];
  /** How long search trusts its in-memory index before reloading every template (catalog.ts's default otherwise). */
  searchMaxAgeMs?: number;
}

const HOUR = 3600_000;
const SWEEP_WAIT_MS = 2000;

export async function buildServer(opts: ServerOptions): Promise<{ app: FastifyInstance; registry: Registry; catalog: Catalog; metrics: Metrics }> {
  const metrics = new Metrics();
  const registry = new Registry(metrics.instrument(opts.driver));
  const catalog = new Catalog(registry, { signatureKeys: opts.signatureKeys ?? [], ...(opts.searchMaxAgeMs !== undefined ? { searchMaxAgeMs: opts.searchMaxAgeMs } : {}) });
  const app = Fastify({
    // The token realm in challenges follows the scheme: req.protocol is https on a TLS socket.
    ...(opts.https ? { https: { cert: opts.https.cert, key: opts.https.key } } : {}),
    ...(opts.loggerInstance ? { loggerInstance: opts.loggerInstance } : { logger: opts.logger ?? false }),
    // One log line per request (at its end, with status and time) instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // Blob bodies stream; manifests are bounded in the handler (413).
    bodyLimit: 64 * 1024 ** 3,
    requestIdHeader: 'x-request-id',
    // Unique across processes and restarts, cheaper than a UUID per request: a random prefix
    // per process and a counter.
    genReqId: requestIds(),
    return503OnClosing: true,
    forceCloseConnections: false,
  });
  app.setErrorHandler(ociErrorHandler);
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ errors: [{ code: 'UNSUPPORTED', message: `no such endpoint: ${req.method} ${req.url}` }] }));
  // On the root instance, not registered: its hooks must see every route.
  await metricsPlugin(app, { metrics });
  app.addHook('onResponse', (req, reply, done) => {
    req.log.info({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'request');
    done();
  });
  // A crash leaves its temp files behind: swept when an instance starts, not at the next
  // garbage collection. A failure here is no reason not to serve, nor is slow storage a reason
  // to start late: a sweep that takes longer than a moment goes on in the background.
  app.addHook('onReady', async () => {
    const sweep = registry.driver.abortStaleUploads(new Date(Date.now() - (opts.staleUploadGraceMs ?? HOUR))).then(
      (removed) => {
        if (removed) app.log.info({ removed }, 'removed what interrupted uploads left behind');
      },
      (err: unknown) => app.log.warn({ err }, 'could not sweep what interrupted uploads left behind'),
    );
    await Promise.race([sweep, sleep(SWEEP_WAIT_MS, undefined, { ref: false })]);
  });
  app.get('/healthz', async () => {
    await opts.driver.stat('/v2').catch(() => undefined);
    return { status: 'ok', storage: opts.driver.name };
  });
  const auth = opts.auth ? await prepareAuth(opts.auth, { warn: (msg) => app.log.warn(msg), error: (obj, msg) => app.log.error(obj, msg) }) : undefined;
  if (auth) await app.register(authRoutes, { ...auth, signOuts: new SignOuts(registry.driver) });
  await app.register(v2Routes, {
    registry,
    redirectBlobs: opts.redirectBlobs,
    onManifestPut: (repo, reference, digest) => catalog.published(repo, reference, digest),
    onTagsDeleted: (repo, tags) => catalog.deleted(repo, tags),
  });
  await app.register(catalogRoutes, { registry, catalog });
  await app.register(webRoutes, { registry, catalog, auth: !!auth });
  return { app, registry, catalog, metrics };
}

function requestIds(): () => string {
  const prefix = crypto.randomUUID().slice(0, 8);
  let n = 0;
  return () => `${prefix}-${(++n).toString(36)}`;
}
