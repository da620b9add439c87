// The page: one form, one POST /api/search, a grid of cutouts. No framework, no network
// beyond this server (plus the Legacy Survey links the user chooses to follow).
"use strict";
const $ = (id) => document.getElementById(id);
let upload = null;       // the File of the last drop, while it is the query
let last = null;         // {body | form maker} of the shown result, for CSV and "why"
let labelNames = {};

function apiKey() { return sessionStorage.getItem("gr-api-key") || ""; }

async function api(path, init = {}) {
  init.headers = Object.assign({}, init.headers || {}, apiKey() ? { "X-API-Key": apiKey() } : {});
  let r = await fetch(path, init);
  if (r.status === 401) {
    const k = prompt("This server wants an API key:");
    if (k) { sessionStorage.setItem("gr-api-key", k); init.headers["X-API-Key"] = k; r = await fetch(path, init); }
  }
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(typeof msg === "string" ? msg : JSON.stringify(msg));
  }
  return r;
}

function status(text, error = false) { const s = $("status"); s.textContent = text; s.className = error ? "error" : ""; }

function thumb(row, size = 192) { return `/api/rows/${row}/image.png?size=${size}`; }
function fmt(x, n) { return x === null || x === undefined ? "–" : Number(x).toFixed(n); }
function viewer(ra, dec) { return `https://www.legacysurvey.org/viewer?ra=${ra}&dec=${dec}&layer=ls-dr10&zoom=16`; }

// the search options shared by every kind of query
function options() {
  const o = { k: parseInt($("k").value || "12", 10), least: $("least").checked };
  const w = $("where").value.trim(); if (w) o.where = w;
  const sep = parseFloat($("sep").value); if (sep > 0) o.min_separation_arcsec = sep;
  return o;
}

// "42" → object id; "150.1 2.2" or "150.1, 2.2" → RA/Dec
function parseQuery(text) {
  const t = text.trim();
  const m = t.match(/^(-?\d+(?:\.\d*)?)[\s,]+([-+]?\d+(?:\.\d*)?)$/);
  return m ? { ra: parseFloat(m[1]), dec: parseFloat(m[2]) } : (t ? { object_id: t } : null);
}

function request(fmt = "json") {
  const url = "/api/search" + (fmt === "json" ? "" : `?format=${fmt}`);
  if (upload) {
    const f = new FormData(); f.append("image", upload, upload.name);
    for (const [k, v] of Object.entries(options())) f.append(k, String(v));
    return [url, { method: "POST", body: f }];
  }
  const q = parseQuery($("q").value);
  if (!q) return null;
  return [url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(Object.assign(q, options())) }];
}

async function search() {
  const req = request();
  if (!req) { status("Type an object id or RA Dec, or drop an image.", true); return; }
  status("searching…");
  $("go").disabled = true;
  try {
    const r = await (await api(...req)).json();
    last = { query: r.query, upload, text: $("q").value };
    show(r);
    status(`${r.hits.length} results in ${r.milliseconds.toFixed(1)} ms` + (options().least ? " (least similar first)" : ""));
    $("csv").disabled = r.hits.length === 0;
  } catch (e) {
    status(e.message, true);
  } finally { $("go").disabled = false; }
}

// the catalog's strangest galaxies (gr outliers), with the filter and k of the form
async function strangest() {
  const o = options(), p = new URLSearchParams({ n: String(o.k), k: "50" });
  if (o.where) p.set("where", o.where);
  status("ranking every object by its 50th neighbour (the first time takes a while)…");
  $("odd").disabled = true;
  try {
    const r = await (await api(`/api/outliers?${p}`)).json();
    last = null; $("csv").disabled = true;
    show(r);
    status(`the ${r.hits.length} objects least like any other, strangest first (score and percentile: to the 50th neighbour), ${r.milliseconds.toFixed(0)} ms`);
  } catch (e) { status(e.message, true); } finally { $("odd").disabled = false; }
}

function show(r) {
  const q = r.query, box = $("query");
  box.hidden = false;
  box.replaceChildren();
  if (q.row !== null && q.row !== undefined) {
    const img = new Image(); img.src = thumb(q.row, 96); img.alt = `query ${q.object_id}`; box.append(img);
  } else if (upload) {
    const img = new Image(); img.src = URL.createObjectURL(upload); img.alt = "uploaded query"; box.append(img);
  }
  const d = document.createElement("div");
  const what = q.kind === "outliers" ? "the strangest galaxies: lowest score to their 50th nearest neighbour" : q.kind === "image" ? `uploaded image ${upload ? upload.name : ""}` :
    q.kind === "sky" ? `object ${q.object_id}, ${fmt(q.separation_arcsec, 1)}″ from RA ${q.ra} Dec ${q.dec}` : `object ${q.object_id}`;
  const lab = q.label_name || (q.label !== null && q.label !== undefined ? String(q.label) : "");
  const sky = q.ra !== null && q.ra !== undefined && q.dec !== null && q.dec !== undefined;
  d.innerHTML = `<div><strong>Query</strong> ${escapeHtml(what)}</div>` +
    (lab ? `<div class="muted">${escapeHtml(lab)}</div>` : "") +
    (sky ? `<div class="muted">${fmt(q.ra, 4)}, ${fmt(q.dec, 4)} · <a href="${viewer(q.ra, q.dec)}" target="_blank" rel="noopener">Legacy Survey ↗</a></div>` : "");
  box.append(d);
  const grid = $("grid");
  grid.replaceChildren(...r.hits.map(card));
}

function escapeHtml(s) { return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }

function card(h) {
  const el = document.createElement("article");
  el.className = "hit"; el.dataset.objectId = h.object_id;
  const lab = h.label_name || (typeof h.label === "string" ? h.label : (h.label !== null && h.label !== undefined ? `label ${h.label}` : ""));
  const sky = h.ra !== null && h.dec !== null && h.ra !== undefined;
  el.innerHTML = `
    <img src="${thumb(h.row)}" alt="object ${escapeHtml(h.object_id)}" title="search from ${escapeHtml(h.object_id)}">
    <div class="meta">
      <div class="top"><span>#${h.rank}</span><span class="score" title="score ${fmt(h.score, 4)} (cos ${fmt(h.cos, 3)})${h.percentile == null ? "" : `; more similar than ${fmt(h.percentile, 2)} % of random catalog pairs`}">${h.percentile == null ? fmt(h.score, 3) : `${fmt(h.score, 3)} · p${fmt(h.percentile, 2)}`}</span></div>
      <div class="oid" title="${escapeHtml(h.object_id)}">${escapeHtml(h.object_id)}</div>
      <div class="label">${escapeHtml(lab)}</div>
      <div class="coords">${sky ? `${fmt(h.ra, 4)}, ${fmt(h.dec, 4)}` : "no coordinates"}</div>
      <div class="row">${sky ? `<a href="${viewer(h.ra, h.dec)}" target="_blank" rel="noopener">Legacy Survey ↗</a>` : "<span></span>"}<button type="button" class="whybtn">why</button></div>
    </div>`;
  el.querySelector("img").addEventListener("click", () => { clearUpload(); $("q").value = h.object_id; search(); });
  el.querySelector(".whybtn").addEventListener("click", () => why(h));
  return el;
}

// the gr explain sheet of the current query, down to this hit (at most 8 hits)
async function why(h) {
  if (!last) return;
  const f = new FormData();
  if (last.upload) f.append("image", last.upload, last.upload.name); else f.append("object_id", last.query.object_id);
  f.append("k", String(Math.min(h.rank, 8)));
  $("whytext").textContent = `Why #${h.rank} (${h.object_id}) matched: computing the patch maps…`;
  $("whyimg").removeAttribute("src");
  $("why").showModal();
  try {
    const blob = await (await api("/api/explain", { method: "POST", body: f })).blob();
    $("whyimg").src = URL.createObjectURL(blob);
    const self = last.upload ? "" : " The sheet searches by the query's image, so its first match is the query object itself.";
    $("whytext").textContent = `Which patches the score of each match rests on, for the query and its ${Math.min(h.rank, 8)} best matches (red: pulls together, blue: against), without the filter and de-duplication options.${self}`;
  } catch (e) { $("whytext").textContent = e.message; }
}

async function downloadCsv() {
  const req = request("csv");
  if (!req) return;
  try {
    const blob = await (await api(...req)).blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob); a.download = "hits.csv"; a.click();
  } catch (e) { status(e.message, true); }
}

function setUpload(file) {
  upload = file; $("q").value = "";
  const d = $("drop"); d.classList.add("has");
  d.style.backgroundImage = `url(${URL.createObjectURL(file)})`;
  d.querySelector("span").innerHTML = `${escapeHtml(file.name)}<br><small>drop another, or type an id to clear</small>`;
  search();
}
function clearUpload() {
  upload = null; const d = $("drop"); d.classList.remove("has"); d.style.backgroundImage = "";
  d.querySelector("span").innerHTML = "Drop an image here<br><small>or click to choose one</small>";
}

function wire() {
  $("search").addEventListener("submit", (e) => { e.preventDefault(); search(); });
  $("q").addEventListener("input", () => { if (upload) clearUpload(); });
  $("csv").addEventListener("click", downloadCsv);
  $("odd").addEventListener("click", strangest);
  const sep = $("sep");
  const showSep = () => { $("sepout").textContent = sep.value > 0 ? `${sep.value}″` : "off"; };
  sep.addEventListener("input", showSep);
  // a moved slider re-asks once the hand stops, so the grid follows it
  sep.addEventListener("change", () => { if (last) search(); });
  $("least").addEventListener("change", () => { if (last) search(); });
  showSep();
  const drop = $("drop"), file = $("file");
  drop.addEventListener("click", () => file.click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") file.click(); });
  file.addEventListener("change", () => { if (file.files[0]) setUpload(file.files[0]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files[0]) setUpload(e.dataTransfer.files[0]);
  });
}

async function loadInfo() {
  try {
    const i = await (await api("/api/info")).json();
    labelNames = i.label_names;
    $("info").textContent = `index ${i.index} · ${i.count.toLocaleString()} objects · ${i.dims}-d · FAISS ${i.faiss_factory || "flat"}`;
    if (!i.columns.includes("ra")) $("sep").disabled = true;
  } catch (e) { $("info").textContent = e.message; }
}

wire();
loadInfo();
// ?q=42 in the address searches at once (links from gr demo, bookmarks)
const start = new URLSearchParams(location.search).get("q");
if (start) { $("q").value = start; search(); }
