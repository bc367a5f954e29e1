// The catalog's pages, rendered on the server from the catalog's records: home (search),
// template (versions and commands), version (layers, labels, packages, changelog, trust) and
// diff. Every value from a manifest, config, label or package lock goes through `html`.
import type { Digest } from '../../format/digest.ts';
import type { HistoryEntry, LockedPackage, PackageChange } from '../../format/oci.ts';
import type { SearchFilter, TemplateListing, VersionChangelog, VersionRecord, VersionTrust } from '../catalog.ts';
import { html, raw, type Html } from './html.ts';

export const STATIC = { css: '/-/static/catalog.css', js: '/-/static/catalog.js' };

const enc = (name: string) => name.split('/').map(encodeURIComponent).join('/');
export const links = {
  home: () => '/',
  template: (name: string) => `/t/${enc(name)}`,
  version: (name: string, version: string) => `/t/${enc(name)}/-/${encodeURIComponent(version)}`,
  diff: (name: string, from?: string, to?: string) =>
    `/t/${enc(name)}/-/diff${from && to ? `?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}` : ''}`,
  login: (next?: string) => `/-/login${next && next !== '/' ? `?next=${encodeURIComponent(next)}` : ''}`,
  logout: '/-/logout',
  search: (filter: SearchFilter) => `/?${new URLSearchParams(Object.entries(filter).filter((e): e is [string, string] => !!e[1])).toString()}`,
};

export function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let n = bytes / 1024;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

function date(iso: string | undefined): Html {
  if (!iso) return html`<span class="muted">–</span>`;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return html`${iso}`;
  return html`<time datetime="${d.toISOString()}" title="${d.toISOString()}">${d.toISOString().slice(0, 16).replace('T', ' ')} UTC</time>`;
}

function shortDigest(digest: string): Html {
  return html`<code title="${digest}">${digest.replace(/^sha256:/, '').slice(0, 12)}</code>`;
}

function signedBadge(t: Pick<VersionTrust, 'signed' | 'signedBy'>): Html {
  if (!t.signed) return html`<span class="badge none">unsigned</span>`;
  return t.signedBy.length ? html`<span class="badge ok" title="${t.signedBy.join(', ')}">signed, verified</span>` : html`<span class="badge ok">signed</span>`;
}

export interface PageContext {
  /** How clients name this registry (HOST:PORT), for the commands shown. */
  registry: string;
}

/**
 * Where the header's account links go (auth on): layout leaves this marker, and withAccount
 * fills it per visitor. Escaping turns every '<' of data into '&lt;', so data cannot forge it.
 */
export const ACCOUNT_SLOT = '<!--account-->';

/** Who is looking: with auth on, a visitor is signed in (a name) or not (null). */
export type Account = {
  user: string | null;
  /** Signed in with the form (vztpl_session), so signing out means something; not with Basic credentials. */
  session: boolean;
  /** The page to come back to after signing in. */
  here: string;
};

export function withAccount(page: string, account: Account | undefined): string {
  const i = page.indexOf(ACCOUNT_SLOT);
  if (i === -1) return page;
  const bar = !account
    ? ''
    : account.user !== null
      ? html`<div class="account"><span>${account.user}</span>${account.session ? html`<form method="post" action="${links.logout}"><button class="small" type="submit">Sign out</button></form>` : ''}</div>`.value
      : html`<div class="account"><a id="sign-in" href="${links.login(account.here)}">Sign in</a></div>`.value;
  return page.slice(0, i) + bar + page.slice(i + ACCOUNT_SLOT.length);
}

export function layout(title: string, crumbs: Html, body: Html): string {
  return `<!doctype html>${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · vztpl catalog</title>
<link rel="stylesheet" href="${STATIC.css}">
<script src="${STATIC.js}" defer></script>
</head>
<body>
<header class="top"><div class="in"><a class="brand" href="/">vztpl catalog</a><nav class="crumbs">${crumbs}</nav>${raw(ACCOUNT_SLOT)}</div></header>
<main>
${body}
</main>
<footer>Served by vztpl serve · JSON: <a href="/api/v1/templates">/api/v1/templates</a></footer>
</body>
</html>`}`;
}

// ---- home ----------------------------------------------------------------------------------

export function homePage(filter: SearchFilter, rows: readonly TemplateListing[], note?: string): string {
  const field = (name: keyof SearchFilter, label: string, placeholder: string) =>
    html`<label>${label}<input type="search" name="${name}" value="${filter[name] ?? ''}" placeholder="${placeholder}"></label>`;
  const filtered = Object.values(filter).some(Boolean);
  const body = html`<h1>Templates</h1>
<form class="search panel" method="get" action="/" role="search">
${field('q', 'Name', 'debian')}${field('distro', 'Distribution', 'debian')}${field('release', 'Release', '12')}${field('arch', 'Architecture', 'x86_64')}${field('package', 'Installed package', 'openssh-server')}
<button type="submit">Search</button>
</form>
<h2>${rows.length} ${rows.length === 1 ? 'template' : 'templates'}${filtered ? ' found' : ''}</h2>
${note ? html`<p class="muted">${note}</p>` : ''}
<div class="table-wrap"><table id="results">
<thead><tr><th>Name</th><th>Latest</th><th class="hide-sm">Distribution</th><th class="num">Size</th><th class="hide-sm">Published</th><th>Signature</th></tr></thead>
<tbody>
${rows.map(
  (r) => html`<tr data-name="${r.name}">
<td class="wrap"><a href="${links.template(r.name)}">${r.name}</a>${r.flavor ? html` <span class="tag">${r.flavor}</span>` : ''}</td>
<td><a href="${links.version(r.name, r.version)}">${r.version}</a> <span class="muted">(${r.versions} ${r.versions === 1 ? 'version' : 'versions'})</span></td>
<td class="hide-sm">${[r.distro, r.release, r.arch].filter(Boolean).join(' ')}</td>
<td class="num">${size(r.size)}</td>
<td class="hide-sm">${date(r.published)}</td>
<td>${signedBadge(r)}</td>
</tr>`,
)}
</tbody></table>
${rows.length ? '' : html`<p class="empty">No template matches.</p>`}</div>`;
  return layout('Templates', html``, body);
}

// ---- template ------------------------------------------------------------------------------

export type VersionRow = VersionRecord & Pick<VersionTrust, 'signed' | 'signedBy'> & { aliases: string[] };

export function templatePage(ctx: PageContext, name: string, versions: VersionRow[]): string {
  const latest = versions.find((v) => v.aliases.includes('latest')) ?? versions.at(-1)!;
  const ref = `${ctx.registry}/${name}`;
  const pull = `vztpl pull ${ref}@${latest.version}`;
  const create = `vztpl create 101 --ostemplate ${ref}@${latest.version} --hostname ct101`;
  const newestFirst = [...versions].reverse();
  const body = html`<h1>${name}</h1>
<div class="grid2">
<section class="panel"><dl class="facts">
<dt>Latest</dt><dd><a href="${links.version(name, latest.version)}">${latest.version}</a></dd>
<dt>Distribution</dt><dd>${[latest.distro, latest.release, latest.arch].filter(Boolean).join(' ') || '–'}</dd>
${latest.flavor ? html`<dt>Flavor</dt><dd>${latest.flavor}</dd>` : ''}
<dt>Packages</dt><dd>${latest.packages.length}</dd>
<dt>Size</dt><dd>${size(latest.size)}</dd>
</dl></section>
<section class="panel">
<div class="cmd"><pre id="cmd-pull">${pull}</pre><button class="small" type="button" data-copy="cmd-pull" hidden>Copy</button></div>
<div class="cmd"><pre id="cmd-create">${create}</pre><button class="small" type="button" data-copy="cmd-create" hidden>Copy</button></div>
<p class="muted">A range works too: <code>${ref}@^${latest.version.split('.')[0]}</code></p>
</section>
</div>
<h2>Versions</h2>
<div class="table-wrap"><table id="versions">
<thead><tr><th>Version</th><th>Digest</th><th class="num">Size</th><th class="hide-sm">Published</th><th>Aliases</th><th>Signature</th></tr></thead>
<tbody>
${newestFirst.map(
  (v) => html`<tr>
<td><a href="${links.version(name, v.version)}">${v.version}</a></td>
<td>${shortDigest(v.digest)}</td>
<td class="num">${size(v.size)}</td>
<td class="hide-sm">${date(v.published)}</td>
<td>${v.aliases.map((a) => html`<span class="tag">${a}</span>`)}</td>
<td>${signedBadge(v)}</td>
</tr>`,
)}
</tbody></table></div>
${versions.length > 1 ? diffForm(name, versions.map((v) => v.version), versions.at(-2)!.version, versions.at(-1)!.version) : ''}`;
  return layout(name, html`<a href="${links.template(name)}">${name}</a>`, body);
}

function diffForm(name: string, versions: string[], from: string, to: string): Html {
  const select = (field: string, selected: string) =>
    html`<select name="${field}">${[...versions].reverse().map((v) => html`<option${v === selected ? html` selected` : ''}>${v}</option>`)}</select>`;
  return html`<h2>Compare versions</h2>
<form class="search panel" method="get" action="${links.diff(name)}">
<label>From${select('from', from)}</label><label>To${select('to', to)}</label><button type="submit">Show differences</button>
</form>`;
}

// ---- version -------------------------------------------------------------------------------

export interface LayerRow {
  digest: Digest;
  size: number;
  mediaType: string;
  step?: HistoryEntry;
}

export interface VersionView {
  record: VersionRecord;
  aliases: string[];
  layers: LayerRow[];
  trust: VersionTrust;
  changelog?: VersionChangelog;
}

export function versionPage(ctx: PageContext, v: VersionView): string {
  const { record: r } = v;
  const name = r.name;
  const ref = `${ctx.registry}/${name}@${r.version}`;
  const labels = Object.entries(r.labels).sort(([a], [b]) => (a < b ? -1 : 1));
  const packages = [...r.packages].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const sig = v.trust.signatures;
  const body = html`<h1>${name} <span class="muted">${r.version}</span></h1>
<div class="grid2">
<section class="panel"><dl class="facts">
<dt>Digest</dt><dd><code>${r.digest}</code></dd>
<dt>Aliases</dt><dd>${v.aliases.length ? v.aliases.map((a) => html`<span class="tag">${a}</span>`) : html`<span class="muted">none</span>`}</dd>
<dt>Distribution</dt><dd>${[r.distro, r.release, r.arch].filter(Boolean).join(' ') || '–'}${r.flavor ? html` <span class="tag">${r.flavor}</span>` : ''}</dd>
<dt>Size</dt><dd>${size(r.size)} <span class="muted">compressed</span></dd>
<dt>Built</dt><dd>${date(r.created)}</dd>
<dt>Published</dt><dd>${date(r.published)}</dd>
</dl></section>
<section class="panel"><dl class="facts">
<dt>Signature</dt><dd id="signature">${signedBadge(v.trust)}${sig ? html` <span class="muted">${sig.matching} of ${sig.count} signatures name this version</span>` : ''}</dd>
${v.trust.signedBy.length ? html`<dt>Verified by</dt><dd id="verified-by">${v.trust.signedBy.map((f) => html`<code>${f}</code> `)}</dd>` : ''}
<dt>SBOM</dt><dd>${
    v.trust.sbom
      ? html`<a href="${v.trust.sbom.document?.url ?? v.trust.sbom.url}" download="${`${name.replace(/\//g, '_')}-${r.version}.spdx.json`}">SPDX document</a> <span class="muted">${size(v.trust.sbom.document?.size ?? v.trust.sbom.size)}${v.trust.sbom.signed ? ', signed' : ''}</span>`
      : html`<span class="muted">none</span>`
  }</dd>
</dl>
<div class="cmd"><pre id="cmd-pull">vztpl pull ${ref}</pre><button class="small" type="button" data-copy="cmd-pull" hidden>Copy</button></div>
<div class="cmd"><pre id="cmd-create">vztpl create 101 --ostemplate ${ref}</pre><button class="small" type="button" data-copy="cmd-create" hidden>Copy</button></div>
</section>
</div>
<h2>Layers</h2>
<div class="table-wrap"><table id="layers">
<thead><tr><th>#</th><th>Digest</th><th class="num">Size</th><th>Made by</th></tr></thead>
<tbody>
${v.layers.map(
  (l, i) => html`<tr><td>${i + 1}</td><td>${shortDigest(l.digest)}</td><td class="num">${size(l.size)}</td><td class="wrap">${l.step?.created_by ? html`<code>${l.step.created_by}</code>` : ''}${l.step?.comment ? html` <span class="muted">${l.step.comment}</span>` : ''}${!l.step?.created_by && !l.step?.comment ? html`<span class="muted">–</span>` : ''}</td></tr>`,
)}
</tbody></table></div>
${v.changelog ? changelogSection(v.changelog) : ''}
<h2>Packages <span class="muted">(${packages.length})</span></h2>
<div class="filter"><input type="search" id="pkg-filter" data-filter="packages" data-count="pkg-count" placeholder="Filter packages" aria-label="Filter packages" hidden><span id="pkg-count" class="muted" hidden></span></div>
${packageTable('packages', packages)}
<h2>Labels</h2>
<div class="table-wrap"><table id="labels">
<thead><tr><th>Label</th><th>Value</th></tr></thead>
<tbody>${labels.map(([k, val]) => html`<tr><td class="wrap"><code>${k}</code></td><td class="wrap">${val}</td></tr>`)}</tbody></table>
${labels.length ? '' : html`<p class="empty">No labels.</p>`}</div>`;
  return layout(`${name} ${r.version}`, html`<a href="${links.template(name)}">${name}</a> / ${r.version}`, body);
}

function packageTable(id: string, packages: LockedPackage[], cls?: string): Html {
  return html`<div class="table-wrap"><table id="${id}">
<thead><tr><th>Package</th><th>Version</th><th>Arch</th></tr></thead>
<tbody>${packages.map((p) => html`<tr${cls ? html` class="${cls}"` : ''}><td class="wrap">${p.name}</td><td class="wrap mono">${p.version}</td><td>${p.arch}</td></tr>`)}</tbody></table>
${packages.length ? '' : html`<p class="empty">None.</p>`}</div>`;
}

function changesTable(id: string, changes: PackageChange[]): Html {
  return html`<div class="table-wrap"><table id="${id}">
<thead><tr><th>Package</th><th>From</th><th>To</th><th>Arch</th></tr></thead>
<tbody>${changes.map((c) => html`<tr class="changed"><td class="wrap">${c.name}</td><td class="wrap mono">${c.from}</td><td class="wrap mono">${c.to}</td><td>${c.arch}</td></tr>`)}</tbody></table>
${changes.length ? '' : html`<p class="empty">None.</p>`}</div>`;
}

function changelogSection(c: VersionChangelog): Html {
  if (!c.previous) return html`<h2>Changelog</h2><p class="muted">The first version${c.recorded ? '' : ' published'}.</p>`;
  return html`<h2>Changelog <span class="muted">since <a href="${links.version(c.name, c.previous)}">${c.previous}</a></span></h2>
<p>${c.recipeChanged ? 'The recipe changed. ' : 'Same recipe. '}${c.added.length} added, ${c.removed.length} removed, ${c.upgraded.length} changed · <a href="${links.diff(c.name, c.previous, c.version)}">full difference</a></p>
${c.upgraded.length ? changesTable('changelog-changed', c.upgraded) : ''}
${c.added.length ? html`<h3>Added</h3>${packageTable('changelog-added', c.added, 'added')}` : ''}
${c.removed.length ? html`<h3>Removed</h3>${packageTable('changelog-removed', c.removed, 'removed')}` : ''}`;
}

// ---- diff ----------------------------------------------------------------------------------

export interface DiffView {
  name: string;
  versions: string[];
  from: string;
  to: string;
  diff?: { added: LockedPackage[]; removed: LockedPackage[]; changed: PackageChange[] };
}

export function diffPage(d: DiffView): string {
  const body = html`<h1>${d.name} <span class="muted">${d.diff ? html`${d.from} → ${d.to}` : 'compare versions'}</span></h1>
${d.versions.length > 1 ? diffForm(d.name, d.versions, d.from, d.to) : html`<p class="muted">Only one version: nothing to compare.</p>`}
${
  d.diff
    ? html`<h2>Changed <span class="muted">(${d.diff.changed.length})</span></h2>${changesTable('changed', d.diff.changed)}
<h2>Added <span class="muted">(${d.diff.added.length})</span></h2>${packageTable('added', d.diff.added, 'added')}
<h2>Removed <span class="muted">(${d.diff.removed.length})</span></h2>${packageTable('removed', d.diff.removed, 'removed')}`
    : ''
}`;
  return layout(`${d.name} diff`, html`<a href="${links.template(d.name)}">${d.name}</a> / diff`, body);
}

export function errorPage(status: number, message: string): string {
  return layout(status === 404 ? 'Not found' : 'Error', html``, html`<h1>${status === 404 ? 'Not found' : 'Something went wrong'}</h1><p>${message}</p><p><a href="/">All templates</a></p>`);
}

// ---- sign in -------------------------------------------------------------------------------

export function loginPage(next: string, message?: string, name = ''): string {
  const body = html`<h1>Sign in</h1>
${message ? html`<p class="error" id="login-error" role="alert">${message}</p>` : ''}
<form class="login panel" method="post" action="${links.login(next)}">
<label>Username<input name="username" autocomplete="username" required value="${name}"></label>
<label>Password<input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="${next}">
<button type="submit">Sign in</button>
</form>`;
  // No "Sign in" link in the header of the sign-in page itself.
  return layout('Sign in', html``, body).replace(ACCOUNT_SLOT, '');
}
