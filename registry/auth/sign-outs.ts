// Web sessions signed out before they expire. A session token is stateless (an HMAC any instance
// sharing the secret accepts until its exp), so signing out records the token's id in the
// registry's storage, where every instance serving it looks before honoring a session cookie,
// and keeps it only until the token would have expired anyway. Ids are grouped by that expiry
// second: what can no longer matter goes by deleting whole groups, found with one listing.
import { exists, isNotFound, type StorageDriver } from '../storage/driver.ts';

const ROOT = '/v2/_auth/signed-out';
/** signToken's ids (base64url); anything else is not one of ours and cannot be recorded. */
const TOKEN_ID = /^[A-Za-z0-9_-]{8,64}$/;
/** Expired groups removed by one sign-out, so that a backlog never makes one slow. */
const PRUNE_AT_ONCE = 64;

export interface SessionClaims {
  jti: string;
  exp: number;
}

export class SignOuts {
  private readonly driver: StorageDriver;
  /** Ids known to be signed out, with their expiry: a sign-out is never undone. */
  private readonly known = new Map<string, number>();
  constructor(driver: StorageDriver) {
    this.driver = driver;
  }

  /** Records that this session ended; then removes groups that expired. */
  async signOut(claims: SessionClaims, now = Math.floor(Date.now() / 1000)): Promise<void> {
    if (!recordable(claims)) return;
    await this.driver.putContent(pathOf(claims), Buffer.from('1'), { ifNotExists: true });
    this.remember(claims, now);
    await this.prune(now);
  }

  /** Whether the session was signed out (through any instance); a session without a usable id counts as signed out. */
  async isSignedOut(claims: SessionClaims, now = Math.floor(Date.now() / 1000)): Promise<boolean> {
    if (!recordable(claims)) return true;
    if (this.known.has(claims.jti)) return true;
    if (!(await exists(this.driver, pathOf(claims)))) return false;
    this.remember(claims, now);
    return true;
  }

  private remember(claims: SessionClaims, now: number): void {
    this.known.set(claims.jti, claims.exp);
    for (const [id, exp] of this.known) if (exp <= now) this.known.delete(id);
  }

  private async prune(now: number): Promise<void> {
    let groups: string[];
    try {
      groups = await this.driver.list(ROOT);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    const expired = groups.filter((p) => Number(p.slice(p.lastIndexOf('/') + 1)) <= now).slice(0, PRUNE_AT_ONCE);
    await Promise.all(
      expired.map((p) =>
        this.driver.delete(p).catch((err: unknown) => {
          // another instance pruning the same group
          if (!isNotFound(err)) throw err;
        }),
      ),
    );
  }
}

function recordable(claims: SessionClaims): boolean {
  return typeof claims.jti === 'string' && TOKEN_ID.test(claims.jti) && Number.isSafeInteger(claims.exp) && claims.exp > 0;
}

function pathOf(claims: SessionClaims): string {
  return `${ROOT}/${claims.exp}/${claims.jti}`;
}
