import { UsageError } from '../../common/errors.ts';
import { loadConfig, parseListen } from '../../registry/config.ts';
import { parseCommandArgs } from '../args.ts';

const HELP = `
Usage: vztpl serve [--listen HOST:PORT] [--storage fs:DIR|s3://BUCKET[/PREFIX]] [--config FILE]
                   [--s3-endpoint URL] [--s3-path-style] [--s3-region R] [--s3-redirect]
                   [--tls-cert FILE --tls-key FILE]

Runs the template registry: the OCI Distribution API under /v2/ (skopeo, podman, oras, crane
push and pull), the template catalog under /api/v1/, /healthz.

Defaults: 127.0.0.1:5000, storage fs:/var/lib/vztpl/registry. Settings also come from a config
file (YAML) and VZTPL_* variables (VZTPL_LISTEN, VZTPL_STORAGE, VZTPL_S3_ENDPOINT,
VZTPL_S3_PATH_STYLE, VZTPL_S3_REGION, VZTPL_S3_REDIRECT, VZTPL_LOG_LEVEL); options win over
variables, variables over the file. S3 credentials, region and endpoint also come from the
standard AWS sources (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_ENDPOINT_URL_S3, ...).

HTTPS (config "tls: {cert: FILE, key: FILE}", or VZTPL_TLS_CERT and VZTPL_TLS_KEY): a PEM
certificate (the server's first, then any intermediates) and its unencrypted key. A renewed
certificate is served without a restart: on SIGHUP, and when either file changes (a reload that
fails is logged and the certificate in use stays). Without them the registry serves plain HTTP,
as Distribution does; clients then need http://HOST:PORT unless it is a loopback address, and a
warning is logged when listening on any other address.

Signers (config "signatureKeys: [FILE, ...]" or VZTPL_SIGNATURE_KEYS, comma-separated): public
keys (PEM) the template catalog names signatures by, with the key's fingerprint.

Access control (config "auth:", or VZTPL_AUTH_ENABLED, VZTPL_AUTH_ANONYMOUS_PULL,
VZTPL_AUTH_USERS_FILE, VZTPL_AUTH_TOKEN_TTL, VZTPL_AUTH_SECRET, VZTPL_AUTH_REALM, and the
password-guessing limits auth.limits / VZTPL_AUTH_FAILURES_PER_ADDRESS, _FAILURES_PER_USER,
_FAILURE_WINDOW, _CHECK_CONCURRENCY, _CHECK_QUEUE, _CACHE_TTL): off by default. When enabled, users come from the users file ("vztpl user add"), clients log in with
"vztpl login" or "podman login", and tokens come from /token.
`;

/** A long-running server keeps V8's young generation small: about 50 MB less RSS under load. */
const SERVER_V8_FLAGS = ['--max-semi-space-size=4'];

export async function main(argv: string[]): Promise<number> {
  if (!SERVER_V8_FLAGS.every((f) => process.execArgv.includes(f)) && typeof process.execve === 'function' && !process.env.VZTPL_NO_REEXEC) {
    // Heap sizes are fixed when V8 starts: replace this process with one started with them
    // (same pid, so supervisors and signals are unaffected).
    process.execve(process.execPath, [process.execPath, ...SERVER_V8_FLAGS, ...process.execArgv, ...process.argv.slice(1)], process.env);
  }
  const args = parseCommandArgs(
    'serve',
    argv,
    {
      listen: { type: 'string' },
      storage: { type: 'string' },
      config: { type: 'string' },
      's3-endpoint': { type: 'string' },
      's3-path-style': { type: 'boolean' },
      's3-region': { type: 'string' },
      's3-redirect': { type: 'boolean' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
    },
    HELP,
  );
  if (!args) return 0;
  if (args.positionals.length) throw new UsageError(`serve: unexpected argument ${args.positionals[0]}\n${HELP}`);
  const config = await loadConfig({
    file: args.values.config,
    flags: {
      listen: args.values.listen,
      storage: args.values.storage,
      's3.endpoint': args.values['s3-endpoint'],
      's3.pathStyle': args.values['s3-path-style'],
      's3.region': args.values['s3-region'],
      's3.redirect': args.values['s3-redirect'],
      'tls.cert': args.values['tls-cert'],
      'tls.key': args.values['tls-key'],
    },
  });
  // The certificate before anything else: a bad one stops start-up (exit 2) naming the file.
  const tlsModule = config.tls ? await import('../../registry/tls.ts') : undefined;
  const tls = tlsModule && config.tls ? await tlsModule.loadTlsMaterial(config.tls) : undefined;
  // The signers' public keys the catalog names: a bad file stops start-up (exit 2) naming it.
  const signatureKeys = config.signatureKeys.length
    ? await import('../../format/sigstore/public-key.ts').then(({ loadPublicKey }) => Promise.all(config.signatureKeys.map((file) => loadPublicKey(file))))
    : [];
  const { createDriver } = await import('../../registry/storage/factory.ts');
  const { buildServer } = await import('../../registry/server.ts');
  const driver = await createDriver(config);
  // Asynchronous log writes: a line per request written synchronously cost ~25% of a manifest
  // GET's CPU. sonic-boom writes whatever has accumulated as soon as the previous write is done:
  // immediate when idle, batched under load. Flushed before the process exits.
  const { pino } = await import('pino');
  const destination = pino.destination({ dest: 1, sync: false });
  process.once('exit', () => {
    try {
      destination.flushSync();
    } catch {
      // nothing buffered, or the stream is gone: nothing to flush
    }
  });
  const { app } = await buildServer({
    driver,
    loggerInstance: pino({ level: config.logLevel }, destination),
    redirectBlobs: config.s3.redirect,
    auth: config.auth,
    https: tls ? { cert: tls.cert, key: tls.key } : undefined,
    signatureKeys,
  });
  const { host, port } = parseListen(config.listen);
  await app.listen({ host, port });
  let reloader: import('../../registry/tls.ts').CertificateReloader | undefined;
  if (tlsModule && tls && config.tls) {
    const log = app.log.child({ component: 'tls' });
    log.info({ cert: tlsModule.describeCertificate(tls.leaf), files: config.tls }, 'serving HTTPS');
    tlsModule.checkValidity(tls.leaf, log);
    reloader = new tlsModule.CertificateReloader(config.tls, tls, app.server as unknown as import('node:https').Server, log);
    reloader.watch();
    const r = reloader;
    process.on('SIGHUP', () => void r.reload('SIGHUP'));
  } else if (!isLoopback(host)) {
    app.log.warn(
      { listen: config.listen },
      'serving plain HTTP on a non-loopback address: credentials, tokens and templates cross the network unencrypted and unauthenticated; give a certificate with --tls-cert/--tls-key (or tls: in the config), or put a TLS proxy in front',
    );
  }
  // Graceful shutdown: stop accepting, finish in-flight requests, then exit.
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      app.log.info({ signal }, 'shutting down: finishing in-flight requests');
      reloader?.close();
      const timer = setTimeout(() => {
        app.log.warn('shutdown timeout: closing remaining connections');
        app.server.closeAllConnections();
      }, config.shutdownTimeout * 1000);
      timer.unref();
      app.close().then(() => resolve());
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

/** 127.0.0.0/8, ::1, localhost: reachable from this host only. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host) || /^::ffff:127\./i.test(host);
}
