// fake_cluster.mjs - a stand-in for `parallax run`'s cluster endpoints, for
// testing the web UI's Setup/Join/Cluster views on scripted cluster states
// (joins, loading, ready, a node that dies, re-routed requests) without
// real workers. It answers GET /cluster/status and /cluster/status/stream
// (NDJSON, one snapshot every `intervalMs`) from `state`, which the test
// edits, in the format of src/scheduler/status.c (docs/cluster-live.md);
// GET /cluster/models from `fake.models`, POST /cluster/setup with
// `fake.setupReply` (default: 200, the state takes the model) recording each
// body in `fake.setups`, GET /cluster/join with `fake.joinReply` (default:
// 403, as for a client that is not trusted); and relays every other request
// (the UI's files, the OpenAI API) to a real `parallax serve`.
import http from 'node:http';

export function worker(id, { hostname = id, start = -1, end = -1, state = 'joining', memory = 8e9, cores = 4, load = 0, inflight = 0,
  latencyMs = 0, rtt = {} } = {}) {
  return {
    id, hostname, region: '', state, start, end, manual: false, cores, memory_bytes: memory, bandwidth: 2.5e10, flops: 2e11,
    load, max_load: 16, inflight, layer_latency_ms: latencyMs, busy_ratio: 0, kv_blocks_total: 1024, kv_blocks_used: 0,
    bytes_in: 0, bytes_out: 0, positions: 0, last_seen_s: 0.2, rtt_ms: rtt,
  };
}

export function startFakeCluster(upstream, { intervalMs = 300, model = 'aidreams-260k', modelPath = '/models/aidreams-260k', layers = 4,
  needed = 1 } = {}) {
  const state = {
    model, model_path: modelPath, state: 'waiting', workers: 0, workers_needed: needed, n_layers: layers, context_length: 128,
    cluster_port: 7000, wire_dtype: 'bf16', uptime_s: 0, nodes: [], pipelines: [],
    requests: { running: 0, waiting: 0, finished: 0, failed: 0, reroutes: 0, tokens: 0 },
  };
  const t0 = Date.now();
  const snapshot = () => JSON.stringify({ ...state, workers: state.nodes.length, uptime_s: (Date.now() - t0) / 1000 });
  const streams = new Set();
  const server = http.createServer((req, res) => {
    if (req.url === '/cluster/status') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': '*' });
      res.end(snapshot());
      return;
    }
    const json = (status, body) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/cluster/models') return json(200, { object: 'list', data: fake.models });
    if (req.url === '/cluster/join') return json(fake.joinReply.status, fake.joinReply.body);
    if (req.url === '/cluster/setup') {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        let o = null;
        try { o = JSON.parse(body); } catch { /* recorded as null */ }
        fake.setups.push(o);
        const r = fake.setupReply;
        if (r) return json(r.status, r.body);
        const m = fake.models.find((x) => x.path === o?.model);
        Object.assign(state, { model: m?.name ?? o?.model, model_path: o?.model, workers_needed: o?.nodes ?? 1, state: 'waiting',
          n_layers: m?.layers ?? state.n_layers, model_bytes: m?.bytes ?? null });
        return json(200, { model: state.model, model_path: o?.model, n_layers: state.n_layers, workers_needed: state.workers_needed });
      });
      return undefined;
    }
    if (req.url === '/cluster/status/stream') {
      res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-cache' });
      res.write(`${snapshot()}\n`);
      const timer = setInterval(() => res.write(`${snapshot()}\n`), intervalMs);
      streams.add(res);
      res.on('close', () => { clearInterval(timer); streams.delete(res); });
      return;
    }
    const up = http.request(`${upstream}${req.url}`, { method: req.method, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  const fake = {
    state,
    models: [],
    setups: [],
    setupReply: null,
    joinReply: { status: 403, body: { error: { message: 'the join command holds the cluster\'s secret', type: 'permission_error', param: null, code: 'forbidden' } } },
    close: () => { for (const r of streams) r.destroy(); server.close(); },
  };
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(Object.assign(fake, { url: `http://127.0.0.1:${server.address().port}` }))));
}
