// End to end: the host cache and registries and images that are not vztpl's. Templates copied
// with skopeo into Debian's CNCF Distribution registry (docker-registry: no catalog API) resolve
// from the tags list; an image no vztpl builder made (busybox-static, one layer, Cmd /bin/sh,
// written with the project's format/ helpers and pushed with skopeo under plain tags, as OCI and
// as Docker schema 2) is pulled, created and run like a template.
// Needs root, mmdebstrap (or a warm build cache), runc, overlayfs, skopeo; docker-registry and
// busybox-static for their parts.
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../common/programs.ts';
import { sha256, type Digest } from '../../format/digest.ts';
import { OciLayout } from '../../format/layout.ts';
import { MediaType } from '../../format/oci.ts';
import { packLayer } from '../../format/tar/pack.ts';
import { walkLayer } from '../../format/tar/walk.ts';
import { isRoot, tempDir } from '../helpers/build-env.ts';
import {
  background,
  BASE_NAME,
  buildTemplates,
  finishHostTests,
  exists,
  hexOf,
  host,
  layersConsistent,
  pullEvents,
  shOk,
  startHostRegistry,
  storeView,
  type BuiltTemplate,
  type HostRegistry,
} from '../helpers/host-env.ts';
import { freePort, waitHealthy } from '../helpers/registry-env.ts';

const ready = isRoot && Boolean(findProgram('mmdebstrap')) && Boolean(findProgram('runc') ?? findProgram('crun')) && Boolean(findProgram('skopeo'));
/** busybox-static (a dynamic busybox would need the host's libc in the image). */
const BUSYBOX = findProgram('busybox');

/** Copies an image with skopeo to a plain-HTTP registry on 127.0.0.1. */
const skopeoCopy = (from: string, to: string, ...extra: string[]) => shOk('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', ...extra, from, to]);

/**
 * A busybox-static image no vztpl builder made: one gzip layer packed with format/tar, a config
 * with only Cmd and Env (no template metadata), under the layout ref `tag`.
 */
async function busyboxLayout(dir: string, tag: string): Promise<{ manifestDigest: Digest; diffId: Digest }> {
  const tree = join(dir, '..', 'busybox-tree');
  for (const d of ['bin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev', 'run']) await mkdir(join(tree, d), { recursive: true });
  await copyFile(BUSYBOX!, join(tree, 'bin', 'busybox'));
  for (const applet of ['sh', 'cat', 'echo', 'hostname', 'ls', 'id']) await symlink('busybox', join(tree, 'bin', applet));
  await writeFile(join(tree, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(tree, 'etc', 'hostname'), 'busybox\n');
  const layout = new OciLayout(dir);
  await layout.init();
  const entries = await walkLayer(tree, { kind: 'rootfs', epoch: 1_700_000_000 });
  const packed = await packLayer(entries, join(dir, 'layer.tmp'), 'gzip');
  await layout.importBlob(join(dir, 'layer.tmp'), packed.digest);
  await shOk('rm', ['-f', join(dir, 'layer.tmp')]);
  const config = await layout.writeJson(MediaType.config, {
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] },
    rootfs: { type: 'layers', diff_ids: [packed.diffId] },
  });
  const manifest = await layout.writeJson(MediaType.manifest, {
    schemaVersion: 2,
    mediaType: MediaType.manifest,
    config,
    layers: [{ mediaType: packed.mediaType, digest: packed.digest, size: packed.size }],
  });
  await layout.writeIndex([{ ...manifest, annotations: { 'org.opencontainers.image.ref.name': tag } }]);
  return { manifestDigest: manifest.digest, diffId: packed.diffId };
}

describe.skipIf(!ready)('vztpl host cache: plain OCI registries and images not made by vztpl', () => {
  let work: string;
  let base: BuiltTemplate;
  let flavor: BuiltTemplate;
  let reg: HostRegistry;

  beforeAll(async () => {
    work = await tempDir('host-interop');
    ({ base, flavor } = await buildTemplates(work));
    reg = await startHostRegistry(join(work, 'registry'));
  });

  afterAll(() => finishHostTests(work, reg));

  describe.skipIf(!findProgram('docker-registry'))("Debian's docker-registry (CNCF Distribution): no catalog API", () => {
    let distribution: ReturnType<typeof background>;
    let port: number;
    const requests = () =>
      [...distribution.output().matchAll(/"(GET|HEAD|PUT|POST|PATCH) (\S+) HTTP\/[\d.]+" (\d+)/g)].map((m) => ({ method: m[1]!, url: m[2]!, status: Number(m[3]) }));

    beforeAll(async () => {
      port = await freePort();
      const dir = join(work, 'distribution');
      await mkdir(join(dir, 'data'), { recursive: true });
      const config = join(dir, 'config.yml');
      await writeFile(
        config,
        [
          'version: 0.1',
          'log:',
          '  level: warn',
          '  accesslog:',
          '    disabled: false',
          'storage:',
          '  filesystem:',
          `    rootdirectory: ${join(dir, 'data')}`,
          'http:',
          `  addr: 127.0.0.1:${port}`,
          '',
        ].join('\n'),
      );
      distribution = background(findProgram('docker-registry')!, ['serve', config]);
      await waitHealthy(`http://127.0.0.1:${port}/v2/`);
      // 1.0.0 is the base; 1.1.0 the flavor, which shares the base's layers.
      await skopeoCopy(`oci:${base.dir}:1.0.0`, `docker://127.0.0.1:${port}/${BASE_NAME}:1.0.0`);
      await skopeoCopy(`oci:${flavor.dir}:1.0.0`, `docker://127.0.0.1:${port}/${BASE_NAME}:1.1.0`);
    });

    afterAll(async () => {
      await distribution?.stop();
    });

    it('pull 127.0.0.1:PORT/name@^1 resolves from the tags list, each layer once; a lower range shares every layer', async () => {
      const p = host(join(work, 'store-distribution'));
      const from = requests().length;
      const events = pullEvents(await p.ok('pull', `127.0.0.1:${port}/${BASE_NAME}@^1`, '--json'));
      expect(events.find((e) => e.event === 'resolved')).toMatchObject({ name: BASE_NAME, version: '1.1.0', digest: flavor.manifestDigest, layers: 4, missing: 4 });
      const asked = requests().slice(from);
      expect(asked.some((q) => q.method === 'GET' && q.url === `/v2/${BASE_NAME}/tags/list`)).toBe(true);
      expect(asked.find((q) => q.url.startsWith('/api/v1/'))?.status).toBe(404);
      for (const l of flavor.layers) expect(asked.filter((q) => q.method === 'GET' && q.url === `/v2/${BASE_NAME}/blobs/${l.digest}`), l.digest).toHaveLength(1);

      const lower = pullEvents(await p.ok('pull', `127.0.0.1:${port}/${BASE_NAME}@~1.0`, '--json'));
      expect(lower.find((e) => e.event === 'resolved')).toMatchObject({ version: '1.0.0', digest: base.manifestDigest, missing: 0 });
      expect(lower.filter((e) => e.event === 'layer-done').map((e) => e.shared)).toEqual([true, true, true]);
      expect(lower.find((e) => e.event === 'pulled')).toMatchObject({ downloaded: 0 });

      const t = JSON.parse((await p.ok('templates', '--json')).stdout) as { templates: Array<Record<string, any>> };
      expect(t.templates.map((x) => [x.name, x.version, x.source]).sort()).toEqual([
        [BASE_NAME, '1.0.0', `http://127.0.0.1:${port}`],
        [BASE_NAME, '1.1.0', `http://127.0.0.1:${port}`],
      ]);
      const view = await storeView(p.root);
      expect(view.layerDirs).toEqual(flavor.diffIds.map(hexOf).sort());
      expect(layersConsistent(view)).toEqual([]);

      await p.ok('create', 'd1', '--ostemplate', `127.0.0.1:${port}/${BASE_NAME}@~1.0`);
      const out = await p.ok('exec', 'd1', '--', '/bin/sh', '-c', 'cat /opt/vzt-host/base; test -e /opt/vzt-host/flavor || echo no-flavor; hostname');
      expect(out.stdout).toBe('base\nno-flavor\nctd1\n');
      await p.ok('destroy', 'd1');

      const none = await p.run('pull', `127.0.0.1:${port}/${BASE_NAME}@^9`);
      expect(none.code, none.stderr).toBe(4);
      expect(none.stderr).toMatch(/1\.1\.0/);
      expect(none.stderr).toMatch(/1\.0\.0/);
      const unknown = await p.run('pull', `127.0.0.1:${port}/debian-12-x86_64-nosuch@^1`);
      expect(unknown.code, unknown.stderr).toBe(4);
    });
  });

  describe.skipIf(!BUSYBOX)('an image vztpl did not build (busybox-static, Cmd /bin/sh) under plain tags', () => {
    let image: { manifestDigest: Digest; diffId: Digest };

    beforeAll(async () => {
      const dir = join(work, 'busybox', 'layout');
      image = await busyboxLayout(dir, 'mytag');
      // skopeo is the client here: as OCI, and converted to Docker schema 2 media types.
      await skopeoCopy(`oci:${dir}:mytag`, `docker://${reg.host}/busybox-plain:mytag`);
      await skopeoCopy(`oci:${dir}:mytag`, `docker://${reg.host}/busybox-plain:docker-v2s2`, '--format', 'v2s2');
    });

    it('create from 127.0.0.1:PORT/busybox-plain:mytag and exec work', async () => {
      const b = host(join(work, 'store-busybox'));
      await b.ok('create', 'bb1', '--ostemplate', `${reg.host}/busybox-plain:mytag`);
      const r = await b.ok('exec', 'bb1', '--', 'sh', '-c', 'echo hello from $(hostname); cat /etc/hostname; id -u; echo $$');
      expect(r.stdout).toBe('hello from ctbb1\nctbb1\n0\n1\n');
      // The image's Cmd is the bundle's process.
      const bundle = JSON.parse(await readFile(join(b.root, 'containers', 'bb1', 'config.json'), 'utf8')) as { process: { args: string[]; env: string[] } };
      expect(bundle.process.args).toEqual(['/bin/sh']);
      expect(bundle.process.env).toContain('PATH=/bin');
      const t = JSON.parse((await b.ok('templates', '--json')).stdout) as { templates: Array<Record<string, any>> };
      expect(t.templates.map((x) => [x.name, x.version, x.digest])).toEqual([['busybox-plain', 'mytag', image.manifestDigest]]);
      expect((await storeView(b.root)).layerDirs).toEqual([hexOf(image.diffId)]);
      expect((await b.run('exec', 'bb1', '--', 'sh', '-c', 'exit 3')).code).toBe(3);
      await b.ok('destroy', 'bb1');
    });

    it('the same image as Docker schema 2 (docker media types) runs too, sharing the extracted layer', async () => {
      const b = host(join(work, 'store-busybox'));
      const events = pullEvents(await b.ok('pull', `${reg.host}/busybox-plain:docker-v2s2`, '--json'));
      const resolved = events.find((e) => e.event === 'resolved')!;
      expect(resolved.version).toBe('docker-v2s2');
      const manifest = JSON.parse(await readFile(join(b.root, 'blobs', 'sha256', hexOf(resolved.digest as string)), 'utf8')) as { mediaType: string; layers: Array<{ mediaType: string }> };
      expect(sha256(await readFile(join(b.root, 'blobs', 'sha256', hexOf(resolved.digest as string))))).toBe(resolved.digest);
      expect(manifest.mediaType).toBe(MediaType.dockerManifest);
      expect(manifest.layers[0]!.mediaType).toBe(MediaType.dockerLayerGzip);
      // skopeo kept the layer's bytes: the same diff_id, already extracted.
      expect(events.find((e) => e.event === 'layer-done')).toMatchObject({ shared: true });
      await b.ok('create', 'bb2', '--ostemplate', `${reg.host}/busybox-plain:docker-v2s2`);
      expect((await b.ok('exec', 'bb2', '--', 'hostname')).stdout).toBe('ctbb2\n');
      await b.ok('destroy', 'bb2');
      expect(await exists(join(b.root, 'containers', 'bb2'))).toBe(false);
    });
  });
});
