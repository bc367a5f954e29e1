// The step-cache key is a promise to every existing cache: the same recipe, parent, epoch and
// repository metadata must give the same key after any refactoring. These keys were computed
// before the package managers moved out of build.ts (issue 12) and are pinned here.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stepKey } from '../../builder/build.ts';
import { planBuild } from '../../builder/plan.ts';

const DEB_RECIPE = `name: debian-12-x86_64
version: 1.0.0
bootstrap:
  tool: mmdebstrap
  suite: bookworm
  mirror: http://deb.debian.org/debian
  packages: [ca-certificates]
env:
  A: "1"
steps:
  - install: [nginx, curl]
    env: { B: "2" }
  - remove: [curl]
  - run: echo hello > /etc/motd
  - copy: { src: files/page.html, dest: /var/www/index.html, mode: "0644" }
`;

const RPM_RECIPE = `name: almalinux-9-x86_64
version: 1.0.0
bootstrap:
  tool: dnf
  releasever: "9"
  repos:
    - name: baseos
      baseurl: https://repo.almalinux.org/almalinux/9/BaseOS/x86_64/os/
  packages: [bash, rpm]
steps:
  - install: [less]
  - remove: [less]
  - run: touch /etc/x
    shell: /bin/bash
  - copy: { src: files/page.html, dest: /srv/page.html }
`;

const METADATA = 'sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03';

async function keys(file: string): Promise<string[]> {
  const plan = await planBuild(file);
  const out: string[] = [];
  let parent = 'sha256:empty';
  for (const item of plan.items) {
    const key = await stepKey(item, parent, { plan, epoch: 1_700_000_000, metadataDigest: METADATA });
    out.push(key);
    parent = `sha256:${key}`;
  }
  return out;
}

describe('step-cache keys', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vztpl-step-key-'));
    await mkdir(join(dir, 'files'));
    await writeFile(join(dir, 'files/page.html'), '<h1>pinned</h1>\n');
    await writeFile(join(dir, 'debian-12-x86_64.yaml'), DEB_RECIPE);
    await writeFile(join(dir, 'almalinux-9-x86_64.yaml'), RPM_RECIPE);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('are unchanged for a Debian recipe (bootstrap, install, remove, run, copy)', async () => {
    expect(await keys(join(dir, 'debian-12-x86_64.yaml'))).toEqual([
      '7b8d6f451bb16d18cb86e971607a70d763dda496ffe81aab5cfdf04bf1956e39',
      'cd8235e581afb1bc844aae98af58b91e4d505a65d5c1e78251c2ade66bd8f234',
      'ad9ccf4d9bb7dce92f439024213af16403566e3b6f819b5da62f0ae5c65685e0',
      '60348bbb42d310916a898e104dbd51b2182272676eb8ec61b83071fd75fbee1c',
      'b9539fff7e8d102ddea7b3f5cf86b6e7b1a5a552ef7b00ca3688e9b715147b71',
    ]);
  });

  it('are unchanged for an RPM recipe (bootstrap, install, remove, run, copy)', async () => {
    expect(await keys(join(dir, 'almalinux-9-x86_64.yaml'))).toEqual([
      'cde7d3ab886e58dbadafafc470ff0c33b813546d0609e8177f1d9ce6d898e94b',
      'a0db38b629cbc3863d45185716ce607490e6a981117cf49479daff25cf5f41da',
      'f4cdd40e00f9010dfeeaf119cd55af3bc8bab0b233d9acd2ebd017aa1a36216b',
      'f8d40dfdf4d89c43aa8b70c41f746dde42b4f4c65a5263dbfe92642f3fbc1ceb',
      'c429bdb24702785472ba10c36e25980f5bcc66c4b37c359ed55b80bc99a63ccc',
    ]);
  });
});
