// The template catalog API under /api/v1/: search, versions, range resolution, a version's
// metadata and package lock, and the package difference between two versions.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { packageDiff, type Catalog, type VersionRecord } from '../catalog.ts';
import { OciError } from '../errors.ts';
import type { Registry } from '../registry.ts';

export interface CatalogOptions {
  registry: Registry;
  catalog: Catalog;
}

function summary(r: VersionRecord) {
  const { packages, labels: _labels, ...rest } = r;
  return { ...rest, packages: packages.length };
}

export async function catalogRoutes(app: FastifyInstance, opts: CatalogOptions): Promise<void> {
  const { registry, catalog } = opts;

  app.get('/api/v1/templates', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    const found = await catalog.search({ q: q.q, distro: q.distro, release: q.release, arch: q.arch, package: q.package });
    return { templates: found.map((r) => ({ ...summary(r), latest: r.version })) };
  });

  // Names contain slashes: /api/v1/templates/<name>/<action>[/<version>]
  app.get('/api/v1/templates/*', async (req: FastifyRequest) => {
    const tail = (req.params as { '*': string })['*'];
    const q = req.query as Record<string, string | undefined>;
    let m = /^(.+)\/versions$/.exec(tail);
    if (m) {
      const name = checked(m[1]!);
      const versions = await catalog.versions(name);
      if (!versions.length) throw new OciError('NAME_UNKNOWN', `no template named ${name}`);
      return { name, versions: versions.map(summary) };
    }
    m = /^(.+)\/versions\/([^/]+)$/.exec(tail);
    if (m) return catalog.version(checked(m[1]!), m[2]!);
    m = /^(.+)\/resolve$/.exec(tail);
    if (m) {
      const record = await catalog.resolve(checked(m[1]!), q.range ?? 'latest');
      return { name: record.name, range: q.range ?? 'latest', version: record.version, digest: record.digest, size: record.size };
    }
    m = /^(.+)\/diff$/.exec(tail);
    if (m) {
      const name = checked(m[1]!);
      if (!q.from || !q.to) throw new OciError('UNSUPPORTED', 'diff needs ?from=VERSION&to=VERSION', undefined, 400);
      const [from, to] = await Promise.all([catalog.resolve(name, q.from), catalog.resolve(name, q.to)]);
      return { name, from: from.version, to: to.version, ...packageDiff(from.packages, to.packages) };
    }
    const name = checked(tail);
    const versions = await catalog.versions(name);
    if (!versions.length) throw new OciError('NAME_UNKNOWN', `no template named ${name}`);
    const latest = await catalog.resolve(name, 'latest').catch(() => versions.at(-1)!);
    return { ...summary(latest), latest: latest.version, versions: versions.map((v) => v.version) };
  });

  function checked(name: string): string {
    registry.checkName(name);
    return name;
  }
}
