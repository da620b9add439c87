// The page: one form, one POST /api/search, a grid of cutouts. No framework, no network
// beyond this server (plus the Legacy Survey links the user chooses to follow).
"use strict";
const $ = (id) => document.getElementById(id);
let upload = null;       // the File of the last drop, while it is the query
let last = null;         // {body | form maker} of the shown result, for CSV and "why"
let labelNames = {};
let count = 0;           // objects in the index (/api/info)
const picked = new Map(); // object id → "like" | "unlike": examples for "galaxies like these"

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
// the archives an astronomer checks an object in, by position
function skyLinks(ra, dec) {
  const r = Number(ra).toFixed(6), d = Number(dec).toFixed(6);
  return [
    ["Legacy Survey", viewer(r, d)],
    ["SkyServer", `https://skyserver.sdss.org/dr18/VisualTools/navi?ra=${r}&dec=${d}&scale=0.2`],
    ["NED", `https://ned.ipac.caltech.edu/conesearch?search_type=Near%20Position%20Search&ra=${r}d&dec=${d}d&radius=0.1&in_csys=Equatorial&in_equinox=J2000`],
    ["SIMBAD", `https://simbad.cds.unistra.fr/simbad/sim-coo?Coord=${r}%20${d}&Radius=6&Radius.unit=arcsec`],
  ].map(([name, url]) => `<a href="${url}" target="_blank" rel="noopener">${name}</a>`).join(" · ");
}
// numeric metadata worth a line on a card (redshift first), not the ones shown already
const SHOWN = new Set(["label", "ra", "dec", "row", "object_id", "source"]);
function extras(md) {
  const keys = Object.keys(md || {}).filter((k) => !SHOWN.has(k) && typeof md[k] === "number" && Number.isFinite(md[k]));
  keys.sort((a, b) => (b === "redshift") - (a === "redshift"));
  return keys.slice(0, 3).map((k) => `${k === "redshift" ? "z" : escapeHtml(k)} ${Number(md[k]).toPrecision(3)}`).join(" · ");
}

// the search options shared by every kind of query
function options() {
  const o = { k: parseInt($("k").value || "12", 10), least: $("least").checked };
  const w = $("where").value.trim(); if (w) o.where = w;
  const sep = parseFloat($("sep").value); if (sep > 0) o.min_separation_arcsec = sep;
  return o;
}

// "42" → object id; "150.1 2.2" or "150.1, 2.2" → RA/Dec; "09:52:12 +02:09:15" or
// "09h52m12s +02d09m15s" → a position the server reads with astropy
const SEXAGESIMAL = /^\d{1,2}[:h\s]\s*\d{1,2}[:m\s]\s*\d{1,2}(?:\.\d*)?s?[\s,]+[-+]?\d{1,2}[:d°\s]\s*\d{1,2}[:m'\s]\s*\d{1,2}(?:\.\d*)?(?:s|"|″)?$/i;
function parseQuery(text) {
  const t = text.trim();
  const m = t.match(/^(-?\d+(?:\.\d*)?)[\s,]+([-+]?\d+(?:\.\d*)?)$/);
  if (m) return { ra: parseFloat(m[1]), dec: parseFloat(m[2]) };
  if (SEXAGESIMAL.test(t)) return { position: t };
  return t ? { object_id: t } : null;
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
    // the address reproduces a text query: share it, bookmark it, go back to it
    if (!upload) {
      const u = new URL(location.href); u.searchParams.set("q", $("q").value.trim());
      history.replaceState(null, "", u);
    }
    show(r);
    status(`${r.hits.length} results in ${r.milliseconds.toFixed(1)} ms` + (options().least ? " (least similar first)" : ""));
    // a full page of results: there may be more (the next search asks for twice as many)
    $("more").hidden = r.hits.length < options().k || options().k * 2 > Math.min(1000, count);
    $("csv").disabled = r.hits.length === 0;
  } catch (e) {
    status(e.message, true);
  } finally { $("go").disabled = false; }
}

// the catalog's strangest galaxies (gr outliers), with the filter and k of the form
async function strangest() {
  const kth = Math.max(1, Math.min(50, count - 1));  // a small index has fewer than 50 others
  const o = options(), p = new URLSearchParams({ n: String(Math.min(o.k, count)), k: String(kth) });
  if (o.where) p.set("where", o.where);
  status(`ranking every object by its ${kth}th neighbour (the first time takes a while)…`);
  $("odd").disabled = true;
  try {
    const r = await (await api(`/api/outliers?${p}`)).json();
    last = null; $("csv").disabled = true; $("more").hidden = true;
    r.query.kth = kth;
    show(r);
    status(`the ${r.hits.length} objects least like any other, strangest first (score and percentile: to the ${kth}th neighbour), ${r.milliseconds.toFixed(0)} ms`);
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
  const what = q.kind === "examples" ? "galaxies like the examples" : q.kind === "outliers" ? `the strangest galaxies: lowest score to their ${q.kth}th nearest neighbour` : q.kind === "image" ? `uploaded image ${upload ? upload.name : ""}` :
    q.kind === "sky" ? `object ${q.object_id}, ${fmt(q.separation_arcsec, 1)}″ from RA ${q.ra} Dec ${q.dec}` : `object ${q.object_id}`;
  const lab = q.label_name || (q.label !== null && q.label !== undefined ? String(q.label) : "");
  const sky = q.ra !== null && q.ra !== undefined && q.dec !== null && q.dec !== undefined;
  d.innerHTML = `<div><strong>Query</strong> ${escapeHtml(what)}</div>` +
    (lab ? `<div class="muted">${escapeHtml(lab)}</div>` : "") +
    (sky ? `<div class="muted">${fmt(q.ra, 4)}, ${fmt(q.dec, 4)} · ${skyLinks(q.ra, q.dec)}</div>` : "");
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
      <div class="extra">${extras(h.metadata)}</div>
      <div class="links">${sky ? skyLinks(h.ra, h.dec) : ""}</div>
      <div class="row"><span class="pick"><button type="button" class="like" title="like this: an example to search with">+</button><button type="button" class="unlike" title="not like this: a counter-example">−</button></span><button type="button" class="whybtn">why</button></div>
    </div>`;
  el.querySelector("img").addEventListener("click", () => { clearUpload(); $("q").value = h.object_id; search(); });
  el.querySelector(".whybtn").addEventListener("click", () => why(h));
  el.querySelector(".like").addEventListener("click", () => pick(el, h.object_id, "like"));
  el.querySelector(".unlike").addEventListener("click", () => pick(el, h.object_id, "unlike"));
  markPicked(el, h.object_id);
  return el;
}

// several hits as positive (+) and negative (−) examples of one search (the API's positive/negative)
function pick(el, id, how) {
  if (picked.get(id) === how) picked.delete(id); else picked.set(id, how);
  markPicked(el, id);
  const n = [...picked.values()], like = n.filter((v) => v === "like").length;
  $("like").hidden = picked.size === 0;
  $("like").disabled = like === 0;
  $("like").textContent = `Like these (${like}${n.length > like ? ` − ${n.length - like}` : ""})`;
}
function markPicked(el, id) {
  el.classList.toggle("liked", picked.get(id) === "like");
  el.classList.toggle("unliked", picked.get(id) === "unlike");
}
function examplesOf(map) {
  const like = [], unlike = [];
  for (const [id, how] of map) (how === "like" ? like : unlike).push(id);
  return { like, unlike };
}
async function searchExamples(like, unlike) {
  const o = options(), body = { positive: like, negative: unlike, k: o.k };
  if (o.where) body.where = o.where;
  status("searching with the examples…");
  try {
    const r = await (await api("/api/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })).json();
    last = null; $("csv").disabled = true;
    const u = new URL(location.href); u.search = "";
    u.searchParams.set("like", like.join(",")); if (unlike.length) u.searchParams.set("unlike", unlike.join(","));
    history.replaceState(null, "", u);
    picked.clear(); $("like").hidden = true; $("q").value = ""; $("more").hidden = true;
    show(r);
    status(`${r.hits.length} galaxies like ${like.join(", ")}` + (unlike.length ? ` and unlike ${unlike.join(", ")}` : "") + ` in ${r.milliseconds.toFixed(1)} ms`);
  } catch (e) { status(e.message, true); }
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
    $("whytext").textContent = `Which patches the score of each match rests on, for the query and its ${Math.min(h.rank, 8)} best matches (red: pulls together, blue: against), without the filter and de-duplication options.`;
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
  $("more").addEventListener("click", () => { $("k").value = String(options().k * 2); search(); });
  $("like").addEventListener("click", () => { const e = examplesOf(picked); if (e.like.length) searchExamples(e.like, e.unlike); });
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
    labelNames = i.label_names; count = i.count;
    $("info").textContent = `index ${i.index} · ${i.count.toLocaleString()} objects · ${i.dims}-d · FAISS ${i.faiss_factory || "flat"}`;
    if (!i.columns.includes("ra")) $("sep").disabled = true;
  } catch (e) { $("info").textContent = e.message; }
}

wire();
loadInfo();
// ?q=42 in the address searches at once (links from gr demo, bookmarks)
const params = new URLSearchParams(location.search), start = params.get("q");
const split = (v) => (v || "").split(",").map((x) => x.trim()).filter(Boolean);
if (params.get("like")) searchExamples(split(params.get("like")), split(params.get("unlike")));
else if (start) { $("q").value = start; search(); }
