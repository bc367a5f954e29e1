// Errors of the OCI Distribution API: each has the spec's code and HTTP status, and is sent as
// {"errors":[{"code","message","detail"}]}.

export const OciCode = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  /** 400 as in CNCF Distribution: the manifest is what is wrong, not the URL. */
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 415,
  TOOMANYREQUESTS: 429,
  RANGE_INVALID: 416,
  TAG_INVALID: 400,
  /** A published version is immutable (vztpl: 409 with this code). */
  TAG_IMMUTABLE: 409,
  MANIFEST_TOO_LARGE: 413,
  UNAVAILABLE: 503,
  /**
   * The catalog API's own (/api/v1 is vztpl's, not bound to the OCI table): a version range
   * that does not parse. Sent as itself; never thrown on /v2/.
   */
  VERSION_RANGE_INVALID: 400,
} as const;

export type OciErrorCode = keyof typeof OciCode;

const WIRE_CODE: Partial<Record<OciErrorCode, OciErrorCode>> = {
  TAG_IMMUTABLE: 'DENIED',
  MANIFEST_TOO_LARGE: 'SIZE_INVALID',
  RANGE_INVALID: 'BLOB_UPLOAD_INVALID',
  TAG_INVALID: 'MANIFEST_INVALID',
};

export class OciError extends Error {
  readonly code: OciErrorCode;
  readonly status: number;
  readonly detail: unknown;
  constructor(code: OciErrorCode, message: string, detail?: unknown, status?: number) {
    super(message);
    this.name = 'OciError';
    this.code = code;
    this.status = status ?? OciCode[code];
    this.detail = detail;
  }

  body(): { errors: Array<{ code: string; message: string; detail?: unknown }> } {
    // A 4xx code of /v2/ MUST be one of the spec's table: codes that are not (vztpl's own, and
    // Distribution's TAG_INVALID) travel as the nearest standard code, with ours in the detail.
    // The catalog API's codes (VERSION_RANGE_INVALID) travel as they are.
    const wire = WIRE_CODE[this.code] ?? this.code;
    const detail = wire === this.code ? this.detail : { vztplCode: this.code, ...(typeof this.detail === 'object' && this.detail ? this.detail : {}) };
    return { errors: [{ code: wire, message: this.message, ...(detail === undefined ? {} : { detail }) }] };
  }
}

/**
 * Reading the request body failed: the client hung up or the connection broke mid-body. The
 * client's doing, not the registry's: logged below error level, never a 5xx.
 */
export class RequestBodyError extends Error {
  constructor(cause: unknown) {
    super(`request body cut off: ${(cause as Error | undefined)?.message ?? String(cause)}`, { cause });
    this.name = 'RequestBodyError';
  }
}
