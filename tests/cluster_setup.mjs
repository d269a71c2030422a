// cluster_setup.mjs - choosing the model of a running `parallax run` (the web
// UI's Setup; docs/web.md, docs/cluster-live.md), without a browser:
//
//   setup state  `parallax run` without -m: /cluster/status says "setup"
//                (no model, no size), /v1 answers 503 model_not_chosen; a
//                worker that joins stands by and says it waits
//   models       GET /cluster/models lists the --model-dir models (one level
//                down), a directory that is no usable model (with its
//                error) and the Hugging Face cache's snapshots ($HF_HOME),
//                with architecture, layers, hidden size and bytes on disk
//   validation   POST /cluster/setup: bad JSON, no model, nodes outside
//                1..64 or not an integer -> 400; an unknown path or repo id
//                -> 404 naming it; a broken model -> 400 naming it; GET ->
//                405; a page of another origin, or a DNS-rebinding Host
//                header -> 403; every error an OpenAI error body
//   setup        POST {model, nodes: 2}: the standing-by worker loads its
//                slice (its progress seen between 0 and the total in
//                /cluster/status; the total = the file bytes of its
//                tensors), a second worker joins, the cluster serves
//   join         GET /cluster/join: the exact command with the token that
//                parallax run printed (loopback)
//   409          with a request in flight (the workers stopped with
//                SIGSTOP) another model is refused; once it is done the
//                switch happens: both workers reload the new model (a copy
//                in a fake HF cache, named by its repo id) and answer the
//                same text; the same model again only changes the node count
//   access       with --api-key: setup needs the key (401 without, even on
//                loopback), join and models are open to loopback; on a
//                non-loopback address (when this machine has one) setup,
//                join and models are refused (403) while /cluster/status
//                stays open
// Every process exits 0 on SIGTERM.
//
//   node tests/cluster_setup.mjs --parallax build/parallax --model ../shared/models/aidreams-260k --work /tmp/setup
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, harness, request, postJson, isErrorBody } from './server_common.mjs';
import { startScheduler, startWorker, status, waitStatus, greedy, sleep } from './cluster_common.mjs';

const args = parseArgs(process.argv, { work: path.join(os.tmpdir(), 'parallax-cluster-setup') });
const t = harness('cluster_setup');
const step = (s) => console.log(`-- ${s}`);

// ---- the models the scheduler can find ----
fs.rmSync(args.work, { recursive: true, force: true });
const modelsDir = path.join(args.work, 'models');
const src = path.resolve(args.model);
const aidreams = path.join(modelsDir, 'aidreams-260k');
fs.mkdirSync(aidreams, { recursive: true });
for (const f of fs.readdirSync(src)) if (fs.statSync(path.join(src, f)).isFile()) fs.copyFileSync(path.join(src, f), path.join(aidreams, f));
const broken = path.join(modelsDir, 'broken');
fs.mkdirSync(broken);
fs.writeFileSync(path.join(broken, 'config.json'), '{"architectures": ["NoSuchForCausalLM"], "num_hidden_layers": 2}');
fs.mkdirSync(path.join(modelsDir, 'not-a-model')); // no config.json: not listed
const hfHome = path.join(args.work, 'hf');
const snapshot = path.join(hfHome, 'hub', 'models--test--tiny-dreams', 'snapshots', '0123456789abcdef0123456789abcdef01234567');
fs.mkdirSync(snapshot, { recursive: true });
fs.mkdirSync(path.join(hfHome, 'hub', 'models--test--tiny-dreams', 'refs'), { recursive: true });
fs.writeFileSync(path.join(hfHome, 'hub', 'models--test--tiny-dreams', 'refs', 'main'), '0123456789abcdef0123456789abcdef01234567');
for (const f of fs.readdirSync(aidreams)) fs.symlinkSync(path.join(aidreams, f), path.join(snapshot, f)); // as the hub lays it out
const weightBytes = fs.statSync(path.join(aidreams, 'model.safetensors')).size;
const env = { HF_HOME: hfHome, HF_HUB_CACHE: '', HUGGINGFACE_HUB_CACHE: '', HF_HUB_OFFLINE: '1' };

const procs = [];
const getJ = async (url, headers = {}) => {
  const r = await request(url, { headers });
  try { r.json = JSON.parse(r.body); } catch { r.json = null; }
  return r;
};
const setup = (url, body, headers = {}) => postJson(`${url}/cluster/setup`, body, headers);
const errIs = (r, status, code, re) => r.status === status && isErrorBody(r.json) && (!code || r.json.error.code === code) &&
  (!re || re.test(r.json.error.message));

try {
  step('a scheduler without a model');
  const sched = await startScheduler(args.parallax, null, ['--model-dir', modelsDir, '--no-beacon', '--heartbeat-ms', '100',
    '--dead-after', '10', '--wire-dtype', 'f32', '--cluster-host', '127.0.0.1'], { stateDir: path.join(args.work, 'state'), env });
  procs.push(sched);
  t.check(/without a model yet/.test(sched.out) && /\/#\/setup/.test(sched.out), 'it says it waits for a model and where to choose it');
  let s = await status(sched.url);
  t.check(s.state === 'setup' && s.model === null && s.model_bytes === null && s.n_layers === 0, 'status: state setup, no model', s);
  let r = await getJ(`${sched.url}/v1/models`);
  t.check(errIs(r, 503, 'model_not_chosen', /no model is chosen/), '/v1/models: 503 no model chosen', r.body);
  r = await postJson(`${sched.url}/v1/completions`, { prompt: 'I dream of', max_tokens: 4 });
  t.check(errIs(r, 503, 'model_not_chosen'), '/v1/completions: 503 no model chosen', r.body);
  r = await postJson(`${sched.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }] });
  t.check(errIs(r, 503, 'model_not_chosen'), '/v1/chat/completions: 503 no model chosen', r.body);

  const slow = { PARALLAX_TEST_LOAD_DELAY_MS: '60' };
  const w1 = startWorker(args.parallax, sched, ['--node-id', 'w1', '-t', '1'], { env: slow });
  procs.push(w1);
  s = await waitStatus(sched.url, (x) => x.nodes.some((n) => n.id === 'w1' && n.state === 'standby'), 'w1 standing by', 30000);
  t.check(s.state === 'setup' && s.nodes[0].start === -1, 'a worker that joins before the setup stands by', s.nodes);
  await waitLog(w1, /waiting for the scheduler to choose a model/, 'the worker says it waits for a model');

  step('the models it finds');
  r = await getJ(`${sched.url}/cluster/models`);
  const list = r.json?.data ?? [];
  const byPath = (p) => list.find((x) => x.path === fs.realpathSync(p));
  const a = byPath(aidreams), b = byPath(broken), c = byPath(snapshot);
  t.check(r.status === 200 && !r.headers['access-control-allow-origin'], 'GET /cluster/models: 200 (no CORS header)', r.status);
  t.check(a && a.source === 'model-dir' && a.usable && a.architecture === 'LlamaForCausalLM' && a.layers === 4 && a.hidden === 64 &&
    a.bytes === weightBytes && !a.bytes_estimated && a.name === 'aidreams-260k' && a.current === false,
  'a --model-dir model with architecture, layers, hidden size and its bytes on disk', a);
  t.check(b && b.usable === false && /NoSuchForCausalLM|architecture/i.test(b.error ?? ''), 'a broken model is listed with its error', b);
  t.check(c && c.source === 'hf-cache' && c.name === 'test/tiny-dreams' && c.id === 'test/tiny-dreams' && c.bytes === weightBytes && c.usable,
    'a Hugging Face cache snapshot, named by its repo id', c);
  t.check(!list.some((x) => /not-a-model/.test(x.path)), 'a directory without config.json is not listed');

  step('bad set-up requests');
  const bad = [
    ['not JSON', '{"model":', 400, 'invalid_json'],
    ['not an object', '[1]', 400, 'invalid_json'],
    ['no model', { nodes: 1 }, 400, 'invalid_model'],
    ['an empty model', { model: '' }, 400, 'invalid_model'],
    ['nodes 0', { model: aidreams, nodes: 0 }, 400, 'invalid_nodes'],
    ['nodes 65', { model: aidreams, nodes: 65 }, 400, 'invalid_nodes'],
    ['nodes 2.5', { model: aidreams, nodes: 2.5 }, 400, 'invalid_nodes'],
    ['nodes "2"', { model: aidreams, nodes: '2' }, 400, 'invalid_nodes'],
    ['a control character', { model: 'a\u0001b' }, 400, 'invalid_model'],
  ];
  for (const [what, body, st, code] of bad) {
    r = await setup(sched.url, body);
    t.check(errIs(r, st, code), `${what} -> ${st} ${code}`, r.body);
  }
  r = await setup(sched.url, { model: '/no/such/model-dir', nodes: 1 });
  t.check(errIs(r, 404, 'model_not_found', /\/no\/such\/model-dir/), 'an unknown path -> 404 naming it', r.body);
  r = await setup(sched.url, { model: 'no-such-org/no-such-model', nodes: 1 });
  t.check(errIs(r, 404, 'model_not_found', /no-such-org\/no-such-model/), 'an unknown repo id (offline) -> 404 naming it', r.body);
  r = await setup(sched.url, { model: broken, nodes: 1 });
  t.check(errIs(r, 400, 'invalid_model', /broken/), 'a broken model -> 400 naming it', r.body);
  r = await getJ(`${sched.url}/cluster/setup`);
  t.check(errIs(r, 405), 'GET /cluster/setup -> 405', r.body);
  r = await setup(sched.url, { model: aidreams, nodes: 1 }, { Origin: 'http://evil.example' });
  t.check(errIs(r, 403, 'cross_origin'), 'a page of another origin -> 403', r.body);
  r = await setup(sched.url, { model: aidreams, nodes: 1 }, { Host: 'evil.example' });
  t.check(errIs(r, 403, 'forbidden'), 'a DNS-rebinding Host header -> 403', r.body);
  r = await getJ(`${sched.url}/cluster/join`, { Host: 'evil.example' });
  t.check(errIs(r, 403) && !r.body.includes(sched.token), 'the join secret is not given to a rebinding Host', r.body);
  r = await getJ(`${sched.url}/cluster/nope`);
  t.check(errIs(r, 404, 'not_found'), 'an unknown /cluster/ route -> 404', r.body);
  t.check((await status(sched.url)).state === 'setup', 'none of it chose a model');

  step('join command');
  r = await getJ(`${sched.url}/cluster/join`);
  t.check(r.status === 200 && r.json.command === `parallax join -s 127.0.0.1:${sched.clusterPort} --token ${sched.token}` &&
    r.json.token === sched.token && r.json.cluster_port === sched.clusterPort && !r.headers['access-control-allow-origin'],
  'GET /cluster/join (loopback): the exact command parallax run printed', r.body);
  t.check(sched.out.includes(r.json?.command ?? '???'), 'the same command as in the log');
  t.check(!JSON.stringify(await status(sched.url)).includes(sched.token), 'the status never carries the token');

  step('choosing the model');
  r = await setup(sched.url, { model: aidreams, nodes: 2 });
  t.check(r.status === 200 && r.json.model === 'aidreams-260k' && r.json.n_layers === 4 && r.json.workers_needed === 2 &&
    r.json.model_bytes === weightBytes, 'POST /cluster/setup: 200 with the model', r.body);
  const seen = [];
  s = await waitStatus(sched.url, (x) => {
    const n = x.nodes.find((y) => y.id === 'w1');
    if (n) seen.push([n.state, n.load_done, n.load_total, n.progress]);
    return n && n.state === 'serving';
  }, 'w1 serving', 60000);
  const mid = seen.filter(([st, d, tot, p]) => st === 'loading' && tot > 0 && d > 0 && d < tot && p > 0 && p < 1);
  t.check(mid.length > 0, 'while w1 loads, the status shows bytes loaded between 0 and the total', seen.slice(0, 8));
  const increasing = mid.every((x, i) => i === 0 || x[1] >= mid[i - 1][1]);
  t.check(increasing, 'and they only grow', mid);
  const w1n = s.nodes.find((y) => y.id === 'w1');
  t.check(w1n.progress === 1 && w1n.load_total > weightBytes * 0.9 && w1n.load_total <= weightBytes, 'once serving: progress 1, total ~ its tensors', w1n);
  t.check(s.state === 'waiting' && s.model === 'aidreams-260k' && s.model_bytes === weightBytes && s.workers_needed === 2 &&
    s.n_layers === 4, 'status: the model, its bytes, waiting for 2 workers', s);
  const w2 = startWorker(args.parallax, sched, ['--node-id', 'w2', '-t', '1']);
  procs.push(w2);
  s = await waitStatus(sched.url, (x) => x.state === 'available', 'the cluster available', 60000);
  r = await getJ(`${sched.url}/v1/models`);
  t.check(r.status === 200 && r.json.data[0].id === 'aidreams-260k' && r.json.data[0].max_model_len === 128, '/v1/models names the model', r.body);
  const want = await greedy(sched.url, 'I dream of', 24);
  t.check(typeof want.text === 'string' && want.text.length > 0, 'a completion through the cluster', want);

  step('a request in flight blocks a switch (409)');
  for (const w of [w1, w2]) w.proc.kill('SIGSTOP'); /* whichever pipeline it takes, it cannot finish */
  const inflight = greedy(sched.url, 'Once upon a time', 8);
  await waitStatus(sched.url, (x) => x.requests.running + x.requests.waiting === 1, 'the request in flight', 10000);
  r = await setup(sched.url, { model: snapshot, nodes: 2 });
  t.check(errIs(r, 409, 'busy', /in flight/), 'another model while a request is in flight -> 409', r.body);
  t.check((await status(sched.url)).model === 'aidreams-260k', 'the model did not change');
  for (const w of [w1, w2]) w.proc.kill('SIGCONT');
  const done = await inflight;
  t.check(typeof done.text === 'string', 'the request finishes', done);

  step('switching to another model');
  const before = w1.out.length;
  r = await setup(sched.url, { model: snapshot, nodes: 2 });
  t.check(r.status === 200 && r.json.model === 'test/tiny-dreams' && r.json.model_path === fs.realpathSync(snapshot),
    'the cache snapshot, served as its repo id', r.body);
  s = await waitStatus(sched.url, (x) => x.state === 'available' && x.model === 'test/tiny-dreams' &&
    x.nodes.every((n) => n.state === 'serving'), 'the new model served by both', 60000);
  t.check(s.nodes.length === 2 && s.nodes.every((n) => n.state === 'serving'), 'both workers serve it', s.nodes);
  await waitLog(w1, /now serves .*tiny-dreams/, 'w1 heard of the new model', before);
  t.check(/loading layers .* of .*tiny-dreams/.test(w1.out.slice(before)) || /loading layers .* of .*tiny-dreams/.test(w2.out),
    'a worker reloaded its slice from it');
  r = await getJ(`${sched.url}/v1/models`);
  t.check(r.status === 200 && r.json.data[0].id === 'test/tiny-dreams', '/v1/models names the new model', r.body);
  const again = await greedy(sched.url, 'I dream of', 24);
  t.check(again.text === want.text, 'the same weights answer the same', { again: again.text, want: want.text });
  r = await getJ(`${sched.url}/cluster/models`);
  t.check(r.json.data.find((x) => x.path === fs.realpathSync(snapshot))?.current === true, 'the list marks it current');

  step('the same model again: only the node count');
  const mark = [w1.out.length, w2.out.length];
  r = await setup(sched.url, { model: snapshot, nodes: 1 });
  t.check(r.status === 200 && r.json.workers_needed === 1, 'same model, nodes 1: 200', r.body);
  await sleep(600);
  s = await status(sched.url);
  t.check(s.workers_needed === 1 && s.state === 'available', 'the status waits for 1 now', s.workers_needed);
  t.check(!/loading layers/.test(w1.out.slice(mark[0])) && !/loading layers/.test(w2.out.slice(mark[1])), 'nothing reloads');

  for (const p of [w1, w2]) {
    const e = await p.stop();
    t.check(e.code === 0, `worker exits 0 (${e.code})`, p.code === 0 ? undefined : p.out.slice(-1500));
  }
  const e = await sched.stop();
  t.check(e.code === 0, 'the scheduler exits 0', e.code === 0 ? undefined : sched.out.slice(-2000));

  step('--api-key');
  const keyed = await startScheduler(args.parallax, null, ['--model-dir', modelsDir, '--no-beacon', '--api-key', 'k-123'],
    { stateDir: path.join(args.work, 'state2'), env });
  procs.push(keyed);
  r = await setup(keyed.url, { model: aidreams, nodes: 1 });
  t.check(errIs(r, 401, 'invalid_api_key'), 'setup without the key -> 401, even on loopback', r.body);
  r = await setup(keyed.url, { model: aidreams, nodes: 1 }, { Authorization: 'Bearer wrong' });
  t.check(errIs(r, 401, 'invalid_api_key'), 'a wrong key -> 401', r.body);
  r = await getJ(`${keyed.url}/cluster/join`);
  t.check(r.status === 200 && r.json.token === keyed.token, 'join: loopback gets it without the key');
  r = await getJ(`${keyed.url}/cluster/models`);
  t.check(r.status === 200 && Array.isArray(r.json.data), 'models: loopback lists them without the key');
  r = await setup(keyed.url, { model: aidreams, nodes: 1 }, { Authorization: 'Bearer k-123' });
  t.check(r.status === 200 && r.json.model === 'aidreams-260k', 'setup with the key -> 200', r.body);
  r = await getJ(`${keyed.url}/v1/models`);
  t.check(errIs(r, 401), '/v1 still needs the key', r.status);
  const e2 = await keyed.stop();
  t.check(e2.code === 0, 'the scheduler with a key exits 0', e2.code === 0 ? undefined : keyed.out.slice(-2000));

  step('a client that is not on loopback');
  const lan = Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal);
  if (!lan) console.log('SKIP (part): this machine has no non-loopback IPv4 address');
  else {
    const open = await startScheduler(args.parallax, null, ['--no-beacon', '--model-dir', modelsDir],
      { stateDir: path.join(args.work, 'state3'), env, host: '0.0.0.0' });
    procs.push(open);
    const far = `http://${lan.address}:${open.port}`;
    r = await setup(far, { model: aidreams, nodes: 1 });
    t.check(errIs(r, 403, 'forbidden', /loopback/), `setup from ${lan.address} -> 403`, r.body);
    r = await getJ(`${far}/cluster/join`);
    t.check(errIs(r, 403, 'forbidden') && !r.body.includes(open.token), 'the join secret is refused too', r.body);
    r = await getJ(`${far}/cluster/status`);
    t.check(r.status === 200 && !r.body.includes(open.token), 'while the status stays open (without the token)');
    r = await getJ(`${far}/cluster/models`);
    t.check(errIs(r, 403, 'forbidden') && !r.body.includes(modelsDir), 'the model list (local paths) is refused too', r.body);
    r = await setup(`http://127.0.0.1:${open.port}`, { model: aidreams, nodes: 1 });
    t.check(r.status === 200, 'the same server accepts it from loopback', r.body);
    const e3 = await open.stop();
    t.check(e3.code === 0, 'that scheduler exits 0', e3.code === 0 ? undefined : open.out.slice(-2000));
  }
} catch (e) {
  t.check(false, 'the run completed', e.stack ?? String(e));
  for (const p of procs) if (p.code === undefined) console.error(p.out.slice(-2000));
} finally {
  for (const p of procs) if (p.code === undefined) await p.stop();
}
t.finish();

async function waitLog(p, re, what, from = 0, ms = 15000) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (re.test(p.out.slice(from))) return t.check(true, what);
    await sleep(50);
  }
  return t.check(false, what, p.out.slice(-1000));
}
