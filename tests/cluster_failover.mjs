// cluster_failover.mjs - a worker dies mid-answer and nobody notices but
// the clock. A random 6-layer Llama-shaped model (vocab 512, the aidreams
// tokenizer) runs on three workers with manual slices [0,2) [2,4) [4,6) plus
// a spare without a slice. Eight greedy streams start; when every stream
// has streamed at least 8 pieces, the middle worker is killed with SIGKILL.
// Every stream must then finish normally ([DONE], finish_reason "length",
// no error) with exactly the text `parallax serve` gives for its prompt
// (so no token was lost or duplicated), the scheduler must show the
// re-routes and no failed request, and a new request must be served
// correctly. It reports how long the streams paused. Last, a worker that
// stops answering (SIGSTOP) is timed out and, back (SIGCONT), rejoins once;
// the streams it held wait and then finish exactly.
//   node tests/cluster_failover.mjs --parallax BUILD/parallax --make-model BUILD/make_random_model --model AIDREAMS
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { harness, parseArgs, startServer } from './server_common.mjs';
import { startScheduler, startWorker, waitStatus, status, streamGreedy, greedy, sleep } from './cluster_common.mjs';

const o = parseArgs(process.argv, { work: '/tmp/px-cluster-failover', tokens: '96', streams: '8', victim: 'w2' });
const h = harness('cluster_failover');
const N = Number(o.streams), T = Number(o.tokens);
fs.mkdirSync(o.work, { recursive: true });

// ---- the model: compute in the layers, a small vocabulary ----
const dir = path.join(o.work, 'llama-random-6l');
if (!fs.existsSync(path.join(dir, 'model.safetensors'))) {
  fs.rmSync(dir, { recursive: true, force: true });
  execFileSync(o.makeModel, ['--arch', 'llama', '--layers', '6', '--hidden', '256', '--heads', '8', '--kv-heads', '4',
    '--head-dim', '32', '--intermediate', '768', '--vocab', '512', '--max-pos', '1024', '--no-rope-scaling', '--hf-out', dir, '--quiet']);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(o.model, f), path.join(dir, f));
}
const prompts = Array.from({ length: N }, (_, i) => `Stream ${i}: once upon a time there was a ${['cat', 'dog', 'robot', 'tree'][i % 4]}`);

// ---- reference: parallax serve, the same prompts concurrently ----
const srv = await startServer(o.parallax, ['-m', dir, '-t', '1']);
const want = await Promise.all(prompts.map((p) => greedy(srv.url, p, T)));
h.check((await srv.stop()).code === 0, 'parallax serve exits 0');
h.check(want.every((w) => w.tokens && w.tokens.length === T), 'reference answers have all their tokens');

// ---- the cluster: one scenario per spare ----
async function scenario(name, spareArgs) {
const sched = await startScheduler(o.parallax, dir, ['--wire-dtype', 'f32', '--no-beacon', '--dead-after', '3'],
  { stateDir: path.join(o.work, 'state') });
const workers = {};
for (const [id, s, e] of [['w1', 0, 2], ['w2', 2, 4], ['w3', 4, 6]])
  workers[id] = startWorker(o.parallax, sched, ['--start-layer', `${s}`, '--end-layer', `${e}`, '--node-id', id, '-t', '1']);
await waitStatus(sched.url, (x) => x.state === 'available', 'the 3-stage pipeline', 60000);
workers.spare = startWorker(o.parallax, sched, ['--node-id', 'spare', '-t', '1', ...spareArgs]);
const st0 = await waitStatus(sched.url, (x) => x.nodes.length === 4 && x.nodes.every((n) => n.state === 'serving' || n.state === 'standby'),
  'the spare to settle', 60000);
const spare0 = st0.nodes.find((n) => n.id === 'spare');
console.log(`cluster_failover[${name}]: spare placed at [${spare0.start}, ${spare0.end}) (${spare0.state}); pipelines ${JSON.stringify(st0.pipelines.map((p) => p.map((x) => x.node)))}`);

let killedAt = 0;
const progress = new Array(N).fill(0);
const killWhenReady = (async () => {
  while (!progress.every((c) => c >= 8)) await sleep(5);
  killedAt = Date.now();
  await workers[o.victim].kill9();
  console.log(`cluster_failover[${name}]: killed ${o.victim} with SIGKILL when the streams had ${progress.join(',')} pieces`);
})();
const got = await Promise.all(prompts.map((p, i) => streamGreedy(sched.url, p, T, (_, n) => { progress[i] = n; })));
await killWhenReady;

for (let i = 0; i < N; i++) {
  const g = got[i];
  h.check(g.status === 200 && g.done && !g.error && g.finish === 'length', `${name}: stream ${i} ended normally`, { status: g.status, error: g.error, finish: g.finish });
  h.check(g.text === want[i].text, `${name}: stream ${i} = parallax serve (no lost or duplicated token)`, { got: g.text, want: want[i].text });
}
// the pause: the longest gap between pieces after the kill
let pause = 0;
for (const g of got)
  for (let k = 1; k < g.times.length; k++) if (g.times[k] >= killedAt) pause = Math.max(pause, g.times[k] - Math.max(g.times[k - 1], killedAt));
console.log(`cluster_failover[${name}]: longest stream pause after the kill: ${pause} ms`);

const st = await status(sched.url);
h.check(st.requests.failed === 0, `${name}: no request failed`, st.requests);
h.check(st.requests.reroutes >= 1, `${name}: re-routes happened`, st.requests);
h.check(!st.nodes.some((n) => n.id === o.victim), `${name}: ${o.victim} is gone from the cluster`, st.nodes.map((n) => n.id));
h.check(st.state === 'available', `${name}: the cluster is available again`, st.state);
console.log(`cluster_failover[${name}]: after: ${JSON.stringify(st.pipelines.map((p) => p.map((x) => `${x.node}[${x.start},${x.end})`)))}, ` +
  `reroutes ${st.requests.reroutes}`);

// new requests are served correctly
const again = await greedy(sched.url, prompts[0], T);
h.check(again.text === want[0].text, `${name}: a new request after the failure = serve`, { got: again.text, want: want[0].text });

for (const [id, w] of Object.entries(workers)) {
  if (id === o.victim) continue;
  const r = await w.stop();
  h.check(r.code === 0, `${name}: worker ${id} exits 0`, { code: r.code, log: w.out.slice(-1500) });
}
const r = await sched.stop();
h.check(r.code === 0, `${name}: scheduler exits 0`, { code: r.code, log: sched.out.slice(-3000) });
if (o.verbose) console.log(sched.out);
return st;
}

// a spare that can hold 2 of the 6 layers (~1.6 MB each): it replicates a
// window, and when the middle worker dies the scheduler moves it there
const a = await scenario('small spare', ['--memory', '5000000']);
h.check(a.nodes.some((n) => n.id === 'spare' && n.start === 2 && n.end === 4), 'small spare: it took over the middle slice [2, 4)',
  a.nodes.map((n) => [n.id, n.start, n.end]));
// a spare that holds the whole model: a second pipeline takes the requests
await scenario('big spare', []);

// a worker that stops answering (SIGSTOP) is timed out; its streams wait
// (no other pipeline); when it comes back (SIGCONT) it is told to join
// again, rejoins once, and the streams finish exactly
{
  const sched = await startScheduler(o.parallax, dir, ['--wire-dtype', 'f32', '--no-beacon', '--dead-after', '1.5'],
    { stateDir: path.join(o.work, 'state') });
  const ws = [['w1', 0, 3], ['w2', 3, 6]].map(([id, s, e]) =>
    startWorker(o.parallax, sched, ['--start-layer', `${s}`, '--end-layer', `${e}`, '--node-id', id, '-t', '1']));
  await waitStatus(sched.url, (x) => x.state === 'available', 'the 2-stage pipeline', 60000);
  const progress = [0, 0];
  let stopped = false;
  const pauser = (async () => {
    while (!progress.every((c) => c >= 8)) await sleep(5);
    ws[1].proc.kill('SIGSTOP');
    stopped = true;
    await waitStatus(sched.url, (x) => !x.nodes.some((n) => n.id === 'w2'), 'w2 timed out', 20000);
    h.check(true, 'pause: the silent worker is removed after --dead-after');
    await sleep(500);
    ws[1].proc.kill('SIGCONT');
  })();
  const got = await Promise.all([0, 1].map((i) => streamGreedy(sched.url, prompts[i], T, (_, n) => { progress[i] = n; })));
  await pauser;
  for (let i = 0; i < 2; i++)
    h.check(got[i].done && !got[i].error && got[i].text === want[i].text, `pause: stream ${i} = serve after the worker came back`,
      { got: got[i].text, want: want[i].text, error: got[i].error });
  h.check(stopped, 'pause: the worker was stopped mid-stream');
  const joins = (sched.out.match(/worker w2 joined/g) || []).length;
  h.check(joins === 2, 'pause: w2 joined twice (at start and once after the pause)', joins);
  const st = await status(sched.url);
  h.check(st.state === 'available' && st.requests.failed === 0, 'pause: available again, nothing failed', st.requests);
  for (const w of ws) h.check((await w.stop()).code === 0, 'pause: worker exits 0', w.out.slice(-1000));
  h.check((await sched.stop()).code === 0, 'pause: scheduler exits 0');
}
h.finish();
