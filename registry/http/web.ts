// The catalog's web pages at / (registry/web/pages.ts renders them), on the registry's port and
// under the catalog's access rules: what a visitor may pull, they may see. With auth on, the
// auth plugin (http/auth.ts) identifies the visitor of each page and hands this plugin a pull
// check (mayPullFor); a page without one shows nothing (fail closed). A template the visitor
// may not pull answers exactly as one that does not exist.
//
//   /                          search: ?q= (name) &distro= &release= &arch= &package=
//   /t/NAME                    versions, aliases, pull/create commands
//   /t/NAME/-/VERSION          layers and their steps, labels, packages, changelog, trust
//   /t/NAME/-/diff?from=&to=   packages added, removed, changed
//   /-/static/catalog.{css,js}
//   /-/login                   (auth on) GET: the sign-in form; POST: sign in, set vztpl_session
//   /-/logout                  (auth on) POST: end the session for every instance, clear vztpl_session
//
// Signing in: the auth plugin checks the password as for Basic credentials (its guard's limits,
// 429) and signs a session token with the registry's token secret and TTL; it goes into the
// vztpl_session cookie (HttpOnly; SameSite=Strict; Path=/; Secure over HTTPS; Max-Age = TTL),
// which only the pages read. POSTs are also checked for a same-origin Origin (or Referer).
// A page request whose own credentials do not check out (a wrong Basic password, a bad token)
// gets the sign-in form with 401 and the one generic message, as a failed sign-in does; the
// password guard's refusals get it with 429 or 503 and Retry-After.
//
// Template names never have a component starting with '-', so /-/ cannot be part of one.
// Pages send a strict Content-Security-Policy: no inline script or style, same-origin files only.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { aliasesFor } from '../../format/versions.ts';
import type { ImageConfig, ImageManifest } from '../../format/oci.ts';
import { changelogFrom, packageDiff, type Catalog, type SearchFilter, type VersionRecord } from '../catalog.ts';
import { OciError } from '../errors.ts';
import type { Registry } from '../registry.ts';
import { CSS, JS } from '../web/assets.ts';
import { diffPage, errorPage, homePage, loginPage, STATIC, templatePage, versionPage, withAccount, type LayerRow, type PageContext } from '../web/pages.ts';

export interface WebOptions {
  registry: Registry;
  catalog: Catalog;
  /** Auth is on: a page shows only what the auth plugin says the visitor may pull. */
  auth: boolean;
}

export const WEB_HOME_URL = '/';
export const WEB_TEMPLATE_URL = '/t/*';
export const WEB_LOGIN_URL = '/-/login';
export const WEB_LOGOUT_URL = '/-/logout';
export const SESSION_COOKIE = 'vztpl_session';

/** The vztpl_session cookie's value, if the request carries one. */
export function sessionToken(req: FastifyRequest): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

/** Why credentials were not taken: they do not check out (401), or the password guard refused to check them. */
export type AuthRefusal = { status: 401 } | { status: 429 | 503; retryAfter: number };

/** The sign-in check the auth plugin hands a page request. */
export type SignIn = (name: string, password: string) => Promise<{ ok: true; token: string; maxAge: number } | ({ ok: false } & AuthRefusal)>;

export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

export type WebRoute = { kind: 'template'; name: string } | { kind: 'version'; name: string; version: string } | { kind: 'diff'; name: string };

export function matchWebRoute(tail: string): WebRoute {
  const trimmed = tail.replace(/\/+$/, '');
  const m = /^(.+?)\/-\/([^/]+)$/.exec(trimmed);
  if (!m) return { kind: 'template', name: trimmed };
  return m[2] === 'diff' ? { kind: 'diff', name: m[1]! } : { kind: 'version', name: m[1]!, version: decodeURIComponent(m[2]!) };
}

class NotFound extends Error {}

/** Where to go after signing in: a path on this site only. */
const next = (v: unknown) => (typeof v === 'string' && /^\/(?![/\\])[^\0-\x1f]*$/.test(v) ? v : '/');

/** What the auth plugin decided about a page's visitor. */
export interface WebVisitor {
  mayPull(name: string): boolean;
  /** Shown on the home page: why the visitor may see nothing (anonymous, with anonymous pull off). */
  note?: string;
  /** The signed-in user's name. */
  user?: string;
  /** The user signed in with the form (the vztpl_session cookie). */
  session?: boolean;
  /** A vztpl_session cookie came that no longer holds (expired, signed out, user removed, password changed): cleared. */
  staleSession?: boolean;
  /** The request's own credentials were not taken: the page is the sign-in form instead. */
  refused?: AuthRefusal;
  signIn?: SignIn;
  /** Ends the cookie's session for every instance. */
  signOut?: () => Promise<void>;
}

const visitors = new WeakMap<FastifyRequest, WebVisitor>();

/** Called by the auth plugin for each page request it let through. */
export function setWebVisitor(req: FastifyRequest, visitor: WebVisitor): void {
  visitors.set(req, visitor);
}

export async function webRoutes(app: FastifyInstance, opts: WebOptions): Promise<void> {
  const { registry, catalog } = opts;

  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Referrer-Policy', 'same-origin');
    reply.header('X-Frame-Options', 'DENY');
    return payload;
  });

  // A page asked for with credentials that were not taken (auth on): the form, to come back to that page.
  app.addHook('preHandler', async (req, reply) => {
    const refused = visitors.get(req)?.refused;
    if (refused && req.method !== 'POST') return refusedPage(reply, next(req.routeOptions.url === WEB_LOGIN_URL ? (req.query as Record<string, unknown>).next : req.url), refused);
  });

  app.setErrorHandler((err: unknown, req, reply) => {
    const code = (err as { statusCode?: unknown }).statusCode;
    const status =
      err instanceof NotFound ? 404 : err instanceof OciError ? (err.status >= 500 ? err.status : err.status === 400 ? 400 : 404) : typeof code === 'number' && code >= 400 && code < 500 ? code : 500;
    if (status >= 500) req.log.error({ err }, 'catalog page failed');
    const message = err instanceof NotFound || err instanceof OciError ? err.message : status < 500 ? 'The request could not be read.' : 'The page could not be rendered; the registry log says why.';
    return sendPage(reply.code(status), errorPage(status, message));
  });

  function sendPage(reply: FastifyReply, page: string): FastifyReply {
    const req = reply.request;
    const visitor = visitors.get(req);
    if (visitor?.staleSession) reply.header('Set-Cookie', sessionCookie(req, '', 0));
    const account = opts.auth ? { user: visitor?.user ?? null, session: !!visitor?.session, here: req.url } : undefined;
    return reply.header('Content-Type', 'text/html; charset=utf-8').header('Cache-Control', 'no-store').send(withAccount(page, account));
  }

  function sessionCookie(req: FastifyRequest, value: string, maxAge: number): string {
    return `${SESSION_COOKIE}=${value}; Max-Age=${maxAge}; Path=/; HttpOnly; SameSite=Strict${req.protocol === 'https' ? '; Secure' : ''}`;
  }

  /** The visitor's pull check: everything with auth off, what the auth plugin decided with it on. */
  function mayPull(req: FastifyRequest): (name: string) => boolean {
    if (!opts.auth) return () => true;
    const visitor = visitors.get(req);
    return visitor ? (name) => visitor.mayPull(name) : () => false;
  }

  function context(req: FastifyRequest): PageContext {
    const host = req.headers.host && /^[A-Za-z0-9.\-:[\]]+$/.test(req.headers.host) ? req.headers.host : 'localhost:5000';
    return { registry: host };
  }

  /** The template's records, lowest first; NotFound for an unknown name or one the visitor may not pull (the same answer). */
  async function visibleVersions(req: FastifyRequest, name: string): Promise<VersionRecord[]> {
    if (!registry.isValidName(name) || !mayPull(req)(name)) throw new NotFound(`No template named ${name}.`);
    const versions = await catalog.versions(name);
    if (!versions.length) throw new NotFound(`No template named ${name}.`);
    return versions;
  }

  const asset = (body: string, type: string) => async (_req: FastifyRequest, reply: FastifyReply) =>
    reply.header('Content-Type', type).header('Cache-Control', 'public, max-age=300').send(body);
  app.get(STATIC.css, asset(CSS, 'text/css; charset=utf-8'));
  app.get(STATIC.js, asset(JS, 'text/javascript; charset=utf-8'));

  app.get(WEB_HOME_URL, async (req, reply) => {
    const q = req.query as Record<string, string | string[] | undefined>;
    const one = (v: string | string[] | undefined) => (typeof v === 'string' && v.trim() ? v.trim() : undefined);
    const filter: SearchFilter = { q: one(q.q), distro: one(q.distro), release: one(q.release), arch: one(q.arch), package: one(q.package) };
    const allowed = mayPull(req);
    const found = (await catalog.search(filter)).filter((r) => allowed(r.name));
    return sendPage(reply, homePage(filter, found, opts.auth ? visitors.get(req)?.note : undefined));
  });

  app.get(WEB_TEMPLATE_URL, async (req, reply) => {
    const route = matchWebRoute((req.params as { '*': string })['*']);
    const versions = await visibleVersions(req, route.name);
    const names = versions.map((v) => v.version);
    switch (route.kind) {
      case 'template': {
        const rows = (await catalog.withTrust(versions)).map((v) => ({ ...v, aliases: aliasesFor(v.version, names) }));
        return sendPage(reply, templatePage(context(req), route.name, rows));
      }
      case 'version': {
        const record = versions.find((v) => v.version === route.version);
        if (!record) throw new NotFound(`${route.name} has no version ${route.version}.`);
        const [layers, trust] = await Promise.all([layersOf(record), catalog.trust(record.name, record.digest)]);
        const changelog = changelogFrom(record.name, versions, record.version);
        return sendPage(reply, versionPage(context(req), { record, aliases: aliasesFor(record.version, names), layers, trust, changelog }));
      }
      case 'diff': {
        const q = req.query as Record<string, string | undefined>;
        const pick = (v: string | undefined, fallback: string) => (v && names.includes(v) ? v : fallback);
        const to = pick(q.to, names.at(-1)!);
        const from = pick(q.from, names.at(-2) ?? to);
        if ((q.from && q.from !== from) || (q.to && q.to !== to)) throw new NotFound(`${route.name} has no version ${q.from !== from ? q.from : q.to}.`);
        const byVersion = (v: string) => versions.find((r) => r.version === v)!;
        const diff = q.from && q.to ? packageDiff(byVersion(from).packages, byVersion(to).packages) : undefined;
        return sendPage(reply, diffPage({ name: route.name, versions: names, from, to, diff }));
      }
    }
  });

  if (opts.auth) signInRoutes(app);

  /** The sign-in form again, with the status and message of why credentials were not taken. */
  function refusedPage(reply: FastifyReply, to: string, refusal: AuthRefusal, name?: string): FastifyReply {
    reply.code(refusal.status);
    if (refusal.status === 401) return sendPage(reply, loginPage(to, 'Invalid username or password.', name));
    reply.header('Retry-After', String(refusal.retryAfter));
    return sendPage(reply, loginPage(to, refusal.status === 429 ? `Too many failed sign-ins; try again in ${refusal.retryAfter} seconds.` : 'The registry is busy; try again in a moment.', name));
  }

  /** Sign in and out (auth on); the auth plugin has identified the visitor and handed over its check. */
  function signInRoutes(app: FastifyInstance): void {
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8192 }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    const field = (req: FastifyRequest, name: string) => {
      const v = (req.body as Record<string, unknown> | undefined)?.[name];
      return typeof v === 'string' ? v : '';
    };
    /**
     * A POST made by a page of this site: its Origin (or, without one, its Referer) names this
     * host. With SameSite=Strict cookies this keeps other sites from signing a visitor in or out.
     */
    const sameOrigin = (req: FastifyRequest) => {
      const host = req.headers.host;
      const from = req.headers.origin ?? req.headers.referer;
      if (!host || !from || from === 'null') return false;
      try {
        return new URL(from).host === host;
      } catch {
        return false;
      }
    };
    const forbidden = (reply: FastifyReply) => sendPage(reply.code(403), errorPage(403, 'This form must be sent from a page of this registry.'));

    app.get(WEB_LOGIN_URL, async (req, reply) => sendPage(reply, loginPage(next((req.query as Record<string, unknown>).next))));

    app.post(WEB_LOGIN_URL, async (req, reply) => {
      if (!sameOrigin(req)) return forbidden(reply);
      const signIn = visitors.get(req)?.signIn;
      if (!signIn) return forbidden(reply);
      const to = next(field(req, 'next'));
      const name = field(req, 'username').slice(0, 256);
      const result = await signIn(name, field(req, 'password').slice(0, 1024));
      if (result.ok) {
        return reply.code(303).header('Set-Cookie', sessionCookie(req, result.token, result.maxAge)).header('Cache-Control', 'no-store').header('Location', to).send();
      }
      return refusedPage(reply, to, result, name);
    });

    app.post(WEB_LOGOUT_URL, async (req, reply) => {
      if (!sameOrigin(req)) return forbidden(reply);
      await visitors.get(req)?.signOut?.();
      return reply.code(303).header('Set-Cookie', sessionCookie(req, '', 0)).header('Cache-Control', 'no-store').header('Location', '/').send();
    });
  }

  /** The manifest's layers with the history step that made each (two reads: manifest and config). */
  async function layersOf(record: VersionRecord): Promise<LayerRow[]> {
    const stored = await registry.manifests.get(record.name, record.digest);
    const manifest = JSON.parse(stored.bytes.toString('utf8')) as Partial<ImageManifest>;
    if (!manifest.config || !Array.isArray(manifest.layers)) return [];
    const config = JSON.parse((await registry.blobs.getContent(manifest.config.digest)).toString('utf8')) as Partial<ImageConfig>;
    const steps = (config.history ?? []).filter((h) => !h.empty_layer);
    // History that does not account for every layer cannot be matched to them.
    const matched = steps.length === manifest.layers.length;
    return manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, ...(matched ? { step: steps[i] } : {}) }));
  }
}
