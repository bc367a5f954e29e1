// How the registry client connects over HTTPS: the server's certificate is verified against
// Node's CA list, the system's (/etc/ssl/certs: where update-ca-certificates puts a site CA, as
// docker, podman and skopeo use it) and an optional CA file (--ca-file, $VZTPL_CA_FILE). Node's
// global fetch takes no CA per request, so an undici Agent with that trust is passed to it as its
// dispatcher: per client, nothing changes for the rest of the process. undici is the
// implementation of Node's fetch; its major version (7 for Node 24) must match the bundled one.
//
// A connection that fails TLS verification becomes a CertificateError naming the registry's
// host and the reason, with what to do about it (exit 5, as any unreachable registry).
import { readFile } from 'node:fs/promises';
import type { SecureContext } from 'node:tls';
import { ExitCode, UsageError, VztplError } from '../common/errors.ts';

/** The server's certificate could not be verified, or the server does not speak TLS. */
export class CertificateError extends VztplError {
  readonly host: string;
  readonly reason: string;
  constructor(host: string, reason: string, message: string) {
    super(message, ExitCode.unavailable);
    this.host = host;
    this.reason = reason;
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM CA file; a file that is unreadable or holds none is refused (exit 2) naming it. */
export async function loadCaFile(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'latin1');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new UsageError(`CA file ${file}: cannot read it: ${e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message}`);
  }
  const certs = text.match(PEM_CERT) ?? [];
  if (!certs.length) throw new UsageError(`CA file ${file}: not a PEM file of CA certificates (no "-----BEGIN CERTIFICATE-----" block)`);
  // loaded here, not with the client: a create from the cache loads no crypto
  const { X509Certificate } = await import('node:crypto');
  for (const [i, pem] of certs.entries()) {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new UsageError(`CA file ${file}: certificate ${i + 1} of ${certs.length} is not valid: ${(err as Error).message}`);
    }
  }
  return certs;
}

/** What fetch takes as `dispatcher` (an undici Dispatcher). */
export type Dispatcher = object;

// One agent per CA file, shared by the clients of a process (the host may talk to several
// registries): the CA list is parsed once into one secure context.
const agents = new Map<string, Promise<Dispatcher>>();

/** The dispatcher for HTTPS requests of a client trusting the system CAs and `caFile`. */
export function httpsDispatcher(caFile: string | undefined): Promise<Dispatcher> {
  const key = caFile ?? '';
  let agent = agents.get(key);
  if (!agent) {
    agent = makeAgent(caFile);
    agents.set(key, agent);
    agent.catch(() => agents.delete(key));
  }
  return agent;
}

async function makeAgent(caFile: string | undefined): Promise<Dispatcher> {
  const extra = caFile ? await loadCaFile(caFile) : [];
  const [{ Agent }, tls] = await Promise.all([import('undici'), import('node:tls')]);
  const ca = [...new Set([...tls.getCACertificates('default'), ...systemCertificates(tls), ...extra])];
  // One secure context for every connection: tls.connect would otherwise parse the whole list
  // for each one.
  const secureContext: SecureContext = tls.createSecureContext({ ca });
  return new Agent({ connect: { secureContext, rejectUnauthorized: true } });
}

function systemCertificates(tls: typeof import('node:tls')): string[] {
  try {
    return tls.getCACertificates('system');
  } catch {
    return []; // no system store readable: Node's own list still applies
  }
}

/** Node's codes for a certificate that failed verification. */
const VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

/** The errors behind a failed fetch: its causes, and the members of an AggregateError (one per address tried). */
function causes(err: unknown): Array<Error & { code?: string }> {
  const out: Array<Error & { code?: string }> = [];
  const seen = new Set<unknown>();
  const walk = (e: unknown) => {
    if (!(e instanceof Error) || seen.has(e)) return;
    seen.add(e);
    out.push(e as Error & { code?: string });
    if (e instanceof AggregateError) for (const inner of e.errors) walk(inner);
    walk((e as Error & { cause?: unknown }).cause);
  };
  walk(err);
  return out;
}

/**
 * A CertificateError when `err` (from fetch) is a TLS failure: an untrusted, expired or
 * misnamed certificate, or a server that does not speak TLS. undefined for anything else.
 */
export function tlsFailure(url: string, err: unknown, caFile: string | undefined): CertificateError | undefined {
  const { host, protocol } = new URL(url);
  if (protocol !== 'https:') return undefined;
  const all = causes(err);
  const found = all.find((e) => e.code && VERIFY_CODES.has(e.code));
  if (found) {
    // Node's advice to run with --use-system-ca does not apply: the system's CAs are in already.
    const verify = { code: found.code, message: found.message.replace(/;\s*if the root CA is installed locally.*$/s, '') };
    const trusted = caFile ? `the system's CAs nor the CA file ${caFile}` : "the system's CAs";
    const what =
      verify.code === 'ERR_TLS_CERT_ALTNAME_INVALID' || verify.code === 'HOSTNAME_MISMATCH'
        ? `the TLS certificate of ${host} is not for that name: ${verify.message}`
        : verify.code === 'CERT_HAS_EXPIRED' || verify.code === 'CERT_NOT_YET_VALID'
          ? `the TLS certificate of ${host} is not valid now: ${verify.message} (${verify.code})`
          : `the TLS certificate of ${host} is not trusted: ${verify.message} (${verify.code}); it was checked against ${trusted}`;
    const hint =
      verify.code === 'CERT_HAS_EXPIRED' || verify.code === 'CERT_NOT_YET_VALID' || verify.code === 'ERR_TLS_CERT_ALTNAME_INVALID' || verify.code === 'HOSTNAME_MISMATCH'
        ? `the registry's operator must renew or reissue its certificate`
        : `if the registry's certificate comes from a private CA, give that CA's certificate with --ca-file FILE or $VZTPL_CA_FILE`;
    return new CertificateError(host, verify.code!, `${what}\n${hint}`);
  }
  const protocolError = all.find((e) => e.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || e.code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || /wrong version number|packet length too long/i.test(e.message));
  if (protocolError) {
    const reason = /wrong version number|packet length too long/i.exec(protocolError.message)?.[0] ?? protocolError.message.trim();
    return new CertificateError(host, 'not-tls', `${host} does not speak TLS (${reason}): if it serves plain HTTP, name it http://${host}`);
  }
  return undefined;
}

/**
 * For a plain http:// request whose connection the server closed without an answer (what an
 * HTTPS server does with plain HTTP): a hint to name it https://, else undefined.
 */
export function httpsHint(url: string, err: unknown): string | undefined {
  const { host, protocol } = new URL(url);
  if (protocol !== 'http:') return undefined;
  const closed = causes(err).some((e) => e.code === 'UND_ERR_SOCKET' || e.code === 'ECONNRESET');
  return closed ? `if ${host} serves HTTPS, name it https://${host}` : undefined;
}
