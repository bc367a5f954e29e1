// Unit tests of format/sigstore/: the cosign key files, the simple-signing payload, the
// signature manifest and the checks of one signature, each refusal by its kind.
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha256, type Digest } from '../../format/digest.ts';
import {
  appendSignature,
  buildPayload,
  buildSignatureManifest,
  checkSignatureLayer,
  decodePem,
  duplicateKey,
  encodePem,
  KeyFileError,
  MAX_SIGNATURE_MANIFEST_SIZE,
  parsePayload,
  parsePublicKey,
  parseSignatureManifest,
  publicKeyInfo,
  repositoryOf,
  SIGNATURE_ANNOTATION,
  signatureLayer,
  signatureTag,
  SignatureFormatError,
  SIMPLE_SIGNING_MEDIA_TYPE,
  verifySignatureLayers,
} from '../../format/sigstore/index.ts';
import { COSIGN_PRIVATE_KEY_PEM_TYPE, decodeCosignPrivateKey, encodeCosignPrivateKey, generateCosignKeyPair, signMessage } from '../../format/sigstore/private-key.ts';

const DIGEST = sha256('a manifest') as Digest;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

async function keyError(p: Promise<unknown>, what = ''): Promise<KeyFileError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, what).toBeInstanceOf(KeyFileError);
  return err as KeyFileError;
}

describe('cosign key files', () => {
  it('the private key is PEM "ENCRYPTED COSIGN PRIVATE KEY" around go-tuf encrypted JSON (scrypt N=32768 r=8 p=1, 32-byte salt, nacl/secretbox, 24-byte nonce)', async () => {
    const pair = await generateCosignKeyPair('pw');
    const block = decodePem(pair.privatePem)!;
    expect(block.type).toBe(COSIGN_PRIVATE_KEY_PEM_TYPE);
    const json = JSON.parse(block.bytes.toString());
    expect(Object.keys(json)).toEqual(['kdf', 'cipher', 'ciphertext']);
    expect(json.kdf.name).toBe('scrypt');
    expect(json.kdf.params).toEqual({ N: 32768, r: 8, p: 1 });
    expect(Buffer.from(json.kdf.salt, 'base64')).toHaveLength(32);
    expect(json.cipher.name).toBe('nacl/secretbox');
    expect(Buffer.from(json.cipher.nonce, 'base64')).toHaveLength(24);
    // PKCS#8 DER of a P-256 key (138 bytes from node) plus secretbox's 16-byte tag
    expect(Buffer.from(json.ciphertext, 'base64').length).toBeGreaterThan(100);
    expect(pair.privatePem.split('\n').every((l) => l.length <= 64)).toBe(true);
    // the public key is PKIX PEM
    expect(pair.publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);
    const pub = parsePublicKey(pair.publicPem, 'k.pub');
    expect(pub.description).toBe('ecdsa-P-256');
    expect(pub.fingerprint).toMatch(/^SHA256:[0-9a-f]{64}$/);
    // round trip: the decrypted key is the pair's
    const priv = await decodeCosignPrivateKey(pair.privatePem, 'pw', 'k.key');
    expect(priv.publicKey.fingerprint).toBe(pub.fingerprint);
  });

  it('RSA and Ed25519 PKCS#8 keys load and sign as sigstore does (PKCS#1 v1.5 SHA-256, Ed25519)', async () => {
    for (const type of ['rsa', 'ed25519'] as const) {
      const { privateKey } = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
      const pem = await encodeCosignPrivateKey(privateKey, '');
      const key = await decodeCosignPrivateKey(pem, '', 'x.key');
      const payload = buildPayload('r.example/x', DIGEST);
      const sig = signMessage(key.key, payload).toString('base64');
      const r = checkSignatureLayer(0, signatureLayer(payload, sig), payload, key.publicKey, { digest: DIGEST, repository: 'r.example/x' });
      expect(r.ok, type).toBe(true);
    }
  });

  it('each broken key file is refused by kind, naming the file', async () => {
    const pair = await generateCosignKeyPair('right');
    const json = JSON.parse(decodePem(pair.privatePem)!.bytes.toString());
    const withJson = (v: unknown) => encodePem(COSIGN_PRIVATE_KEY_PEM_TYPE, Buffer.from(JSON.stringify(v)));
    const cases: Array<[string, string, string, RegExp]> = [
      ['wrong password', (await generateCosignKeyPair('another')).privatePem, 'wrong-password', /wrong password/],
      ['not PEM', 'garbage\n', 'not-pem', /not a PEM file/],
      ['a public key', pair.publicPem, 'pem-type', /"PUBLIC KEY" is not a cosign private key.*give the \.key file/],
      ['PEM of broken JSON', encodePem(COSIGN_PRIVATE_KEY_PEM_TYPE, Buffer.from('{"kdf":')), 'not-json', /not JSON/],
      ['another KDF', withJson({ ...json, kdf: { ...json.kdf, name: 'pbkdf2' } }), 'kdf', /unknown key derivation "pbkdf2"/],
      ['raised scrypt cost', withJson({ ...json, kdf: { ...json.kdf, params: { N: 1 << 20, r: 8, p: 1 } } }), 'kdf', /unexpected scrypt parameters/],
      ['another cipher', withJson({ ...json, cipher: { ...json.cipher, name: 'aes' } }), 'cipher', /unknown cipher "aes"/],
      ['short nonce', withJson({ ...json, cipher: { ...json.cipher, nonce: 'AAAA' } }), 'cipher', /nonce has 3 bytes/],
      ['flipped ciphertext', withJson({ ...json, ciphertext: Buffer.from(Buffer.from(json.ciphertext, 'base64').map((b: number, i: number) => (i === 20 ? b ^ 1 : b))).toString('base64') }), 'wrong-password', /wrong password/],
    ];
    for (const [what, text, kind, message] of cases) {
      const err = await keyError(decodeCosignPrivateKey(text, 'right', '/keys/acme.key'), what);
      expect({ what, kind: err.kind }).toEqual({ what, kind });
      expect(err.message, what).toMatch(/^\/keys\/acme\.key: /);
      expect(err.message, what).toMatch(message);
      expect(err.exitCode).toBe(2);
    }
    // the right content encrypted: not a key
    const { encryptWithPassword } = await import('../../format/sigstore/private-key.ts');
    const notKey = encodePem(COSIGN_PRIVATE_KEY_PEM_TYPE, await encryptWithPassword(Buffer.from('hello'), 'right'));
    expect((await keyError(decodeCosignPrivateKey(notKey, 'right', 'x.key'))).kind).toBe('not-a-key');
  });

  it('public keys: PKIX and PKCS#1 PEM; anything else is refused naming the file', () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expect(parsePublicKey(publicKey.export({ type: 'pkcs1', format: 'pem' }).toString(), 'r.pub').description).toBe('rsa-2048');
    const bad = (text: string) => {
      try {
        parsePublicKey(text, 'bad.pub');
      } catch (err) {
        expect(err).toBeInstanceOf(KeyFileError);
        return err as KeyFileError;
      }
      throw new Error('accepted');
    };
    expect(bad('nothing').kind).toBe('not-pem');
    expect(bad(encodePem('PUBLIC KEY', Buffer.from('junk'))).kind).toBe('not-a-key');
    expect(bad(encodePem(COSIGN_PRIVATE_KEY_PEM_TYPE, Buffer.from('{}'))).message).toMatch(/^bad\.pub: PEM type "ENCRYPTED COSIGN PRIVATE KEY" is not a public key.*give the \.pub file/);
  });
});

describe('simple-signing payload', () => {
  it("is cosign's bytes", () => {
    expect(buildPayload('127.0.0.1:5000/acme/web', DIGEST).toString()).toBe(
      `{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/acme/web"},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"},"optional":null}`,
    );
  });

  it("parses cosign's and containers/image's payloads (optional null, or creator and timestamp)", () => {
    expect(parsePayload(buildPayload('r/x', DIGEST))).toEqual({ dockerReference: 'r/x', digest: DIGEST });
    const skopeo = `{"critical":{"identity":{"docker-reference":"r/x:1.0.0"},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"},"optional":{"creator":"containers/image 5.23.1","timestamp":1700000000,"other":[1]}}`;
    expect(parsePayload(Buffer.from(skopeo))).toEqual({ dockerReference: 'r/x:1.0.0', digest: DIGEST, creator: 'containers/image 5.23.1', timestamp: 1700000000 });
  });

  it('is as strict as containers/image: exact fields, no duplicates, the right type, an integer timestamp', () => {
    const ok = JSON.parse(buildPayload('r/x', DIGEST).toString());
    const bad: Array<[unknown, RegExp]> = [
      [{ ...ok, extra: 1 }, /unexpected field "extra"/],
      [{ critical: ok.critical }, /lacks the field "optional"/],
      [{ ...ok, critical: { ...ok.critical, type: 'atomic container signature' } }, /unrecognized signature type/],
      [{ ...ok, critical: { ...ok.critical, image: { 'docker-manifest-digest': 5 } } }, /is not a string/],
      [{ ...ok, critical: { ...ok.critical, identity: {} } }, /lacks the field "docker-reference"/],
      [{ ...ok, optional: { timestamp: 1.5 } }, /timestamp is not an integer/],
      [{ ...ok, optional: [] }, /"optional" is not a JSON object/],
    ];
    for (const [value, message] of bad) expect(() => parsePayload(Buffer.from(JSON.stringify(value)))).toThrow(message);
    expect(() => parsePayload(Buffer.from('{"critical":{},"critical":{},"optional":null}'))).toThrow(/duplicate field "critical"/);
    expect(() => parsePayload(Buffer.from('not json'))).toThrow(SignatureFormatError);
    expect(duplicateKey('{"a":{"b":1,"c":"b"},"d":["a","a"],"e":{"a":1}}')).toBeUndefined();
    expect(duplicateKey('{"a":{"b":1,"c":2,"b":3}}')).toBe('b');
  });

  it('repositoryOf drops a tag or digest, not a port', () => {
    expect(repositoryOf('127.0.0.1:5000/acme/web')).toBe('127.0.0.1:5000/acme/web');
    expect(repositoryOf('127.0.0.1:5000/acme/web:1.0.0')).toBe('127.0.0.1:5000/acme/web');
    expect(repositoryOf(`127.0.0.1:5000/acme/web@${DIGEST}`)).toBe('127.0.0.1:5000/acme/web');
  });
});

describe('signature manifest', () => {
  const layer = signatureLayer(buildPayload('r/x', DIGEST), 'c2ln');

  it('is tagged sha256-<hex>.sig and laid out as cosign writes it', () => {
    expect(signatureTag(DIGEST)).toBe(`sha256-${DIGEST.slice(7)}.sig`);
    const built = buildSignatureManifest([layer]);
    expect(built.config.toString()).toBe(
      `{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["${layer.digest}"]},"config":{}}`,
    );
    expect(JSON.parse(built.manifest.toString())).toEqual({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: built.config.length, digest: sha256(built.config) },
      layers: [{ mediaType: SIMPLE_SIGNING_MEDIA_TYPE, size: layer.size, digest: layer.digest, annotations: { [SIGNATURE_ANNOTATION]: 'c2ln' } }],
    });
    expect(parseSignatureManifest(built.manifest, OCI_MANIFEST, 'r/x:t')).toEqual([layer]);
  });

  it('a second signature appends a layer; the same one again is not added', () => {
    const other = signatureLayer(buildPayload('r/x', DIGEST), 'b3RoZXI=');
    const once = appendSignature([layer], other);
    expect(once).toEqual({ layers: [layer, other], appended: true });
    expect(appendSignature(once.layers, { ...layer, annotations: { ...layer.annotations } })).toEqual({ layers: once.layers, appended: false });
  });

  it('refuses what is not JSON, oversized, not an OCI manifest, or has bad layers, naming the manifest', () => {
    const name = '127.0.0.1:5000/x:sha256-ab.sig';
    const bad: Array<[Buffer, string | undefined, RegExp]> = [
      [Buffer.from('not json at all'), OCI_MANIFEST, /127\.0\.0\.1:5000\/x:sha256-ab\.sig: the signature manifest is not JSON/],
      [Buffer.alloc(MAX_SIGNATURE_MANIFEST_SIZE + 1, 0x20), OCI_MANIFEST, /has 4194305 bytes, more than 4194304/],
      [Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] })), 'application/vnd.oci.image.index.v1+json', /not an OCI image manifest/],
      [Buffer.from(JSON.stringify({ schemaVersion: 1, mediaType: OCI_MANIFEST, layers: [] })), OCI_MANIFEST, /schemaVersion is 1/],
      [Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [{ mediaType: 'x', digest: 'md5:1', size: 1 }] })), OCI_MANIFEST, /layer 0 is not a descriptor/],
      [Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: Array(1001).fill(layer) })), OCI_MANIFEST, /1001 layers/],
    ];
    for (const [bytes, type, message] of bad) expect(() => parseSignatureManifest(bytes, type, name)).toThrow(message);
  });
});

describe('checking signatures', () => {
  it('says which layer verified, and why each other did not: other key, tampered payload, other digest, other repository', async () => {
    const a = await decodeCosignPrivateKey((await generateCosignKeyPair('')).privatePem, '', 'a.key');
    const b = await decodeCosignPrivateKey((await generateCosignKeyPair('')).privatePem, '', 'b.key');
    const expected = { digest: DIGEST, repository: 'r/x' };
    const signed = (key: typeof a, payload: Buffer) => ({ layer: signatureLayer(payload, signMessage(key.key, payload).toString('base64')), payload });
    const good = signed(a, buildPayload('r/x', DIGEST));
    const byB = signed(b, buildPayload('r/x', DIGEST));
    const otherDigest = signed(a, buildPayload('r/x', sha256('other') as Digest));
    const otherRepo = signed(a, buildPayload('r/y', DIGEST));
    const tampered = { layer: good.layer, payload: buildPayload('r/z', DIGEST) };
    const attachment = { layer: { mediaType: 'application/spdx+json', digest: DIGEST, size: 1 }, payload: { error: 'not a signature' } };

    const none = verifySignatureLayers([attachment, byB, tampered, otherDigest, otherRepo], a.publicKey, expected);
    expect(none.verified).toBeUndefined();
    expect(none.signatures).toBe(4);
    expect(none.rejections.map((r) => [r.layer, r.kind])).toEqual([
      [1, 'other-key'],
      [2, 'tampered'],
      [3, 'other-digest'],
      [4, 'other-repository'],
    ]);
    expect(none.rejections[1]!.message).toMatch(/tampered payload/);
    expect(none.rejections[2]!.message).toMatch(/another digest: sha256:/);
    expect(none.rejections[3]!.message).toMatch(/another repository: r\/y, not r\/x/);

    const some = verifySignatureLayers([byB, good], a.publicKey, expected);
    expect(some.verified?.layer).toBe(1);
    // a payload naming the repository with a tag (as skopeo signs) is for the repository
    const skopeoStyle = signed(a, Buffer.from(buildPayload('r/x:1.0.0', DIGEST)));
    expect(verifySignatureLayers([skopeoStyle], a.publicKey, expected).verified?.payload.dockerReference).toBe('r/x:1.0.0');
    // a signature annotation that is not strict base64
    const loose = { layer: { ...good.layer, annotations: { [SIGNATURE_ANNOTATION]: 'not base64!' } }, payload: good.payload };
    expect(verifySignatureLayers([loose], a.publicKey, expected).rejections[0]!.message).toMatch(/not base64/);
    // the public key alone is enough (what a host has)
    expect(publicKeyInfo(a.publicKey.key).fingerprint).toBe(a.publicKey.fingerprint);
  });
});
