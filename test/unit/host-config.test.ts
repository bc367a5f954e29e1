// The host config's per-registry settings (cache/host-config.ts): caFile for every registry,
// an entry per HOST[:PORT] under registries: with its own caFile and insecure (plain HTTP),
// paths relative to the file, and bad entries refused naming the file and the key.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hostSettings, registrySettings, withSettings } from '../../cache/host-config.ts';
import { UsageError } from '../../common/errors.ts';

describe('host.yaml: registries', () => {
  let dir: string;
  let file: string;
  const before = process.env.VZTPL_HOST_CONFIG;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vztpl-host-config-'));
    file = join(dir, 'host.yaml');
    process.env.VZTPL_HOST_CONFIG = file;
  });
  afterEach(() => {
    if (before === undefined) delete process.env.VZTPL_HOST_CONFIG;
    else process.env.VZTPL_HOST_CONFIG = before;
    rmSync(dir, { recursive: true, force: true });
  });

  it('an entry per registry over the file-wide caFile; paths relative to the file', async () => {
    writeFileSync(
      file,
      [
        'root: /srv/vztpl',
        'caFile: /etc/vztpl/ca.pem',
        'registries:',
        '  registry.example.net:5000:',
        '    insecure: true',
        '  templates.example.org:',
        '    caFile: example-ca.pem',
        'trust:',
        '  - match: "**"',
        '    insecureAcceptAnything: true',
        '',
      ].join('\n'),
    );
    // The flat keys still come from the fast reader, whatever sections follow.
    expect(hostSettings({}).root).toBe('/srv/vztpl');
    expect(await registrySettings('https://registry.example.net:5000')).toEqual({ caFile: '/etc/vztpl/ca.pem', insecure: true });
    expect(await registrySettings('https://templates.example.org')).toEqual({ caFile: join(dir, 'example-ca.pem'), insecure: undefined });
    expect(await registrySettings('https://other.example.com')).toEqual({ caFile: '/etc/vztpl/ca.pem', insecure: undefined });
    expect(withSettings('https://registry.example.net:5000', { insecure: true })).toBe('http://registry.example.net:5000');
    expect(withSettings('https://templates.example.org', {})).toBe('https://templates.example.org');
    expect(withSettings('http://127.0.0.1:5000', { insecure: true })).toBe('http://127.0.0.1:5000');
  });

  it('without the file or the section: nothing', async () => {
    expect(await registrySettings('https://registry.example.net')).toEqual({ caFile: undefined, insecure: undefined });
    writeFileSync(file, 'registry: 127.0.0.1:5000\n');
    expect(await registrySettings('https://registry.example.net')).toEqual({ caFile: undefined, insecure: undefined });
  });

  it('a bad entry is refused, naming the file and the key', async () => {
    writeFileSync(file, 'registries:\n  registry.example.net:\n    insecure: yes-please\n');
    const err = await registrySettings('https://registry.example.net').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toContain('registries.registry.example.net.insecure');
    writeFileSync(file, 'registries:\n  registry.example.net:\n    verify: false\n');
    expect(((await registrySettings('https://registry.example.net').catch((e: unknown) => e)) as Error).message).toContain('registries.registry.example.net');
    writeFileSync(file, 'cafile: /x\n');
    expect(() => hostSettings({})).toThrow(UsageError);
  });
});
