// cluster.js - the Setup, Join and Cluster views, and the connection dot.
//
// On load the page asks GET /cluster/status. A 404 means a single-node
// `parallax serve`: Setup and Join stay hidden and the Cluster view becomes
// a "Server" view fed by /metrics (polled every second while visible).
// Otherwise the page follows GET /cluster/status/stream (NDJSON, one snapshot
// a second; polling /cluster/status when the stream is unavailable) and
// renders every view from the latest snapshot (docs/cluster-live.md).

import { h, $, $$, replace, fmtBytes, fmtMs, copyText, flash } from './dom.js';
import { ApiError, getJSON, getText, parseMetrics, metric, streamNDJSON } from './api.js';
import {
  clusterState, nodesOf, nodeId, pipelinesOf, modelOf, nodeStatus, progressOf, sliceOf, hwOf, rttsOf, layerLatencyOf,
  joinCommandOf, joinNeedsToken, neededBytesOf, minNodesOf, nodeName, nodeHost, requestsOf, diffSnapshots,
} from './status.js';

let hooks = { onConnection() {}, onMode() {}, go() {} };
let mode = 'unknown'; // 'single' | 'cluster' | 'unknown'
let visible = 'chat';
let metricsTimer = 0;
let healthTimer = 0;
let lastGen = null; // {t, tokens} for tokens/s from the metrics counter
const tpsHistory = [];
let snapshot = null; // the latest /cluster/status
let firstSnapshot = null;

export const hasCluster = () => mode === 'cluster';
/** Where a bare URL lands: the setup while a cluster waits, else the chat. */
export const defaultView = () => (mode === 'cluster' && firstSnapshot && clusterState(firstSnapshot) !== 'available' ? 'setup' : 'chat');

export function setVisible(view) {
  visible = view;
  if (mode === 'single') {
    if (view === 'cluster') startMetrics();
    else stopMetrics();
  }
  if (mode === 'cluster' && snapshot) renderCluster();
}

export async function init(h0) {
  hooks = { ...hooks, ...h0 };
  try {
    firstSnapshot = await getJSON('/cluster/status');
    mode = 'cluster';
  } catch (e) {
    mode = e instanceof ApiError && e.status === 404 ? 'single' : 'unknown';
  }
  if (mode === 'cluster') {
    $('#nav-cluster').textContent = 'Cluster';
    $('#cluster-title').textContent = 'Cluster';
    for (const a of $$('.cluster-only')) a.hidden = false;
    onSnapshot(firstSnapshot);
    followStream();
  } else {
    mode = 'single';
    $('#nav-cluster').textContent = 'Server';
    $('#cluster-title').textContent = 'Server';
    for (const a of $$('.cluster-only')) a.hidden = true;
    pollHealth();
    renderSingleSkeleton();
  }
  hooks.onMode(mode);
}

// ---- cluster: the status stream ----

const GHOST_SECONDS = 120;   // a node that vanished stays visible (failed) this long
const ghosts = new Map();    // id -> {node, since}
const events = [];           // the event log, newest first
let streamAbort = null;
let lastSnapshotAt = 0;
let staleTimer = 0;

function onSnapshot(s) {
  const prev = snapshot;
  snapshot = s;
  lastSnapshotAt = Date.now();
  const now = Date.now();
  const ids = new Set(nodesOf(s).map(nodeId));
  if (prev) {
    for (const n of nodesOf(prev)) if (!ids.has(nodeId(n)) && !ghosts.has(nodeId(n))) ghosts.set(nodeId(n), { node: n, since: now });
    for (const e of diffSnapshots(prev, s)) events.unshift({ ...e, at: new Date() });
    events.splice(40);
  }
  for (const [id, g] of ghosts) if (ids.has(id) || now - g.since > GHOST_SECONDS * 1000) ghosts.delete(id);
  hooks.onConnection(true, clusterState(s) === 'available' ? 'cluster ready' : 'waiting for nodes');
  renderCluster();
}

async function followStream() {
  let delay = 1000;
  clearInterval(staleTimer);
  staleTimer = setInterval(() => {
    if (Date.now() - lastSnapshotAt > 3500) hooks.onConnection(false, 'no status for a while');
  }, 1000);
  for (;;) {
    streamAbort = new AbortController();
    try {
      await streamNDJSON('/cluster/status/stream', { signal: streamAbort.signal, onObject: (o) => { delay = 1000; onSnapshot(o); } });
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        // No stream: poll once a second instead.
        for (;;) {
          try { onSnapshot(await getJSON('/cluster/status')); } catch { hooks.onConnection(false, 'offline'); }
          await new Promise((ok) => setTimeout(ok, 1000));
        }
      }
      hooks.onConnection(false, 'reconnecting…');
    }
    await new Promise((ok) => setTimeout(ok, delay));
    delay = Math.min(delay * 2, 5000);
  }
}

/** The nodes to show: the snapshot's, then vanished ones marked failed. */
function shownNodes() {
  const list = nodesOf(snapshot).map((n) => ({ n, status: nodeStatus(n), ghost: false }));
  for (const g of ghosts.values()) list.push({ n: g.node, status: 'failed', ghost: true });
  return list;
}

function badge(status) {
  const label = { ready: 'ready', loading: 'loading', joining: 'joining', standby: 'standby', failed: 'failed', waiting: 'waiting', available: 'ready', unresponsive: 'unresponsive' }[status] ?? status;
  return h('span', { class: `badge ${status}` }, label);
}

function fmtHw(n) {
  const hw = hwOf(n);
  const parts = [];
  if (hw.cores !== null) parts.push(`${hw.cores} core${hw.cores === 1 ? '' : 's'}`);
  if (hw.gpu) parts.push(hw.gpuName ? `GPU ${hw.gpuName}` : 'GPU');
  if (hw.bandwidth) parts.push(`${(hw.bandwidth / 1e9).toFixed(0)} GB/s`);
  if (hw.flops) parts.push(`${(hw.flops / 1e9).toFixed(0)} GFLOP/s`);
  return parts.join(' · ') || '–';
}

function fmtSlice(n) {
  const sl = sliceOf(n);
  return sl ? `[${sl.start}, ${sl.end})` : '–';
}

function renderCluster() {
  if (!snapshot) return;
  if (visible === 'setup') renderSetup();
  else if (visible === 'join') renderJoin();
  else if (visible === 'cluster') renderClusterView();
}

// ---- Setup ----

let setupEls = null;

/** The form is built once (so typing is never interrupted); the cards update. */
function buildSetup() {
  const s = snapshot;
  const m = modelOf(s);
  const modelIn = h('input', { id: 'setup-model', type: 'text', value: m.ref ?? (m.name !== '–' ? m.name : ''), spellcheck: 'false', list: 'setup-models' });
  const nodesIn = h('input', { id: 'setup-nodes', type: 'number', min: '1', step: '1', value: String(minNodesOf(s) ?? 1) });
  const cmdPre = h('pre', { id: 'setup-cmd', tabindex: '0' });
  const showCmd = () => {
    const model = modelIn.value.trim();
    const n = Math.max(1, parseInt(nodesIn.value, 10) || 1);
    const q = /[^\w@%+=:,./-]/.test(model) ? `'${model.replace(/'/g, "'\\''")}'` : model;
    cmdPre.textContent = `parallax run -m ${q || 'MODEL'} -n ${n}`;
  };
  modelIn.addEventListener('input', showCmd);
  nodesIn.addEventListener('input', showCmd);
  showCmd();
  const copy = h('button', { type: 'button', class: 'btn', 'aria-label': 'Copy the run command' }, 'Copy');
  copy.addEventListener('click', async () => flash(copy, (await copyText(cmdPre.textContent)) ? 'Copied' : 'Copy failed'));
  const choices = h('datalist', { id: 'setup-models' });
  const modelCard = h('div', { class: 'card', id: 'setup-model-card' });
  const memCard = h('div', { class: 'card', id: 'setup-mem-card' });
  replace($('#setup-body'),
    h('p', { class: 'lead' }, 'The scheduler holds the model\'s tokenizer and decides which node runs which layers. ',
      'Check the model and the memory it needs, then let the nodes join.'),
    h('div', { class: 'two-col' }, modelCard, memCard),
    h('div', { class: 'row' }, h('a', { class: 'btn primary', href: '#/join' }, 'Next: join nodes →')),
    h('div', { class: 'card' },
      h('h2', null, 'Run a different model'),
      h('p', { class: 'muted small' }, 'The model is chosen when the scheduler starts: a local model directory, a path, or a ',
        'Hugging Face repo id (downloaded into the HF cache once); the scheduler waits for this many nodes before it serves.'),
      h('div', { class: 'row' },
        h('div', { class: 'field grow' }, h('label', { for: 'setup-model' }, 'Model (directory or repo id)'), modelIn, choices),
        h('div', { class: 'field' }, h('label', { for: 'setup-nodes' }, 'Nodes to wait for'), nodesIn)),
      h('div', { class: 'cmd' }, cmdPre, copy)));
  setupEls = { modelCard, memCard, choices };
}

function renderSetup() {
  if (!setupEls || !document.contains(setupEls.modelCard)) buildSetup();
  const s = snapshot;
  const m = modelOf(s);
  const need = neededBytesOf(s);
  const nodes = shownNodes().filter((x) => x.status !== 'failed');
  const offered = nodes.reduce((a, x) => a + (hwOf(x.n).memory ?? 0), 0);
  const minNodes = minNodesOf(s);
  const frac = need ? Math.min(1, offered / need) : 0;
  replace(setupEls.modelCard,
    h('h2', null, 'Model'),
    h('p', { class: 'model-line' }, h('strong', null, m.name), m.ref && m.ref !== m.name ? h('span', { class: 'muted' }, ` (${m.ref})`) : null),
    h('p', { class: 'muted small' }, [
      m.layers !== null ? `${m.layers} layers` : null,
      m.context !== null ? `context ${m.context} tokens` : null,
      need !== null ? `${fmtBytes(need)} of weights` : null,
    ].filter(Boolean).join(' · ') || ' '),
    h('div', { class: 'row' }, 'Cluster: ', badge(clusterState(s)),
      h('span', { class: 'muted', id: 'setup-count' },
        `${nodes.length}${minNodes !== null ? ` of ${minNodes}` : ''} node${(minNodes ?? nodes.length) === 1 ? '' : 's'} joined`)));
  replace(setupEls.memCard,
    h('h2', null, 'Memory'),
    h('p', { id: 'setup-mem-text' }, `needed ${need !== null ? fmtBytes(need) : '–'} · offered by joined nodes ${fmtBytes(offered)}`),
    h('div', { class: 'meter', role: 'meter', 'aria-label': 'memory offered vs needed', 'aria-valuemin': '0', 'aria-valuemax': '100',
      'aria-valuenow': String(Math.round(frac * 100)), id: 'setup-mem' },
      h('div', { class: `meter-fill${need && offered < need ? ' over' : ''}`, style: { width: `${(frac * 100).toFixed(1)}%` } })),
    h('p', { class: 'muted small' }, need === null ? 'The scheduler did not report the model size.'
      : offered >= need ? 'The joined nodes can hold the model (each also keeps a share of its memory for the KV cache).'
        : `${fmtBytes(need - offered)} more needed: let more nodes join.`));
  const models = Array.isArray(s.models) ? s.models : [];
  replace(setupEls.choices, models.map((x) => h('option', { value: typeof x === 'string' ? x : x?.ref ?? x?.name ?? '' })));
}

// ---- Join ----

function nodeRows(list, withDetails) {
  return list.map(({ n, status, ghost }) => {
    const hw = hwOf(n);
    const prog = progressOf(n);
    const stateCell = h('td', null, badge(status),
      status === 'loading' && prog !== null ? h('div', { class: 'meter small-meter', role: 'progressbar', 'aria-valuenow': String(Math.round(prog * 100)), 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-label': `${nodeName(n)} loading` },
        h('div', { class: 'meter-fill', style: { width: `${(prog * 100).toFixed(0)}%` } })) : null,
      ghost ? h('div', { class: 'muted small' }, 'no longer reported') : null,
      n.error ? h('div', { class: 'err-text small' }, String(n.error)) : null);
    const cells = [
      h('td', null, h('strong', null, nodeName(n)), nodeHost(n) ? h('div', { class: 'muted small' }, `on ${nodeHost(n)}`) : null),
      stateCell,
      h('td', null, fmtSlice(n)),
      h('td', null, hw.memory !== null ? fmtBytes(hw.memory) : '–'),
      h('td', { class: 'wide-only' }, fmtHw(n)),
    ];
    if (withDetails) {
      const lat = layerLatencyOf(n);
      const rtts = rttsOf(n);
      cells.push(
        h('td', null, ghost ? '–' : n.inflight ?? n.load ?? '–'),
        h('td', null, lat !== null ? fmtMs(lat) : '–'),
        h('td', { class: 'wide-only' }, rtts.length ? rtts.map((r) => `${r.peer} ${fmtMs(r.seconds)}`).join(', ') : '–'));
    }
    return h('tr', { class: status === 'failed' ? 'failed' : null, dataset: { node: nodeId(n), status } }, cells);
  });
}

function nodesTable(list, withDetails) {
  const head = ['Node', 'State', 'Layers', 'Memory'];
  const th = head.map((x) => h('th', { scope: 'col' }, x));
  th.push(h('th', { scope: 'col', class: 'wide-only' }, 'Hardware'));
  if (withDetails) {
    th.push(h('th', { scope: 'col' }, 'Requests'), h('th', { scope: 'col' }, 'Layer latency'), h('th', { scope: 'col', class: 'wide-only' }, 'RTTs'));
  }
  return h('div', { class: 'table-scroll' },
    h('table', { class: 'nodes-table' }, h('thead', null, h('tr', null, th)), h('tbody', null, nodeRows(list, withDetails))));
}

let joinEls = null;

function buildJoin() {
  const cmdPre = h('pre', { id: 'join-cmd', tabindex: '0' });
  const copy = h('button', { type: 'button', class: 'btn', id: 'join-copy', 'aria-label': 'Copy the join command' }, 'Copy');
  copy.addEventListener('click', async () => flash(copy, (await copyText(cmdPre.textContent)) ? 'Copied' : 'Copy failed'));
  const banner = h('div', { id: 'join-state', role: 'status' });
  const tokenNote = h('p', { class: 'muted small', id: 'join-token-note' }, 'TOKEN is the cluster\'s join token, a secret this page does not ',
    'receive: ', h('code', null, 'parallax run'), ' prints it when it starts (docs/cluster-live.md).');
  const nodesTitle = h('h2', null, 'Nodes');
  const nodesBox = h('div', { id: 'join-nodes' });
  const next = h('div', { class: 'row' }, h('a', { class: 'btn primary', href: '#/chat', id: 'join-next' }, 'Next: chat →'));
  replace($('#join-body'),
    banner,
    h('div', { class: 'card' },
      h('h2', null, 'Join command'),
      h('p', { class: 'muted small' }, 'Run this on every machine that should serve. On the same LAN, ',
        h('code', null, '-s auto'), ' instead of the address finds the scheduler by its beacon.'),
      h('div', { class: 'cmd' }, cmdPre, copy),
      tokenNote),
    h('div', { class: 'card' }, nodesTitle, nodesBox),
    next);
  joinEls = { cmdPre, banner, nodesTitle, nodesBox, next, tokenNote };
}

function renderJoin() {
  if (!joinEls || !document.contains(joinEls.cmdPre)) buildJoin();
  const s = snapshot;
  const cmd = joinCommandOf(s, location);
  if (joinEls.cmdPre.textContent !== cmd) joinEls.cmdPre.textContent = cmd;
  joinEls.tokenNote.hidden = !joinNeedsToken(s);
  const list = shownNodes();
  const ready = list.filter((x) => x.status === 'ready').length;
  const loading = list.filter((x) => x.status === 'loading').length;
  const failed = list.filter((x) => x.status === 'failed').length;
  const joined = list.length - failed;
  const minNodes = minNodesOf(s);
  const state = clusterState(s);
  let cls = 'notice', head, text;
  if (state === 'available') {
    cls += ' ok-notice';
    head = 'The cluster is ready.';
    text = ` ${ready} node${ready === 1 ? '' : 's'} serving${failed ? `, ${failed} failed` : ''}.`;
  } else if (!joined) {
    head = 'Waiting for nodes.';
    text = ' Run the command below on each machine.';
  } else {
    head = loading ? 'Loading the model.' : 'Waiting for nodes.';
    text = ` ${joined}${minNodes !== null ? ` of ${minNodes}` : ''} joined, ${ready} ready${loading ? `, ${loading} loading` : ''}${failed ? `, ${failed} failed` : ''}.`;
  }
  joinEls.banner.className = cls;
  joinEls.banner.dataset.state = state;
  if (joinEls.banner.textContent !== head + text) replace(joinEls.banner, h('strong', null, head), text); // a live region: only real changes
  joinEls.nodesTitle.textContent = `Nodes (${list.length})`;
  replace(joinEls.nodesBox, list.length ? nodesTable(list, false) : h('p', { class: 'muted' }, 'No node has joined yet.'));
  joinEls.next.hidden = state !== 'available';
}

// ---- Cluster view ----

function loadColor(frac) {
  // green (idle) -> amber -> red (saturated); light enough for dark text
  const f = Math.max(0, Math.min(1, frac));
  const hue = 130 - 125 * f;
  return `hsl(${hue.toFixed(0)} 70% 62%)`;
}

function allocation(list, layers) {
  const L = layers ?? Math.max(1, ...list.map(({ n }) => sliceOf(n)?.end ?? 0));
  const rows = [];
  const maxLoad = Math.max(1, ...list.map(({ n }) => n.max_load ?? 0));
  for (const { n, status } of list) {
    const sl = sliceOf(n);
    const track = h('div', { class: 'alloc-track' });
    if (sl) {
      const load = status === 'failed' ? 0 : typeof n.inflight === 'number' ? n.inflight : typeof n.load === 'number' ? n.load : 0;
      const frac = load / (n.max_load > 0 ? n.max_load : maxLoad > 1 ? maxLoad : 8);
      const bar = h('div', {
        class: `alloc-bar${status === 'failed' ? ' failed' : ''}`,
        title: `${nodeName(n)}: layers [${sl.start}, ${sl.end}), ${load} request${load === 1 ? '' : 's'}, ${status}`,
        style: { left: `${(sl.start / L) * 100}%`, width: `${((sl.end - sl.start) / L) * 100}%`, background: status === 'failed' ? '' : status === 'ready' ? loadColor(frac) : 'var(--bg-softer)' },
      }, h('span', { class: 'alloc-label' }, `${sl.start}–${sl.end}${status === 'failed' ? ' failed' : load ? ` · ${load}` : ''}`));
      track.appendChild(bar);
    } else {
      track.appendChild(h('span', { class: 'alloc-none muted small' }, status === 'failed' ? 'failed' : 'standby'));
    }
    rows.push(h('div', { class: 'alloc-name', title: `${nodeName(n)} (${status})` }, badge(status), ' ', nodeName(n)), track);
  }
  const ticks = [];
  const step = L <= 8 ? 1 : L <= 32 ? 4 : L <= 64 ? 8 : 16;
  for (let k = 0; k <= L; k += step) ticks.push(h('span', { style: { left: `${(k / L) * 100}%` } }, String(k)));
  if (L % step) ticks.push(h('span', { style: { left: '100%' } }, String(L)));
  return h('div', null,
    h('div', { class: 'alloc', role: 'img', 'aria-label': `Layer allocation over ${L} layers` },
      rows, h('div', null), h('div', { class: 'alloc-axis', 'aria-hidden': 'true' }, ticks)),
    h('div', { class: 'legend' }, 'load:',
      h('span', null, h('i', { style: { background: loadColor(0) } }), 'idle'),
      h('span', null, h('i', { style: { background: loadColor(0.5) } }), 'busy'),
      h('span', null, h('i', { style: { background: loadColor(1) } }), 'saturated'),
      h('span', null, h('i', { class: 'failed-swatch' }), 'failed'),
      h('span', null, `layers 0–${L}`)));
}

function renderClusterView() {
  const s = snapshot;
  const m = modelOf(s);
  const list = shownNodes();
  const pipes = pipelinesOf(s);
  const byId = new Map(list.map((x) => [nodeId(x.n), x]));
  const reqs = requestsOf(s);
  replace($('#cluster-body'),
    h('div', { class: 'stats-grid' },
      h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, 'State'), h('div', { class: 'stat-value' }, badge(clusterState(s)))),
      h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, 'Model'), h('div', { class: 'stat-value small-value' }, m.name)),
      h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, 'Nodes ready'), h('div', { class: 'stat-value', id: 'c-ready' },
        `${list.filter((x) => x.status === 'ready').length} / ${list.length}`)),
      h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, 'Pipelines'), h('div', { class: 'stat-value', id: 'c-pipes' }, String(pipes.length))),
      h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, 'Requests in flight'), h('div', { class: 'stat-value', id: 'c-reqs' }, reqs ?? '–')),
      h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, 'Re-routed'), h('div', { class: 'stat-value', id: 'c-reroutes' }, s.requests?.reroutes ?? '–'),
        h('div', { class: 'stat-hint muted small' }, 'requests moved after a node failed'))),
    h('div', { class: 'card' },
      h('h2', null, 'Allocation ', h('span', { class: 'muted small' }, `updated ${new Date(lastSnapshotAt).toLocaleTimeString()}`)),
      list.length ? allocation(list, m.layers) : h('p', { class: 'muted' }, 'No node yet: see Join.')),
    h('div', { class: 'card' },
      h('h2', null, 'Pipelines'),
      pipes.length ? h('div', { class: 'pipelines' }, pipes.map((p, k) => h('div', { class: 'pipeline', dataset: { pipeline: String(k) } },
        h('strong', null, `#${k + 1}`),
        p.stages.flatMap((st, j) => {
          const x = byId.get(st.node);
          const failed = x?.status === 'failed';
          return [j ? h('span', { class: 'arrow', 'aria-hidden': 'true' }, '→') : null,
            h('span', { class: `hop${failed ? ' failed' : ''}` }, `${x ? nodeName(x.n) : st.node}${st.start !== null ? ` [${st.start}, ${st.end})` : ''}`)];
        }),
        p.requests !== null ? h('span', { class: 'muted small' }, `${p.requests} request${p.requests === 1 ? '' : 's'}`) : null)))
        : h('p', { class: 'muted' }, 'No complete pipeline yet.')),
    h('div', { class: 'card' }, h('h2', null, 'Nodes'), list.length ? nodesTable(list, true) : h('p', { class: 'muted' }, 'None.')),
    h('div', { class: 'card' }, h('h2', null, 'Events'),
      events.length ? h('ul', { class: 'events', id: 'events' }, events.map((e) => h('li', { class: `ev-${e.kind}` },
        h('span', { class: 'muted small' }, e.at.toLocaleTimeString()), ' ', e.text)))
        : h('p', { class: 'muted small' }, 'Changes in the cluster (joins, failures, moved slices, re-routed pipelines) appear here.')));
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

