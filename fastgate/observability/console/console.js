// fastgate console: no build step, no dependencies. The admin token is asked for once and kept
// in this tab's sessionStorage; it goes in an Authorization header, never in a URL.
"use strict";

const TOKEN_KEY = "fastgate-admin-token";
const WINDOW_S = 300;      // the charts' span
const BIN_S = 10;          // one point per 10 seconds
const FEED_ROWS = 100;
const POLL_MS = 2000;

const $ = (id) => document.getElementById(id);
const state = { token: null, feedAbort: null, pollTimer: null, entries: [], rates: [], lastSnap: null };

function authHeaders() {
  return { Authorization: "Bearer " + state.token };
}

function showLogin(message) {
  $("board").hidden = true;
  $("forget").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("status").textContent = "not connected";
  $("token").focus();
}

function stop() {
  if (state.feedAbort) state.feedAbort.abort();
  state.feedAbort = null;
  clearTimeout(state.pollTimer);
}

async function start() {
  stop();
  const snap = await fetchSnapshot();
  if (!snap) return;
  $("login").hidden = true;
  $("board").hidden = false;
  $("forget").hidden = false;
  render(snap);
  readFeed();
  poll();
}

async function fetchSnapshot() {
  let resp;
  try {
    resp = await fetch("/console/api/snapshot", { headers: authHeaders(), cache: "no-store" });
  } catch (err) {
    $("status").textContent = "gateway unreachable, retrying";
    return null;
  }
  if (resp.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    stop();
    showLogin("That admin token was refused.");
    return null;
  }
  if (!resp.ok) {
    const body = await resp.json().catch(() => ({}));
    stop();
    showLogin((body.error && body.error.message) || "The gateway answered " + resp.status + ".");
    return null;
  }
  return resp.json();
}

function poll() {
  state.pollTimer = setTimeout(async () => {
    const snap = await fetchSnapshot();
    if (snap) render(snap);
    if (state.token) poll();
  }, POLL_MS);
}

async function readFeed() {
  const abort = new AbortController();
  state.feedAbort = abort;
  try {
    const resp = await fetch("/console/api/feed", { headers: authHeaders(), signal: abort.signal });
    if (!resp.ok || !resp.body) throw new Error("feed answered " + resp.status);
    $("status").textContent = "live";
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = pending.indexOf("\n\n")) >= 0) {
        const event = pending.slice(0, cut);
        pending = pending.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (line.startsWith("data: ")) addEntry(JSON.parse(line.slice(6)));
        }
      }
    }
  } catch (err) {
    if (abort.signal.aborted) return;
  }
  if (state.feedAbort === abort && state.token) {
    $("status").textContent = "feed closed, reconnecting";
    setTimeout(() => { if (state.feedAbort === abort) readFeed(); }, 2000);
  }
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}

function addEntry(e) {
  const now = Date.now() / 1000;
  state.entries.push({ at: now, total: e.total_ms, overhead: e.overhead_ms });
  while (state.entries.length && state.entries[0].at < now - WINDOW_S) state.entries.shift();
  const body = $("feed").tBodies[0];
  const row = document.createElement("tr");
  cell(row, e.time.slice(11, 23));
  cell(row, String(e.status), "s" + String(e.status)[0]);
  cell(row, e.route);
  cell(row, e.provider || "–");
  cell(row, e.model || "–");
  cell(row, (e.input_tokens || 0) + " / " + (e.output_tokens || 0));
  cell(row, e.cost == null ? "–" : "$" + e.cost.toFixed(6));
  cell(row, (e.ttfb_ms || 0).toFixed(1));
  cell(row, e.total_ms.toFixed(1));
  cell(row, e.overhead_ms.toFixed(2));
  cell(row, e.cache || "–");
  cell(row, e.trace_id);
  body.insertBefore(row, body.firstChild);
  while (body.rows.length > FEED_ROWS) body.deleteRow(-1);
  drawLatency();
}

function ms(seconds) {
  return seconds == null ? "–" : (seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1);
}

function render(snap) {
  const prev = state.lastSnap;
  if (prev && snap.time > prev.time) {
    state.rates.push({ at: snap.time, rps: Math.max(0, snap.requests - prev.requests) / (snap.time - prev.time) });
    while (state.rates.length && state.rates[0].at < snap.time - WINDOW_S) state.rates.shift();
  }
  state.lastSnap = snap;
  $("t-requests").textContent = snap.requests.toLocaleString();
  const last = state.rates[state.rates.length - 1];
  $("t-rps").textContent = (last ? last.rps.toFixed(1) : "–") + " req/s";
  $("t-latency").textContent = ms(snap.latency.p50) + " / " + ms(snap.latency.p99);
  $("t-overhead").textContent = ms(snap.overhead.p50) + " / " + ms(snap.overhead.p99);
  $("t-cache").textContent = snap.cache_hit_rate == null ? "–" : (snap.cache_hit_rate * 100).toFixed(1) + "%";
  const tokens = snap.tokens || {};
  $("t-tokens").textContent = (tokens.input || 0).toLocaleString() + " / " + (tokens.output || 0).toLocaleString();
  $("t-cached").textContent = "cached " + (tokens.cached || 0).toLocaleString();
  $("t-cost").textContent = "$" + (snap.cost_usd && snap.cost_usd < 0.01 ? snap.cost_usd.toPrecision(3) : snap.cost_usd.toFixed(2));
  fillTable("errors", Object.entries(snap.errors_by_provider).map(([p, n]) => [[p], [String(n), "s5"]]));
  fillTable("circuits", snap.circuits.map((c) => [[c.config], [c.target], [c.state, c.state], [String(c.failures)]]));
  if (!snap.metrics) $("status").textContent = "live (metrics are off: totals unavailable)";
  drawRates();
}

function fillTable(id, rows) {
  const body = $(id).tBodies[0];
  body.replaceChildren();
  if (!rows.length) {
    const row = body.insertRow();
    const td = row.insertCell();
    td.colSpan = $(id).tHead.rows[0].cells.length;
    td.className = "muted";
    td.textContent = "none";
    return;
  }
  for (const cells of rows) {
    const row = document.createElement("tr");
    for (const [text, cls] of cells) cell(row, text, cls);
    body.appendChild(row);
  }
}

function quantile(values, q) {
  if (!values.length) return null;
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function drawRates() {
  plot($("c-rps"), [{ color: "#5aa9e6", points: state.rates.map((r) => [r.at, r.rps]) }]);
}

function drawLatency() {
  const now = Date.now() / 1000;
  const bins = new Map();
  for (const e of state.entries) {
    const key = Math.floor(e.at / BIN_S) * BIN_S;
    if (!bins.has(key)) bins.set(key, []);
    bins.get(key).push(e);
  }
  const series = [
    ["#5aa9e6", "total", 0.5], ["#ef6461", "total", 0.99],
    ["#4cc38a", "overhead", 0.5], ["#e5a93c", "overhead", 0.99],
  ].map(([color, field, q]) => ({
    color,
    points: [...bins.entries()].filter(([at]) => at >= now - WINDOW_S)
      .map(([at, list]) => [at + BIN_S / 2, quantile(list.map((e) => e[field]), q)]),
  }));
  plot($("c-latency"), series);
}

function plot(canvas, series) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  const now = Date.now() / 1000;
  let top = 0;
  for (const s of series) for (const [, y] of s.points) top = Math.max(top, y || 0);
  top = top > 0 ? top * 1.15 : 1;
  ctx.strokeStyle = "#2a3642";
  ctx.fillStyle = "#8796a5";
  ctx.font = "11px system-ui";
  for (let i = 0; i <= 4; i++) {
    const y = h - pad + (-(h - 2 * pad) * i) / 4;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 4, y); ctx.stroke();
    ctx.fillText(((top * i) / 4).toFixed(top < 10 ? 1 : 0), 2, y + 4);
  }
  ctx.fillText("-5 min", pad, h - 8);
  ctx.fillText("now", w - 28, h - 8);
  const x = (t) => pad + ((t - (now - WINDOW_S)) / WINDOW_S) * (w - pad - 4);
  const y = (v) => h - pad - (v / top) * (h - 2 * pad);
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.points.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v || 0)) : ctx.moveTo(x(t), y(v || 0))));
    ctx.stroke();
    ctx.fillStyle = s.color;
    for (const [t, v] of s.points) ctx.fillRect(x(t) - 2, y(v || 0) - 2, 4, 4);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    $("token").value = "";
    if (!state.token) return;
    sessionStorage.setItem(TOKEN_KEY, state.token);
    start();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    stop();
    showLogin("");
  });
  window.addEventListener("pagehide", stop);
  state.token = sessionStorage.getItem(TOKEN_KEY);
  if (state.token) start(); else showLogin("");
});
