// cluster.js - the Setup, Join and Cluster views, and the connection dot.
//
// On load the page asks GET /cluster/status. A 404 means a single-node
// `parallax serve`: Setup and Join stay hidden and the Cluster view becomes
// a "Server" view fed by /metrics (polled every second while visible).
// Otherwise the page follows GET /cluster/status/stream (NDJSON, one snapshot
// a second; polling /cluster/status when the stream is unavailable) and
// renders every view from the latest snapshot (docs/cluster-live.md).

import { h, $, $$, replace, fmtBytes, fmtMs } from './dom.js';
import { ApiError, getJSON, getText, parseMetrics, metric } from './api.js';

let hooks = { onConnection() {}, onMode() {}, go() {} };
let mode = 'unknown'; // 'single' | 'cluster' | 'unknown'
let visible = 'chat';
let metricsTimer = 0;
let healthTimer = 0;
let lastGen = null; // {t, tokens} for tokens/s from the metrics counter
const tpsHistory = [];

export const hasCluster = () => mode === 'cluster';
export const defaultView = () => 'chat';

export function setVisible(view) {
  visible = view;
  if (mode === 'single') {
    if (view === 'cluster') startMetrics();
    else stopMetrics();
  }
}

export async function init(h0) {
  hooks = { ...hooks, ...h0 };
  try {
    await getJSON('/cluster/status');
    mode = 'cluster';
  } catch (e) {
    mode = e instanceof ApiError && e.status === 404 ? 'single' : 'unknown';
  }
  if (mode !== 'cluster') {
    mode = 'single';
    $('#nav-cluster').textContent = 'Server';
    $('#cluster-title').textContent = 'Server';
    for (const a of $$('.cluster-only')) a.hidden = true;
    pollHealth();
    renderSingleSkeleton();
  }
  hooks.onMode(mode);
}

// ---- connection dot (single node: /health every 5 s) ----

async function pollHealth() {
  clearTimeout(healthTimer);
  try {
    const r = await getJSON('/health');
    hooks.onConnection(r.status === 'ok', r.status === 'ok' ? 'connected' : r.status);
  } catch (e) {
    hooks.onConnection(false, e instanceof ApiError && e.status === 503 ? 'shutting down' : 'offline');
  }
  healthTimer = setTimeout(pollHealth, 5000);
}

// ---- single node: the Server view ----

const single = {};

function stat(label, id, hint) {
  return h('div', { class: 'stat' },
    h('div', { class: 'stat-label' }, label),
    h('div', { class: 'stat-value', id }, '–'),
    hint ? h('div', { class: 'stat-hint muted small' }, hint) : null);
}

function renderSingleSkeleton() {
  single.model = h('span', null, '…');
  single.kvBar = h('div', { class: 'meter-fill' });
  single.kvText = h('span', null, '–');
  single.spark = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  single.spark.setAttribute('viewBox', '0 0 120 30');
  single.spark.setAttribute('preserveAspectRatio', 'none');
  single.spark.setAttribute('class', 'spark');
  single.spark.setAttribute('aria-hidden', 'true');
  single.updated = h('span', { class: 'muted small' }, '');
  replace($('#cluster-body'),
    h('p', { class: 'lead' },
      'This server runs the whole model on one machine (', h('code', null, 'parallax serve'), '). ',
      'Start it with ', h('code', null, 'parallax run'), ' to split a model across several machines; ',
      'this page then shows the setup, the join command and the cluster.'),
    h('div', { class: 'card' },
      h('h2', null, 'Model'),
      h('p', { class: 'model-line' }, single.model)),
    h('div', { class: 'card' },
      h('h2', null, 'Live ', single.updated),
      h('div', { class: 'stats-grid' },
        stat('Requests running', 'm-running'),
        stat('Waiting', 'm-waiting'),
        stat('Generated tokens/s', 'm-tps', 'last second'),
        stat('Tokens generated', 'm-gen'),
        stat('Mean time to first token', 'm-ttft'),
        stat('Mean request latency', 'm-e2e'),
        stat('Prefix cache hit rate', 'm-hit'),
        stat('Engine steps', 'm-steps')),
      h('div', { class: 'spark-wrap' }, h('span', { class: 'muted small' }, 'tokens/s, last 60 s'), single.spark),
      h('div', { class: 'meter-row' },
        h('span', null, 'KV cache'),
        h('div', { class: 'meter', role: 'img', 'aria-label': 'KV cache use', id: 'm-kv' }, single.kvBar),
        single.kvText)));
}

function startMetrics() {
  if (metricsTimer) return;
  const tick = async () => {
    await refreshSingle();
    if (metricsTimer) metricsTimer = setTimeout(tick, 1000);
  };
  metricsTimer = setTimeout(tick, 0);
  getJSON('/v1/models').then((r) => {
    const m = r?.data?.[0];
    if (m) single.model.textContent = `${m.id} · context ${m.max_model_len} tokens`;
  }).catch((e) => { single.model.textContent = e instanceof ApiError ? e.describe() : String(e); });
}

function stopMetrics() {
  clearTimeout(metricsTimer);
  metricsTimer = 0;
}

function setText(id, text) {
  const el = document.getElementById(id);
  if (el) el.textContent = text;
}

async function refreshSingle() {
  let m;
  try {
    m = parseMetrics(await getText('/metrics'));
  } catch (e) {
    single.updated.textContent = `· ${e instanceof ApiError ? e.describe() : e}`;
    return;
  }
  const now = performance.now() / 1000;
  const gen = metric(m, 'parallax_generation_tokens_total');
  let tps = NaN;
  if (lastGen && now > lastGen.t) tps = Math.max(0, (gen - lastGen.tokens) / (now - lastGen.t));
  lastGen = { t: now, tokens: gen };
  if (Number.isFinite(tps)) {
    tpsHistory.push(tps);
    if (tpsHistory.length > 60) tpsHistory.shift();
  }
  const mean = (name) => metric(m, `${name}_sum`) / metric(m, `${name}_count`);
  setText('m-running', fmtNum(metric(m, 'parallax_requests_running')));
  setText('m-waiting', fmtNum(metric(m, 'parallax_requests_waiting')));
  setText('m-tps', Number.isFinite(tps) ? tps.toFixed(tps < 10 ? 1 : 0) : '–');
  setText('m-gen', fmtNum(gen));
  setText('m-ttft', fmtMs(mean('parallax_time_to_first_token_seconds')));
  setText('m-e2e', fmtMs(mean('parallax_e2e_request_latency_seconds')));
  const hit = metric(m, 'parallax_prefix_cache_hit_rate');
  setText('m-hit', Number.isFinite(hit) ? `${(hit * 100).toFixed(0)} %` : '–');
  setText('m-steps', fmtNum(metric(m, 'parallax_engine_steps_total')));
  const used = metric(m, 'parallax_kv_blocks_used'), total = metric(m, 'parallax_kv_blocks_total');
  const bs = metric(m, 'parallax_kv_block_size');
  const frac = total > 0 ? used / total : 0;
  single.kvBar.style.width = `${(frac * 100).toFixed(1)}%`;
  single.kvText.textContent = Number.isFinite(total)
    ? `${fmtNum(used)} / ${fmtNum(total)} blocks${Number.isFinite(bs) ? ` (${fmtNum(total * bs)} tokens)` : ''}`
    : '–';
  single.updated.textContent = `· updated ${new Date().toLocaleTimeString()}`;
  drawSpark(single.spark, tpsHistory);
}

function fmtNum(v) {
  if (!Number.isFinite(v)) return '–';
  return Math.round(v).toLocaleString('en-US');
}

function drawSpark(svg, data) {
  svg.replaceChildren();
  if (data.length < 2) return;
  const max = Math.max(1, ...data);
  const pts = data.map((v, k) => `${(k / (60 - 1)) * 120},${30 - (v / max) * 28 - 1}`).join(' ');
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  line.setAttribute('points', pts);
  line.setAttribute('class', 'spark-line');
  svg.appendChild(line);
}

export { fmtBytes };
