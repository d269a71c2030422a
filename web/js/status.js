// status.js - reading a /cluster/status snapshot (docs/cluster-live.md).
// Pure functions, no DOM: every view goes through these, so the page
// tolerates fields that are missing (an older or newer scheduler) and shows
// "–" rather than failing.

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v) => (typeof v === 'string' ? v : null);

/** 'waiting' | 'available' | other string the scheduler reports. */
export function clusterState(s) {
  return str(s?.state) ?? (s?.available === true ? 'available' : s?.available === false ? 'waiting' : 'unknown');
}

export function modelOf(s) {
  const m = s?.model;
  const o = m && typeof m === 'object' ? m : {};
  return {
    name: str(o.name) ?? str(m) ?? str(s?.model_name) ?? '–',
    ref: str(o.ref) ?? str(o.path) ?? str(s?.model_path) ?? str(s?.model_ref) ?? null,
    layers: num(o.n_layers) ?? num(o.layers) ?? num(s?.n_layers) ?? null,
    bytes: num(o.bytes) ?? num(o.weight_bytes) ?? num(s?.model_bytes) ?? num(s?.weight_bytes) ?? null,
    layerBytes: num(o.layer_bytes) ?? num(s?.layer_bytes) ?? null,
    context: num(o.context_length) ?? num(s?.context_length) ?? null,
  };
}

/** Bytes of weights the model needs across the cluster (one replica). */
export function neededBytesOf(s) {
  const m = modelOf(s);
  if (m.bytes !== null) return m.bytes;
  const o = s?.model && typeof s.model === 'object' ? s.model : {};
  if (m.layerBytes !== null && m.layers !== null) {
    return m.layerBytes * m.layers + (num(o.embed_bytes) ?? 0) + (o.tied ? 0 : num(o.lm_head_bytes) ?? 0);
  }
  return null;
}

export function minNodesOf(s) {
  return num(s?.workers_needed) ?? num(s?.min_workers) ?? num(s?.min_nodes) ?? null;
}

export function nodesOf(s) {
  const n = s?.nodes ?? s?.workers;
  return Array.isArray(n) ? n.filter((x) => x && typeof x === 'object') : [];
}

export function nodeId(n) {
  return str(n.id) ?? str(n.node) ?? str(n.name) ?? '?';
}

/** The node's id (workers name themselves HOSTNAME-XXXX, unique in the
 * cluster, where several workers may share a host name). */
export function nodeName(n) {
  return nodeId(n);
}

/** The host name when the id does not already say it, else null. */
export function nodeHost(n) {
  const host = str(n.hostname) ?? str(hwOf(n).hostname);
  return host && !nodeId(n).startsWith(host) ? host : null;
}

export function hwOf(n) {
  const hw = n.hardware ?? n.hw ?? n;
  return {
    hostname: str(hw.hostname),
    cores: num(hw.cores),
    memory: num(hw.memory_bytes),
    bandwidth: num(hw.bandwidth),
    flops: num(hw.flops),
    gpu: hw.gpu === true,
    gpuName: str(hw.gpu_name),
  };
}

/** {start, end} or null when the node holds no slice. */
export function sliceOf(n) {
  let start = n.start, end = n.end;
  const sl = n.slice;
  if (Array.isArray(sl)) [start, end] = sl;
  else if (sl && typeof sl === 'object') ({ start, end } = sl);
  start = num(start);
  end = num(end);
  return start !== null && end !== null && start >= 0 && end > start ? { start, end } : null;
}

/**
 * A node's state as the UI shows it: 'ready' | 'loading' | 'joining' |
 * 'standby' | 'failed' (or the scheduler's own word).
 */
export const UNRESPONSIVE_S = 1.5; // no heartbeat for this long: shown as unresponsive

export function nodeStatus(n) {
  const st = str(n.status) ?? str(n.state);
  if (st) {
    const s = st.toLowerCase();
    if (['dead', 'gone', 'lost', 'error', 'failed', 'timeout'].includes(s)) return 'failed';
    if (num(n.last_seen_s) !== null && n.last_seen_s > UNRESPONSIVE_S) return 'unresponsive';
    if (['serving', 'ready', 'ok', 'up'].includes(s)) return 'ready';
    return s;
  }
  if (n.error) return 'failed';
  if (n.ready === true) return 'ready';
  if (sliceOf(n)) return 'loading';
  return 'standby';
}

export function progressOf(n) {
  let p = num(n.progress) ?? num(n.load_progress);
  const lb = loadBytesOf(n);
  if (p === null && lb) p = lb.done / lb.total;
  return p === null ? null : Math.max(0, Math.min(1, p > 1 ? p / 100 : p));
}

/** {done, total} bytes of the node's slice loaded (its heartbeats), or null. */
export function loadBytesOf(n) {
  const done = num(n.load_done), total = num(n.load_total);
  return done !== null && total !== null && total > 0 ? { done: Math.min(done, total), total } : null;
}

/** Seconds per layer per token, or null. */
export function layerLatencyOf(n) {
  const s = num(n.layer_latency);
  if (s !== null) return s > 0 ? s : null;
  const ms = num(n.layer_latency_ms);
  return ms !== null && ms > 0 ? ms / 1000 : null;
}

/** [{peer, seconds}] */
export function rttsOf(n) {
  const r = n.rtts ?? n.rtt ?? n.rtt_ms;
  const scale = n.rtt_ms && !n.rtts && !n.rtt ? 1 / 1000 : 1;
  if (Array.isArray(r)) {
    return r.filter((x) => x && typeof x === 'object')
      .map((x) => ({ peer: str(x.peer) ?? str(x.node) ?? str(x.id) ?? '?', seconds: num(x.seconds) ?? (num(x.ms) !== null ? x.ms / 1000 : null) }))
      .filter((x) => x.seconds !== null);
  }
  if (r && typeof r === 'object') {
    return Object.entries(r).filter(([, v]) => num(v) !== null).map(([peer, v]) => ({ peer, seconds: v * scale }));
  }
  return [];
}

/** [{stages: [{node, start, end}], requests}] */
export function pipelinesOf(s) {
  const p = s?.pipelines;
  if (!Array.isArray(p)) return [];
  return p.map((x) => {
    const stages = Array.isArray(x) ? x : Array.isArray(x?.stages) ? x.stages : [];
    return {
      stages: stages.map((st) => (typeof st === 'string' ? { node: st, start: null, end: null }
        : { node: str(st?.node) ?? str(st?.id) ?? '?', start: num(st?.start), end: num(st?.end) })),
      requests: num(x?.requests) ?? num(x?.load) ?? null,
    };
  }).filter((x) => x.stages.length);
}

export function joinCommandOf(s, location) {
  const direct = str(s?.join_command) ?? str(s?.join?.command);
  if (direct) return direct;
  const port = num(s?.cluster_port) ?? num(s?.port) ?? num(s?.join?.port);
  const host = location?.hostname || '127.0.0.1';
  const token = str(s?.token) ?? str(s?.join_token) ?? str(s?.join?.token);
  let cmd = 'parallax join';
  if (port !== null) cmd += ` -s ${host.includes(':') ? `[${host}]` : host}:${port}`;
  cmd += ` --token ${token ?? 'TOKEN'}`;
  return cmd;
}

const isLoopbackHost = (h) => !h || h === 'localhost' || /^127\./.test(h) || h === '[::1]' || h === '::1';

/**
 * The join command from GET /cluster/join ({command, token, cluster_port}):
 * the scheduler's own command (with the address it found for other machines)
 * when the page was opened on a loopback address, else the command with the
 * host this page was opened with (which this browser's machine reaches).
 */
export function joinCommandFor(info, location) {
  const host = location?.hostname ?? '';
  if (isLoopbackHost(host) && str(info?.command)) return info.command;
  const port = num(info?.cluster_port);
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  if (!h || port === null || !str(info?.token)) return str(info?.command) ?? 'parallax join --token TOKEN';
  return `parallax join -s ${h}:${port} --token ${info.token}`;
}

/** Requests in flight in the cluster (or null). */
export function requestsOf(s) {
  const r = s?.requests;
  if (num(r) !== null) return r;
  if (r && typeof r === 'object') return (num(r.running) ?? 0) + (num(r.waiting) ?? 0);
  return null;
}

/**
 * Differences between two snapshots, as lines for the event log: nodes that
 * joined, left, failed, changed slice or became ready; pipelines changed.
 */
export function diffSnapshots(prev, next) {
  const out = [];
  if (!prev) return out;
  const before = new Map(nodesOf(prev).map((n) => [nodeId(n), n]));
  const after = new Map(nodesOf(next).map((n) => [nodeId(n), n]));
  const fmtSlice = (n) => { const sl = sliceOf(n); return sl ? `[${sl.start}, ${sl.end})` : 'no slice'; };
  for (const [id, n] of after) {
    const o = before.get(id);
    if (!o) { out.push({ kind: 'join', text: `${nodeName(n)} joined` }); continue; }
    const a = nodeStatus(o), b = nodeStatus(n);
    if (a !== b) out.push({ kind: b === 'failed' ? 'fail' : 'state', text: `${nodeName(n)}: ${a} → ${b}` });
    if (fmtSlice(o) !== fmtSlice(n)) out.push({ kind: 'slice', text: `${nodeName(n)}: layers ${fmtSlice(o)} → ${fmtSlice(n)}` });
  }
  for (const [id, o] of before) if (!after.has(id)) out.push({ kind: 'fail', text: `${nodeName(o)} left the cluster` });
  const sig = (s) => pipelinesOf(s).map((p) => p.stages.map((st) => st.node).join('→')).join(' | ');
  if (sig(prev) !== sig(next)) out.push({ kind: 'pipe', text: `pipelines: ${sig(next) || 'none'}` });
  const rr = (x) => num(x?.requests?.reroutes);
  if (rr(prev) !== null && rr(next) > rr(prev)) {
    const d = rr(next) - rr(prev);
    out.push({ kind: 'move', text: `${d} request${d === 1 ? '' : 's'} re-routed to another pipeline` });
  }
  if (clusterState(prev) !== clusterState(next)) out.push({ kind: 'state', text: `cluster: ${clusterState(prev)} → ${clusterState(next)}` });
  return out;
}
