// Prometheus metrics: requests, latency and bytes by endpoint class, and storage operations
// and errors by driver operation (the driver is wrapped, so every driver is measured alike).
import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';
import { matchRoute } from './http/v2.ts';
import { PathNotFoundError, type StorageDriver } from './storage/driver.ts';

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

  /** A driver that counts its operations and failures. */
  instrument(driver: StorageDriver): StorageDriver {
    const metrics = this;
    return new Proxy(driver, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function' || typeof prop !== 'string' || prop === 'constructor') return value;
        return (...args: unknown[]) => {
          metrics.storageOps.inc({ driver: target.name, op: prop });
          try {
            const result = (value as (...a: unknown[]) => unknown).apply(target, args);
            if (result instanceof Promise) {
              return result.catch((err: unknown) => {
                if (!(err instanceof PathNotFoundError)) metrics.storageErrors.inc({ driver: target.name, op: prop });
                throw err;
              });
            }
            return result;
          } catch (err) {
            if (!(err instanceof PathNotFoundError)) metrics.storageErrors.inc({ driver: target.name, op: prop });
            throw err;
          }
        };
      },
    });
  }
}

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
  app.addHook('onResponse', async (req, reply) => {
    const route = routeClass(req.url);
    metrics.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.duration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    const received = Number(req.headers['content-length'] ?? 0);
    if (received > 0) metrics.bytesIn.inc({ route }, received);
    const sent = Number(reply.getHeader('content-length') ?? 0);
    if (sent > 0 && req.method !== 'HEAD') metrics.bytesOut.inc({ route }, sent);
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('Content-Type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
