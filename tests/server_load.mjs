// server_load.mjs - load test of `parallax serve`: N concurrent streaming
// clients send completions with random prompt and output lengths for a
// while; some hang up mid-stream (or before the first byte) at random.
//
//   node tests/server_load.mjs --parallax BUILD/parallax --model MODEL_DIR
//        [--duration 60] [--clients 64] [--disconnect 0.25] [--threads 2]
//        [--seed 1] [--max-tokens 56] [--max-words 12] [--url http://HOST:PORT]
//
// With --url it drives a running server and leaves it running; otherwise it
// starts one (--port 0) and stops it with SIGTERM at the end. Passes when:
// no 5xx and no other unexpected status, every stream that was not cut by the
// client ends with "data: [DONE]" after a chunk with a finish_reason and
// contains only valid JSON chunks, the server returns to idle (no request
// running, waiting or in flight; no KV block used) and, when this script
// started it, exits 0 (under ASan: no leak, no error). Prints throughput and
// client-side TTFT percentiles. scripts/server_load_test.sh runs the 60 s version.
import http from 'node:http';
import { harness, metrics, parseArgs, startServer, waitIdle } from './server_common.mjs';

const o = parseArgs(process.argv, { duration: '60', clients: '64', disconnect: '0.25', threads: '2', seed: '1', maxTokens: '56', maxWords: '12' });
const h = harness('server_load');
const WORDS = ['dream', 'of', 'data', 'silent', 'echo', 'neural', 'light', 'whisper', 'code', 'I', 'the', 'between', 'softly', 'unfold', 'café', '42%', 'naïve', '☕'];

function rng(seed) { // mulberry32
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let srv = null;
const url = o.url || (srv = await startServer(o.parallax, ['-m', o.model, '-t', o.threads, '--kv-cache-memory', o.kvCacheMemory || '64M'])).url;
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(o.clients) * 2 });
const stats = { requests: 0, done: 0, cut: 0, tokens: 0, status: {}, bad: [], ttft: [] };

function badStream(why, body) {
  if (stats.bad.length < 5) stats.bad.push({ why, tail: body.slice(-300) });
}

function checkStream(body) {
  const events = body.split('\n\n').filter((e) => e.length);
  if (events[events.length - 1] !== 'data: [DONE]') return badStream('no [DONE] at the end', body);
  let finish = null;
  for (const e of events.slice(0, -1)) {
    if (!e.startsWith('data: ')) return badStream('not a data event', body);
    let j;
    try { j = JSON.parse(e.slice(6)); } catch { return badStream('invalid JSON chunk', body); }
    if (j.error) return badStream('error event', body);
    for (const c of j.choices) if (c.finish_reason) finish = c.finish_reason;
    if (j.usage) stats.tokens += j.usage.completion_tokens;
  }
  if (!finish) badStream('no finish_reason', body);
}

// One request; resolves when it ended (or was cut).
function oneRequest(rand) {
  const words = Array.from({ length: 1 + Math.floor(rand() * Number(o.maxWords)) }, () => WORDS[Math.floor(rand() * WORDS.length)]);
  const body = JSON.stringify({ prompt: words.join(' '), max_tokens: 1 + Math.floor(rand() * Number(o.maxTokens)), temperature: rand() < 0.5 ? 0 : 0.8,
    stream: true, stream_options: { include_usage: true } });
  const cutAfter = rand() < Number(o.disconnect) ? Math.floor(rand() * 3000) : -1; // bytes of body (0: before any)
  const t0 = performance.now();
  stats.requests++;
  let cut = false, ended = false;
  return new Promise((resolve) => {
    const req = http.request(`${url}/v1/completions`, { method: 'POST', agent, headers: { 'Content-Type': 'application/json' } }, (res) => {
      stats.status[res.statusCode] = (stats.status[res.statusCode] || 0) + 1;
      let got = '', first = true;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        if (first) { first = false; stats.ttft.push(performance.now() - t0); }
        got += d;
        if (cutAfter >= 0 && got.length >= cutAfter && !cut) { cut = true; stats.cut++; req.destroy(); resolve(); }
      });
      res.on('end', () => {
        ended = true;
        if (cut) return; /* the parser may have seen the end before we hung up */
        if (res.statusCode === 200) { stats.done++; checkStream(got); }
        else if (stats.bad.length < 5) stats.bad.push({ status: res.statusCode, body: got.slice(0, 300) });
        resolve();
      });
      res.on('error', () => resolve());
    });
    req.on('error', () => resolve());
    req.end(body);
    if (cutAfter === 0) setTimeout(() => { if (!ended && !cut) { cut = true; stats.cut++; req.destroy(); resolve(); } }, Math.floor(rand() * 20));
  });
}

async function client(i, deadline) {
  const rand = rng(Number(o.seed) * 1000 + i);
  while (performance.now() < deadline) await oneRequest(rand);
}

const t0 = performance.now();
const deadline = t0 + Number(o.duration) * 1000;
await Promise.all(Array.from({ length: Number(o.clients) }, (_, i) => client(i, deadline)));
const secs = (performance.now() - t0) / 1000;
agent.destroy();

const five = Object.entries(stats.status).filter(([s]) => Number(s) >= 500);
const other = Object.entries(stats.status).filter(([s]) => Number(s) !== 200 && Number(s) < 500);
const q = (p) => { const a = [...stats.ttft].sort((x, y) => x - y); return a.length ? a[Math.min(a.length - 1, Math.floor(p * a.length))].toFixed(1) : 'n/a'; };
console.log(`server_load: ${stats.requests} requests in ${secs.toFixed(1)} s (${(stats.requests / secs).toFixed(1)}/s), ${stats.done} complete streams, ` +
  `${stats.cut} cut by the client, ${stats.tokens} tokens in complete streams (${(stats.tokens / secs).toFixed(0)} tok/s); ` +
  `TTFT p50 ${q(0.5)} ms p99 ${q(0.99)} ms; status ${JSON.stringify(stats.status)}`);
h.check(stats.requests > Number(o.clients), 'every client made requests', stats.requests);
h.check(five.length === 0, 'no 5xx', stats.status);
h.check(other.length === 0, 'no unexpected 4xx', stats.status);
h.check(stats.bad.length === 0, 'every complete stream ends with [DONE] after a finish_reason', stats.bad);
h.check(stats.done > 0 && stats.cut > 0, 'both complete and cut streams happened', { done: stats.done, cut: stats.cut });
const m = await waitIdle(url, 30000);
h.check(m && m.parallax_kv_blocks_used === 0 && m.parallax_requests_running === 0 && m.parallax_requests_waiting === 0 &&
  m.parallax_requests_in_flight === 0, 'idle afterwards: all KV blocks free', m && { used: m.parallax_kv_blocks_used, running: m.parallax_requests_running,
  waiting: m.parallax_requests_waiting, in_flight: m.parallax_requests_in_flight });
const fin = await metrics(url);
console.log(`server_load: finished stop ${fin['parallax_requests_finished_total{reason="stop"}']}, length ${fin['parallax_requests_finished_total{reason="length"}']}, ` +
  `abort ${fin['parallax_requests_finished_total{reason="abort"}']}, error ${fin['parallax_requests_finished_total{reason="error"}']}`);
h.check(fin['parallax_requests_finished_total{reason="error"}'] === 0, 'no engine errors');
if (srv) {
  const st = await srv.stop();
  h.check(st.code === 0, 'the server exits 0 (sanitizers clean)', { ...st, log: srv.log().slice(-3000) });
}
h.finish();
