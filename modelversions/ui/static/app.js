// The page: hash routes (#/, #/m/<name>, #/m/<name>/v/<version>), each drawn from the
// JSON API. Names may contain "/": every name and version in a URL goes through
// encodeURIComponent. Every element is built with createElement and textContent; no
// stored text is ever parsed as markup. The data is read again every few seconds and
// when the window gets focus; a model's page redraws only when its history moved.
"use strict";

const REFRESH_MS = 3000;
const VERSIONS_PAGE = 50;
const HISTORY_PAGE = 20;
const enc = encodeURIComponent;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return node;
}

async function api(path) {
  const res = await fetch(path, { cache: "no-store" });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

const when = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "");
const by = (e) => `${e.user ?? "?"}@${e.host ?? "?"}`;
const badge = (status) => el("span", { class: `badge ${status}` }, status);
const modelHref = (name) => `#/m/${enc(name)}`;
const versionHref = (name, v) => `#/m/${enc(name)}/v/${enc(v)}`;
const shQuote = (s) => `'${String(s).replace(/'/g, "'\\''")}'`;
const json = (value) => JSON.stringify(value);

function table(headers, rows, attrs) {
  return el("table", attrs, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}

function move(e) {
  return e.action === "deploy" || e.action === "rollback" ? `${e.from_version ?? "-"} → ${e.to_version ?? "-"}` : "";
}

function changes(e) {
  const parts = e.changes.map((c) => `${c.version} ${c.from}→${c.to}`);
  if (e.forced) parts.unshift("forced");
  if (e.pruned.length) parts.push(`pruned ${e.pruned.join(", ")}`);
  return parts.join(", ");
}

function eventRow(name, e) {
  const kind = e.action === "rollback" && (e.reason || "").startsWith("deploy check failed") ? "check-failed" : e.action;
  return el("tr", { "data-seq": e.seq, "data-action": e.action, "data-kind": kind },
    el("td", { class: "num" }, e.seq), el("td", {}, when(e.time)), el("td", {}, e.action),
    el("td", {}, e.version === null ? "-" : el("a", { href: versionHref(name, e.version) }, e.version)),
    el("td", {}, e.env ?? ""), el("td", {}, move(e)), el("td", {}, changes(e)),
    el("td", {}, by(e)), el("td", { class: "reason" }, e.reason ?? ""));
}
const EVENT_HEADERS = ["seq", "time (UTC)", "action", "version", "env", "move", "changes", "by", "reason"];

function copyLine(label, text) {
  const pre = el("pre", {}, el("code", {}, text));
  const button = el("button", { type: "button", onclick: () => navigator.clipboard?.writeText(text) }, "copy");
  return el("div", {}, el("div", { class: "muted" }, label), el("div", { class: "copy-line" }, pre, button));
}

// ------------------------------------------------------------------ views
const state = { view: null, info: { registry: null } };

async function modelsView(main, v) {
  const data = await api("/api/models");
  const key = json(data);
  if (state.view !== v || v.key === key) return;
  v.key = key;
  state.info.registry = data.registry;
  const rows = data.models.map((m) => el("tr", { "data-model": m.name },
    el("td", {}, el("a", { href: modelHref(m.name) }, m.name)),
    el("td", { class: "num" }, m.versions),
    el("td", {}, ...Object.entries(m.envs).map(([env, d]) =>
      el("div", { "data-env": env }, `${env}: `, el("a", { href: versionHref(m.name, d.version) }, d.version), " ", badge(d.status)))),
    el("td", {}, m.last_change ? `#${m.last_change.seq} ${m.last_change.action} ${m.last_change.version ?? ""} ${m.last_change.env ? "[" + m.last_change.env + "]" : ""}` : ""),
    el("td", {}, m.last_change ? when(m.last_change.time) : ""),
    el("td", {}, m.last_change ? by(m.last_change) : "")));
  main.replaceChildren(el("h1", {}, "Models"),
    data.models.length ? table(["model", "versions", "deployed", "last change", "when (UTC)", "by"], rows, { id: "models" })
      : el("p", { class: "muted" }, "No models in this registry yet."));
}

function versionsPath(v) {
  return `/api/models/${enc(v.name)}/versions?offset=${v.versionsOffset}&limit=${VERSIONS_PAGE}`;
}

function versionsBox(v, page) {
  const first = page.total ? page.offset + 1 : 0, last = page.offset + page.versions.length;
  const rows = page.versions.map((r) => el("tr", { "data-version": r.version, "data-status": r.status },
    el("td", {}, el("a", { href: versionHref(v.name, r.version) }, r.version)),
    el("td", {}, badge(r.status), r.pruned ? " " : null, r.pruned ? badge("pruned") : null),
    el("td", {}, r.deployed_in.join(", ")),
    el("td", { class: "metrics" }, Object.entries(r.metrics).map(([k, x]) => `${k}=${json(x)}`).join("  ")),
    el("td", { class: "num" }, r.size), el("td", {}, r.format),
    el("td", {}, el("code", { title: r.sha256 }, r.sha256.slice(0, 12)), " ",
      el("button", { type: "button", onclick: () => navigator.clipboard?.writeText(r.sha256) }, "copy")),
    el("td", {}, when(r.created_at)), el("td", { class: "description" }, r.description ?? "")));
  const pager = el("div", { class: "pager", id: "versions-pager" },
    el("button", { type: "button", id: "versions-newer", disabled: page.offset === 0 ? "" : null,
      onclick: () => { v.versionsOffset = Math.max(0, v.versionsOffset - VERSIONS_PAGE); drawPaged(v, "versions"); } }, "newer"),
    el("span", { id: "versions-range" }, `versions ${first}–${last} of ${page.total}, newest first`),
    el("button", { type: "button", id: "versions-older", disabled: last >= page.total ? "" : null,
      onclick: () => { v.versionsOffset += VERSIONS_PAGE; drawPaged(v, "versions"); } }, "older"));
  return el("div", { id: "versions-box", "data-total": page.total, "data-offset": page.offset }, pager,
    table(["version", "status", "deployed in", "metrics", "size", "format", "sha256", "created (UTC)", "description"], rows, { id: "versions" }));
}

function historyPath(v) {
  return `/api/models/${enc(v.name)}/history?offset=${v.historyOffset}&limit=${HISTORY_PAGE}`;
}

function historyBox(v, page) {
  const first = page.total ? page.offset + 1 : 0, last = page.offset + page.events.length;
  return el("div", { id: "history-box", "data-total": page.total, "data-offset": page.offset },
    el("div", { class: "pager" },
      el("button", { type: "button", id: "history-newer", disabled: page.offset === 0 ? "" : null,
        onclick: () => { v.historyOffset = Math.max(0, v.historyOffset - HISTORY_PAGE); drawPaged(v, "history"); } }, "newer"),
      el("span", { id: "history-range" }, `events ${first}–${last} of ${page.total}, newest first`),
      el("button", { type: "button", id: "history-older", disabled: last >= page.total ? "" : null,
        onclick: () => { v.historyOffset += HISTORY_PAGE; drawPaged(v, "history"); } }, "older")),
    table(EVENT_HEADERS, page.events.map((e) => eventRow(v.name, e)), { id: "history" }));
}

// A pager's button: read that page of the versions or the history, then swap it in.
async function drawPaged(v, which) {
  const page = await api(which === "history" ? historyPath(v) : versionsPath(v));
  if (state.view !== v) return;
  const box = which === "history" ? historyBox(v, page) : versionsBox(v, page);
  document.getElementById(`${which}-box`).replaceWith(box);
}

function drawMetricChart() {
  const v = state.view;
  const box = document.getElementById("metric-box");
  const key = v.metric;
  box.replaceChildren();
  if (!v.data.metric_keys.length) { box.appendChild(el("p", { class: "muted" }, "No numeric metrics.")); return; }
  const select = el("select", { id: "metric-select" }, ...v.data.metric_keys.map((k) => {
    const o = el("option", { value: k }, k);
    if (k === key) o.selected = true;
    return o;
  }));
  select.addEventListener("change", () => { v.metric = select.value; drawMetricChart(); });
  box.append(el("label", {}, "metric ", select), window.mvCharts.drawMetric(v.data.metrics, key));
}

async function modelView(main, v) {
  const name = v.name;
  const data = await api(`/api/models/${enc(name)}`);
  if (state.view !== v || (v.data && v.data.seq === data.seq)) return;
  if (!v.data) { v.versionsOffset = 0; v.historyOffset = 0; }
  // Everything else is read before anything is replaced (the page does not shrink and
  // jump while it loads), the four requests at once.
  const [timeline, versions, history] = await Promise.all(
    [`/api/models/${enc(name)}/timeline`, versionsPath(v), historyPath(v)].map(api));
  if (state.view !== v) return;
  v.data = data;
  state.info.registry = data.registry;
  if (!v.metric || !data.metric_keys.includes(v.metric)) v.metric = data.metric_keys[0];
  const envs = Object.entries(data.envs).map(([env, d]) =>
    el("div", { class: "env", "data-env": env, "data-version": d.version },
      el("div", { class: "name" }, env),
      el("div", { class: "ver" }, el("a", { href: versionHref(name, d.version) }, d.version)), badge(d.status)));
  const t0 = performance.now();
  main.replaceChildren(
    el("h1", { id: "model-name" }, name),
    el("h2", {}, "Deployed"), envs.length ? el("div", { class: "envs", id: "envs" }, ...envs) : el("p", { class: "muted", id: "envs" }, "Nothing deployed."),
    el("h2", {}, "Deploy timeline"),
    el("div", { class: "legend" }, el("span", {}, el("i", { class: "l-deploy" }), "deploy"),
      el("span", {}, el("i", { class: "l-rollback" }), "rollback"), el("span", {}, el("i", { class: "l-check" }), "failed guarded deploy, restored")),
    window.mvCharts.drawTimeline(timeline.moves, new Map(timeline.versions.map((x, i) => [x, i])), Date.now()),
    el("h2", {}, "Metric across versions"), el("div", { id: "metric-box" }),
    el("h2", {}, "Versions"), versionsBox(v, versions),
    el("h2", {}, "History"), historyBox(v, history));
  drawMetricChart();
  document.body.dataset.seq = data.seq;
  window.mvRenderMs = performance.now() - t0;
}

async function versionView(main, v) {
  const name = v.name;
  const data = await api(`/api/models/${enc(name)}/versions/${enc(v.version)}`);
  const key = json(data);
  if (state.view !== v || v.key === key) return;
  v.key = key;
  const r = data.record;
  const fields = [["version", r.version], ["status", badge(r.status)], ["deployed in", data.deployed_in.join(", ") || "-"],
    ["created (UTC)", when(r.created_at)], ["sha256", el("code", { id: "sha256" }, r.sha256)], ["size", String(r.size)],
    ["format", r.format], ["description", r.description ?? ""], ["metrics", json(r.metrics)], ["params", json(r.params)],
    ["tags", json(r.tags)], ["failure reason", r.failure_reason ?? ""], ["failed in", r.failed_env ?? ""], ["pruned", String(r.pruned)]];
  state.info.registry = data.registry;
  const loc = data.registry ?? "REGISTRY";
  main.replaceChildren(
    el("p", {}, el("a", { href: modelHref(name) }, `← ${name}`)),
    el("h1", {}, `${name} ${r.version}`),
    table(["field", "value"], fields.map(([k, x]) => el("tr", { "data-field": k }, el("th", {}, k), el("td", {}, x))), { id: "record" }),
    el("h2", {}, "Use it"),
    copyLine("Load it in Python", `from modelversions import ModelRegistry\nmodel = ModelRegistry(${json(loc)}).load(${json(name)}, ${json(r.version)})`),
    copyLine("Roll an env back to it from the command line (deploys this version there)",
      `modelversions --registry ${shQuote(loc)} deploy ${shQuote(name)} ${shQuote(r.version)} --env production --reason 'roll back to ${r.version}'`),
    el("h2", {}, "Its history (deploys, rollbacks, status changes)"),
    table(EVENT_HEADERS, data.events.map((e) => eventRow(name, e)), { id: "version-events" }));
}

// ------------------------------------------------------------------ routing
function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  if (parts[0] === "m" && parts.length === 2) return { kind: "model", name: decodeURIComponent(parts[1]) };
  if (parts[0] === "m" && parts.length === 4 && parts[2] === "v") {
    return { kind: "version", name: decodeURIComponent(parts[1]), version: decodeURIComponent(parts[3]) };
  }
  return { kind: "models" };
}

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  const main = document.getElementById("view");
  const v = state.view;
  try {
    if (v.kind === "model") await modelView(main, v);
    else if (v.kind === "version") await versionView(main, v);
    else await modelsView(main, v);
    document.getElementById("registry").textContent = state.info.registry ?? "";
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (state.view === v) main.replaceChildren(el("p", { class: "error" }, String(err.message || err)));
    v.key = null; v.data = null;
  } finally {
    busy = false;
  }
}

async function go() {
  state.view = route();
  window.scrollTo(0, 0);
  while (busy) await new Promise((r) => setTimeout(r, 20));
  await refresh();
}

window.addEventListener("hashchange", go);
window.addEventListener("focus", refresh);
document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
setInterval(refresh, REFRESH_MS);
go();
