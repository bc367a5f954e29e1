// The sigstore (cosign) signature format: keys, the simple-signing payload, the signature manifest.
// The private-key code (and its tweetnacl import) is in private-key.ts, imported only to sign.
export * from './errors.ts';
export * from './pem.ts';
export * from './public-key.ts';
export * from './payload.ts';
export * from './manifest.ts';
export * from './verify.ts';
