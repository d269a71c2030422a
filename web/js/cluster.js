// cluster.js - the Setup, Join and Cluster views, and the connection dot.
//
// On load the page asks GET /cluster/status. A 404 means a single-node
// `parallax serve`: Setup and Join stay hidden and the Cluster view becomes
// a "Server" view fed by /metrics (polled every second while visible).
// Otherwise the page follows GET /cluster/status/stream (NDJSON, one snapshot
// a second; polling /cluster/status when the stream is unavailable) and
// renders every view from the latest snapshot (docs/cluster-live.md).
//
// Setup lists GET /cluster/models (with the memory each model needs against
// what the joined nodes offer), takes a typed path or repo id and a node
// count, and POSTs /cluster/setup: the scheduler loads that model and the
// nodes load their slices; then the page moves to Join. Join asks
// GET /cluster/join for the exact command with the join secret (granted to
// pages opened on the scheduler's machine, or with the API key); otherwise it
// shows the command with the placeholder TOKEN and says where to find it.

import { h, $, $$, replace, fmtBytes, fmtMs, copyText, flash } from './dom.js';
import { ApiError, getJSON, getText, postJSON, parseMetrics, metric, streamNDJSON } from './api.js';
import {
  clusterState, nodesOf, nodeId, pipelinesOf, modelOf, nodeStatus, progressOf, sliceOf, hwOf, rttsOf, layerLatencyOf,
  joinCommandOf, neededBytesOf, minNodesOf, nodeName, nodeHost, requestsOf, diffSnapshots, loadBytesOf, joinCommandFor,
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
/** A cluster scheduler that has no model yet (choose one in Setup). */
export const noModelYet = () => mode === 'cluster' && clusterState(snapshot ?? firstSnapshot) === 'setup';
/** Where a bare URL lands: the setup while a cluster waits, else the chat. */
export const defaultView = () => (mode === 'cluster' && firstSnapshot && clusterState(firstSnapshot) !== 'available' ? 'setup' : 'chat');

export function setVisible(view) {
  const was = visible;
  visible = view;
  if (mode === 'single') {
    if (view === 'cluster') startMetrics();
    else stopMetrics();
  }
  if (mode === 'cluster' && view === 'join' && was !== 'join') fetchJoin();
  if (mode === 'cluster' && view === 'setup' && was !== 'setup') fetchModels();
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
  const st = clusterState(s);
  hooks.onConnection(true, st === 'available' ? 'cluster ready' : st === 'setup' ? 'choose a model' : 'waiting for nodes');
  if (prev && clusterState(prev) !== st) hooks.onModelChange?.();
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
let models = null;          // GET /cluster/models: {data: [...]} or {error}
let modelsLoading = false;
let selected = null;        // path of the chosen candidate, or 'other' (the typed field)

async function fetchModels() {
  if (modelsLoading) return;
  modelsLoading = true;
  try {
    const r = await getJSON('/cluster/models');
    models = { data: Array.isArray(r?.data) ? r.data.filter((x) => x && typeof x === 'object' && typeof x.path === 'string') : [] };
  } catch (e) {
    models = { data: [], error: e instanceof ApiError ? e.describe() : String(e) };
  }
  modelsLoading = false;
  if (selected === null) {
    const cur = models.data.find((m) => m.current) ?? models.data.find((m) => m.usable);
    selected = cur ? cur.path : 'other';
  }
  if (visible === 'setup' && snapshot) {
    if (setupEls) setupEls.listKey = null; // rebuild the list
    renderSetup();
  }
}

function offeredBytes() {
  return shownNodes().filter((x) => x.status !== 'failed').reduce((a, x) => a + (hwOf(x.n).memory ?? 0), 0);
}

/** The form is built once (so typing is never interrupted); the cards update. */
function buildSetup() {
  const s = snapshot;
  const m = modelOf(s);
  const otherIn = h('input', { id: 'setup-model', type: 'text', spellcheck: 'false', autocomplete: 'off',
    placeholder: 'a directory on the scheduler, or a repo id like Qwen/Qwen3-0.6B', 'aria-describedby': 'setup-model-hint' });
  const nodesIn = h('input', { id: 'setup-nodes', type: 'number', min: '1', max: '64', step: '1', inputmode: 'numeric',
    value: String(minNodesOf(s) ?? 1) });
  const list = h('div', { id: 'setup-models', class: 'model-list', role: 'radiogroup', 'aria-label': 'Models the scheduler found' });
  const otherRadio = h('input', { type: 'radio', name: 'setup-choice', id: 'setup-choice-other', value: 'other' });
  otherRadio.addEventListener('change', () => { selected = 'other'; renderSetup(); });
  otherIn.addEventListener('focus', () => { if (selected !== 'other') { selected = 'other'; otherRadio.checked = true; renderSetup(); } });
  otherIn.addEventListener('input', () => renderSetup());
  const useBtn = h('button', { type: 'submit', class: 'btn primary', id: 'setup-use' }, 'Use this model');
  const result = h('div', { id: 'setup-result', role: 'status', 'aria-live': 'polite' });
  const refresh = h('button', { type: 'button', class: 'btn', id: 'setup-refresh' }, 'Refresh list');
  refresh.addEventListener('click', () => fetchModels());
  const form = h('form', { id: 'setup-form', class: 'card', autocomplete: 'off', novalidate: true }, // checked in submitSetup, said in words
    h('h2', null, 'Choose the model'),
    h('p', { class: 'muted small' }, 'Models in the scheduler\'s ', h('code', null, '--model-dir'), ' directories and its Hugging Face cache. ',
      'The memory a model needs is the size of its weights; the joined nodes share it (each also keeps some memory for its KV cache).'),
    h('div', { class: 'row' }, refresh),
    list,
    h('div', { class: 'field other-field' },
      h('label', { for: 'setup-model' }, h('span', null, otherRadio, ' Another model (path or repo id)')),
      otherIn,
      h('p', { class: 'hint', id: 'setup-model-hint' }, 'A repo id is downloaded into the scheduler\'s Hugging Face cache (configs and tokenizer; ',
        'each node fetches its own weights).')),
    h('div', { class: 'row submit-row' },
      h('div', { class: 'field' }, h('label', { for: 'setup-nodes' }, 'Nodes to wait for'), nodesIn),
      useBtn),
    result);
  form.addEventListener('submit', (e) => { e.preventDefault(); submitSetup(); });
  const modelCard = h('div', { class: 'card', id: 'setup-model-card' });
  const memCard = h('div', { class: 'card', id: 'setup-mem-card' });
  replace($('#setup-body'),
    h('p', { class: 'lead' }, 'The scheduler holds the model\'s tokenizer and decides which node runs which layers. ',
      'Choose the model and how many nodes to wait for, then let the nodes join.'),
    h('div', { class: 'two-col' }, modelCard, memCard),
    form,
    h('div', { class: 'row' }, h('a', { class: 'btn', href: '#/join', id: 'setup-next' }, 'Next: join nodes →')));
  setupEls = { modelCard, memCard, list, otherIn, otherRadio, nodesIn, useBtn, result, listKey: null, initialRef: m.ref };
  if (!models) fetchModels();
}

/** The candidate the form points at, or {path: typed text} for "other". */
function chosen() {
  if (selected !== 'other') {
    const c = models?.data.find((x) => x.path === selected);
    if (c) return c;
  }
  const typed = setupEls.otherIn.value.trim();
  return typed ? { path: typed, name: typed, typed: true } : null;
}

function fitText(need, offered) {
  if (need === null || need === undefined) return 'size unknown';
  return offered >= need ? 'fits the joined nodes' : `${fmtBytes(need - offered)} more than the joined nodes offer`;
}

function renderModelList(offered) {
  const data = models?.data ?? [];
  const key = JSON.stringify([data.map((x) => [x.path, x.current, x.bytes]), offered > 0, selected, models?.error]);
  if (setupEls.listKey === key) return;
  setupEls.listKey = key;
  const focusedPath = document.activeElement?.closest?.('#setup-models') ? document.activeElement.value : null;
  const items = data.map((c, k) => {
    const id = `setup-choice-${k}`;
    const radio = h('input', { type: 'radio', name: 'setup-choice', id, value: c.path, disabled: !c.usable });
    radio.checked = selected === c.path;
    radio.addEventListener('change', () => { selected = c.path; renderSetup(); });
    const need = typeof c.bytes === 'number' ? c.bytes : null;
    const facts = [
      c.architecture ?? null,
      typeof c.layers === 'number' ? `${c.layers} layers` : null,
      typeof c.hidden === 'number' ? `hidden ${c.hidden}` : null,
      need !== null ? `needs ${fmtBytes(need)}${c.bytes_estimated ? ' (estimated)' : ''}` : null,
    ].filter(Boolean).join(' · ');
    const source = { 'hf-cache': 'Hugging Face cache', 'model-dir': 'model directory', current: 'running now' }[c.source] ?? c.source;
    return h('label', { class: `model-item${c.usable ? '' : ' unusable'}${selected === c.path ? ' chosen' : ''}`, for: id, dataset: { path: c.path } },
      radio,
      h('span', { class: 'model-text' },
        h('strong', null, c.name ?? c.id ?? c.path), c.current ? h('span', { class: 'badge ready' }, 'current') : null,
        h('span', { class: 'muted small model-src' }, ` ${source}`),
        h('span', { class: 'small model-facts' }, facts || ' '),
        h('span', { class: 'muted small model-path' }, c.path),
        c.usable ? h('span', { class: `small fit ${need !== null && offered < need ? 'short' : 'ok'}` }, fitText(need, offered))
          : h('span', { class: 'small err-text' }, `cannot be served: ${c.error ?? 'unknown error'}`)));
  });
  replace(setupEls.list,
    models === null ? h('p', { class: 'muted' }, 'Looking for models…')
      : models.error ? h('p', { class: 'err-text', role: 'alert' }, `The model list is unavailable: ${models.error}`)
        : items.length ? items : h('p', { class: 'muted', id: 'setup-none' }, 'No model found in the model directories or the Hugging Face cache: type a path or a repo id below.'));
  setupEls.otherRadio.checked = selected === 'other';
  if (focusedPath) setupEls.list.querySelector(`input[value="${CSS.escape(focusedPath)}"]`)?.focus();
}

async function submitSetup() {
  const c = chosen();
  const nodes = Number(setupEls.nodesIn.value);
  if (!c) {
    showSetupResult('err', 'Choose a model from the list or type a path or repo id.');
    (selected === 'other' ? setupEls.otherIn : setupEls.list.querySelector('input'))?.focus();
    return;
  }
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 64) {
    showSetupResult('err', 'Nodes to wait for: a whole number from 1 to 64.');
    setupEls.nodesIn.focus();
    return;
  }
  setupEls.useBtn.disabled = true;
  showSetupResult('busy', `Loading ${c.name ?? c.path}…`);
  try {
    const r = await postJSON('/cluster/setup', { model: c.path, nodes });
    showSetupResult('ok', `The scheduler serves ${r.model ?? c.name} (${r.n_layers ?? '?'} layers) and waits for ${r.workers_needed ?? nodes} node${(r.workers_needed ?? nodes) === 1 ? '' : 's'}.`);
    models = null;
    selected = null;
    hooks.onModelChange?.();
    hooks.go('join');
  } catch (e) {
    const text = e instanceof ApiError ? e.describe() : String(e);
    const hint = e instanceof ApiError && e.status === 401 ? ' Enter the API key in the chat\'s Settings.'
      : e instanceof ApiError && e.status === 403 ? ' Open this page on the scheduler\'s machine (http://127.0.0.1:PORT/), or start parallax run with --api-key and enter the key in Settings.'
        : e instanceof ApiError && e.status === 409 ? ' Wait for the answers in progress to finish, then try again.' : '';
    showSetupResult('err', text + hint);
  } finally {
    setupEls.useBtn.disabled = false;
  }
}

function showSetupResult(kind, text) {
  setupEls.result.className = kind === 'err' ? 'notice error-notice' : kind === 'ok' ? 'notice ok-notice' : 'notice';
  setupEls.result.dataset.kind = kind;
  setupEls.result.setAttribute('role', kind === 'err' ? 'alert' : 'status');
  replace(setupEls.result, text);
}

function renderSetup() {
  if (!setupEls || !document.contains(setupEls.modelCard)) buildSetup();
  const s = snapshot;
  const m = modelOf(s);
  const state = clusterState(s);
  const nodes = shownNodes().filter((x) => x.status !== 'failed');
  const offered = offeredBytes();
  const minNodes = minNodesOf(s);
  const pick = chosen();
  const pickNeed = pick && !pick.typed && typeof pick.bytes === 'number' ? pick.bytes : null;
  const showPick = pick && !pick.current && pick.path !== m.ref;
  const need = showPick ? pickNeed : neededBytesOf(s);
  const frac = need ? Math.min(1, offered / need) : 0;
  replace(setupEls.modelCard,
    h('h2', null, 'Model'),
    state === 'setup' ? h('p', { class: 'model-line', id: 'setup-no-model' }, h('strong', null, 'No model chosen yet.'),
      h('span', { class: 'muted' }, ' Nodes that join now wait until you choose one below.'))
      : h('p', { class: 'model-line' }, h('strong', null, m.name), m.ref && m.ref !== m.name ? h('span', { class: 'muted' }, ` (${m.ref})`) : null),
    state === 'setup' ? null : h('p', { class: 'muted small' }, [
      m.layers !== null ? `${m.layers} layers` : null,
      m.context !== null ? `context ${m.context} tokens` : null,
      neededBytesOf(s) !== null ? `${fmtBytes(neededBytesOf(s))} of weights` : null,
    ].filter(Boolean).join(' · ') || ' '),
    h('div', { class: 'row' }, 'Cluster: ', badge(state),
      h('span', { class: 'muted', id: 'setup-count' },
        `${nodes.length}${minNodes !== null ? ` of ${minNodes}` : ''} node${(minNodes ?? nodes.length) === 1 ? '' : 's'} joined`)));
  replace(setupEls.memCard,
    h('h2', null, 'Memory', showPick && pick ? h('span', { class: 'muted small' }, ` · for ${pick.name ?? pick.path}`) : null),
    h('p', { id: 'setup-mem-text' }, `needed ${need !== null ? fmtBytes(need) : '–'} · offered by joined nodes ${fmtBytes(offered)}`),
    h('div', { class: 'meter', role: 'meter', 'aria-label': 'memory offered vs needed', 'aria-valuemin': '0', 'aria-valuemax': '100',
      'aria-valuenow': String(Math.round(frac * 100)), id: 'setup-mem' },
      h('div', { class: `meter-fill${need && offered < need ? ' over' : ''}`, style: { width: `${(frac * 100).toFixed(1)}%` } })),
    h('p', { class: 'muted small' }, need === null ? (showPick && pick?.typed ? 'The size of a typed model is known once it is loaded.' : 'The size of the model is unknown.')
      : offered >= need ? 'The joined nodes can hold the model (each also keeps a share of its memory for the KV cache).'
        : `${fmtBytes(need - offered)} more needed: let more nodes join.`));
  renderModelList(offered);
}

// ---- Join ----

function nodeRows(list, withDetails) {
  return list.map(({ n, status, ghost }) => {
    const hw = hwOf(n);
    const prog = progressOf(n);
    const lb = loadBytesOf(n);
    const stateCell = h('td', null, badge(status),
      status === 'loading' && prog !== null ? h('div', { class: 'meter small-meter', role: 'progressbar', 'aria-valuenow': String(Math.round(prog * 100)), 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-label': `${nodeName(n)} loading` },
        h('div', { class: 'meter-fill', style: { width: `${(prog * 100).toFixed(0)}%` } })) : null,
      status === 'loading' && prog !== null ? h('div', { class: 'muted small progress-text' },
        `${Math.round(prog * 100)} %${lb ? ` · ${fmtBytes(lb.done)} of ${fmtBytes(lb.total)}` : ''}`) : null,
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
let joinInfo = null;  // GET /cluster/join: {command, token, address, cluster_port, auto_command}, or {error, status}

async function fetchJoin() {
  try {
    joinInfo = await getJSON('/cluster/join');
  } catch (e) {
    joinInfo = { error: e instanceof ApiError ? e.describe() : String(e), status: e instanceof ApiError ? e.status : 0 };
  }
  if (visible === 'join' && snapshot) renderJoin();
}

function buildJoin() {
  const cmdPre = h('pre', { id: 'join-cmd', tabindex: '0' });
  const copy = h('button', { type: 'button', class: 'btn', id: 'join-copy', 'aria-label': 'Copy the join command' }, 'Copy');
  copy.addEventListener('click', async () => flash(copy, (await copyText(cmdPre.textContent)) ? 'Copied' : 'Copy failed'));
  const autoPre = h('pre', { id: 'join-auto-cmd', tabindex: '0' });
  const autoRow = h('div', { id: 'join-auto' }, h('p', { class: 'muted small' }, 'On the same LAN the scheduler is also found by its beacon:'),
    h('div', { class: 'cmd' }, autoPre));
  const banner = h('div', { id: 'join-state', role: 'status' });
  const tokenNote = h('p', { class: 'muted small', id: 'join-token-note' });
  const nodesTitle = h('h2', null, 'Nodes');
  const nodesBox = h('div', { id: 'join-nodes' });
  const next = h('div', { class: 'row' }, h('a', { class: 'btn primary', href: '#/chat', id: 'join-next' }, 'Next: chat →'));
  replace($('#join-body'),
    banner,
    h('div', { class: 'card' },
      h('h2', null, 'Join command'),
      h('p', { class: 'muted small' }, 'Run this on every machine that should serve (',
        h('code', null, 'parallax'), ' built there). It carries the cluster\'s secret: share it only with your own machines.'),
      h('div', { class: 'cmd' }, cmdPre, copy),
      autoRow,
      tokenNote),
    h('div', { class: 'card' }, nodesTitle, nodesBox),
    next);
  joinEls = { cmdPre, banner, nodesTitle, nodesBox, next, tokenNote, autoRow, autoPre };
}

function renderJoin() {
  if (!joinEls || !document.contains(joinEls.cmdPre)) buildJoin();
  const s = snapshot;
  const real = joinInfo && !joinInfo.error && typeof joinInfo.token === 'string' ? joinInfo : null;
  const cmd = real ? joinCommandFor(real, location) : joinCommandOf(s, location);
  if (joinEls.cmdPre.textContent !== cmd) joinEls.cmdPre.textContent = cmd;
  joinEls.cmdPre.dataset.secret = real ? 'yes' : 'no';
  joinEls.autoRow.hidden = !(real && typeof real.auto_command === 'string');
  if (real && real.auto_command && joinEls.autoPre.textContent !== real.auto_command) joinEls.autoPre.textContent = real.auto_command;
  joinEls.tokenNote.hidden = !!real;
  if (!real) {
    const why = joinInfo?.status === 401 ? 'Enter the API key in the chat\'s Settings and reopen Join, or'
      : 'It is given only to a page opened on the scheduler\'s own machine (http://127.0.0.1:…/) or with the API key;';
    const note = [h('strong', null, 'TOKEN'), ' stands for the cluster\'s join token, a secret this page did not receive. ', why, ' ',
      h('code', null, 'parallax run'), ' also prints the whole command when it starts (docs/cluster-live.md).'];
    if (joinEls.tokenNote.dataset.why !== why) { joinEls.tokenNote.dataset.why = why; replace(joinEls.tokenNote, note); }
  }
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
  } else if (state === 'setup') {
    head = 'No model chosen yet.';
    text = ` Nodes can join now (${joined} joined); they load their layers once you choose the model in Setup.`;
  } else if (!joined) {
    head = 'Waiting for nodes.';
    text = ' Run the command below on each machine.';
  } else {
    head = loading ? `Loading ${modelOf(s).name !== '–' ? modelOf(s).name : 'the model'}.` : 'Waiting for nodes.';
    text = ` ${joined}${minNodes !== null ? ` of ${minNodes}` : ''} joined, ${ready} ready${loading ? `, ${loading} loading` : ''}${failed ? `, ${failed} failed` : ''}.`;
  }
  joinEls.banner.className = cls;
  joinEls.banner.dataset.state = state;
  if (joinEls.banner.dataset.text !== head + text) { // a live region: only real changes
    joinEls.banner.dataset.text = head + text;
    replace(joinEls.banner, h('strong', null, head), text, state === 'setup' ? [' ', h('a', { href: '#/setup' }, 'Go to Setup')] : null);
  }
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

