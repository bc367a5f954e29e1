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
import { createHmac, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthRuntime } from '../auth/setup.ts';
import { allowedActions, formatScope, grant, holds, parseScopes, type Access, type Principal } from '../auth/policy.ts';
import { verifyPassword } from '../auth/password.ts';
import { passwordFingerprint, SERVICE, signToken, verifyToken, type TokenClaims } from '../auth/token.ts';
import type { CompiledUser } from '../auth/users.ts';
import { OciError } from '../errors.ts';
import { matchRoute } from './v2.ts';

const MAX_SCOPES = 64;

interface Identity {
  principal: Principal;
  /** How the caller authenticated: no credentials, Basic, or a token (with its access list). */
  via: 'none' | 'basic' | 'token';
  access?: Access[];
}

type Need =
  | { kind: 'authenticated' }
  | { kind: 'access'; access: Access[]; mount?: { from: string } }
  | { kind: 'search' };

type Failure = { status: 401; reason: string; scope?: Access[]; error?: 'invalid_token' | 'insufficient_scope' } | { status: 403; reason: string; access: Access[] };

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
  if (url === '/api/v1/templates' && method === 'GET') return { kind: 'search' };
  if (url === '/api/v1/templates/*' && method === 'GET') {
    const tail = (req.params as { '*': string })['*'];
    const m = /^(.+)\/versions$/.exec(tail) ?? /^(.+)\/versions\/[^/]+$/.exec(tail) ?? /^(.+)\/resolve$/.exec(tail) ?? /^(.+)\/diff$/.exec(tail);
    return { kind: 'access', access: [{ type: 'repository', name: m ? m[1]! : tail, actions: ['pull'] }] };
  }
  return undefined;
}

/** Caches successful Basic checks briefly (scrypt is deliberately slow), keyed by a keyed hash. */
class CredentialCache {
  private readonly key = randomBytes(32);
  private readonly entries = new Map<string, { hash: string; expires: number }>();
  private digest(name: string, password: string): string {
    return createHmac('sha256', this.key).update(`${name}\0${password}`).digest('base64');
  }
  has(user: CompiledUser, password: string): boolean {
    const e = this.entries.get(this.digest(user.name, password));
    return !!e && e.hash === user.password && e.expires > Date.now();
  }
  add(user: CompiledUser, password: string): void {
    if (this.entries.size >= 1000) this.entries.clear();
    this.entries.set(this.digest(user.name, password), { hash: user.password, expires: Date.now() + 60_000 });
  }
  clear(): void {
    this.entries.clear();
  }
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

async function authPlugin(app: FastifyInstance, auth: AuthRuntime): Promise<void> {
  const policy = { anonymousPull: auth.anonymousPull };
  const credentials = new CredentialCache();
  auth.users.onChange = () => credentials.clear();
  const identities = new WeakMap<FastifyRequest, Identity>();

  function realm(req: FastifyRequest): string {
    if (auth.realm) return auth.realm;
    const host = req.headers.host && /^[A-Za-z0-9.\-:[\]]+$/.test(req.headers.host) ? req.headers.host : 'localhost';
    return `${req.protocol}://${host}/token`;
  }

  async function checkBasic(value: string): Promise<CompiledUser | undefined> {
    const creds = parseBasic(value);
    if (!creds) return undefined;
    const user = await auth.users.get(creds.name);
    if (user && credentials.has(user, creds.password)) return user;
    if (!(await verifyPassword(creds.password, user?.password)) || !user) return undefined;
    credentials.add(user, creds.password);
    return user;
  }

  /** Who is calling; a Failure for credentials that do not check out. */
  async function identify(req: FastifyRequest): Promise<Identity | Failure> {
    const header = req.headers.authorization;
    if (!header) return { principal: { kind: 'anonymous' }, via: 'none' };
    const space = header.indexOf(' ');
    const scheme = (space === -1 ? header : header.slice(0, space)).toLowerCase();
    const value = space === -1 ? '' : header.slice(space + 1).trim();
    if (scheme === 'basic') {
      const user = await checkBasic(value);
      if (!user) return { status: 401, reason: 'invalid username or password' };
      return { principal: { kind: 'user', user }, via: 'basic' };
    }
    if (scheme === 'bearer') {
      const verified = verifyToken(auth.secret, value);
      if (!verified.ok) return { status: 401, reason: verified.reason, error: 'invalid_token' };
      const claims: TokenClaims = verified.claims;
      if (claims.sub === '') return { principal: { kind: 'anonymous' }, via: 'token', access: claims.access };
      const user = await auth.users.get(claims.sub);
      if (!user || claims.pwd !== passwordFingerprint(auth.secret, user.password)) return { status: 401, reason: 'token revoked (user removed or password changed)', error: 'invalid_token' };
      return { principal: { kind: 'user', user }, via: 'token', access: claims.access };
    }
    return { status: 401, reason: `unsupported authorization scheme ${scheme}` };
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

  app.addHook('onRequest', async (req, reply) => {
    const need = requiredAccess(req);
    if (!need) return;
    const identity = await identify(req);
    if ('status' in identity) return fail(req, reply, identity.status === 401 ? { ...identity, scope: need.kind === 'access' ? need.access : undefined } : identity);
    identities.set(req, identity);
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
    if (req.routeOptions.url !== '/api/v1/templates') return payload;
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
      const user = m ? await checkBasic(m[1]!) : undefined;
      if (!user) {
        req.log.info({ audit: 'login-failed' }, 'token request with bad credentials');
        return reply
          .code(401)
          .header('WWW-Authenticate', `Basic realm=${quote(SERVICE)}`)
          .send(new OciError('UNAUTHORIZED', m ? 'invalid username or password' : 'the token endpoint takes Basic credentials').body());
      }
      principal = { kind: 'user', user };
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
