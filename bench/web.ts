// Web catalog benchmark (issue 17: a page answers in under 30 ms, p50, with 100 templates
// published). An in-process `vztpl serve` (fs storage) gets 100 templates, each one version with
// a one-layer image and a package lock of 300 packages (pushed through the OCI API, so the
// catalog records them as it does any push); then each page is requested `--rounds` times,
// one at a time on a kept-alive connection from this process, beside the JSON search of
// /api/v1 that the home page is built from (the floor under it). One row times the home page
// right after a publish (a new version of the last template, pushed untimed before each request):
// the search index's rebuild, which reads every template's change stamp and reloads that one.
// Usage: node bench/web.ts [--templates 100] [--packages 300] [--rounds 200] [--no-results]
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { RegistryClient } from '../client/registry-client.ts';
import { sha256, type Digest } from '../format/digest.ts';
import { canonicalJson, Label, MediaType } from '../format/oci.ts';
import { buildServer } from '../registry/server.ts';
import { FsDriver } from '../registry/storage/fs.ts';
import { loadAverage, machine, median, ratio, runBench, table } from './lib.ts';
import { ms, percentile, report, say } from './support.ts';

const { values: opt } = parseArgs({
  options: {
    templates: { type: 'string', default: '100' },
    packages: { type: 'string', default: '300' },
    rounds: { type: 'string', default: '200' },
    'no-results': { type: 'boolean', default: false },
  },
});

let work = '';

/** A one-file tar (header, data, padding, end): a real layer the registry stores as any other. */
function tinyTar(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write('14000000000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, pad, Buffer.alloc(1024)]);
}

async function main(): Promise<void> {
  const m = machine();
  const started = performance.now();
  work = await mkdtemp(join(tmpdir(), 'vztpl-bench-web-'));
  const { app } = await buildServer({ driver: new FsDriver({ root: join(work, 'registry') }) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const client = new RegistryClient(base);
  const templates = Number(opt.templates);
  const packagesPer = Number(opt.packages);
  say(`publishing ${templates} templates with ${packagesPer} packages each to ${base}`);
  const distros = [
    ['debian', '12', 'deb'],
    ['ubuntu', '24.04', 'deb'],
    ['almalinux', '9', 'rpm'],
  ] as const;
  let last: { name: string; manifest: Buffer } | undefined;
  for (let i = 0; i < templates; i++) {
    const [distro, release, family] = distros[i % distros.length]!;
    const name = `${distro}-${release}-x86_64-t${i}`;
    const tar = tinyTar('etc/motd', Buffer.from(`${name}\n`));
    const layer = gzipSync(tar);
    const packages = Array.from({ length: packagesPer }, (_, k) => ({ name: `pkg${k}${k === 7 ? `-only${i}` : ''}`, version: `1.${k}.${i % 5}-1`, arch: 'amd64' }));
    const config = canonicalJson({
      created: '2026-01-01T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: { Labels: { [Label.distro]: distro, [Label.release]: release, [Label.arch]: 'x86_64', [Label.title]: name, [Label.version]: '1.0.0' } },
      rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      history: [{ created: '2026-01-01T00:00:00Z', created_by: 'vztpl build: bench' }],
      'org.openvz.template': { name, version: '1.0.0', distro, release, arch: 'x86_64', recipeDigest: sha256(Buffer.from(name)), family, packages },
    });
    const manifest = canonicalJson({
      schemaVersion: 2,
      mediaType: MediaType.manifest,
      config: { mediaType: MediaType.config, digest: sha256(config), size: config.length },
      layers: [{ mediaType: MediaType.layerGzip, digest: sha256(layer), size: layer.length }],
    });
    await client.pushBlob(name, sha256(config) as Digest, config);
    await client.pushBlob(name, sha256(layer) as Digest, layer);
    await client.putManifest(name, '1.0.0', MediaType.manifest, manifest);
    if (i === templates - 1) last = { name, manifest };
  }

  let published = 0;
  const publishAnother = async () => {
    await client.putManifest(last!.name, `1.0.${++published}`, MediaType.manifest, last!.manifest);
  };
  const pages: Array<[string, string, (() => Promise<void>)?]> = [
    ['JSON search, all templates (/api/v1/templates: the floor under the home page)', '/api/v1/templates'],
    ['home page, all templates', '/'],
    ['home page, search by package', '/?package=pkg7-only42'],
    ['home page, all templates, first after a publish', '/', publishAnother],
    ['template page', '/t/debian-12-x86_64-t0'],
    ['version page (300 packages)', '/t/debian-12-x86_64-t0/-/1.0.0'],
  ];
  const rows: string[][] = [];
  const p50s: number[] = [];
  for (const [what, path, before] of pages) {
    const times: number[] = [];
    for (let i = 0; i < 10 + Number(opt.rounds); i++) {
      await before?.();
      const t0 = performance.now();
      const res = await fetch(`${base}${path}`);
      const body = await res.text();
      if (res.status !== 200) throw new Error(`${path}: ${res.status} ${body.slice(0, 200)}`);
      if (i >= 10) times.push(performance.now() - t0);
    }
    const p50 = median(times);
    p50s.push(p50);
    rows.push([what, ms(p50), ms(percentile(times, 0.9)), ratio(p50, p50s[0]!), path === '/api/v1/templates' ? '(floor)' : p50 < 30 ? 'met' : 'NOT met']);
    say(`${what}: p50 ${ms(p50)}`);
  }
  await app.close();
  await report({
    heading: `${m.date}: Web catalog (bench/web.ts)`,
    machine: m,
    loadAfter: loadAverage(),
    totalMs: performance.now() - started,
    summary: [
      `${templates} templates (${packagesPer} packages each) on an in-process vztpl serve (fs); ${opt.rounds} sequential requests per page on a kept-alive connection, after 10 untimed; goal: p50 under 30 ms.`,
      '',
      table(['page', 'p50', 'p90', 'vs JSON search', 'goal'], rows),
    ].join('\n'),
    about: () => `Registry storage in ${tmpdir()}; client and server in one process.`,
    record: !opt['no-results'],
  });
  await rm(work, { recursive: true, force: true });
}

runBench(main, async () => {
  if (work) await rm(work, { recursive: true, force: true });
});
