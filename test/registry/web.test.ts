// The registry's web catalog (issue 17) in a real browser: Debian's chromium, headless, driven by
// playwright-core. A real "vztpl serve" gets small templates pushed over the distribution API
// (one with a <script> label and an HTML package name); the test searches by package, reads a
// version's full package list (with and without JavaScript), compares two versions, checks that
// hostile values are text, that the CSP header is sent and nothing of ours breaks it; one version
// is signed with `vztpl sign` by a key the registry knows, and shows so. A second, in-process
// registry on the same storage with auth on (anonymous pull off) shows a visitor without access
// nothing of a private template; the sign-in form keeps a session that signing out ends on every
// instance; credentials that do not check out get the form again (HTML 401). Screenshots of the
// pages go to docs/.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaType, Label, type LockedPackage } from '../../format/oci.ts';
import { loadPublicKey } from '../../format/sigstore/public-key.ts';
import { hashPassword } from '../../registry/auth/password.ts';
import { serializeUsers, type User } from '../../registry/auth/users.ts';
import { buildServer } from '../../registry/server.ts';
import { FsDriver } from '../../registry/storage/fs.ts';
import { blob, cliEnv, freePort, pushImage, randomBlob, REPO_ROOT, runCli, spawnCli, templateConfig, waitHealthy, type Blob, type Spawned } from '../helpers/registry-env.ts';

const CHROMIUM = '/usr/bin/chromium';
const HOSTILE_LABEL = '<script>window.__pwned = 1; alert("label")</script>';
const HOSTILE_PACKAGE = '<img src=x onerror=alert(1)>';
const DOCS = join(REPO_ROOT, 'docs');

/** A Debian-like lock of `n` packages, deterministic. */
function lock(n: number, extra: LockedPackage[] = []): LockedPackage[] {
  const out: LockedPackage[] = [];
  for (let i = 0; i < n; i++) out.push({ name: `lib${['acl', 'attr', 'bz2', 'cap', 'crypt', 'db', 'ffi', 'gmp', 'lz4', 'pam'][i % 10]}-${i}`, version: `1.${i}-${i % 7}`, arch: 'amd64' });
  return [...out, ...extra];
}

const BASE = lock(240, [
  { name: 'bash', version: '5.2.15-2+b7', arch: 'amd64' },
  { name: 'nano', version: '7.2-1', arch: 'amd64' },
  { name: 'openssl', version: '3.0.15-1~deb12u1', arch: 'amd64' },
  { name: 'tzdata', version: '2024a-0+deb12u1', arch: 'all' },
]);
const NEXT = BASE.filter((p) => p.name !== 'nano')
  .map((p) => (p.name === 'openssl' ? { ...p, version: '3.0.16-1~deb12u1' } : p))
  .concat([{ name: 'curl', version: '7.88.1-10+deb12u8', arch: 'amd64' }]);
const ALMA = lock(30, [
  { name: 'httpd', version: '2.4.57-11.el9', arch: 'x86_64' },
  { name: 'dnf', version: '4.14.0-9.el9', arch: 'noarch' },
]);

const STEPS = ['mmdebstrap bookworm (minbase)', 'run: apt-get install -y openssl curl', 'copy files/motd to /etc/motd'];

/** A template version as builder/build.ts would push it: config with labels, metadata and history, three layers. */
async function push(base: string, repo: string, version: string, t: { distro: string; release: string; arch: string; packages: LockedPackage[]; labels?: Record<string, string> }): Promise<void> {
  const layers = [randomBlob(60_000), randomBlob(20_000), randomBlob(3_000)];
  const config = JSON.parse(templateConfig({ name: repo.split('/').at(-1)!, version, ...t }).bytes.toString('utf8')) as Record<string, any>;
  Object.assign(config.config.Labels, t.labels ?? {});
  config.history = STEPS.map((s, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `vztpl build: ${s}`, comment: `step ${i + 1}` }));
  const configBlob: Blob = blob(JSON.stringify(config), MediaType.config);
  await pushImage(base, repo, version, { config: configBlob, layers });
}

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (Debian package chromium): the web catalog is not tested in a browser`;
if (skip) console.warn(skip);

describe.skipIf(!!skip)('web catalog in chromium', () => {
  let work: string;
  let server: Spawned;
  let base: string;
  let browser: Browser;
  let context: BrowserContext;
  const dialogs: string[] = [];
  const cspErrors: string[] = [];
  /** The fingerprint of the key that signs acme/alma-9-x86_64 2.3.0, which the registry is given. */
  let signer: string;

  async function open(path: string, ctx: BrowserContext = context): Promise<Page> {
    const page = await ctx.newPage();
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('console', (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) cspErrors.push(m.text());
    });
    const res = await page.goto(`${base}${path}`);
    expect(res?.status(), path).toBe(200);
    return page;
  }

  beforeAll(async () => {
    const { chromium } = await import('playwright-core');
    work = await mkdtemp(join(tmpdir(), 'vztpl-web-'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const key = join(work, 'signer');
    const keyEnv = cliEnv({ VZTPL_KEY_PASSWORD: 'signer pw' });
    const generated = await runCli(['key', 'generate', key], { env: keyEnv });
    expect(generated.code, generated.stderr).toBe(0);
    signer = (await loadPublicKey(`${key}.pub`)).fingerprint;
    server = spawnCli(['serve', '--listen', `127.0.0.1:${port}`, '--storage', `fs:${join(work, 'registry')}`], cliEnv({ VZTPL_LOG_LEVEL: 'warn', VZTPL_SIGNATURE_KEYS: `${key}.pub` }));
    await waitHealthy(`${base}/healthz`, server);
    await push(base, 'acme/debian-12-x86_64', '1.0.0', { distro: 'debian', release: '12', arch: 'x86_64', packages: BASE });
    await push(base, 'acme/debian-12-x86_64', '1.0.1', { distro: 'debian', release: '12', arch: 'x86_64', packages: NEXT });
    await push(base, 'acme/alma-9-x86_64', '2.3.0', { distro: 'almalinux', release: '9', arch: 'x86_64', packages: ALMA });
    const signed = await runCli(['sign', `127.0.0.1:${port}/acme/alma-9-x86_64:2.3.0`, '--key', `${key}.key`], { env: keyEnv });
    expect(signed.code, signed.stderr).toBe(0);
    await push(base, 'acme/odd', '0.1.0', {
      distro: 'debian',
      release: '12',
      arch: 'x86_64',
      packages: [{ name: HOSTILE_PACKAGE, version: '1"><b>x', arch: 'amd64' }],
      labels: { 'com.example.note': HOSTILE_LABEL },
    });
    await push(base, 'private/secret-db', '1.0.0', { distro: 'debian', release: '12', arch: 'x86_64', packages: lock(5, [{ name: 'secret-sauce', version: '1', arch: 'amd64' }]) });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    context = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: 'light' });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.kill();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('home: search by installed package finds the right template; the page sends a strict CSP', async () => {
    const page = await open('/');
    const all = await page.locator('#results tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-name')));
    expect(all.sort()).toEqual(['acme/alma-9-x86_64', 'acme/debian-12-x86_64', 'acme/odd', 'private/secret-db']);
    const badge = (name: string) => page.locator(`#results tbody tr[data-name="${name}"] .badge`).textContent();
    expect(await badge('acme/alma-9-x86_64')).toBe('signed, verified');
    expect(await badge('acme/debian-12-x86_64')).toBe('unsigned');
    await page.screenshot({ path: join(DOCS, 'catalog-home.png') });

    await page.fill('input[name=package]', 'httpd');
    await Promise.all([page.waitForURL(/package=httpd/), page.click('form.search button[type=submit]')]);
    expect(await page.locator('#results tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-name')))).toEqual(['acme/alma-9-x86_64']);
    await expect.poll(() => page.locator('#results tbody tr td').nth(1).textContent()).toContain('2.3.0');

    // curl is only in debian 1.0.1, its latest
    await page.goto(`${base}/?package=curl&distro=debian`);
    expect(await page.locator('#results tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-name')))).toEqual(['acme/debian-12-x86_64']);

    const res = await fetch(`${base}/`);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await res.text()).not.toMatch(/<script>|style="|<style|\son[a-z]+=/);
    await page.close();
  });

  it('template: versions with aliases and copy-ready commands', async () => {
    const page = await open('/t/acme/debian-12-x86_64');
    const rows = page.locator('#versions tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await rows.first().textContent()).toMatch(/1\.0\.1[\s\S]*latest/);
    const host = new URL(base).host;
    expect(await page.locator('#cmd-pull').textContent()).toBe(`vztpl pull ${host}/acme/debian-12-x86_64@1.0.1`);
    expect(await page.locator('#cmd-create').textContent()).toContain(`--ostemplate ${host}/acme/debian-12-x86_64@1.0.1`);
    await page.screenshot({ path: join(DOCS, 'catalog-template.png') });
    await page.close();
  });

  it('version: every package of the lock, layers with their steps, changelog; the filter box narrows the list', async () => {
    const page = await open('/t/acme/debian-12-x86_64/-/1.0.1');
    const names = await page.locator('#packages tbody tr td:first-child').allTextContents();
    expect(names.sort()).toEqual(NEXT.map((p) => p.name).sort());
    const layers = await page.locator('#layers tbody tr').allTextContents();
    expect(layers).toHaveLength(3);
    layers.forEach((l, i) => expect(l).toContain(STEPS[i]));
    expect(await page.locator('#changelog-changed').textContent()).toContain('3.0.16-1~deb12u1');
    await page.screenshot({ path: join(DOCS, 'catalog-version.png') });

    const filter = page.locator('#pkg-filter');
    await expect.poll(() => filter.isVisible()).toBe(true);
    await filter.fill('openssl');
    await expect.poll(() => page.locator('#packages tbody tr:visible').count()).toBe(1);
    expect(await page.locator('#pkg-count').textContent()).toBe(`1 of ${NEXT.length} shown`);
    await page.close();

    // without JavaScript: the whole list, and no filter box that could not work
    const noJs = await browser.newContext({ javaScriptEnabled: false });
    const plain = await open('/t/acme/debian-12-x86_64/-/1.0.1', noJs);
    expect(await plain.locator('#packages tbody tr:visible').count()).toBe(NEXT.length);
    expect(await plain.locator('#pkg-filter').isVisible()).toBe(false);
    await noJs.close();

    // a phone in dark mode
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, colorScheme: 'dark', isMobile: true, hasTouch: true });
    const small = await open('/t/acme/debian-12-x86_64/-/1.0.1', phone);
    // nothing wider than the screen but the scrolling tables
    expect(await small.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await small.screenshot({ path: join(DOCS, 'catalog-version-phone-dark.png') });
    await phone.close();
  });

  it('a signed version: its signature, verified by the registry\'s key, named by fingerprint', async () => {
    const page = await open('/t/acme/alma-9-x86_64/-/2.3.0');
    expect(await page.locator('#signature').textContent()).toBe('signed, verified 1 of 1 signatures name this version');
    expect(await page.locator('#verified-by').textContent()).toBe(`${signer} `);
    await page.screenshot({ path: join(DOCS, 'catalog-version-signed.png') });
    await page.close();
    // the unsigned one says so
    const unsigned = await open('/t/acme/debian-12-x86_64/-/1.0.1');
    expect(await unsigned.locator('#signature').textContent()).toBe('unsigned');
    expect(await unsigned.locator('#verified-by').count()).toBe(0);
    await unsigned.close();
  });

  it('diff: picking two versions shows what was added, removed and changed', async () => {
    const page = await open('/t/acme/debian-12-x86_64');
    await page.selectOption('select[name=from]', '1.0.0');
    await page.selectOption('select[name=to]', '1.0.1');
    await Promise.all([page.waitForURL(/\/-\/diff\?from=1\.0\.0&to=1\.0\.1/), page.click('form[action$="/-/diff"] button')]);
    expect(await page.locator('#added tbody tr td:first-child').allTextContents()).toEqual(['curl']);
    expect(await page.locator('#removed tbody tr td:first-child').allTextContents()).toEqual(['nano']);
    expect(await page.locator('#changed tbody tr').allTextContents()).toEqual([expect.stringMatching(/openssl.*3\.0\.15-1~deb12u1.*3\.0\.16-1~deb12u1/)]);
    await page.screenshot({ path: join(DOCS, 'catalog-diff.png') });
    await page.close();
  });

  it('a label holding <script> and an HTML package name are shown as text; nothing runs', async () => {
    const page = await open('/t/acme/odd/-/0.1.0');
    const label = page.locator('#labels tbody tr', { hasText: 'com.example.note' }).locator('td').nth(1);
    expect(await label.textContent()).toBe(HOSTILE_LABEL);
    expect(await page.locator('#packages tbody td').first().textContent()).toBe(HOSTILE_PACKAGE);
    expect(await page.locator('script').count()).toBe(1); // ours, from /-/static/catalog.js
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.evaluate<unknown>('window.__pwned')).toBeUndefined();
    await page.close();
    expect(dialogs).toEqual([]);
    expect(cspErrors).toEqual([]);
  });

  it('with auth on, a visitor without access sees nothing of a private template', async () => {
    const usersFile = join(work, 'users.yaml');
    const users: User[] = [{ name: 'reader', password: await hashPassword('reader pw', { N: 1024, r: 8, p: 1 }), scopes: [{ repositories: 'acme/**', actions: ['pull'] }] }];
    await writeFile(usersFile, serializeUsers(users, usersFile), { mode: 0o600 });
    const { app } = await buildServer({ driver: new FsDriver({ root: join(work, 'registry') }), auth: { enabled: true, anonymousPull: false, tokenTtl: 300, usersFile } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const authBase = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    try {
      const visit = async (ctx: BrowserContext, path: string) => {
        const page = await ctx.newPage();
        const res = await page.goto(`${authBase}${path}`);
        // the page's content: the header names who is looking
        const out = { status: res?.status(), text: (await page.locator('main').textContent()) ?? '' };
        await page.close();
        return out;
      };
      const anonymous = await browser.newContext();
      const reader = await browser.newContext({ extraHTTPHeaders: { authorization: `Basic ${Buffer.from('reader:reader pw').toString('base64')}` } });
      const unknown = await visit(anonymous, '/t/nothing/here');
      for (const ctx of [anonymous, reader]) {
        const home = await visit(ctx, '/');
        expect(home.status).toBe(200);
        expect(home.text).not.toContain('secret');
        const byPackage = await visit(ctx, '/?package=secret-sauce');
        expect(byPackage.text).toContain('0 templates found');
        for (const path of ['/t/private/secret-db', '/t/private/secret-db/-/1.0.0', '/t/private/secret-db/-/diff?from=1.0.0&to=1.0.0']) {
          const page = await visit(ctx, path);
          // exactly what a template that does not exist gets
          expect(page.status).toBe(404);
          expect(page.text.replace('private/secret-db', 'NAME')).toBe(unknown.text.replace('nothing/here', 'NAME'));
          expect(page.text).not.toContain('secret-sauce');
        }
      }
      expect((await visit(anonymous, '/')).text).toContain('signed-in users only');
      const readerHome = await visit(reader, '/');
      expect(readerHome.text).toContain('acme/debian-12-x86_64');
      expect((await visit(reader, '/t/acme/alma-9-x86_64/-/2.3.0')).text).toContain('httpd');
      expect((await visit(anonymous, '/t/acme/alma-9-x86_64')).status).toBe(404);
      await anonymous.close();
      await reader.close();
    } finally {
      await app.close();
    }
  });

  it('with auth on, the sign-in form keeps a session in an HttpOnly, SameSite=Strict cookie that only the pages honor', async () => {
    const usersFile = join(work, 'users-login.yaml');
    const ops: User = { name: 'ops', password: await hashPassword('ops pw', { N: 1024, r: 8, p: 1 }), scopes: [{ repositories: 'private/**', actions: ['pull'] }] };
    const reader: User = { name: 'reader', password: await hashPassword('reader pw', { N: 1024, r: 8, p: 1 }), scopes: [{ repositories: 'acme/**', actions: ['pull'] }] };
    await writeFile(usersFile, serializeUsers([ops, reader], usersFile), { mode: 0o600 });
    const { app } = await buildServer({ driver: new FsDriver({ root: join(work, 'registry') }), auth: { enabled: true, anonymousPull: false, tokenTtl: 300, usersFile } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const authBase = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const bodyText = async () => (await page.locator('main').textContent()) ?? '';
    const submit = async (username: string, password: string) => {
      await page.fill('input[name=username]', username);
      await page.fill('input[name=password]', password);
      const [res] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('form.login button[type=submit]')]);
      await page.waitForLoadState();
      return res.status();
    };
    const signIn = async (next: string) => {
      await page.goto(`${authBase}${next}`);
      await Promise.all([page.waitForURL(/\/-\/login/), page.click('#sign-in')]);
      expect(await submit('ops', 'ops pw')).toBe(303);
      await page.waitForURL(`${authBase}${next}`);
    };
    const sessionCookie = async () => (await ctx.cookies(authBase)).find((c) => c.name === 'vztpl_session');
    try {
      // anonymous: a Sign in link on every page, nothing of the private template
      let res = await page.goto(`${authBase}/t/private/secret-db`);
      expect(res?.status()).toBe(404);
      expect(await page.locator('#sign-in').count()).toBe(1);
      expect(await bodyText()).not.toContain('secret-sauce');
      await page.goto(`${authBase}/`);
      expect(await page.locator('#sign-in').count()).toBe(1);
      expect(await bodyText()).not.toContain('secret');

      // the form, from the 404 page's link: a wrong password and an unknown user get the same 401 form
      await page.goto(`${authBase}/t/private/secret-db/-/1.0.0`);
      await Promise.all([page.waitForURL(/\/-\/login\?next=/), page.click('#sign-in')]);
      expect(await submit('ops', 'wrong')).toBe(401);
      const wrongPassword = await bodyText();
      expect(await page.locator('#login-error').textContent()).toBe('Invalid username or password.');
      expect(await page.locator('input[name=password]').count()).toBe(1);
      expect(await page.locator('#sign-in').count(), 'no Sign in link on the sign-in page itself').toBe(0);
      await page.screenshot({ path: join(DOCS, 'catalog-sign-in.png') });
      expect(await submit('nobody-here', 'wrong')).toBe(401);
      expect(await bodyText()).toBe(wrongPassword);
      expect(await sessionCookie()).toBeUndefined();

      // signing in as a user allowed private/**: back on the page, which now shows
      expect(await submit('ops', 'ops pw')).toBe(303);
      await page.waitForURL(`${authBase}/t/private/secret-db/-/1.0.0`);
      expect(await page.locator('#packages').textContent()).toContain('secret-sauce');
      expect(await page.locator('header .account').textContent()).toContain('ops');
      res = await page.goto(`${authBase}/t/private/secret-db`);
      expect(res?.status()).toBe(200);
      await page.goto(`${authBase}/?package=secret-sauce`);
      expect(await page.locator('#results tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-name')))).toEqual(['private/secret-db']);

      const cookie = (await sessionCookie())!;
      expect(cookie).toBeDefined();
      expect(cookie.httpOnly).toBe(true);
      expect(cookie.sameSite).toBe('Strict');
      expect(cookie.path).toBe('/');
      expect(cookie.secure).toBe(false); // plain http here
      expect(cookie.expires - Date.now() / 1000).toBeGreaterThan(290);
      expect(cookie.expires - Date.now() / 1000).toBeLessThanOrEqual(301);
      expect(await page.evaluate<string>('document.cookie')).not.toContain('vztpl_session');

      // the same cookie grants nothing on /v2/ or /api/v1 (ctx.request sends the context's cookies)
      const withCookie = { headers: { cookie: `vztpl_session=${cookie.value}` } };
      expect((await fetch(`${authBase}/t/private/secret-db`, withCookie)).status).toBe(200); // the pages honor it
      for (const path of ['/v2/', '/v2/private/secret-db/tags/list', '/v2/private/secret-db/manifests/1.0.0', '/api/v1/templates', '/api/v1/templates/private/secret-db']) {
        expect((await ctx.request.get(`${authBase}${path}`)).status(), path).toBe(401);
        expect((await fetch(`${authBase}${path}`, withCookie)).status, path).toBe(401);
      }
      // nor is the session token a Bearer token
      const bearer = await fetch(`${authBase}/v2/private/secret-db/tags/list`, { headers: { authorization: `Bearer ${cookie.value}` } });
      expect(bearer.status).toBe(401);
      expect(bearer.headers.get('www-authenticate')).toContain('invalid_token');

      // another site cannot sign the visitor in or out
      const form = { 'content-type': 'application/x-www-form-urlencoded' };
      expect((await fetch(`${authBase}/-/login`, { method: 'POST', headers: { ...form, origin: 'http://evil.example' }, body: 'username=ops&password=ops+pw' })).status).toBe(403);
      expect((await fetch(`${authBase}/-/login`, { method: 'POST', headers: form, body: 'username=ops&password=ops+pw' })).status).toBe(403);
      expect((await fetch(`${authBase}/-/logout`, { method: 'POST', headers: { ...withCookie.headers, ...form, origin: 'http://evil.example' } })).status).toBe(403);

      // another instance on the same storage and users file honors the session too
      const other = await buildServer({ driver: new FsDriver({ root: join(work, 'registry') }), auth: { enabled: true, anonymousPull: false, tokenTtl: 300, usersFile } });
      await other.app.listen({ host: '127.0.0.1', port: 0 });
      const otherBase = `http://127.0.0.1:${(other.app.server.address() as { port: number }).port}`;
      try {
        expect((await fetch(`${otherBase}/t/private/secret-db`, withCookie)).status).toBe(200);

        // signing out ends it, on the server: the cookie as it was before refused by both instances
        await page.goto(`${authBase}/`);
        await Promise.all([page.waitForURL(`${authBase}/`), page.click('header .account button')]);
        expect(await sessionCookie()).toBeUndefined();
        expect(await page.locator('#sign-in').count()).toBe(1);
        res = await page.goto(`${authBase}/t/private/secret-db`);
        expect(res?.status()).toBe(404);
        for (const via of [authBase, otherBase]) {
          const replayed = await fetch(`${via}/t/private/secret-db`, withCookie);
          expect(replayed.status, via).toBe(404);
          expect(await replayed.text()).not.toContain('secret-sauce');
          expect(replayed.headers.get('set-cookie'), via).toMatch(/^vztpl_session=; Max-Age=0;/);
          const home = await (await fetch(`${via}/?package=secret-sauce`, withCookie)).text();
          expect(home).toContain('0 templates found');
          expect(home).toContain('id="sign-in"');
        }
        // signing out again with it changes nothing
        expect((await fetch(`${otherBase}/-/logout`, { method: 'POST', headers: { ...withCookie.headers, ...form, origin: otherBase }, redirect: 'manual' })).status).toBe(303);
        expect((await fetch(`${otherBase}/t/private/secret-db`, withCookie)).status).toBe(404);
      } finally {
        await other.app.close();
      }

      // removing the user from the users file ends the session
      await signIn('/t/private/secret-db');
      expect(await bodyText()).toContain('1.0.0');
      await writeFile(usersFile, serializeUsers([reader], usersFile), { mode: 0o600 });
      await expect.poll(async () => (await page.goto(`${authBase}/t/private/secret-db`))?.status(), { timeout: 5000 }).toBe(404);
      expect(await bodyText()).not.toContain('secret-sauce');
      expect(await page.locator('#sign-in').count()).toBe(1);
      expect(await sessionCookie()).toBeUndefined(); // cleared, as it no longer holds

      // the password guard's limits apply to the form: 429 with Retry-After, the form again
      let status = 0;
      for (let i = 0; i < 30 && status !== 429; i++) {
        const r = await fetch(`${authBase}/-/login`, { method: 'POST', headers: { ...form, origin: authBase }, body: 'username=reader&password=nope' });
        status = r.status;
        if (status === 429) {
          expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
          expect(await r.text()).toContain('name="password"');
        } else expect(status).toBe(401);
      }
      expect(status).toBe(429);
    } finally {
      await ctx.close();
      await app.close();
    }
  });

  it('with auth on, a page asked for with credentials that do not check out gets the sign-in form with 401, not JSON', async () => {
    const usersFile = join(work, 'users-bad.yaml');
    const reader: User = { name: 'reader', password: await hashPassword('reader pw', { N: 1024, r: 8, p: 1 }), scopes: [{ repositories: 'acme/**', actions: ['pull'] }] };
    await writeFile(usersFile, serializeUsers([reader], usersFile), { mode: 0o600 });
    const { app } = await buildServer({ driver: new FsDriver({ root: join(work, 'registry') }), auth: { enabled: true, anonymousPull: false, tokenTtl: 300, usersFile } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const authBase = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const wrong = { authorization: `Basic ${Buffer.from('reader:not it').toString('base64')}` };
    const ctx = await browser.newContext({ extraHTTPHeaders: wrong });
    try {
      // in the browser: the form, with the one message, to come back to the page asked for
      const page = await ctx.newPage();
      const res = await page.goto(`${authBase}/t/acme/alma-9-x86_64`);
      expect(res?.status()).toBe(401);
      expect(res?.headers()['content-type']).toBe('text/html; charset=utf-8');
      expect(await page.locator('#login-error').textContent()).toBe('Invalid username or password.');
      expect(await page.locator('input[name=next]').inputValue()).toBe('/t/acme/alma-9-x86_64');
      expect(await page.locator('main').textContent()).not.toContain('httpd');
      await page.close();

      // the same for an unknown user, a bad token, a token of no form; the strict CSP is sent
      const bodies = new Set<string>();
      for (const authorization of [`Basic ${Buffer.from('nobody:x').toString('base64')}`, 'Bearer not.a.token', 'Digest x']) {
        const r = await fetch(`${authBase}/`, { headers: { authorization } });
        expect(r.status, authorization).toBe(401);
        expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
        expect(r.headers.get('content-security-policy')).toContain("default-src 'none'");
        const text = await r.text();
        expect(text).toContain('id="login-error"');
        expect(text).toContain('name="password"');
        bodies.add(text);
      }
      expect(bodies.size).toBe(1);
      // the sign-in page itself keeps its next
      const login = await fetch(`${authBase}/-/login?next=/t/acme/odd`, { headers: wrong });
      expect(login.status).toBe(401);
      expect(await login.text()).toContain('value="/t/acme/odd"');
      // the API still answers in its own format
      const api = await fetch(`${authBase}/api/v1/templates`, { headers: wrong });
      expect(api.status).toBe(401);
      expect(api.headers.get('content-type')).toMatch(/^application\/json/);
      expect(api.headers.get('www-authenticate')).toMatch(/^Bearer /);

      // the password guard's limit on a page: the form with 429 and Retry-After
      let status = 0;
      for (let i = 0; i < 30 && status !== 429; i++) {
        const r = await fetch(`${authBase}/`, { headers: wrong });
        status = r.status;
        const text = await r.text();
        if (status === 429) {
          expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
          expect(text).toContain('Too many failed sign-ins');
          expect(text).toContain('name="password"');
        } else expect(status).toBe(401);
      }
      expect(status).toBe(429);
    } finally {
      await ctx.close();
      await app.close();
    }
  });
});
