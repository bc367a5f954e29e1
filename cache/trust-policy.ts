// The host's trust policy: per REGISTRY/NAME pattern, the public keys a template must be signed
// by, or insecureAcceptAnything; the first entry that matches decides, and no entry (or no
// policy) means insecureAcceptAnything, with a warning on every pull.
//
//   trust:
//     - match: "registry.example.net/acme/**"
//       keys: [/etc/vztpl/keys/acme.pub]
//     - match: "**"
//       insecureAcceptAnything: true
//
// It is host.yaml's `trust:` section, or a file given with --trust-policy (the same shape; its
// root:/registry:, if any, are not read). Read with the YAML library and checked with zod, which
// together take ~50 ms to load: too much for `create` (a few ms is the budget of its check). So
// the checked policy is kept in the store (trust/policy-<hash of the path>.json, with the text it
// was checked from) and a later command that finds the same text reads that JSON instead. Key
// paths are the policy file's directory's when relative; the key files are read when an entry
// that names them matches, every time (a key replaced under the same name is the new key), and
// parsed (node:crypto) only when a signature is to be verified with them.
import { dirname, join, resolve } from 'node:path';
import { fs } from '../common/builtins.ts';
import { UsageError } from '../common/errors.ts';
import { globRegExp } from '../format/glob.ts';
import type { PublicKey } from '../format/sigstore/public-key.ts';

export interface TrustRule {
  /** 1-based position in the trust list, for messages. */
  entry: number;
  match: string;
  /** Absolute paths of the public key files; absent for insecureAcceptAnything. */
  keys?: string[];
  insecureAcceptAnything?: true;
}

export interface TrustPolicy {
  /** The file the policy was read from (host.yaml or --trust-policy FILE), absolute. */
  file: string;
  rules: TrustRule[];
}

/** A key file an entry names, as read: its text; parsed only to verify a signature. */
export interface PolicyKey {
  path: string;
  pem: string;
}

/** What a policy says of one template. */
export type TrustDecision =
  | { verify: false; /** why nothing is checked, for the warning */ why: string; rule?: TrustRule }
  | { verify: true; rule: TrustRule; keys: PolicyKey[]; file: string };

export type KeysDecision = Extract<TrustDecision, { verify: true }>;

const CACHE_FORMAT = 1;
/** A pattern: printable, no spaces (REGISTRY[:PORT]/NAME with *, ** and ?, or oci:DIR). */
const TRUST_PATTERN = /^[\x21-\x7e]{1,1024}$/;

/** What policy patterns are matched against: REGISTRY/NAME (host[:port] as in docker references), or oci:DIR. */
export function trustSubject(source: string, name: string): string {
  if (source.startsWith('oci:')) return source;
  return `${new URL(source).host}/${name}`;
}

/** The policy at `file`, checked; undefined when there is none (no file named, no trust section). */
export async function loadTrustPolicy(file: string | undefined, cacheRoot?: string): Promise<TrustPolicy | undefined> {
  if (!file) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`trust policy ${file}: cannot read it: ${(err as Error).message}`);
  }
  // No node:crypto here (loading it costs a create ~5 ms): the file is named by a cheap hash of
  // the path and holds the text it was checked from, compared whole.
  const cached = cacheRoot ? join(cacheRoot, 'trust', `policy-${fnv1a(file)}.json`) : undefined;
  if (cached) {
    try {
      const kept = JSON.parse(fs.readFileSync(cached, 'utf8')) as { format: number; text: string; policy: TrustPolicy };
      if (kept.format === CACHE_FORMAT && kept.text === text && kept.policy.file === file && Array.isArray(kept.policy.rules)) return kept.policy;
    } catch {
      // not kept yet (or unreadable): check the text
    }
  }
  const policy = await parseTrustPolicy(text, file);
  if (cached && fs.existsSync(cacheRoot!)) {
    try {
      fs.mkdirSync(dirname(cached), { recursive: true });
      const tmp = `${cached}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify({ format: CACHE_FORMAT, text, policy }));
      fs.renameSync(tmp, cached);
    } catch {
      // a read-only store: the policy is checked again next time
    }
  }
  return policy;
}

/** FNV-1a (32 bits) of a string, as 8 hex digits: names a file, decides nothing. */
function fnv1a(value: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) h = Math.imul(h ^ value.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** Parses and checks a policy's text (YAML); `file` names it in errors (exit 2) and anchors relative key paths. */
export async function parseTrustPolicy(text: string, file: string): Promise<TrustPolicy> {
  const [YAML, { z }] = await Promise.all([import('yaml'), import('zod')]);
  const lines = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter: lines });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const pos = lines.linePos(e.pos[0]);
    const at = `:${pos.line}:${pos.col}`;
    throw new UsageError(`trust policy ${file}${at}: not valid YAML: ${e.message.split('\n')[0]}`);
  }
  const entry = z
    .strictObject({
      match: z.string().regex(TRUST_PATTERN, 'must be a pattern of REGISTRY/NAME (*, ** and ?; no spaces)'),
      keys: z.array(z.string().min(1, 'a key file path is empty')).min(1, 'must name at least one public key file').optional(),
      insecureAcceptAnything: z.literal(true, 'must be true (or leave the entry out)').optional(),
    })
    .refine((e) => (e.keys === undefined) !== (e.insecureAcceptAnything === undefined), 'give either keys: [FILE.pub, ...] or insecureAcceptAnything: true');
  const schema = z.strictObject({
    root: z.string().optional(),
    registry: z.string().optional(),
    trust: z.array(entry, 'must be a list of entries (- match: PATTERN, then keys: [FILE.pub] or insecureAcceptAnything: true)'),
  });
  const value: unknown = doc.toJS();
  const parsed = schema.safeParse(value ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const [top, index, ...rest] = issue.path;
    let where = issue.path.length ? issue.path.join('.') : 'the document';
    if (top === 'trust' && typeof index === 'number') {
      const raw = (value as { trust: unknown[] }).trust[index] as { match?: unknown } | undefined;
      const match = typeof raw?.match === 'string' ? ` (match ${JSON.stringify(raw.match)})` : '';
      where = `trust entry ${index + 1}${match}${rest.length ? `, ${rest.join('.')}` : ''}`;
    }
    const message = issue.code === 'unrecognized_keys' ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}` : issue.message;
    throw new UsageError(`trust policy ${file}: ${where}: ${message}`);
  }
  const base = dirname(file);
  return {
    file,
    rules: parsed.data.trust.map((e, i) => ({
      entry: i + 1,
      match: e.match,
      ...(e.keys ? { keys: e.keys.map((k) => resolve(base, k)) } : { insecureAcceptAnything: true as const }),
    })),
  };
}

/** The first entry whose pattern matches `subject`. */
export function matchRule(policy: TrustPolicy, subject: string): TrustRule | undefined {
  return policy.rules.find((r) => globRegExp(r.match).test(subject));
}

export function describeRule(file: string, rule: TrustRule): string {
  return `trust policy ${file}, entry ${rule.entry} (match ${JSON.stringify(rule.match)})`;
}

/** What the policy says of `subject`: the key files to check with (read now), or nothing to check and why. */
export function decide(policy: TrustPolicy | undefined, subject: string): TrustDecision {
  if (!policy) return { verify: false, why: 'no trust policy (host.yaml trust: or --trust-policy FILE) says which keys to require' };
  const rule = matchRule(policy, subject);
  if (!rule) return { verify: false, why: `no entry of the trust policy ${policy.file} matches ${subject}` };
  if (!rule.keys) return { verify: false, why: `${describeRule(policy.file, rule)} accepts anything (insecureAcceptAnything)`, rule };
  const keys = rule.keys.map((path) => {
    try {
      return { path, pem: fs.readFileSync(path, 'latin1') };
    } catch (err) {
      throw new UsageError(`${describeRule(policy.file, rule)}: key ${path}: cannot read the public key: ${(err as Error).message}`);
    }
  });
  return { verify: true, rule, keys, file: policy.file };
}

/** The decision's keys, parsed; one that is no public key is bad input (exit 2) naming the policy, the entry and the file. */
export async function publicKeys(decision: KeysDecision): Promise<PublicKey[]> {
  const { KeyFileError, parsePublicKey } = await import('../format/sigstore/index.ts');
  return decision.keys.map(({ path, pem }) => {
    try {
      return parsePublicKey(pem, path);
    } catch (err) {
      throw new UsageError(`${describeRule(decision.file, decision.rule)}: key ${err instanceof KeyFileError ? err.message : `${path}: ${(err as Error).message}`}`);
    }
  });
}
