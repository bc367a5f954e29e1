// Validation of pushed manifests: the OCI image manifest and index (image-spec v1.1) and
// Docker's schema 2 manifest and list, with zod. What fails here is MANIFEST_INVALID.
import { z } from 'zod';
import { MediaType } from '../../format/oci.ts';

const digest = z.string().regex(/^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$/, 'must be a sha256 or sha512 digest');
const mediaTypeString = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/, 'must be a media type');
const annotations = z.record(z.string(), z.string()).optional();

export const descriptorSchema = z.object({
  mediaType: mediaTypeString,
  digest,
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations,
  artifactType: mediaTypeString.optional(),
  platform: z.object({ architecture: z.string(), os: z.string() }).passthrough().optional(),
  data: z.string().optional(),
});

const imageManifest = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.enum([MediaType.manifest, MediaType.dockerManifest]).optional(),
  artifactType: mediaTypeString.optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations,
});

const imageIndex = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.enum([MediaType.index, MediaType.dockerManifestList]).optional(),
  artifactType: mediaTypeString.optional(),
  manifests: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations,
});

export type ParsedManifest =
  | { kind: 'image'; mediaType: string; manifest: z.infer<typeof imageManifest> }
  | { kind: 'index'; mediaType: string; manifest: z.infer<typeof imageIndex> };

export const MANIFEST_MEDIA_TYPES: readonly string[] = [MediaType.manifest, MediaType.index, MediaType.dockerManifest, MediaType.dockerManifestList];

/** Parses and validates; returns a reason string instead of throwing. */
export function parseManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest | { error: string } {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return { error: `not JSON: ${(err as Error).message}` };
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) return { error: 'not a JSON object' };
  const declared = (json as { mediaType?: unknown }).mediaType;
  if (declared !== undefined && typeof declared !== 'string') return { error: 'mediaType must be a string' };
  const type = declared ?? contentType;
  if (!type) return { error: 'no mediaType in the manifest and no Content-Type' };
  if (declared && contentType && declared !== contentType) return { error: `mediaType ${declared} does not match Content-Type ${contentType}` };
  const isIndex = type === MediaType.index || type === MediaType.dockerManifestList;
  const isImage = type === MediaType.manifest || type === MediaType.dockerManifest;
  if (!isIndex && !isImage) return { error: `unsupported manifest media type ${type}` };
  const result = (isIndex ? imageIndex : imageManifest).safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    return { error: `${issue.path.join('.') || '(root)'}: ${issue.message}` };
  }
  const badUrl = firstBadUrl(result.data as { config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[]; subject?: Descriptor });
  if (badUrl) return { error: badUrl };
  return isIndex
    ? { kind: 'index', mediaType: type, manifest: result.data as z.infer<typeof imageIndex> }
    : { kind: 'image', mediaType: type, manifest: result.data as z.infer<typeof imageManifest> };
}

type Descriptor = z.infer<typeof descriptorSchema>;

/**
 * Descriptor urls are where clients fetch content the registry does not hold: only http(s)
 * (a javascript: or file: URL is nothing a client may fetch). The first bad one, named by its
 * descriptor, or undefined.
 */
function firstBadUrl(m: { config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[]; subject?: Descriptor }): string | undefined {
  const named: Array<[string, Descriptor | undefined]> = [
    ['config', m.config],
    ...(m.layers ?? []).map((d, i): [string, Descriptor] => [`layer ${i}`, d]),
    ...(m.manifests ?? []).map((d, i): [string, Descriptor] => [`manifest ${i}`, d]),
    ['subject', m.subject],
  ];
  for (const [what, d] of named) {
    for (const url of d?.urls ?? []) {
      if (!isHttpUrl(url)) return `${what} (${d!.digest}): url ${JSON.stringify(url.slice(0, 200))} is not an http or https URL`;
    }
  }
  return undefined;
}

function isHttpUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}
