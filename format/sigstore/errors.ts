// Errors of the sigstore (cosign) format: a key file that cannot be used, a signature manifest
// or payload that is not what the format says. Each names the file or reference it is about.
import { ExitCode, VztplError } from '../../common/errors.ts';

/** Why a key file cannot be used: a closed set, so callers and tests can tell them apart. */
export type KeyErrorKind = 'unreadable' | 'not-pem' | 'pem-type' | 'not-json' | 'kdf' | 'cipher' | 'wrong-password' | 'not-a-key' | 'unsupported-key';

/** A private or public key file that is unreadable, corrupt, of another kind, or locked by another password (exit 2). */
export class KeyFileError extends VztplError {
  readonly kind: KeyErrorKind;
  readonly file: string;
  constructor(file: string, kind: KeyErrorKind, detail: string) {
    super(`${file}: ${detail}`, ExitCode.usage);
    this.kind = kind;
    this.file = file;
  }
}

/** A signature manifest or payload that breaks the format (not JSON, too large, a field of the wrong kind). */
export class SignatureFormatError extends VztplError {
  constructor(message: string) {
    super(message, ExitCode.failure);
  }
}

/** No signature verified: exit 1, a kind of its own so a caller can tell it from other failures. */
export class NotVerifiedError extends VztplError {
  readonly reasons: string[];
  constructor(message: string, reasons: string[]) {
    super(message, ExitCode.failure);
    this.reasons = reasons;
  }
}
