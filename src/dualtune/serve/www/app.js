// dualtune serve page: reads only the JSON API of the same server (docs/API.md).
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg"; // XML namespace name, not a download
const PAGE_SIZE = 48;

const state = {
  status: null,
  query: null,       // {type: "item", item} | {type: "image", file, url}
  page: 0,
  total: 0,
  items: [],
  focusIndex: 0,
  lastBackfillState: null,
};

// --- API ---------------------------------------------------------------------------
async function api(path, options = {}) {
  let res;
  try {
    res = await fetch(path, options);
  } catch (e) {
    throw new Error("the server does not answer (" + e.message + ")");
  }
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!res.ok) {
    const msg = body && body.error ? body.error : "HTTP " + res.status;
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return body;
}

function showError(message) {
  const b = $("banner");
  if (!message) { b.hidden = true; b.textContent = ""; return; }
  b.textContent = message;
  b.hidden = false;
}

// --- small DOM helpers ---------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "style") for (const [p, x] of Object.entries(v)) e.style.setProperty(p, x); // CSSOM: allowed by the CSP
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}
const pct = (x, digits = 1) => (x === null || x === undefined ? "n/a" : (100 * x).toFixed(digits) + " %");
const num = (x) => Number(x).toLocaleString("en-US");
function duration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  if (s < 10) return s.toFixed(1) + " s";
  if (s < 60) return s.toFixed(0) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
}
function thumb(id, size, alt) {
  const img = el("img", { src: "/api/items/" + id + "/image?size=" + size, alt: alt });
  img.addEventListener("error", () => { img.replaceWith(el("span", { class: "muted", text: "no image" })); });
  return el("div", { class: "thumb" }, img);
}
function badge(kind) {
  return el("span", { class: "badge " + kind, title: {
    new: "scored against the item's new embedding (backfilled)",
    old: "scored against the item's old embedding (not backfilled yet)",
    mapped: "scored against an old embedding mapped into the new space",
    current: "scored against the deployed model's embedding",
  }[kind] || kind, text: kind });
}

// --- status, models, backfill ----------------------------------------------------------
function renderModels(st) {
  const list = $("models");
  list.replaceChildren(...st.models.map((m) =>
    el("li", { class: m.role },
      el("strong", { text: m.name }), " ",
      el("span", { class: "role", text: m.role.replace("_", " ") + " · " + m.dim + "-d" +
        (m.role === "rolling_out" ? " · " + pct(m.backfilled, 0) + " backfilled" : "") }))));
  const select = $("q-model");
  const current = select.value;
  const usable = st.models.filter((m) => m.role === "deployed" || m.role === "rolling_out");
  select.replaceChildren(...usable.map((m) =>
    el("option", { value: m.name, text: m.name + (m.role === "rolling_out" ? " (new)" : m.role === "deployed" && usable.length > 1 ? " (old)" : "") })));
  select.value = usable.some((m) => m.name === current) ? current : st.query_model;
}

// The API's backfill states (docs/API.md) as the page says them.
const STATE_WORDS = { idle: "idle", running: "running", pausing: "pausing…", paused: "paused", stopped: "step done",
  finished: "done", failed: "failed", rolled_back: "rolled back" };

function renderBackfill(bf, st) {
  const s = bf.state;
  const pill = $("bf-state");
  pill.textContent = STATE_WORDS[s] || s;
  pill.dataset.state = s;
  pill.className = "pill " + s;
  $("bf-order").textContent = bf.model ? "model '" + bf.model + "'" : "no model rolling out";
  // Fraction of the gallery that carries the rolling-out model's embedding.
  const target = st.models.find((m) => m.role === "rolling_out");
  const have = target ? target.embeddings : 0;
  const items = st.gallery.items;
  const frac = target ? target.backfilled : 0;
  $("bf-fill").style.width = (100 * frac).toFixed(2) + "%";
  const bar = $("bf-bar");
  bar.setAttribute("aria-valuenow", (100 * frac).toFixed(1));
  bar.setAttribute("aria-valuetext", num(have) + " of " + num(items) + " items backfilled");
  $("bf-numbers").replaceChildren(pct(frac), " ", el("small", { text: num(have) + " / " + num(items) + " items" }));
  const rows = [];
  const run = bf.this_run || {};
  if (bf.running) {
    rows.push(["rate", (run.items_per_second || 0).toFixed(1) + " items/s"], ["time left", duration(run.eta_seconds)]);
  }
  if (bf.planned) rows.push(["planned", num(bf.planned)], ["embedded", num(bf.done)]);
  if (bf.failed) rows.push(["skipped (bad image)", num(bf.failed)]);
  if (bf.last_run && !bf.running) {
    rows.push(["last run", num(bf.last_run.embedded) + " items in " + duration(bf.last_run.seconds)]);
  }
  if (bf.error) rows.push(["error", bf.error]);
  $("bf-stats").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  const writes = st.server.writes;
  $("bf-start").disabled = !writes || bf.running || !target;
  $("bf-pause").disabled = !writes || !bf.running;
  $("bf-token").disabled = !writes;
  if (!writes) $("bf-token").placeholder = "server started without --token-file";
  // The picker's backfilled marks and the curve's "now" line follow the backfill.
  if (state.lastBackfillState !== null && (bf.running || state.lastBackfillState !== s)) {
    loadItems(state.page, false);
  }
  state.lastBackfillState = s;
}

// --- the rollout's compatibility gate and the lifecycle history (/api/status) ------------
function renderRollout(st) {
  const cur = st.gate;
  const node = $("gate");
  const rows = [];
  if (!cur) {
    node.textContent = "No rollout recorded.";
    node.className = "gate";
  } else {
    const g = cur.gate;
    node.className = "gate " + g.decision;
    node.textContent = "'" + cur.model + "' rolled out " + cur.time + ": gate " + g.decision +
      (g.probe ? "" : " (no probe measured)");
    if (g.probe) {
      rows.push(["new→old mAP", pct(g.new_old.map, 2)], ["old/old mAP", pct(g.old_old.map, 2)],
        ["new→old top-1", pct(g.new_old.top1, 2)], ["old/old top-1", pct(g.old_old.top1, 2)],
        ["new/new mAP", pct(g.new_new.map, 2)], ["probe", g.probe + " · " + num(g.queries) + " queries"]);
    }
  }
  $("gate-stats").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  // Newest first: the last event is what happened most recently.
  $("history").replaceChildren(...st.history.slice().reverse().map((e) =>
    el("li", { class: e.event, "data-event": e.event },
      el("time", { text: e.time }), " ",
      el("strong", { text: e.event + " " + e.model }),
      e.gate ? " · gate " + e.gate.decision + (e.gate.probe ? " (new→old " + pct(e.gate.new_old.map, 2) + ", old/old " +
        pct(e.gate.old_old.map, 2) + ")" : "") : "",
      " · deployed " + e.deployed + (e.note ? " · " + e.note : ""))));
}

// --- the merge and the backfill order in use, and why (what /api/status says) ------------
const code = (text) => el("code", { text });

// Sets a .why paragraph: the name in bold, then why; "unfitted" when a fit is missing.
// Left alone when unchanged (the status is polled).
function setWhy(node, fitted, name, ...why) {
  const next = el("p", {}, el("strong", { text: name }), " — ", ...why);
  const cls = "why" + (fitted ? "" : " unfitted");
  if (node.className === cls && node.textContent === next.textContent) return;
  node.className = cls;
  node.replaceChildren(...next.childNodes);
}

const MERGE_WHY = {
  rank: "each version's ranking is spread evenly over the merged list.",
  aligned: "new/new scores are mapped onto the new→old scale per query.",
};

function renderMergeWhy(st) {
  const m = st.models.find((x) => x.name === $("q-model").value) || st.models.find((x) => x.name === st.query_model);
  if (!m) return;
  const defaultOption = $("q-merge").options[0];
  defaultOption.textContent = m.merge ? "default (" + m.merge + ")" : "default";
  const chosen = $("q-merge").value;
  const merge = chosen || m.merge;
  const name = merge + " merge" + (chosen ? "" : " (default)");
  const node = $("merge-why");
  if (!st.models.some((x) => x.role === "rolling_out")) {
    setWhy(node, true, name, "every item has one embedding: nothing to merge.");
  } else if (m.role !== "rolling_out") {
    setWhy(node, true, name, "'" + m.name + "' queries meet only old embeddings: one scale, nothing to merge.");
  } else if (merge === "calibrated" && m.calibrated) {
    setWhy(node, true, name, "per-version score calibrations put old and new scores on one scale (fitted by ", code("gallery calibrate"), ").");
  } else if (merge === "calibrated") {
    setWhy(node, false, name, "needs score calibrations and none is fitted: run ", code("gallery calibrate"), ".");
  } else if (merge === "raw" && !m.calibrated) {
    setWhy(node, false, name, "no calibration fitted: new and old cosines are ranked as they are, on different scales. ",
      "Run ", code("gallery calibrate"), " for the calibrated merge.");
  } else if (merge === "raw") {
    setWhy(node, true, name, "new and old cosines are ranked as they are, on different scales.");
  } else {
    setWhy(node, true, name, MERGE_WHY[merge] || "");
  }
}

function renderOrderWhy(st) {
  const o = st.backfill_order;
  const node = $("bf-why");
  if (!o) {
    node.className = "why";
    node.textContent = "No model is rolling out: nothing to backfill.";
    return;
  }
  const target = st.models.find((m) => m.name === o.model);
  if (o.order === "uncertainty") {
    setWhy(node, true, "uncertainty order", "items whose old embedding serves new queries worst go first (",
      o.from === "plan" ? "the stored plan; " : "", "predictor fitted by ", code("gallery calibrate"), ").");
  } else if (o.from === "no_predictor") {
    setWhy(node, false, "random order", "no order predictor fitted: run ", code("gallery calibrate"), " for the uncertainty order.");
  } else if (target && target.order_predictor) {
    setWhy(node, false, "random order", "the stored plan was made in random order and the backfill resumes it; ",
      code("gallery backfill --replan --order uncertainty"), " re-plans the rest.");
  } else {
    setWhy(node, false, "random order", "the stored plan's; no order predictor is fitted. ", code("gallery calibrate"),
      " fits one, then ", code("gallery backfill --replan --order uncertainty"), " re-plans the rest.");
  }
}

async function refreshStatus() {
  try {
    const st = await api("/api/status");
    state.status = st;
    $("health").textContent = st.gallery.items.toLocaleString("en-US") + " items · " + st.gallery.name;
    $("health").className = "health ok";
    renderModels(st);
    renderMergeWhy(st);
    renderBackfill(st.backfill, st);
    renderOrderWhy(st);
    renderRollout(st);
    updateCurveNow(st);
    return st;
  } catch (e) {
    $("health").textContent = "server unreachable";
    $("health").className = "health down";
    return null;
  }
}

function token() { return $("bf-token").value.trim(); }

async function startBackfill(ev) {
  ev.preventDefault();
  showError(null);
  const step = parseInt($("bf-step").value, 10) || 0;
  sessionStorage.setItem("dualtune-token", token());
  try {
    await api("/api/backfill", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token() },
      body: JSON.stringify(step > 0 ? { max_items: step } : {}),
    });
  } catch (e) { showError("Backfill not started: " + e.message); }
  refreshStatus();
}

async function pauseBackfill() {
  showError(null);
  try {
    await api("/api/backfill/pause", { method: "POST", headers: { "Authorization": "Bearer " + token() } });
  } catch (e) { showError("Not paused: " + e.message); }
  refreshStatus();
}

// --- gallery picker --------------------------------------------------------------------
async function loadItems(page, focus) {
  let data;
  try {
    data = await api("/api/items?offset=" + page * PAGE_SIZE + "&limit=" + PAGE_SIZE);
  } catch (e) { showError("Gallery items: " + e.message); return; }
  state.page = page;
  state.total = data.total;
  state.items = data.items;
  const target = state.status && state.status.models.find((m) => m.role === "rolling_out");
  const picker = $("picker");
  const selected = state.query && state.query.type === "item" ? state.query.item.id : null;
  const cells = data.items.map((it, i) => {
    const backfilled = target && it.versions.includes(target.name);
    const cell = el("div", {
      class: "cell" + (backfilled ? " backfilled" : ""), role: "gridcell", tabindex: "-1",
      "aria-selected": String(it.id === selected),
      "aria-label": (it.label || "item") + ", " + it.key + (backfilled ? ", backfilled" : ", not backfilled"),
      title: it.label + " · " + it.key, "data-index": String(i),
    }, thumb(it.id, 96, ""));
    cell.addEventListener("click", () => { state.focusIndex = i; pickItem(it); });
    return cell;
  });
  picker.replaceChildren(...cells);
  state.focusIndex = Math.min(state.focusIndex, cells.length - 1);
  if (cells.length) cells[Math.max(0, state.focusIndex)].tabIndex = 0;
  if (focus && cells.length) cells[Math.max(0, state.focusIndex)].focus();
  const first = page * PAGE_SIZE + 1, last = page * PAGE_SIZE + data.items.length;
  $("picker-range").textContent = data.total ? "items " + num(first) + "–" + num(last) + " of " + num(data.total) : "empty";
  $("page-prev").disabled = page === 0;
  $("page-next").disabled = last >= data.total;
}

function pickerColumns() {
  const cells = $("picker").children;
  if (!cells.length) return 1;
  const top = cells[0].offsetTop;
  let n = 0;
  while (n < cells.length && cells[n].offsetTop === top) n++;
  return Math.max(1, n);
}

function onPickerKey(ev) {
  const cells = $("picker").children;
  if (!cells.length) return;
  let i = state.focusIndex;
  const cols = pickerColumns();
  switch (ev.key) {
    case "ArrowRight": i++; break;
    case "ArrowLeft": i--; break;
    case "ArrowDown": i += cols; break;
    case "ArrowUp": i -= cols; break;
    case "Home": i = 0; break;
    case "End": i = cells.length - 1; break;
    case "PageDown": if (!$("page-next").disabled) { state.focusIndex = 0; loadItems(state.page + 1, true); } ev.preventDefault(); return;
    case "PageUp": if (state.page > 0) { state.focusIndex = 0; loadItems(state.page - 1, true); } ev.preventDefault(); return;
    case "Enter": case " ": pickItem(state.items[i]); ev.preventDefault(); return;
    default: return;
  }
  ev.preventDefault();
  i = Math.max(0, Math.min(cells.length - 1, i));
  cells[state.focusIndex].tabIndex = -1;
  state.focusIndex = i;
  cells[i].tabIndex = 0;
  cells[i].focus();
}

// --- query and results -------------------------------------------------------------------
function setQueryPreview(imgNode, title, detail) {
  const box = $("query-thumb");
  box.className = "thumb";
  box.replaceChildren(imgNode);
  $("query-caption").replaceChildren(el("strong", { text: title }), detail);
}

function pickItem(item) {
  if (!item) return;
  state.query = { type: "item", item };
  for (const c of $("picker").children) c.setAttribute("aria-selected", String(state.items[c.dataset.index].id === item.id));
  const caption = el("span", { title: item.key, text: "gallery item " + item.id + " · " + item.key.split("/").pop() });
  setQueryPreview(el("img", { src: "/api/items/" + item.id + "/image?size=256", alt: "query: " + (item.label || item.key) }),
    "label " + (item.label || "(none)"), caption);
  search();
}

function pickFile(file) {
  if (!file) return;
  if (state.query && state.query.url) URL.revokeObjectURL(state.query.url);
  const url = URL.createObjectURL(file);
  state.query = { type: "image", file, url };
  setQueryPreview(el("img", { src: url, alt: "query: uploaded " + file.name }), "uploaded image", file.name + " · " + num(file.size) + " bytes");
  search();
}

async function search(ev) {
  if (ev) ev.preventDefault();
  const q = state.query;
  if (!q) { showError("Pick a gallery item or upload an image first."); return; }
  showError(null);
  const model = $("q-model").value;
  const k = parseInt($("q-k").value, 10);
  const merge = $("q-merge").value;
  $("results").setAttribute("aria-busy", "true");
  let res;
  try {
    if (q.type === "item") {
      const body = { model, k: isNaN(k) ? 10 : k, item: q.item.id };
      if (merge) body.merge = merge;
      res = await api("/api/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    } else {
      const params = new URLSearchParams({ model, k: isNaN(k) ? "10" : String(k) });
      if (merge) params.set("merge", merge);
      res = await api("/api/search/image?" + params, {
        method: "POST", headers: { "Content-Type": q.file.type || "application/octet-stream" }, body: q.file,
      });
    }
  } catch (e) {
    showError("Search failed: " + e.message);
    $("results").removeAttribute("aria-busy");
    return;
  }
  renderResults(res);
}

function renderResults(res) {
  const hits = res.results[0] || [];
  const qlabel = state.query && state.query.type === "item" ? state.query.item.label : null;
  const counts = { new: 0, old: 0 };
  const cards = hits.map((h) => {
    counts[h.embedding] = (counts[h.embedding] || 0) + 1;
    const match = qlabel && h.label === qlabel;
    const width = Math.max(0, Math.min(1, h.score)) * 100;
    return el("li", { class: "result" + (match ? " match" : ""), "data-embedding": h.embedding,
                      "aria-label": "rank " + h.rank + ", " + (h.label || "unlabelled") + ", score " + h.score.toFixed(3) + ", " + h.embedding + " embedding" },
      thumb(h.id, 160, h.label || h.key),
      badge(h.embedding),
      el("div", { class: "meta" },
        el("span", { class: "rank", text: "#" + h.rank }),
        el("span", { class: "score", text: h.score.toFixed(3), title: "cosine similarity (merge key " + h.merge_key.toFixed(3) + ")" })),
      el("div", { class: "scorebar", "aria-hidden": "true" }, el("span", { style: { width: width.toFixed(1) + "%" } })),
      el("div", { class: "label", title: h.key }, match ? el("span", { class: "tick", text: "✓ " }) : null, h.label || "(unlabelled)"));
  });
  $("results").replaceChildren(...cards);
  $("results").removeAttribute("aria-busy");
  const q = res.query;
  const timing = (q.embed_ms !== undefined ? "embedded in " + q.embed_ms.toFixed(1) + " ms, " : "") + "searched in " + q.search_ms.toFixed(1) + " ms";
  let summary = hits.length + " results for model '" + res.model + "' (" + res.merge + " merge): " +
    (counts.new || 0) + " new, " + (counts.mapped ? counts.mapped + " mapped, " : "") + (counts.old || 0) +
    " old embeddings · " + timing;
  if (qlabel) summary += " · ✓ = same label as the query (" + hits.filter((h) => h.label === qlabel).length + " of " + hits.length + ")";
  $("results-hint").textContent = summary;
}

// --- report: verdict, curve, plots ----------------------------------------------------------
async function loadReport() {
  let r;
  try { r = await api("/api/report"); } catch (e) {
    $("verdict").textContent = e.status === 404 ? "No compatibility report next to this gallery." : "Report: " + e.message;
    return;
  }
  if (r.verdict) {
    $("verdict").textContent = r.verdict.text;
    $("verdict").className = "verdict " + (r.verdict.compatible ? "yes" : "no");
    const v = r.upgrade.verdict.map;
    $("verdict-stats").replaceChildren(...[
      ["old/old mAP (today)", pct(v.old_old)], ["new→old mAP (not backfilled)", pct(v.new_old)],
      ["new/new mAP (fully backfilled)", pct(v.new_new)],
      ["update gain", v.gain === null ? "n/a" : (Math.abs(v.gain) < 0.005 ? 0 : v.gain).toFixed(2)],
    ].flatMap(([k, x]) => [el("dt", { text: k }), el("dd", { text: x })]));
  } else {
    $("verdict").textContent = "The report (" + r.source + ") does not judge this gallery's models.";
  }
  const plots = r.plots || [];
  $("plots-title").hidden = plots.length === 0;
  $("plots").replaceChildren(...plots.map((p) => {
    const name = p.split("/").pop().replace(".png", "").replace(/_/g, " ");
    return el("li", {}, el("a", { href: p, target: "_blank", rel: "noopener", title: "open " + name },
      el("img", { src: p, alt: "report plot: " + name, loading: "lazy" }), el("span", { text: name })));
  }));
}

const CURVE_COLORS = { calibrated: "#2457c5", rank: "#0b7a5a", raw: "#a3570a", aligned: "#8a3ab9" };
let curveData = null;

async function loadCurve() {
  try { curveData = await api("/api/curve"); } catch (e) {
    curveData = null;
    $("curve-caption").textContent = e.status === 404 ? "No backfill curve next to this gallery (dualtune gallery curve)." : e.message;
    return;
  }
  drawCurve();
}

function updateCurveNow(st) {
  if (!curveData) return;
  const target = st.models.find((m) => m.role === "rolling_out");
  const f = target ? target.backfilled : 1;
  if (curveData.current && Math.abs(curveData.current.fraction - f) < 1e-9) return;
  curveData.current = { model: target ? target.name : "", fraction: f };
  drawCurve();
}

function drawCurve() {
  const c = curveData;
  const W = 340, H = 210, L = 40, R = 18, T = 14, B = 30;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  const values = c.curves.flatMap((cv) => cv.points.map((p) => p.map)).filter((v) => v !== null);
  let lo = Math.min(...values), hi = Math.max(...values);
  const pad = Math.max(0.01, (hi - lo) * 0.1);
  lo = Math.max(0, lo - pad); hi = Math.min(1, hi + pad);
  const x = (f) => L + f * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4;
    add("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) });
    add("text", { x: L - 5, y: y(v) + 3, "text-anchor": "end" }, (100 * v).toFixed(1));
  }
  for (let i = 0; i <= 4; i++) {
    add("text", { x: x(i / 4), y: H - B + 14, "text-anchor": "middle" }, (25 * i) + "%");
  }
  add("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B });
  add("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B });
  add("text", { x: (L + W - R) / 2, y: H - 3, "text-anchor": "middle" }, "fraction backfilled");
  add("text", { x: 10, y: (T + H - B) / 2, "text-anchor": "middle", transform: "rotate(-90 10 " + (T + H - B) / 2 + ")" }, "mAP %");
  const legend = [];
  for (const cv of c.curves) {
    const color = CURVE_COLORS[cv.merge] || "#555";
    const dashed = cv.order !== "plan" && cv.order !== "uncertainty";
    const pts = cv.points.filter((p) => p.map !== null).map((p) => x(p.fraction).toFixed(1) + "," + y(p.map).toFixed(1)).join(" ");
    add("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 2, "stroke-dasharray": dashed ? "5 3" : "none" });
    legend.push(el("li", { class: dashed ? "dashed" : "", style: { "--c": color },
      text: cv.order + " + " + cv.merge + " (area " + pct(cv.area_map) + ")" }));
  }
  if (c.current) {
    const f = c.current.fraction;
    add("line", { class: "now", x1: x(f), x2: x(f), y1: T, y2: H - B });
    add("text", { class: "now-label", x: Math.min(x(f) + 4, W - R - 50), y: T + 10 }, "now " + pct(f, 0));
  }
  const chart = $("curve-chart");
  chart.replaceChildren(svg, el("ul", { class: "chart-legend" }, ...legend));
  $("curve-caption").textContent = (c.title || "Backfill curve") + ". mAP of new queries as the gallery is backfilled; the dashed line marks this gallery now.";
}

// --- metrics footer --------------------------------------------------------------------------
async function loadMetrics() {
  try {
    const m = await api("/api/metrics");
    const s = m.routes.find((r) => r.route === "POST /api/search");
    const t = m.total;
    let text = num(t.requests) + " requests · " + num(t.errors_4xx) + " client errors · " + num(t.errors_5xx) + " server errors";
    if (s && s.p50_ms !== null) text += " · search latency p50 " + s.p50_ms.toFixed(2) + " ms, p99 " + s.p99_ms.toFixed(2) + " ms";
    $("metrics").textContent = text + " · up " + duration(m.uptime_seconds);
  } catch (e) { /* the status line already says the server is unreachable */ }
}

// --- wiring ------------------------------------------------------------------------------------
function poll() {
  const running = state.status && state.status.backfill.running;
  refreshStatus().finally(() => setTimeout(poll, running ? 700 : 3000));
}

function init() {
  $("query-form").addEventListener("submit", search);
  $("q-file").addEventListener("change", (e) => pickFile(e.target.files[0]));
  $("bf-form").addEventListener("submit", startBackfill);
  $("bf-pause").addEventListener("click", pauseBackfill);
  $("bf-token").value = sessionStorage.getItem("dualtune-token") || "";
  $("page-prev").addEventListener("click", () => { state.focusIndex = 0; loadItems(state.page - 1, false); });
  $("page-next").addEventListener("click", () => { state.focusIndex = 0; loadItems(state.page + 1, false); });
  $("picker").addEventListener("keydown", onPickerKey);
  $("picker").addEventListener("focusin", (e) => {
    const cell = e.target.closest(".cell");
    if (cell) state.focusIndex = Number(cell.dataset.index);
  });
  for (const id of ["q-model", "q-merge"]) $(id).addEventListener("change", () => {
    if (state.status) renderMergeWhy(state.status);
    if (state.query) search();
  });
  const drop = $("query");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); $("query-thumb").classList.add("drop"); });
  drop.addEventListener("dragleave", () => $("query-thumb").classList.remove("drop"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    $("query-thumb").classList.remove("drop");
    if (e.dataTransfer.files.length) pickFile(e.dataTransfer.files[0]);
  });
  refreshStatus().then(() => loadItems(0, false));
  loadReport();
  loadCurve();
  loadMetrics();
  setInterval(loadMetrics, 5000);
  setTimeout(poll, 1000);
}

document.addEventListener("DOMContentLoaded", init);
