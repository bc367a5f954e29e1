// The registry's certificate: read and checked at start (a missing, unreadable or non-PEM file,
// or a key that does not belong to the certificate, stops start-up naming the file), and
// reloaded without a restart on SIGHUP or when the files change (certbot, cert-manager and
// acme.sh replace them in place, by rename, or by swapping a symlinked directory). A reload that
// fails is logged and the certificate in use stays: connections never see a broken one.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { UsageError } from '../common/errors.ts';

export interface TlsFiles {
  cert: string;
  key: string;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** The leaf certificate (the first of the chain in the cert file). */
  leaf: X509Certificate;
}

/** A certificate or key file that cannot serve: names the file and why. */
export class TlsFileError extends UsageError {
  readonly file: string;
  constructor(file: string, reason: string) {
    super(`${file}: ${reason}`);
    this.file = file;
  }
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

function pemTypes(text: string): string[] {
  return [...text.matchAll(PEM_BLOCK)].map((m) => m[1]!);
}

async function readPem(file: string, what: 'certificate' | 'private key'): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TlsFileError(file, `cannot read the TLS ${what}: ${e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message}`);
  }
  const types = pemTypes(bytes.toString('latin1'));
  const wanted = what === 'certificate' ? ['CERTIFICATE'] : ['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY'];
  if (!types.some((t) => wanted.includes(t))) {
    const found = types.length ? ` (it holds ${[...new Set(types)].join(', ')})` : '';
    throw new TlsFileError(file, `not a PEM ${what}: no "-----BEGIN ${wanted[0]}-----" block${found}`);
  }
  if (what === 'private key' && types.includes('ENCRYPTED PRIVATE KEY')) throw new TlsFileError(file, 'the TLS private key is encrypted: the registry needs it unencrypted (readable by its user only)');
  return bytes;
}

/** Reads the certificate and key and checks that they make a usable pair; throws TlsFileError. */
export async function loadTlsMaterial(files: TlsFiles): Promise<TlsMaterial> {
  const [cert, key] = [await readPem(files.cert, 'certificate'), await readPem(files.key, 'private key')];
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new TlsFileError(files.cert, `not a valid certificate: ${(err as Error).message}`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsFileError(files.key, `not a valid private key: ${(err as Error).message}`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsFileError(files.key, `the private key does not match the certificate ${files.cert} (subject ${describeSubject(leaf)}, serial ${leaf.serialNumber})`);
  }
  try {
    // what the server will do with them: also catches a chain file that OpenSSL refuses
    createSecureContext({ cert, key });
  } catch (err) {
    throw new TlsFileError(files.cert, `certificate ${files.cert} and key ${files.key} are refused by OpenSSL: ${(err as Error).message}`);
  }
  return { cert, key, leaf };
}

function describeSubject(leaf: X509Certificate): string {
  return leaf.subject.replace(/\n/g, ', ') || '(empty)';
}

/** What the log says about a certificate in use. */
export function describeCertificate(leaf: X509Certificate): Record<string, unknown> {
  return {
    subject: describeSubject(leaf),
    names: leaf.subjectAltName ?? undefined,
    issuer: leaf.issuer.replace(/\n/g, ', '),
    serial: leaf.serialNumber,
    notAfter: leaf.validToDate.toISOString(),
  };
}

export interface TlsLog {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

const DAY = 86_400_000;

/** Warns about a certificate that has expired, is not valid yet, or expires within 14 days. */
export function checkValidity(leaf: X509Certificate, log: TlsLog, now = Date.now()): void {
  const cert = describeCertificate(leaf);
  if (leaf.validToDate.getTime() < now) log.warn({ cert }, 'the TLS certificate has expired: clients will refuse it');
  else if (leaf.validFromDate.getTime() > now) log.warn({ cert }, 'the TLS certificate is not valid yet: clients will refuse it');
  else if (leaf.validToDate.getTime() - now < 14 * DAY) log.warn({ cert }, `the TLS certificate expires in ${Math.floor((leaf.validToDate.getTime() - now) / DAY)} days`);
}

/** The part of https.Server a reload needs. */
export interface SecureContextTarget {
  setSecureContext(options: { cert: Buffer; key: Buffer }): void;
}

/**
 * Keeps the server's certificate current: reload() reads and checks the files and swaps the
 * server's secure context (new connections get the new certificate; open ones keep theirs);
 * watch() reloads when either file changes.
 */
export class CertificateReloader {
  private current: TlsMaterial;
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();

  private readonly files: TlsFiles;
  private readonly server: SecureContextTarget;
  private readonly log: TlsLog;
  /** How long file changes settle before a reload (a cert and its key are written one after the other). */
  private readonly settleMs: number;

  constructor(files: TlsFiles, initial: TlsMaterial, server: SecureContextTarget, log: TlsLog, settleMs = 250) {
    this.files = files;
    this.current = initial;
    this.server = server;
    this.log = log;
    this.settleMs = settleMs;
  }

  get certificate(): X509Certificate {
    return this.current.leaf;
  }

  /**
   * Reads the files again and, when they are good, serves them. `force`: reload even when the
   * files are unchanged (SIGHUP); a watch event with unchanged contents does nothing. Resolves
   * to whether the certificate in use changed; never throws (a failure is logged).
   */
  reload(reason: string, force = true): Promise<boolean> {
    const next = this.running.then(() => this.reloadNow(reason, force));
    this.running = next.then(() => undefined);
    return next;
  }

  private async reloadNow(reason: string, force: boolean): Promise<boolean> {
    let material: TlsMaterial;
    try {
      material = await loadTlsMaterial(this.files);
    } catch (err) {
      this.log.error({ reason, file: (err as TlsFileError).file, err: { message: (err as Error).message } }, `TLS certificate not reloaded, the one in use stays (serial ${this.current.leaf.serialNumber}): ${(err as Error).message}`);
      return false;
    }
    if (!force && material.cert.equals(this.current.cert) && material.key.equals(this.current.key)) return false;
    try {
      this.server.setSecureContext({ cert: material.cert, key: material.key });
    } catch (err) {
      this.log.error({ reason, err: { message: (err as Error).message } }, `TLS certificate not reloaded, the one in use stays: ${(err as Error).message}`);
      return false;
    }
    const previous = this.current.leaf.serialNumber;
    this.current = material;
    this.log.info({ reason, cert: describeCertificate(material.leaf), previousSerial: previous }, 'TLS certificate reloaded');
    checkValidity(material.leaf, this.log);
    return true;
  }

  /**
   * Watches the directories of both files (a file replaced by rename, or a symlinked directory
   * swapped as Kubernetes does, is not seen by a watch on the file itself). Any change there,
   * once settled, leads to a reload that is skipped when the contents are the same.
   */
  watch(): void {
    const dirs = new Set([this.files.cert, this.files.key].map((file) => dirname(resolve(file))));
    for (const dir of dirs) {
      try {
        const watcher = watch(dir, { persistent: false }, () => this.changed());
        watcher.on('error', (err) => this.log.warn({ dir, err: { message: err.message } }, 'cannot watch the TLS certificate directory any longer: reload with SIGHUP'));
        this.watchers.push(watcher);
      } catch (err) {
        this.log.warn({ dir, err: { message: (err as Error).message } }, 'cannot watch the TLS certificate directory: reload with SIGHUP');
      }
    }
  }

  private changed(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reload('files changed', false), this.settleMs);
    this.timer.unref();
  }

  close(): void {
    clearTimeout(this.timer);
    for (const w of this.watchers.splice(0)) w.close();
  }
}
