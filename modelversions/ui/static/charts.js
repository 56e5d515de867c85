// The two SVG charts of a model's page: the deploy timeline and a metric across versions.
// Every element is made with createElementNS and every piece of stored text goes in
// through textContent (a <title> for hover), never through markup.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

function hover(node, text) {
  node.appendChild(svgEl("title", {}, text));
  return node;
}

// Markers beyond this many: only rollbacks and the newest deploys get one (the step
// line still shows every move), so a long history draws fast.
const MAX_MARKERS = 1500;

function shortTime(ms, span) {
  const iso = new Date(ms).toISOString().replace("T", " ");
  return span !== undefined && span < 2 * 86400000 ? iso.slice(5, 19) : iso.slice(0, 16);
}

// timeline: the API's pointer moves, oldest first. rank: version -> its position among
// the versions the moves name (ascending). Returns the <svg>.
function drawTimeline(timeline, rank, nowMs) {
  const envs = [...new Set(timeline.map((e) => e.env))].sort((a, b) =>
    a === "production" ? -1 : b === "production" ? 1 : a < b ? -1 : a > b ? 1 : 0);
  const width = 1100, left = 130, right = 20, top = 10, laneH = 110, gap = 14, axisH = 26;
  const height = top + envs.length * (laneH + gap) + axisH;
  const svg = svgEl("svg", { id: "timeline", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "img", "aria-label": "deploy timeline", "data-lanes": envs.length });
  if (!timeline.length) {
    svg.setAttribute("height", 40);
    svg.appendChild(svgEl("text", { x: 12, y: 24 }, "nothing deployed yet"));
    return svg;
  }
  const times = timeline.map((e) => e.t);
  const t0 = Math.min(...times.slice(0, 1)), t1 = Math.max(nowMs, times[times.length - 1]);
  const span = Math.max(t1 - t0, 1000);
  const x = (t) => left + ((t - t0) / span) * (width - left - right);
  const markable = new Set();
  if (timeline.length > MAX_MARKERS) {
    timeline.forEach((e, i) => { if (e.action !== "deploy" || i >= timeline.length - 500) markable.add(i); });
  }
  envs.forEach((env, li) => {
    const y0 = top + li * (laneH + gap);
    const lane = svgEl("g", { class: "lane", "data-env": env });
    lane.appendChild(svgEl("rect", { class: "lane-bg", x: left, y: y0, width: width - left - right, height: laneH }));
    lane.appendChild(svgEl("text", { class: "lane-label", x: 8, y: y0 + 16 }, env));
    const moves = [];
    timeline.forEach((e, i) => { if (e.env === env) moves.push([e, i]); });
    const shown = [...new Set(moves.flatMap(([e]) => [e.from, e.to]).filter((v) => v !== null))]
      .sort((a, b) => (rank.get(a) ?? -1) - (rank.get(b) ?? -1));
    const pos = new Map(shown.map((v, i) => [v, i]));
    const y = (v) => y0 + laneH - 12 - (shown.length > 1 ? (pos.get(v) / (shown.length - 1)) * (laneH - 28) : (laneH - 28) / 2);
    const step = shown.length > 8 ? Math.ceil(shown.length / 6) : 1;
    shown.forEach((v, i) => {
      if (i % step === 0 || i === shown.length - 1) {
        lane.appendChild(svgEl("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, v));
      }
    });
    let d = "", last = null;
    for (const [e] of moves) {
      const xe = x(e.t);
      if (last !== null) d += ` H${xe.toFixed(1)}`;
      if (e.to === null) { last = null; continue; }
      d += last === null ? ` M${xe.toFixed(1)} ${y(e.to).toFixed(1)}` : ` V${y(e.to).toFixed(1)}`;
      last = e.to;
    }
    if (last !== null) d += ` H${x(t1).toFixed(1)}`;
    lane.appendChild(svgEl("path", { class: "step", d: d.trim(), "data-env": env }));
    for (const [e, i] of moves) {
      if (markable.size && !markable.has(i)) continue;
      const cx = x(e.t), cy = e.to === null ? y0 + laneH - 4 : y(e.to);
      const attrs = { "data-action": e.action, "data-kind": e.kind, "data-env": env,
        "data-version": e.to ?? "", "data-from": e.from ?? "", "data-seq": e.seq };
      let mark;
      if (e.kind === "deploy") {
        mark = svgEl("circle", { ...attrs, class: "marker deploy", cx, cy, r: 4 });
      } else if (e.kind === "check-failed") {
        mark = svgEl("rect", { ...attrs, class: "marker check-failed", x: cx - 6, y: cy - 6, width: 12, height: 12 });
      } else {
        mark = svgEl("path", { ...attrs, class: "marker rollback",
          d: `M${cx} ${cy - 8} L${cx + 7} ${cy + 5} L${cx - 7} ${cy + 5} Z` });
      }
      let text = `#${e.seq} ${e.action} [${env}] ${e.from ?? "-"} → ${e.to ?? "-"}`;
      if (e.kind === "check-failed") text = `#${e.seq} guarded deploy of ${e.from ?? "-"} failed its check; restored ${e.to ?? "-"} [${env}]`;
      if (e.failed.length) text += `\nmarked failed: ${e.failed.join(", ")}`;
      if (e.forced) text += "\n(forced)";
      if (e.reason) text += `\nreason: ${e.reason}`;
      text += `\n${shortTime(e.t)} by ${e.user ?? "?"}`;
      lane.appendChild(hover(mark, text));
    }
    svg.appendChild(lane);
  });
  const ya = height - axisH + 4;
  svg.appendChild(svgEl("line", { class: "axis", x1: left, x2: width - right, y1: ya, y2: ya }));
  for (let k = 0; k <= 4; k++) {
    const t = t0 + (span * k) / 4;
    svg.appendChild(svgEl("text", { x: x(t), y: ya + 16, "text-anchor": k === 0 ? "start" : k === 4 ? "end" : "middle" }, shortTime(t, span)));
  }
  return svg;
}

// metrics: the API's columns ({versions, status, values: {key: [number|null]}}), the
// versions ascending; key: a numeric metric. Returns the <svg>.
function drawMetric(metrics, key) {
  const width = 1100, height = 240, left = 70, right = 20, top = 14, bottom = 34;
  const column = metrics.values[key] || [];
  const pts = [];
  column.forEach((value, i) => {
    if (typeof value === "number" && Number.isFinite(value)) pts.push({ version: metrics.versions[i], status: metrics.status[i], value });
  });
  const svg = svgEl("svg", { id: "metric-chart", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "img", "aria-label": "metric across versions", "data-metric": key, "data-points": pts.length });
  if (!pts.length) {
    svg.appendChild(svgEl("text", { x: 12, y: 24 }, "no numeric values"));
    return svg;
  }
  let lo = Infinity, hi = -Infinity;
  for (const p of pts) { lo = Math.min(lo, p.value); hi = Math.max(hi, p.value); }
  if (lo === hi) { lo -= 1; hi += 1; }
  const x = (i) => left + (pts.length > 1 ? (i / (pts.length - 1)) * (width - left - right) : (width - left - right) / 2);
  const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom);
  svg.appendChild(svgEl("line", { class: "axis", x1: left, x2: width - right, y1: height - bottom, y2: height - bottom }));
  for (const v of [lo, (lo + hi) / 2, hi]) {
    svg.appendChild(svgEl("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, String(+v.toPrecision(4))));
  }
  svg.appendChild(svgEl("path", { class: "metric-line", "data-metric": key,
    d: pts.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)} ${y(p.value).toFixed(1)}`).join(" ") }));
  const every = Math.max(1, Math.ceil(pts.length / 400));
  pts.forEach((p, i) => {
    if (i % every && i !== pts.length - 1) return;
    svg.appendChild(hover(svgEl("circle", { class: `metric-point ${p.status}`, cx: x(i), cy: y(p.value), r: 3.5,
      "data-version": p.version, "data-value": p.value }), `${p.version} (${p.status}): ${key} = ${p.value}`));
  });
  const ticks = pts.length > 6 ? [0, Math.floor(pts.length / 2), pts.length - 1] : pts.map((_, i) => i);
  for (const i of ticks) {
    svg.appendChild(svgEl("text", { x: x(i), y: height - bottom + 16, "text-anchor": "middle" }, pts[i].version));
  }
  return svg;
}

window.mvCharts = { drawTimeline, drawMetric, svgEl };
