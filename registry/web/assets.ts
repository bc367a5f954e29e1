// The catalog pages' style sheet and script, served as files (/-/static/...) so the
// Content-Security-Policy allows no inline style or script. The script only enhances: the
// package filter box and the copy buttons are hidden until it runs.
export const CSS = `
:root {
  color-scheme: light dark;
  --bg: #fbfbfa; --fg: #1d2126; --muted: #5c6670; --line: #dde1e5; --panel: #ffffff;
  --accent: #1f5fbf; --accent-fg: #ffffff; --ok: #1a7f37; --warn: #9a6700; --bad: #b42318;
  --added: #e6f4ea; --removed: #fdecea; --changed: #fff6e0; --code: #f1f3f5;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #111418; --fg: #e4e7eb; --muted: #9aa5b1; --line: #2b3138; --panel: #181c21;
    --accent: #6ea8fe; --accent-fg: #0b1220; --ok: #56d364; --warn: #e3b341; --bad: #ff7b72;
    --added: #12301c; --removed: #3a1618; --changed: #332a10; --code: #1f242b;
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
header.top { border-bottom: 1px solid var(--line); background: var(--panel); }
header.top .in { max-width: 72rem; margin: 0 auto; padding: .7rem 1rem; display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; }
header.top .brand { font-weight: 700; font-size: 1.1rem; color: var(--fg); }
header.top .crumbs { color: var(--muted); overflow-wrap: anywhere; }
header.top .account { margin-left: auto; display: flex; gap: .6rem; align-items: baseline; color: var(--muted); }
header.top .account form { margin: 0; }
form.login { display: grid; gap: .7rem; max-width: 22rem; }
.error { color: var(--bad); }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; margin: .4rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; margin: 1.8rem 0 .6rem; }
.muted { color: var(--muted); }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: .88em; }
code { background: var(--code); padding: .05em .3em; border-radius: 4px; overflow-wrap: anywhere; }
pre { background: var(--code); padding: .6rem .8rem; border-radius: 6px; overflow-x: auto; margin: 0; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 1rem; }
form.search { display: grid; grid-template-columns: repeat(auto-fit, minmax(10rem, 1fr)); gap: .6rem; align-items: end; }
label { display: flex; flex-direction: column; gap: .2rem; font-size: .85rem; color: var(--muted); }
input, select, button { font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: .4rem .55rem; min-width: 0; }
button, .button { background: var(--accent); color: var(--accent-fg); border-color: var(--accent); cursor: pointer; }
button.small { padding: .1rem .5rem; font-size: .8rem; }
.table-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 8px; background: var(--panel); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .45rem .7rem; border-bottom: 1px solid var(--line); vertical-align: top; }
tr:last-child td { border-bottom: 0; }
th { font-size: .8rem; text-transform: uppercase; letter-spacing: .03em; color: var(--muted); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.wrap { overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .78rem; border: 1px solid currentColor; white-space: nowrap; }
.badge.ok { color: var(--ok); } .badge.warn { color: var(--warn); } .badge.none { color: var(--muted); }
.tag { display: inline-block; background: var(--code); border-radius: 4px; padding: 0 .35rem; margin: 0 .2rem .2rem 0; font-size: .82rem; }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .3rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.cmd { display: flex; gap: .5rem; align-items: center; margin: .3rem 0; }
.cmd pre { flex: 1; white-space: pre-wrap; overflow-wrap: anywhere; }
tr.added td { background: var(--added); } tr.removed td { background: var(--removed); } tr.changed td { background: var(--changed); }
.filter { margin: 0 0 .6rem; display: flex; gap: .6rem; align-items: center; flex-wrap: wrap; }
.filter input { flex: 1; max-width: 24rem; }
.grid2 { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1rem; }
.grid2 > *, .cmd pre, main { min-width: 0; }
.empty { padding: 1rem; color: var(--muted); }
footer { max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: var(--muted); font-size: .85rem; }
[hidden] { display: none !important; }
@media (max-width: 640px) {
  body { font-size: 14px; }
  .grid2 { grid-template-columns: minmax(0, 1fr); }
  th, td { padding: .4rem .5rem; }
  .hide-sm { display: none; }
  dl.facts { grid-template-columns: 1fr; }
  dl.facts dd { margin-bottom: .4rem; }
}
`;

export const JS = `"use strict";
document.querySelectorAll("input[data-filter]").forEach(function (input) {
  var table = document.getElementById(input.getAttribute("data-filter"));
  var count = document.getElementById(input.getAttribute("data-count"));
  if (!table) return;
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  var texts = rows.map(function (r) { return r.textContent.toLowerCase(); });
  input.hidden = false;
  if (count) count.hidden = false;
  function apply() {
    var q = input.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (r, i) { var ok = !q || texts[i].indexOf(q) !== -1; r.hidden = !ok; if (ok) shown++; });
    if (count) count.textContent = shown + " of " + rows.length + " shown";
  }
  input.addEventListener("input", apply);
  apply();
});
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(source.textContent).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    });
  });
});
`;
