// The template catalog API under /api/v1/: search, versions, range resolution, a version's
// metadata and package lock, its changelog (versions/VERSION/changelog), and the package
// difference between two versions. A version as the
// versions, version and template routes show it also says whether it is signed (the facts of its
// signature manifest; the registry knows no keys) and links its SBOM (catalog.ts, versionTrust);
// search says of each template's latest version whether it is signed, and by which of the
// registry's signatureKeys (signed, signedBy).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { packageDiff, type Catalog, type VersionRecord } from '../catalog.ts';
import { OciError } from '../errors.ts';
import type { Registry } from '../registry.ts';

export interface CatalogOptions {
  registry: Registry;
  catalog: Catalog;
}

/** The catalog's two routes: search, and everything about one template (names contain slashes). */
export const SEARCH_URL = '/api/v1/templates';
export const TEMPLATE_URL = '/api/v1/templates/*';

/** What a path below /api/v1/templates/ asks about one template: <name>[/<action>[/<version>]]. */
export type TemplateRoute =
  | { kind: 'versions'; name: string }
  | { kind: 'version'; name: string; version: string }
  | { kind: 'changelog'; name: string; version: string }
  | { kind: 'resolve'; name: string }
  | { kind: 'diff'; name: string }
  | { kind: 'template'; name: string };

/** The one reading of the template routes, for the handler and for authorization (http/auth.ts). */
export function matchTemplateRoute(tail: string): TemplateRoute {
  let m = /^(.+)\/versions\/([^/]+)\/changelog$/.exec(tail);
  if (m) return { kind: 'changelog', name: m[1]!, version: m[2]! };
  m = /^(.+)\/versions$/.exec(tail);
  if (m) return { kind: 'versions', name: m[1]! };
  m = /^(.+)\/versions\/([^/]+)$/.exec(tail);
  if (m) return { kind: 'version', name: m[1]!, version: m[2]! };
  m = /^(.+)\/resolve$/.exec(tail);
  if (m) return { kind: 'resolve', name: m[1]! };
  m = /^(.+)\/diff$/.exec(tail);
  if (m) return { kind: 'diff', name: m[1]! };
  return { kind: 'template', name: tail };
}

function summary(r: VersionRecord) {
  // the changelog has its own route (versions/VERSION/changelog): the list stays small
  const { packages, labels: _labels, changelog: _changelog, ...rest } = r;
  return { ...rest, packages: packages.length };
}

export async function catalogRoutes(app: FastifyInstance, opts: CatalogOptions): Promise<void> {
  const { registry, catalog } = opts;

  app.get(SEARCH_URL, async (req) => {
    const q = req.query as Record<string, string | undefined>;
    const found = await catalog.search({ q: q.q, distro: q.distro, release: q.release, arch: q.arch, package: q.package });
    return { templates: found.map((r) => ({ ...r, latest: r.version })) };
  });

  app.get(TEMPLATE_URL, async (req: FastifyRequest) => {
    const route = matchTemplateRoute((req.params as { '*': string })['*']);
    const q = req.query as Record<string, string | undefined>;
    const name = checked(route.name);
    switch (route.kind) {
      case 'versions': {
        const versions = await catalog.versions(name);
        if (!versions.length) throw new OciError('NAME_UNKNOWN', `no template named ${name}`);
        // Each version's signatures and SBOM cost a few reads (round trips on S3): listed with
        // ?trust=true; hosts resolving a digest here read the records alone.
        if (q.trust !== 'true') return { name, versions: versions.map(summary) };
        return { name, versions: (await catalog.withTrust(versions)).map(summary) };
      }
      case 'version': {
        const record = await catalog.version(name, route.version);
        return { ...record, ...(await catalog.trust(name, record.digest)) };
      }
      case 'changelog':
        return catalog.changelog(name, route.version);
      case 'resolve': {
        const record = await catalog.resolve(name, q.range ?? 'latest');
        return { name: record.name, range: q.range ?? 'latest', version: record.version, digest: record.digest, size: record.size };
      }
      case 'diff': {
        if (!q.from || !q.to) throw new OciError('UNSUPPORTED', 'diff needs ?from=VERSION&to=VERSION', undefined, 400);
        const [from, to] = await Promise.all([catalog.resolve(name, q.from), catalog.resolve(name, q.to)]);
        return { name, from: from.version, to: to.version, ...packageDiff(from.packages, to.packages) };
      }
      case 'template': {
        const versions = await catalog.versions(name);
        if (!versions.length) throw new OciError('NAME_UNKNOWN', `no template named ${name}`);
        const latest = await catalog.resolve(name, 'latest').catch(() => versions.at(-1)!);
        return { ...summary(latest), ...(await catalog.trust(name, latest.digest)), latest: latest.version, versions: versions.map((v) => v.version) };
      }
    }
  });

  function checked(name: string): string {
    registry.checkName(name);
    return name;
  }
}
