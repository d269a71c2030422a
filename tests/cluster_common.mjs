// cluster_common.mjs - what the cluster tests share: starting `parallax run`
// (HTTP and cluster ports picked by the OS, read back from its log and its
// printed join command) and `parallax join` workers (optionally inside a
// network namespace), waiting on /cluster/status, greedy completions, and
// stopping everything with SIGTERM (exit code 0 expected, so ASan leaks and
// crashes fail the test). Builds on server_common.mjs.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { request, postJson } from './server_common.mjs';

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// Every process we start is killed when the test exits, however it exits.
const children = new Set();
process.on('exit', () => { for (const c of children) try { c.kill('SIGKILL'); } catch { /* gone */ } });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
process.on('uncaughtException', (e) => { console.error(e); process.exit(1); });
process.on('unhandledRejection', (e) => { console.error(e); process.exit(1); });

function track(proc, quiet, prefix) {
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  const p = { proc, out: '', exited: null, code: undefined };
  const on = (d) => {
    p.out += d.toString();
    if (!quiet) process.stderr.write(`${prefix}${d}`);
  };
  proc.stdout.on('data', on);
  proc.stderr.on('data', on);
  p.exited = new Promise((ok) => proc.on('exit', (code, sig) => { p.code = code; p.signal = sig; ok({ code, sig }); }));
  p.stop = async (ms = 30000) => {
    if (p.code === undefined) proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), ms);
    const r = await p.exited;
    clearTimeout(t);
    return r;
  };
  p.kill9 = async () => { proc.kill('SIGKILL'); return p.exited; };
  return p;
}

// Optional `ns`: run inside `ip netns exec NS`.
function spawnIn(ns, cmd, args, env) {
  if (!ns) return spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return spawn('ip', ['netns', 'exec', ns, cmd, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

// `parallax run -m MODEL ARGS` (model null: no -m, the "setup" state):
// resolves {url, clusterPort, token, ...process}.
export function startScheduler(parallax, model, args = [], { ns, stateDir, quiet = true, timeoutMs = 60000, host = '127.0.0.1', env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const all = ['run', ...(model ? ['-m', model] : []), '--port', '0', '--cluster-port', '0', '--host', host, ...args];
    if (stateDir) all.push('--state-dir', stateDir);
    const p = track(spawnIn(ns, parallax, all, env), quiet, '[run] ');
    let done = false;
    const timer = setTimeout(() => { if (!done) { done = true; p.proc.kill('SIGKILL'); reject(new Error(`scheduler did not start:\n${p.out}`)); } }, timeoutMs);
    const check = () => {
      const m = /HTTP on http:\/\/([^\s,]+):(\d+), cluster port (\d+)/.exec(p.out);
      const t = /--token (px1_[A-Za-z0-9_-]+)/.exec(p.out);
      if (m && t && !done) {
        done = true;
        clearTimeout(timer);
        Object.assign(p, { url: `http://${m[1]}:${m[2]}`, port: Number(m[2]), clusterPort: Number(m[3]), token: t[1] });
        resolve(p);
      }
    };
    p.proc.stdout.on('data', check);
    p.proc.stderr.on('data', check);
    p.exited.then(({ code }) => { if (!done) { done = true; clearTimeout(timer); reject(new Error(`scheduler exited with ${code}:\n${p.out}`)); } });
  });
}

// `parallax join -s ADDR --token T ARGS` (not waited for).
export function startWorker(parallax, sched, args = [], { ns, quiet = true, token, addr, env = {} } = {}) {
  const all = ['join', '-s', addr ?? `127.0.0.1:${sched.clusterPort}`, '--token', token ?? sched.token, '--no-probe', ...args];
  return track(spawnIn(ns, parallax, all, env), quiet, `[join ${args.join(' ')}] `);
}

export async function status(url) {
  const r = await request(`${url}/cluster/status`);
  return JSON.parse(r.body);
}

// Polls /cluster/status until pred(status) holds; returns it (or throws).
export async function waitStatus(url, pred, what, ms = 60000) {
  const t0 = Date.now();
  let s;
  while (Date.now() - t0 < ms) {
    try {
      s = await status(url);
      if (pred(s)) return s;
    } catch { /* not up yet */ }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s)}`);
}

// Manual slices splitting L layers into k contiguous stages.
export function slices(L, k) {
  const out = [];
  for (let i = 0; i < k; i++) out.push([Math.floor((i * L) / k), Math.floor(((i + 1) * L) / k)]);
  return out;
}

// Starts k workers with manual slices and waits for one k-stage pipeline.
export async function startPipeline(parallax, sched, L, k, { extra = [], ns = [], idPrefix = 'w', addr, env = {} } = {}) {
  const workers = slices(L, k).map(([s, e], i) =>
    startWorker(parallax, sched, ['--start-layer', String(s), '--end-layer', String(e), '--node-id', `${idPrefix}${i + 1}`,
      '-t', '1', ...extra], { ns: ns[i], addr: typeof addr === 'function' ? addr(i) : addr, env: typeof env === 'function' ? env(i) : env }));
  const died = Promise.race(workers.map((w) => w.exited.then((r) => { throw new Error(`a worker exited (${JSON.stringify(r)}):\n${w.out}`); })));
  await Promise.race([died, waitStatus(sched.url, (s) => s.state === 'available' && s.pipelines.some((p) => p.length === k),
    `a ${k}-stage pipeline`)]);
  died.catch(() => {}); /* later exits (SIGTERM at the end) are not errors */
  return workers;
}

// A greedy completion: {text, finish, tokens (logprob token strings), logprobs}.
export async function greedy(url, prompt, maxTokens = 32, extra = {}) {
  const r = await postJson(`${url}/v1/completions`, { prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, logprobs: 1, ...extra });
  if (r.status !== 200) return { error: r.body, status: r.status };
  const c = r.json.choices[0];
  return { text: c.text, finish: c.finish_reason, tokens: c.logprobs?.tokens, logprobs: c.logprobs?.token_logprobs, usage: r.json.usage };
}

// A streamed greedy completion: resolves {text, chunks, times[]} ; onChunk(text so far).
export function streamGreedy(url, prompt, maxTokens, onChunk = () => {}, extra = {}) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true, ...extra });
    const u = new URL(`${url}/v1/completions`);
    const req = http.request(u, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
      let buf = '', text = '', chunks = 0, finish = null, error = null, done = false;
      const times = [];
      res.on('data', (d) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (!ev.startsWith('data: ')) continue;
          const data = ev.slice(6);
          if (data === '[DONE]') { done = true; continue; }
          const j = JSON.parse(data);
          if (j.error) { error = j.error; continue; }
          for (const c of j.choices) {
            if (c.text) { text += c.text; chunks++; times.push(Date.now()); onChunk(text, chunks); }
            if (c.finish_reason) finish = c.finish_reason;
          }
        }
      });
      res.on('end', () => resolve({ status: res.statusCode, text, chunks, finish, error, done, times }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

// `parallax serve` answers for the same prompts (the reference).
export async function serveAnswers(startServer, parallax, model, prompts, maxTokens, extraArgs = []) {
  const srv = await startServer(parallax, ['-m', model, '-t', '1', ...extraArgs]);
  const out = [];
  for (const p of prompts) out.push(await greedy(srv.url, p, maxTokens));
  const r = await srv.stop();
  return { answers: out, exit: { ...r, log: r.code === 0 ? undefined : srv.log().slice(-3000) } };
}

export function readJson(path) { return JSON.parse(fs.readFileSync(path, 'utf8')); }
