// Checking a template against the host's trust policy (cache/trust-policy.ts): on a pull, the
// signatures of the manifest digest are fetched and verified before any layer is fetched or the
// store touched; on a create from the cache, the signatures kept beside the ref are verified
// again (offline: a policy tightened after the pull applies to what is cached), and when none
// verify, the registry is asked again if it can be reached.
//
// The first verification records which key verified (its file's text) in the kept signatures:
// a later create whose policy names a key file with exactly that text accepts the template
// without loading node:crypto (~5 ms of a create of ~50); the store is trusted as much as the
// layers it holds, which a create does not hash again either. Any other key, or no record, is
// verified with node:crypto against the kept payloads.
//
// A template is accepted when any one signature by any key the matching entry lists names this
// repository (REGISTRY/NAME) and the signed digest (the manifest's, or the index's the manifest
// was picked from, as containers/image checks the digest the reference resolved to).
import { isDigest, sha256, type Digest } from '../format/digest.ts';
import { NotVerifiedError } from '../format/sigstore/errors.ts';
import type { Rejection, SignatureLayer } from '../format/sigstore/index.ts';
import type { PublicKey } from '../format/sigstore/public-key.ts';
import { describeRule, publicKeys, trustSubject, type KeysDecision, type TrustDecision } from './trust-policy.ts';
import type { SourceSignatures, TemplateSource } from './source.ts';
import type { KeptSignatures, Store, TemplateRef } from './store.ts';

/** Why a template was refused: a closed set, so callers and tests can tell them apart. */
export type UntrustedKind =
  | 'unsigned'
  | 'unknown-key'
  | 'other-digest'
  | 'other-repository'
  | 'tampered'
  | 'bad-payload'
  | 'bad-signature-manifest'
  | 'no-signatures-in-layout'
  | 'signature-not-kept';

/** A template the trust policy refuses (exit 1): names the template, the digest and the reason. */
export class UntrustedTemplateError extends NotVerifiedError {
  readonly kind: UntrustedKind;
  readonly template: string;
  readonly digest: string;
  constructor(template: string, digest: string, kind: UntrustedKind, reason: string, reasons: string[], policy: string) {
    const details = reasons.length ? `\n${reasons.map((r) => `  - ${r}`).join('\n')}` : '';
    super(`refused ${template} (${digest}): ${reason}; ${policy}${details}`, reasons);
    this.kind = kind;
    this.template = template;
    this.digest = digest;
  }
}

/** Rejection kinds, most telling first: a trusted key's signature for something else says the most. */
const PRIORITY: Array<[Rejection['kind'], UntrustedKind]> = [
  ['other-repository', 'other-repository'],
  ['other-digest', 'other-digest'],
  ['tampered', 'tampered'],
  ['bad-payload', 'bad-payload'],
  ['other-key', 'unknown-key'],
  ['no-signature-annotation', 'unknown-key'],
];

const REASON: Record<UntrustedKind, string> = {
  unsigned: 'unsigned',
  'unknown-key': 'no signature by a trusted key (signed by an unknown key)',
  'other-digest': 'the signature by a trusted key is for another digest',
  'other-repository': 'the signature by a trusted key is for another repository',
  tampered: 'tampered signature payload',
  'bad-payload': 'the signed payload is not a simple-signing payload',
  'bad-signature-manifest': 'its signature manifest cannot be read',
  'no-signatures-in-layout': 'an OCI layout directory (oci:DIR) holds no signatures',
  'signature-not-kept': 'cached without a signature, and the registry could not be reached to fetch one',
};

type Layers = Array<{ layer: SignatureLayer; payload: Buffer | { error: string } }>;

interface Verified {
  key: string;
  pem: string;
  layer: number;
}

/** The signature code (node:crypto), loaded when a signature is to be checked. */
const sigstore = () => import('../format/sigstore/index.ts');

/** The first signature by any of the keys that names `expected`; else the refusal's kind and reasons. */
async function verifyWithKeys(layers: Layers, decision: KeysDecision, keys: PublicKey[], expected: { digest: string; repository: string }): Promise<{ verified: Verified } | { kind: UntrustedKind; reasons: string[] }> {
  const { verifySignatureLayers } = await sigstore();
  const rejections: Rejection[] = [];
  let signatures = 0;
  for (const [i, key] of keys.entries()) {
    const outcome = verifySignatureLayers(layers, key, expected);
    if (outcome.verified) return { verified: { key: key.fingerprint, pem: decision.keys[i]!.pem, layer: outcome.verified.layer } };
    signatures = outcome.signatures;
    rejections.push(...outcome.rejections);
  }
  if (signatures === 0) return { kind: 'unsigned', reasons: ['the signature manifest holds no signature'] };
  const kinds = new Set(rejections.map((r) => r.kind));
  const kind = PRIORITY.find(([k]) => kinds.has(k))?.[1] ?? 'unknown-key';
  return { kind, reasons: [...new Set(rejections.map((r) => r.message))] };
}

function requirement(decision: KeysDecision, keys: PublicKey[]): string {
  return `${describeRule(decision.file, decision.rule)} requires a signature by ${keys.map((k) => k.fingerprint).join(' or ')}`;
}

async function unsignedReason(repository: string, digest: Digest): Promise<string> {
  return `unsigned (no signature manifest ${repository}:${(await sigstore()).signatureTag(digest)})`;
}

function toKept(fetched: SourceSignatures, signedDigest: Digest, repository: string, index: Buffer | undefined, verified: Verified | undefined): KeptSignatures {
  return {
    signedDigest,
    repository,
    ...(index ? { index: index.toString('base64') } : {}),
    from: fetched.from,
    signatures: fetched.layers.map(({ layer, payload }) => ({ layer, payload: Buffer.isBuffer(payload) ? payload.toString('base64') : payload })),
    ...(verified ? { verified } : {}),
    fetchedAt: new Date().toISOString(),
  };
}

function fromKept(kept: KeptSignatures): Layers {
  return kept.signatures.map(({ layer, payload }) => ({ layer: layer as SignatureLayer, payload: typeof payload === 'string' ? Buffer.from(payload, 'base64') : payload }));
}

export interface PulledTemplate {
  source: TemplateSource;
  name: string;
  version: string;
  /** The digest the reference resolved to (an index's, when the manifest was picked from one). */
  signedDigest: Digest;
  /** The index's bytes, when signedDigest is an index's. */
  index?: Buffer;
}

/**
 * Checks a template being pulled against the decision, before anything is fetched or stored;
 * returns the signatures to keep beside its ref (any there are, verified or not: a later,
 * stricter policy verifies them then), or throws UntrustedTemplateError. Under
 * insecureAcceptAnything it warns once and fetches what signatures there are, quietly.
 */
export async function checkPull(t: PulledTemplate, decision: TrustDecision, warn: (line: string) => void): Promise<KeptSignatures | undefined> {
  const template = `${t.name}:${t.version}`;
  const isLayout = t.source.id.startsWith('oci:');
  const repository = trustSubject(t.source.id, t.name);
  if (!decision.verify) {
    warn(`vztpl: warning: ${template} (${t.signedDigest}) from ${t.source.id} is not verified: ${decision.why}`);
    if (!t.source.signatures) return undefined;
    const fetched = await t.source.signatures(t.name, t.signedDigest).catch(() => undefined);
    return fetched ? toKept(fetched, t.signedDigest, repository, t.index, undefined) : undefined;
  }
  const keys = await publicKeys(decision);
  const refuse = (kind: UntrustedKind, reasons: string[] = [], reason = REASON[kind]) => new UntrustedTemplateError(`${repository}:${t.version}`, t.signedDigest, kind, reason, reasons, requirement(decision, keys));
  if (isLayout || !t.source.signatures) throw refuse('no-signatures-in-layout');
  let fetched: SourceSignatures | undefined;
  try {
    fetched = await t.source.signatures(t.name, t.signedDigest);
  } catch (err) {
    if ((err as { name?: string }).name === 'SignatureFormatError') throw refuse('bad-signature-manifest', [(err as Error).message]);
    throw err;
  }
  if (!fetched) throw refuse('unsigned', [], await unsignedReason(repository, t.signedDigest));
  const outcome = await verifyWithKeys(fetched.layers, decision, keys, { digest: t.signedDigest, repository });
  if ('kind' in outcome) throw refuse(outcome.kind, outcome.reasons);
  return toKept(fetched, t.signedDigest, repository, t.index, outcome.verified);
}

/** Whether the kept signatures are about this ref's manifest (directly, or through its index). */
function keptFor(kept: KeptSignatures, ref: TemplateRef, repository: string): boolean {
  if (kept.repository !== repository || !isDigest(kept.signedDigest) || !Array.isArray(kept.signatures)) return false;
  if (kept.signedDigest === ref.manifestDigest) return true;
  if (kept.signedDigest !== ref.indexDigest || !kept.index) return false;
  const index = Buffer.from(kept.index, 'base64');
  if (sha256(index) !== kept.signedDigest) return false;
  try {
    return ((JSON.parse(index.toString('utf8')) as { manifests?: Array<{ digest?: string }> }).manifests ?? []).some((m) => m.digest === ref.manifestDigest);
  } catch {
    return false;
  }
}

/**
 * Checks a cached template against the decision before a create uses it: the kept signatures
 * first (no network; no node:crypto when a key file of the entry is the one recorded as having
 * verified them); when they are missing or none verifies, the signatures at the registry
 * (`source()`), kept when one verifies. A registry that cannot be reached then is a refusal
 * saying so. Throws UntrustedTemplateError.
 */
export async function checkCached(store: Store, ref: TemplateRef, decision: TrustDecision, source: () => Promise<TemplateSource>): Promise<void> {
  if (!decision.verify) return;
  const repository = trustSubject(ref.source, ref.name);
  const signedDigest = ref.indexDigest ?? ref.manifestDigest;
  const kept = ref.source.startsWith('oci:') ? undefined : store.readSignatures(ref);
  // Verified before, for this digest and repository, with a key file that holds the same text.
  if (kept?.verified && kept.signedDigest === signedDigest && kept.repository === repository && decision.keys.some((k) => k.pem === kept.verified!.pem)) return;

  const keys = await publicKeys(decision);
  const refuse = (kind: UntrustedKind, reasons: string[] = [], reason = REASON[kind]) => new UntrustedTemplateError(`${repository}:${ref.version}`, signedDigest, kind, reason, reasons, requirement(decision, keys));
  if (ref.source.startsWith('oci:')) throw refuse('no-signatures-in-layout');
  let offline: { kind: UntrustedKind; reasons: string[] } = { kind: 'signature-not-kept', reasons: [] };
  if (kept && keptFor(kept, ref, repository)) {
    const outcome = await verifyWithKeys(fromKept(kept), decision, keys, { digest: kept.signedDigest, repository });
    if ('verified' in outcome) {
      await store.saveSignatures(ref, { ...kept, verified: outcome.verified });
      return;
    }
    offline = outcome;
  }
  // Not verified with what is kept: the registry may have (new) signatures.
  let fetched: SourceSignatures | undefined;
  let index: Buffer | undefined;
  try {
    const s = await source();
    if (!s.signatures) throw refuse('no-signatures-in-layout');
    fetched = await s.signatures(ref.name, signedDigest);
    if (fetched && ref.indexDigest) index = (await s.manifest(ref.name, ref.indexDigest)).bytes;
  } catch (err) {
    if (err instanceof UntrustedTemplateError) throw err;
    if ((err as { name?: string }).name === 'SignatureFormatError') throw refuse('bad-signature-manifest', [(err as Error).message]);
    const why = `the registry ${ref.source} could not be asked for signatures: ${(err as Error).message}`;
    if (offline.kind === 'signature-not-kept') throw refuse('signature-not-kept', [why], `cached without a signature (pulled when no policy asked for one), and the registry ${ref.source} could not be reached to fetch one`);
    throw refuse(offline.kind, [...offline.reasons, `(checked against the signatures kept in the cache; ${why})`]);
  }
  if (!fetched) throw refuse('unsigned', [], await unsignedReason(repository, signedDigest));
  const outcome = await verifyWithKeys(fetched.layers, decision, keys, { digest: signedDigest, repository });
  if ('kind' in outcome) throw refuse(outcome.kind, outcome.reasons);
  await store.saveSignatures(ref, toKept(fetched, signedDigest, repository, index, outcome.verified));
}
