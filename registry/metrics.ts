// Prometheus metrics: requests, latency and bytes by endpoint class, and storage operations
// and errors by driver operation (the driver is wrapped, so every driver is measured alike).
import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';
import { matchRoute } from './http/v2.ts';
import { isNotFound, type StorageDriver } from './storage/driver.ts';

export class Metrics {
  readonly registry = new PromRegistry();
  readonly requests = new Counter({ name: 'vztpl_http_requests_total', help: 'HTTP requests by method, endpoint class and status', labelNames: ['method', 'route', 'status'], registers: [this.registry] });
  readonly duration = new Histogram({
    name: 'vztpl_http_request_duration_seconds',
    help: 'HTTP request latency by method and endpoint class',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
    registers: [this.registry],
  });
  readonly bytesIn = new Counter({ name: 'vztpl_http_received_bytes_total', help: 'Request body bytes by endpoint class', labelNames: ['route'], registers: [this.registry] });
  readonly bytesOut = new Counter({ name: 'vztpl_http_sent_bytes_total', help: 'Response body bytes by endpoint class', labelNames: ['route'], registers: [this.registry] });
  readonly storageOps = new Counter({ name: 'vztpl_storage_operations_total', help: 'Storage driver operations', labelNames: ['driver', 'op'], registers: [this.registry] });
  readonly storageErrors = new Counter({ name: 'vztpl_storage_errors_total', help: 'Storage driver operations that failed (not-found answers excluded)', labelNames: ['driver', 'op'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'vztpl_' });
  }

  /**
   * A driver that counts its operations and failures. The wrapper methods are made once, each
   * with its labelled counters resolved (prom-client hashes the labels on every inc() given as
   * an object): this runs several times per request.
   */
  instrument(driver: StorageDriver): StorageDriver {
    const wrapped = Object.create(driver) as Record<string, unknown>;
    for (const op of DRIVER_OPERATIONS) {
      const ops = this.storageOps.labels(driver.name, op);
      const errors = this.storageErrors.labels(driver.name, op);
      const failed = (err: unknown) => {
        if (!isNotFound(err)) errors.inc();
        throw err;
      };
      wrapped[op] = (...args: unknown[]) => {
        ops.inc();
        try {
          // Looked up at each call: the driver may swap its methods (fault injection in tests).
          const result = (driver[op] as (...a: unknown[]) => unknown).apply(driver, args);
          return result instanceof Promise ? result.catch(failed) : result;
        } catch (err) {
          return failed(err);
        }
      };
    }
    return wrapped as unknown as StorageDriver;
  }

  /** Labelled children of the request metrics, made once per label set. */
  private readonly children = new Map<string, { requests: { inc(): void }; duration: { observe(seconds: number): void } }>();

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${route} ${status}`;
    let c = this.children.get(key);
    if (!c) {
      c = { requests: this.requests.labels(method, route, String(status)), duration: this.duration.labels(method, route) };
      this.children.set(key, c);
    }
    c.requests.inc();
    c.duration.observe(seconds);
  }
}

/** Every operation of the StorageDriver interface (a compile error here when one is added). */
const DRIVER_OPERATIONS = ['getContent', 'putContent', 'reader', 'writer', 'stat', 'list', 'move', 'delete', 'redirectURL', 'walk', 'abortStaleUploads'] as const satisfies ReadonlyArray<keyof StorageDriver>;
type _AllOperations = Exclude<keyof StorageDriver, 'name' | (typeof DRIVER_OPERATIONS)[number]> extends never ? true : never;
const _allOperations: _AllOperations = true;

function routeClass(url: string): string {
  const path = url.split('?')[0] ?? '';
  if (path.startsWith('/v2/')) return `v2_${matchRoute(path.slice(4))?.kind ?? 'unknown'}`;
  if (path.startsWith('/api/v1/')) return 'catalog_api';
  if (path === '/token') return 'token';
  if (path === '/healthz' || path === '/metrics') return path.slice(1);
  return 'other';
}

export async function metricsPlugin(app: FastifyInstance, opts: { metrics: Metrics }): Promise<void> {
  const { metrics } = opts;
  // A callback hook, not an async one: it runs for every request.
  app.addHook('onResponse', (req, reply, done) => {
    const route = routeClass(req.url);
    metrics.observeRequest(req.method, route, reply.statusCode, reply.elapsedTime / 1000);
    const received = Number(req.headers['content-length'] ?? 0);
    if (received > 0) metrics.bytesIn.inc({ route }, received);
    const sent = Number(reply.getHeader('content-length') ?? 0);
    if (sent > 0 && req.method !== 'HEAD') metrics.bytesOut.inc({ route }, sent);
    done();
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('Content-Type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
