// Registry authentication and authorization, as a fastify plugin registered before the routes:
//
// - GET /token: the Docker/OCI token endpoint. Basic credentials (or none: anonymous) and
//   scope=repository:NAME:ACTIONS parameters; the token grants the intersection of what was
//   asked and what the caller may have, and never fails for unknown repositories.
// - Every /v2/ and /api/v1/ request is checked before its body is read: Bearer tokens from
//   /token, or Basic credentials directly. No or bad credentials, or a token without the needed
//   scope, get 401 with a Bearer challenge naming the scope (error="insufficient_scope" when a
//   valid token lacked it); a known user whose policy does not allow the action gets 403.
//   GET /v2/ answers 401 to anonymous callers even when anonymous pull is on, so that clients
//   (podman, skopeo, docker) take the token route.
// - GET /api/v1/templates (search) lists only templates the caller may pull.
// - The catalog's web pages (http/web.ts) are open to anyone; each visitor is identified here as
//   for the API (bad credentials: 401), and the pages show only what the visitor may pull.
//   A page request without an Authorization header may instead carry the vztpl_session cookie
//   set by the sign-in form (POST /-/login): a token from signToken (same secret and TTL) marked
//   `web`, naming the user; the visitor is that user with their current scopes, and a removed
//   user or changed password ends the session as it revokes tokens. Signing out (POST
//   /-/logout) records the token's id in the storage until it expires (auth/sign-outs.ts), so
//   no instance honors that cookie again. The cookie is read for the pages only, never for
//   /v2/ or /api/v1/ (no CSRF surface there), and a session token is refused as a Bearer token.
//   Credentials a page request carries that do not check out (or a password guard refusal) are
//   handed to the pages, which answer with the sign-in form (http/web.ts), not JSON.
// - Basic credentials (here and on /token) go through PasswordGuard (auth/guard.ts): too many
//   failed logins get 429, too many checks waiting 503, both with Retry-After and no check.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthRuntime } from '../auth/setup.ts';
import type { SignOuts } from '../auth/sign-outs.ts';
import { allowedActions, formatScope, grant, holds, parseScopes, type Access, type Principal } from '../auth/policy.ts';
import { PasswordGuard, type CheckResult } from '../auth/guard.ts';
import { passwordFingerprint, SERVICE, signToken, verifyToken, type TokenClaims } from '../auth/token.ts';
import { OciError } from '../errors.ts';
import { matchTemplateRoute, SEARCH_URL, TEMPLATE_URL } from './catalog.ts';
import { matchRoute } from './v2.ts';
import { sessionToken, setWebVisitor, WEB_HOME_URL, WEB_LOGIN_URL, WEB_LOGOUT_URL, WEB_TEMPLATE_URL, type SignIn } from './web.ts';

const MAX_SCOPES = 64;

interface Identity {
  principal: Principal;
  /** How the caller authenticated: no credentials, Basic, a token (with its access list), or a web session cookie. */
  via: 'none' | 'basic' | 'token' | 'session';
  access?: Access[];
}

type Need =
  | { kind: 'authenticated' }
  | { kind: 'access'; access: Access[]; mount?: { from: string } }
  | { kind: 'search' }
  /** A catalog page (http/web.ts): anyone may ask; it shows only what the visitor may pull. */
  | { kind: 'web' };

type Failure =
  | { status: 401; reason: string; scope?: Access[]; error?: 'invalid_token' | 'insufficient_scope' }
  | { status: 403; reason: string; access: Access[] }
  /** Refused before any password check: too many failed logins (429) or checks waiting (503). */
  | { status: 429; reason: string; retryAfter: number }
  | { status: 503; reason: string; retryAfter: number };
type Refusal = Extract<Failure, { status: 429 | 503 }>;

/** What a /v2/ or /api/v1/ request needs, or undefined for requests left to the routes (404s). */
export function requiredAccess(req: FastifyRequest): Need | undefined {
  const url = req.routeOptions.url;
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  if (url === '/v2/*') {
    const route = matchRoute((req.params as { '*': string })['*']);
    if (!route) return undefined;
    if (route.kind === 'base') return { kind: 'authenticated' };
    if (route.kind === 'catalog') return { kind: 'access', access: [{ type: 'registry', name: 'catalog', actions: ['*'] }] };
    const repo = route.repo;
    const action = route.kind === 'upload' || route.kind === 'uploads' ? 'push' : method === 'GET' ? 'pull' : method === 'DELETE' ? 'delete' : 'push';
    const need: Need = { kind: 'access', access: [{ type: 'repository', name: repo, actions: [action] }] };
    const q = req.query as Record<string, string | undefined>;
    if (route.kind === 'uploads' && req.method === 'POST' && q.mount && q.from) need.mount = { from: q.from };
    return need;
  }
  if (url === SEARCH_URL && method === 'GET') return { kind: 'search' };
  if ((url === WEB_HOME_URL || url === WEB_TEMPLATE_URL || url === WEB_LOGIN_URL) && method === 'GET') return { kind: 'web' };
  if ((url === WEB_LOGIN_URL || url === WEB_LOGOUT_URL) && method === 'POST') return { kind: 'web' };
  if (url === TEMPLATE_URL && method === 'GET') {
    const { name } = matchTemplateRoute((req.params as { '*': string })['*']);
    return { kind: 'access', access: [{ type: 'repository', name, actions: ['pull'] }] };
  }
  return undefined;
}

function parseBasic(value: string): { name: string; password: string } | undefined {
  const decoded = Buffer.from(value.trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { name: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '')}"`;
}

export type AuthPluginOptions = AuthRuntime & { signOuts: SignOuts };

async function authPlugin(app: FastifyInstance, auth: AuthPluginOptions): Promise<void> {
  const policy = { anonymousPull: auth.anonymousPull };
  const guard = new PasswordGuard(auth.limits);
  auth.users.onChange = () => guard.usersChanged();
  const identities = new WeakMap<FastifyRequest, Identity>();

  /**
   * The token endpoint named in challenges: auth.realm when set (a TLS proxy in front, another
   * host), else this server as the client reached it: https on a TLS socket (serve --tls-cert).
   */
  function realm(req: FastifyRequest): string {
    if (auth.realm) return auth.realm;
    const host = req.headers.host && /^[A-Za-z0-9.\-:[\]]+$/.test(req.headers.host) ? req.headers.host : 'localhost';
    return `${req.protocol}://${host}/token`;
  }

  async function checkBasic(req: FastifyRequest, value: string): Promise<CheckResult> {
    const creds = parseBasic(value);
    if (!creds) return { ok: false, kind: 'invalid' };
    return guard.check(creds.name, creds.password, req.ip, (name) => auth.users.get(name), req.log);
  }

  /** Who is calling; a Failure for credentials that do not check out. */
  async function identify(req: FastifyRequest): Promise<Identity | Failure> {
    const header = req.headers.authorization;
    if (!header) return { principal: { kind: 'anonymous' }, via: 'none' };
    const space = header.indexOf(' ');
    const scheme = (space === -1 ? header : header.slice(0, space)).toLowerCase();
    const value = space === -1 ? '' : header.slice(space + 1).trim();
    if (scheme === 'basic') {
      const checked = await checkBasic(req, value);
      if (!checked.ok) return checked.kind === 'invalid' ? { status: 401, reason: 'invalid username or password' } : refusal(checked);
      return { principal: { kind: 'user', user: checked.user }, via: 'basic' };
    }
    if (scheme === 'bearer') {
      const verified = verifyToken(auth.secret, value);
      if (!verified.ok) return { status: 401, reason: verified.reason, error: 'invalid_token' };
      const claims: TokenClaims = verified.claims;
      if (claims.web) return { status: 401, reason: 'a web session is not an API token', error: 'invalid_token' };
      if (claims.sub === '') return { principal: { kind: 'anonymous' }, via: 'token', access: claims.access };
      const user = await auth.users.get(claims.sub);
      if (!user || claims.pwd !== passwordFingerprint(auth.secret, user.password)) return { status: 401, reason: 'token revoked (user removed or password changed)', error: 'invalid_token' };
      return { principal: { kind: 'user', user }, via: 'token', access: claims.access };
    }
    return { status: 401, reason: `unsupported authorization scheme ${scheme}` };
  }

  /** The claims of the request's vztpl_session cookie when it is a well-signed, unexpired session token. */
  function sessionClaims(req: FastifyRequest): TokenClaims | undefined {
    const token = sessionToken(req);
    if (!token) return undefined;
    const verified = verifyToken(auth.secret, token);
    return verified.ok && verified.claims.web && verified.claims.sub ? verified.claims : undefined;
  }

  /**
   * The visitor a page's vztpl_session cookie names, or undefined (no cookie, or one that no
   * longer holds: expired, not a session, signed out, user removed or password changed).
   */
  async function session(req: FastifyRequest): Promise<Identity | undefined> {
    const claims = sessionClaims(req);
    if (!claims) return undefined;
    const user = await auth.users.get(claims.sub);
    if (!user || claims.pwd !== passwordFingerprint(auth.secret, user.password)) return undefined;
    if (await auth.signOuts.isSignedOut(claims)) return undefined;
    return { principal: { kind: 'user', user }, via: 'session' };
  }

  /** The sign-out the pages call: the cookie's session, if it is one, is ended for every instance. */
  function signOut(req: FastifyRequest): () => Promise<void> {
    return async () => {
      const claims = sessionClaims(req);
      if (!claims) return;
      await auth.signOuts.signOut(claims);
      req.log.info({ audit: 'web-logout', user: claims.sub }, 'web sign-out');
    };
  }

  /** The sign-in form's check: the same guarded path as Basic credentials, then a session token. */
  function signIn(req: FastifyRequest): SignIn {
    return async (name, password) => {
      const checked: CheckResult = name && !name.includes(':') ? await guard.check(name, password, req.ip, (n) => auth.users.get(n), req.log) : { ok: false, kind: 'invalid' };
      if (!checked.ok) {
        req.log.info({ audit: 'web-login-failed', result: checked.kind }, 'web sign-in failed');
        return checked.kind === 'invalid' ? { ok: false, status: 401 } : { ok: false, ...refusal(checked) };
      }
      const now = Math.floor(Date.now() / 1000);
      const user = checked.user;
      const token = signToken(auth.secret, { sub: user.name, iat: now, exp: now + auth.tokenTtl, access: [], pwd: passwordFingerprint(auth.secret, user.password), web: true });
      req.log.info({ audit: 'web-login', user: user.name }, 'web sign-in');
      return { ok: true, token, maxAge: auth.tokenTtl };
    };
  }

  function refusal(checked: Extract<CheckResult, { kind: 'limited' | 'busy' }>): Refusal {
    if (checked.kind === 'busy') return { status: 503, reason: 'too many logins being checked; retry later', retryAfter: checked.retryAfter };
    return { status: 429, reason: `too many failed logins ${checked.by === 'address' ? 'from this address' : 'for this user'}; retry later`, retryAfter: checked.retryAfter };
  }

  /** undefined when `identity` may do all of `needed`. */
  function authorize(identity: Identity, needed: Access[]): Failure | undefined {
    const missing: Access[] = [];
    let denied = false;
    for (const need of needed) {
      const allowed = allowedActions(identity.principal, need.type, need.name, policy);
      for (const action of need.actions) {
        const byPolicy = allowed.has(action);
        const byToken = identity.via !== 'token' || holds(identity.access ?? [], need.type, need.name, action);
        if (byPolicy && byToken) continue;
        missing.push({ type: need.type, name: need.name, actions: [action] });
        if (!byPolicy && identity.principal.kind === 'user') denied = true;
      }
    }
    if (!missing.length) return undefined;
    if (denied) return { status: 403, reason: 'requested access to the resource is denied', access: missing };
    // The challenge asks for what a client doing this needs: pushing also reads (HEAD blobs).
    const scope = needed.map((n) => ({ ...n, actions: n.type === 'repository' && n.actions.includes('push') ? ['pull', 'push'] : n.actions }));
    if (identity.via === 'token') return { status: 401, reason: 'insufficient scope', scope, error: 'insufficient_scope' };
    return { status: 401, reason: 'authentication required', scope };
  }

  function fail(req: FastifyRequest, reply: FastifyReply, failure: Failure): FastifyReply {
    if (req.url.startsWith('/v2')) reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    if (failure.status === 429 || failure.status === 503) return refuse(reply, failure);
    if (failure.status === 403) {
      req.log.info({ audit: 'access-denied', access: failure.access.map(formatScope) }, 'access denied');
      const detail = failure.access.map((a) => ({ Type: a.type, Name: a.name, Action: a.actions.join(',') }));
      return reply.code(403).header('Content-Type', 'application/json').send(new OciError('DENIED', failure.reason, detail).body());
    }
    let challenge = `Bearer realm=${quote(realm(req))},service=${quote(SERVICE)}`;
    if (failure.scope?.length) challenge += `,scope=${quote(failure.scope.map(formatScope).join(' '))}`;
    if (failure.error) challenge += `,error=${quote(failure.error)}`;
    const detail = failure.scope?.map((a) => ({ Type: a.type, Name: a.name, Action: a.actions.join(',') }));
    return reply.code(401).header('WWW-Authenticate', challenge).header('Content-Type', 'application/json').send(new OciError('UNAUTHORIZED', failure.reason, detail).body());
  }

  function refuse(reply: FastifyReply, failure: Refusal): FastifyReply {
    const error = new OciError(failure.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', failure.reason, { retryAfter: failure.retryAfter });
    return reply.code(failure.status).header('Retry-After', String(failure.retryAfter)).header('Content-Type', 'application/json').send(error.body());
  }

  app.addHook('onRequest', async (req, reply) => {
    const need = requiredAccess(req);
    if (!need) return;
    const fromSession = need.kind === 'web' && !req.headers.authorization ? await session(req) : undefined;
    const identity = fromSession ?? (await identify(req));
    if ('status' in identity && need.kind === 'web' && identity.status !== 403) {
      // The pages answer it themselves, with the sign-in form.
      setWebVisitor(req, { mayPull: () => false, refused: identity.status === 401 ? { status: 401 } : { status: identity.status, retryAfter: identity.retryAfter }, signIn: signIn(req), signOut: signOut(req) });
      return;
    }
    if ('status' in identity) return fail(req, reply, identity.status === 401 ? { ...identity, scope: need.kind === 'access' ? need.access : undefined } : identity);
    identities.set(req, identity);
    if (need.kind === 'web') {
      setWebVisitor(req, {
        mayPull: (name) => !authorize(identity, [{ type: 'repository', name, actions: ['pull'] }]),
        ...(identity.principal.kind === 'anonymous' && !auth.anonymousPull ? { note: 'This registry shows templates to signed-in users only.' } : {}),
        ...(identity.principal.kind === 'user' ? { user: identity.principal.user.name, session: identity.via === 'session' } : {}),
        ...(identity.via === 'none' && sessionToken(req) ? { staleSession: true } : {}),
        signIn: signIn(req),
        signOut: signOut(req),
      });
      return;
    }
    if (need.kind === 'authenticated' || need.kind === 'search') {
      // Anonymous callers must take the token route (GET /v2/), or have nothing to find.
      if (identity.via === 'none' && (need.kind === 'authenticated' || !auth.anonymousPull)) return fail(req, reply, { status: 401, reason: 'authentication required' });
      return;
    }
    const failure = authorize(identity, need.access);
    if (failure) return fail(req, reply, failure);
    if (need.mount && authorize(identity, [{ type: 'repository', name: need.mount.from, actions: ['pull'] }])) {
      // A mount from a repository the caller may not read: a plain upload instead, as Distribution does.
      const q = req.query as Record<string, string | undefined>;
      delete q.mount;
      delete q.from;
    }
  });

  app.addHook('preSerialization', async (req, _reply, payload: unknown) => {
    if (req.routeOptions.url !== SEARCH_URL) return payload;
    const identity = identities.get(req);
    const list = (payload as { templates?: Array<{ name: string }> } | null)?.templates;
    if (!identity || !Array.isArray(list)) return payload;
    return { ...(payload as object), templates: list.filter((t) => allowedActions(identity.principal, 'repository', t.name, policy).has('pull')) };
  });

  app.get('/token', async (req, reply) => {
    reply.header('Cache-Control', 'no-store');
    const header = req.headers.authorization;
    let principal: Principal = { kind: 'anonymous' };
    if (header) {
      const m = /^basic\s+(.*)$/i.exec(header);
      const checked: CheckResult = m ? await checkBasic(req, m[1]!) : { ok: false, kind: 'invalid' };
      if (!checked.ok && checked.kind !== 'invalid') return refuse(reply, refusal(checked));
      if (!checked.ok) {
        return reply
          .code(401)
          .header('WWW-Authenticate', `Basic realm=${quote(SERVICE)}`)
          .send(new OciError('UNAUTHORIZED', m ? 'invalid username or password' : 'the token endpoint takes Basic credentials').body());
      }
      principal = { kind: 'user', user: checked.user };
    }
    const q = req.query as Record<string, string | string[] | undefined>;
    const requested = parseScopes(q.scope);
    if (requested.length > MAX_SCOPES) return reply.code(400).send(new OciError('UNSUPPORTED', `at most ${MAX_SCOPES} scopes per token`, undefined, 400).body());
    const access = grant(principal, requested, policy);
    const now = Math.floor(Date.now() / 1000);
    const sub = principal.kind === 'user' ? principal.user.name : '';
    const token = signToken(auth.secret, {
      sub,
      iat: now,
      exp: now + auth.tokenTtl,
      access,
      ...(principal.kind === 'user' ? { pwd: passwordFingerprint(auth.secret, principal.user.password) } : {}),
    });
    req.log[sub ? 'info' : 'debug']({ audit: 'token', user: sub || undefined, requested: requested.map(formatScope), granted: access.map(formatScope) }, 'issued token');
    return { token, access_token: token, expires_in: auth.tokenTtl, issued_at: new Date(now * 1000).toISOString() };
  });
}

// Registered with skip-override (what fastify-plugin does), so the hooks cover every route.
export const authRoutes = Object.assign(authPlugin, { [Symbol.for('skip-override')]: true });
