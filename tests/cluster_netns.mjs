// cluster_netns.mjs - the cluster across "machines": the scheduler and every
// worker in its own network namespace, all joined by veth pairs to a bridge
// in another namespace the test creates (10.77.N.0/24; nothing touches the
// host's interfaces; everything is deleted at the end). Needs root and
// iproute2; skips (77) otherwise.
//   - exactness: 1, 2, 3 and 4 stages, --wire-dtype f32, the aidreams
//     reference prompts = parallax serve (run on the host's loopback); the
//     workers of the 2-stage case find the scheduler with `-s auto` (the
//     UDP beacon on the bridge), the others with -s 10.77.N.1:PORT
//   - WAN: the links of two of four workers (two replicas of each half of
//     the model) get 10 ms of delay and 100 Mbit/s: answers stay exact and,
//     once RTTs are measured, sequential requests all take the low-RTT chain.
//     The delay comes from tools/link_delay, a layer-2 wire spliced in
//     between the worker's veth and the bridge (the kernels here have no tc
//     netem); the rate from tc tbf on the worker's interface.
//   node tests/cluster_netns.mjs --parallax BUILD/parallax --model AIDREAMS --link-delay BUILD/tools/link_delay
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { harness, parseArgs, startServer, skipUnless } from './server_common.mjs';
import { startScheduler, startWorker, greedy, sleep, slices, readJson } from './cluster_common.mjs';

const o = parseArgs(process.argv, { work: '/tmp/px-cluster-netns' });
const h = harness('cluster_netns');
await skipUnless(process.getuid && process.getuid() === 0, 'needs root (network namespaces)');
await skipUnless(spawnSync('ip', ['-V']).status === 0, 'needs iproute2 (ip)');
fs.mkdirSync(o.work, { recursive: true });
const state = path.join(o.work, 'state');

const tag = (process.pid % 100000).toString(36);
const net = 10 + (process.pid % 200); // 10.77.<net>.0/24
const BR = `pxbr-${tag}`;
const nsName = (i) => `pxn${i}-${tag}`;
const ipOf = (i) => `10.77.${net}.${i + 1}`;
const made = [];
const ip = (...args) => execFileSync('ip', args, { stdio: 'pipe' }).toString();
const inNs = (ns, cmd, ...args) => execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: 'pipe' }).toString();

const delayLines = [];

function cleanup() {
  for (const p of delayLines) p.kill('SIGTERM');
  for (const ns of made.reverse()) spawnSync('ip', ['netns', 'del', ns]);
  made.length = 0;
}
process.on('exit', cleanup);

function setupNet(n) {
  ip('netns', 'add', BR);
  made.push(BR);
  ip('-n', BR, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', BR, 'link', 'set', 'br0', 'up');
  for (let i = 0; i < n; i++) {
    const ns = nsName(i);
    ip('netns', 'add', ns);
    made.push(ns);
    ip('-n', BR, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', `e${i}`);
    ip('-n', BR, 'link', 'set', `e${i}`, 'netns', ns);
    ip('-n', BR, 'link', 'set', `v${i}`, 'master', 'br0', 'up');
    ip('-n', ns, 'link', 'set', `e${i}`, 'name', 'eth0');
    ip('-n', ns, 'addr', 'add', `${ipOf(i)}/24`, 'brd', '+', 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
}

// Splices a wire with `ms` of delay (frames leaving namespace i) between
// namespace i's veth and the bridge, and limits what i sends to 100 Mbit/s.
async function addWanLink(i, ms) {
  ip('-n', BR, 'link', 'set', `v${i}`, 'nomaster');
  ip('-n', BR, 'link', 'add', `x${i}`, 'type', 'veth', 'peer', 'name', `y${i}`);
  ip('-n', BR, 'link', 'set', `y${i}`, 'master', 'br0', 'up');
  ip('-n', BR, 'link', 'set', `x${i}`, 'up');
  inNs(nsName(i), 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', '100mbit', 'burst', '64kb', 'latency', '50ms');
  const p = spawn('ip', ['netns', 'exec', BR, o.linkDelay, `v${i}`, `x${i}`, `${ms}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  delayLines.push(p);
  let err = '';
  await new Promise((resolve, reject) => {
    p.stderr.on('data', (d) => { err += d; if (err.includes('\n')) resolve(); });
    p.on('exit', (code) => reject(new Error(`link_delay exited ${code}: ${err}`)));
  });
  if (!/ms, /.test(err)) throw new Error(`link_delay did not start: ${err}`);
}

// HTTP inside the scheduler's namespace, through curl.
function nsCurl(ns, url, body) {
  const args = ['-s', '--max-time', '120', url];
  if (body) args.push('-H', 'Content-Type: application/json', '-d', JSON.stringify(body));
  return JSON.parse(inNs(ns, 'curl', ...args));
}
async function nsWait(ns, url, pred, what, ms = 60000) {
  const t0 = Date.now();
  let s;
  while (Date.now() - t0 < ms) {
    try { s = nsCurl(ns, `${url}/cluster/status`); if (pred(s)) return s; } catch { /* not yet */ }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s)}`);
}
function nsGreedy(ns, url, prompt, n) {
  const j = nsCurl(ns, `${url}/v1/completions`, { prompt, max_tokens: n, temperature: 0, ignore_eos: true, logprobs: 1 });
  const c = j.choices[0];
  return { text: c.text, finish: c.finish_reason, tokens: c.logprobs?.tokens, logprobs: c.logprobs?.token_logprobs, usage: j.usage };
}
const same = (a, b) => a.text === b.text && JSON.stringify(a.tokens) === JSON.stringify(b.tokens) && JSON.stringify(a.logprobs) === JSON.stringify(b.logprobs);

const N = 5; // namespace 0: scheduler; 1..4: workers
try { setupNet(N); } catch (e) { cleanup(); await skipUnless(false, `cannot create network namespaces: ${e.message}`); }

const ref = readJson(path.join(o.model, 'reference', 'greedy_32.json')).results.map((r) => r.prompt);
const srv = await startServer(o.parallax, ['-m', o.model, '-t', '1']);
const want = [];
for (const p of ref) want.push(await greedy(srv.url, p, 32));
await srv.stop();

async function runCluster(k, { auto = false, label } = {}) {
  const beaconPort = 20000 + (process.pid % 20000);
  const sched = await startScheduler(o.parallax, o.model, ['--wire-dtype', 'f32', '--cluster-host', '0.0.0.0',
    ...(auto ? ['--beacon-port', `${beaconPort}`] : ['--no-beacon'])], { ns: nsName(0), stateDir: state, host: '0.0.0.0' });
  const url = `http://127.0.0.1:${sched.port}`;
  const workers = slices(4, k).map(([s, e], i) => startWorker(o.parallax, sched,
    ['--start-layer', `${s}`, '--end-layer', `${e}`, '--node-id', `n${i + 1}`, '-t', '1', ...(auto ? ['--beacon-port', `${beaconPort}`] : [])],
    { ns: nsName(i + 1), addr: auto ? 'auto' : `${ipOf(0)}:${sched.clusterPort}` }));
  const st = await nsWait(nsName(0), url, (s) => s.state === 'available' && s.pipelines.some((p) => p.length === k), `${label}`);
  h.check(st.nodes.every((n) => n.rtt_ms !== undefined), `${label}: status lists the nodes`);
  for (let i = 0; i < ref.length; i++) {
    const got = nsGreedy(nsName(0), url, ref[i], 32);
    h.check(same(got, want[i]), `${label}: prompt ${i} = serve`, { got: got.text, want: want[i].text });
  }
  if (auto) h.check(workers.every((w) => /found the scheduler at tcp:\/\/10\.77\./.test(w.out)), `${label}: workers found the scheduler by beacon`,
    workers.map((w) => w.out.slice(0, 400)));
  for (const w of workers) h.check((await w.stop()).code === 0, `${label}: worker exits 0`);
  h.check((await sched.stop()).code === 0, `${label}: scheduler exits 0`, sched.out.slice(-1500));
}

for (const k of [1, 2, 3, 4]) await runCluster(k, { auto: k === 2, label: `${k} stages across namespaces${k === 2 ? ' (-s auto)' : ''}` });

// ---- WAN: 10 ms + 100 Mbit/s on two of four workers; routing prefers the fast chain ----
{
  await addWanLink(3, 10);
  await addWanLink(4, 10);
  const sched = await startScheduler(o.parallax, o.model, ['--wire-dtype', 'f32', '--cluster-host', '0.0.0.0', '--no-beacon'],
    { ns: nsName(0), stateDir: state, host: '0.0.0.0' });
  const url = `http://127.0.0.1:${sched.port}`;
  // fast chain: a1 [0,2) in ns1 + b1 [2,4) in ns2; slow: a2 in ns3, b2 in ns4 (10 ms on what they send)
  const spec = [['a1', 1, 0, 2], ['b1', 2, 2, 4], ['a2', 3, 0, 2], ['b2', 4, 2, 4]];
  const workers = spec.map(([id, n, s, e]) => startWorker(o.parallax, sched, ['--start-layer', `${s}`, '--end-layer', `${e}`,
    '--node-id', id, '-t', '1'], { ns: nsName(n), addr: `${ipOf(0)}:${sched.clusterPort}` }));
  // wait until every worker measured its RTTs to the others
  const st = await nsWait(nsName(0), url, (s) => s.nodes.length === 4 && s.nodes.every((n) => Object.keys(n.rtt_ms).length === 3),
    'RTT measurements', 60000);
  const rtt = Object.fromEntries(st.nodes.map((n) => [n.id, n.rtt_ms]));
  console.log(`cluster_netns: measured RTTs (ms): ${JSON.stringify(rtt)}`);
  // the delay is on what a2 and b2 send: 10 ms between a2 or b2 and the fast
  // pair, 20 ms between a2 and b2
  h.check(rtt.a2.b1 > 8 && rtt.a1.b2 > 8 && rtt.a2.b2 > 16 && rtt.a1.b1 < 5, 'delayed links measure 10-20 ms RTT, the others < 5 ms', rtt);
  const before = Object.fromEntries(st.nodes.map((n) => [n.id, n.positions]));
  for (let i = 0; i < ref.length; i++) {
    const got = nsGreedy(nsName(0), url, ref[i], 32);
    h.check(same(got, want[i]), `WAN: prompt ${i} = serve`, { got: got.text, want: want[i].text });
  }
  const after = await nsWait(nsName(0), url, (s) => s.nodes.find((n) => n.id === 'a1').positions > before.a1, 'heartbeats', 5000);
  const used = Object.fromEntries(after.nodes.map((n) => [n.id, n.positions - before[n.id]]));
  console.log(`cluster_netns: positions computed per node during the WAN requests: ${JSON.stringify(used)}`);
  h.check(used.a1 > 0 && used.b1 > 0 && used.a2 === 0 && used.b2 === 0, 'sequential requests all took the low-RTT chain a1 -> b1', used);
  for (const w of workers) h.check((await w.stop()).code === 0, 'WAN: worker exits 0');
  h.check((await sched.stop()).code === 0, 'WAN: scheduler exits 0');
}
cleanup();
h.finish();
