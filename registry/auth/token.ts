// Registry tokens: compact JWTs (HS256) signed with the registry's secret, carrying the
// subject, the granted access list (Docker token specification), iat/nbf/exp and a
// fingerprint of the user's password hash, so that a password change revokes its tokens.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Access } from './policy.ts';

export const SERVICE = 'vztpl';

export interface TokenClaims {
  iss: string;
  /** The user's name; "" for anonymous. */
  sub: string;
  aud: string;
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  access: Access[];
  /** Fingerprint of the user's password hash when the token was issued. */
  pwd?: string;
  /** A web catalog session (the vztpl_session cookie): honored by the catalog's pages only, never as a Bearer token. */
  web?: true;
}

const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
/** Clock skew tolerated between instances sharing a secret, in seconds. */
const SKEW = 60;

function mac(secret: Buffer, data: string): Buffer {
  return createHmac('sha256', secret).update(data).digest();
}

/** A short keyed fingerprint of a password hash (never the hash itself). */
export function passwordFingerprint(secret: Buffer, passwordHash: string): string {
  return mac(secret, `pwd\0${passwordHash}`).subarray(0, 12).toString('base64url');
}

export function signToken(secret: Buffer, claims: Omit<TokenClaims, 'iss' | 'aud' | 'nbf' | 'jti'> & { jti?: string }): string {
  const full: TokenClaims = { iss: SERVICE, aud: SERVICE, nbf: claims.iat, jti: claims.jti ?? randomBytes(12).toString('base64url'), ...claims };
  const payload = Buffer.from(JSON.stringify(full)).toString('base64url');
  return `${HEADER}.${payload}.${mac(secret, `${HEADER}.${payload}`).toString('base64url')}`;
}

export type Verified = { ok: true; claims: TokenClaims } | { ok: false; reason: string };

/** Checks the signature (constant time), the header, the audience and the time window. */
export function verifyToken(secret: Buffer, token: string, now = Math.floor(Date.now() / 1000)): Verified {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) return { ok: false, reason: 'malformed token' };
  const [header, payload, signature] = parts as [string, string, string];
  const expected = mac(secret, `${header}.${payload}`);
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'bad token signature' };
  if (header !== HEADER) return { ok: false, reason: 'unsupported token header' };
  let claims: TokenClaims;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as TokenClaims;
  } catch {
    return { ok: false, reason: 'malformed token' };
  }
  if (typeof claims !== 'object' || claims === null || typeof claims.sub !== 'string' || !Array.isArray(claims.access) || typeof claims.exp !== 'number' || typeof claims.iat !== 'number') {
    return { ok: false, reason: 'malformed token' };
  }
  if (claims.aud !== SERVICE) return { ok: false, reason: 'token is for another service' };
  if (now >= claims.exp) return { ok: false, reason: 'token expired' };
  if ((claims.nbf ?? claims.iat) > now + SKEW) return { ok: false, reason: 'token not valid yet' };
  return { ok: true, claims };
}
