// Access as the Docker token specification names it: resource scopes such as
// "repository:acme/web:pull,push" or "registry:catalog:*", and what a user (or anonymous)
// may be granted of them under the users file's patterns.
//
//   pull    GET/HEAD of manifests, blobs, tags, referrers; the template catalog API
//   push    uploads and manifest PUTs (a cross-repository mount also needs pull on the source)
//   delete  DELETE of manifests, tags and blobs
//   admin   all of the above on the matching repositories; admin on "**" also grants the
//           registry-wide catalog (GET /v2/_catalog, scope registry:catalog:*)
import { matchesEverything } from './glob.ts';
import type { CompiledUser } from './users.ts';

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export type Principal = { kind: 'anonymous' } | { kind: 'user'; user: CompiledUser };

export interface PolicyOptions {
  anonymousPull: boolean;
}

/** Parses one scope; undefined for a malformed one (ignored, as the spec's servers do). */
export function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  // "repository(plugin):name:pull" carries a resource class; the type is what precedes it.
  const type = scope.slice(0, first).replace(/\(.*\)$/, '');
  const name = scope.slice(first + 1, last);
  const actions = [...new Set(scope.slice(last + 1).split(',').filter(Boolean))];
  if (!type || !name || !actions.length) return undefined;
  return { type, name, actions };
}

/** All scopes of a token request: repeated scope parameters, each possibly space-separated. */
export function parseScopes(values: string | string[] | undefined): Access[] {
  const list = values === undefined ? [] : Array.isArray(values) ? values : [values];
  const out: Access[] = [];
  for (const value of list) for (const part of value.split(' ')) {
    const access = part ? parseScope(part) : undefined;
    if (access) out.push(access);
  }
  return out;
}

export function formatScope(access: Access): string {
  return `${access.type}:${access.name}:${access.actions.join(',')}`;
}

/** The actions `principal` may have on a resource (empty when none). */
export function allowedActions(principal: Principal, type: string, name: string, opts: PolicyOptions): Set<string> {
  const allowed = new Set<string>();
  if (principal.kind === 'anonymous') {
    if (type === 'repository' && opts.anonymousPull) allowed.add('pull');
    return allowed;
  }
  // A user never has less than an anonymous caller.
  if (type === 'repository' && opts.anonymousPull) allowed.add('pull');
  for (const scope of principal.user.scopes) {
    if (type === 'repository') {
      if (!scope.regex.test(name)) continue;
      for (const action of scope.actions) {
        if (action === 'admin') for (const a of ['pull', 'push', 'delete', 'admin', '*']) allowed.add(a);
        else allowed.add(action);
      }
    } else if (type === 'registry' && name === 'catalog') {
      if (scope.actions.has('admin') && matchesEverything(scope.pattern)) allowed.add('*');
    }
  }
  return allowed;
}

/** What a token for `requested` carries: the intersection with the policy, never an error. */
export function grant(principal: Principal, requested: Access[], opts: PolicyOptions): Access[] {
  const merged = new Map<string, Access>();
  for (const r of requested) {
    const allowed = allowedActions(principal, r.type, r.name, opts);
    const actions = r.actions.filter((a) => allowed.has(a));
    if (!actions.length) continue;
    const key = `${r.type}\0${r.name}`;
    const existing = merged.get(key);
    if (existing) existing.actions = [...new Set([...existing.actions, ...actions])];
    else merged.set(key, { type: r.type, name: r.name, actions });
  }
  return [...merged.values()];
}

/** Whether an access list (a token's) holds `action` on the resource. */
export function holds(access: readonly Access[], type: string, name: string, action: string): boolean {
  return access.some((a) => a.type === type && a.name === name && (a.actions.includes(action) || (type === 'repository' && a.actions.includes('*'))));
}
