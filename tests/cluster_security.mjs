// cluster_security.mjs - only nodes with the join secret get in, and nobody
// on the wire reads prompts:
//   - a worker whose token has the right cluster key but a wrong secret is
//     refused: it exits 1 saying its credentials were refused, the
//     scheduler logs the refused CURVE key, the cluster never lists it
//   - a token with a wrong cluster key (an impostor scheduler's) fails the
//     handshake; a missing token is a usage error
//   - capture: every connection of a 2-stage cluster (scheduler <-> workers,
//     worker <-> worker) goes through TCP relays that record every byte; the
//     prompt's text, its token ids (as protobuf packs them, and as raw
//     int32), and the generated text never appear in the capture, while the
//     answer through the relays equals parallax serve's
//   node tests/cluster_security.mjs --parallax BUILD/parallax --model AIDREAMS
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { harness, parseArgs, startServer } from './server_common.mjs';
import { startScheduler, startWorker, waitStatus, status, greedy, sleep } from './cluster_common.mjs';

const o = parseArgs(process.argv, { work: '/tmp/px-cluster-security' });
const h = harness('cluster_security');
fs.mkdirSync(o.work, { recursive: true });
const state = path.join(o.work, 'state');

function b64urlDecode(s) { return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64'); }
function b64urlEncode(b) { return b.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''); }
function tokenWith(token, mutate) {
  const raw = b64urlDecode(token.slice(4));
  mutate(raw);
  return `px1_${b64urlEncode(raw)}`;
}

// A TCP relay: listens on a free port, forwards to target, records both directions.
function relay(targetPort) {
  const r = { bytes: [], count: 0 };
  r.server = net.createServer((c) => {
    const up = net.connect(targetPort, '127.0.0.1');
    c.on('data', (d) => { r.bytes.push(Buffer.from(d)); r.count += d.length; up.write(d); });
    up.on('data', (d) => { r.bytes.push(Buffer.from(d)); r.count += d.length; c.write(d); });
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
  });
  return new Promise((ok) => r.server.listen(0, '127.0.0.1', () => { r.port = r.server.address().port; ok(r); }));
}
function freePort() {
  return new Promise((ok) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => ok(p)); }); });
}
function varint(n) {
  const out = [];
  while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7; }
  out.push(n);
  return out;
}

// ---- refusals ----
{
  const sched = await startScheduler(o.parallax, o.model, ['--no-beacon'], { stateDir: state });
  const wrongSecret = tokenWith(sched.token, (raw) => { raw[40] ^= 1; });
  const w = startWorker(o.parallax, sched, ['--node-id', 'intruder', '--join-timeout', '20'], { token: wrongSecret });
  const r = await w.exited;
  h.check(r.code === 1, 'a worker with a wrong join secret exits 1', { code: r.code, out: w.out });
  h.check(/refused this worker's credentials/.test(w.out), 'it says its credentials were refused', w.out);
  await sleep(200);
  h.check(/refused a CURVE connection from 127\.0\.0\.1 \(client key [0-9a-f]{8}\)/.test(sched.out), 'the scheduler logs the refusal', sched.out);
  const st = await status(sched.url);
  h.check(st.workers === 0 && st.nodes.length === 0, 'the intruder is not in the cluster', st.nodes);

  const wrongKey = tokenWith(sched.token, (raw) => { raw[3] ^= 0x40; });
  const w2 = startWorker(o.parallax, sched, ['--node-id', 'confused', '--join-timeout', '8'], { token: wrongKey });
  const r2 = await w2.exited;
  h.check(r2.code === 1, 'a token with another cluster key fails', { code: r2.code, out: w2.out });
  h.check(/handshake|no answer/.test(w2.out), 'it says the handshake failed or nobody answered', w2.out);

  let code = 0;
  try { execFileSync(o.parallax, ['join', '-s', `127.0.0.1:${sched.clusterPort}`], { stdio: 'pipe', env: { ...process.env, PARALLAX_JOIN_TOKEN: '' } }); } catch (e) { code = e.status; }
  h.check(code === 2, 'join without a token is a usage error', code);
  const good = startWorker(o.parallax, sched, ['--node-id', 'member', '-t', '1']);
  await waitStatus(sched.url, (s) => s.state === 'available', 'the real member');
  h.check((await good.stop()).code === 0, 'the real member exits 0');
  h.check((await sched.stop()).code === 0, 'scheduler exits 0');
}

// ---- capture ----
{
  const prompt = 'The secret password is swordfish';
  const ids = execFileSync(o.parallax, ['tokenize', '-m', o.model, prompt]).toString().trim().split(',').map(Number);
  const srv = await startServer(o.parallax, ['-m', o.model, '-t', '1']);
  const want = await greedy(srv.url, prompt, 32);
  await srv.stop();

  const sched = await startScheduler(o.parallax, o.model, ['--no-beacon', '--wire-dtype', 'f32'], { stateDir: state });
  const rs = await relay(sched.clusterPort); // scheduler <-> both workers
  const p1 = await freePort(), p2 = await freePort();
  const r1 = await relay(p1), r2 = await relay(p2); // into w1's and w2's data sockets
  const w1 = startWorker(o.parallax, sched, ['--start-layer', '0', '--end-layer', '2', '--node-id', 'w1', '-t', '1',
    '--data-port', `${p1}`, '--advertise', `127.0.0.1:${r1.port}`], { addr: `127.0.0.1:${rs.port}` });
  const w2 = startWorker(o.parallax, sched, ['--start-layer', '2', '--end-layer', '4', '--node-id', 'w2', '-t', '1',
    '--data-port', `${p2}`, '--advertise', `127.0.0.1:${r2.port}`], { addr: `127.0.0.1:${rs.port}` });
  await waitStatus(sched.url, (s) => s.state === 'available', 'the relayed 2-stage pipeline');
  const got = await greedy(sched.url, prompt, 32);
  h.check(got.text === want.text, 'the relayed cluster answers like parallax serve', { got: got.text, want: want.text });
  await sleep(300);
  const cap = Buffer.concat([...rs.bytes, ...r1.bytes, ...r2.bytes]);
  console.log(`cluster_security: captured ${rs.count} bytes scheduler<->workers, ${r1.count} into w1, ${r2.count} into w2`);
  h.check(rs.count > 1000 && r1.count > 100 && r2.count > 1000, 'traffic went through every relay', [rs.count, r1.count, r2.count]);
  const packed = Buffer.from(ids.flatMap(varint));
  const raw32 = Buffer.alloc(ids.length * 4);
  ids.forEach((v, i) => raw32.writeInt32LE(v, i * 4));
  const needles = { 'prompt text': Buffer.from(prompt), 'a word of it': Buffer.from('swordfish'),
    'token ids (protobuf packed)': packed, 'token ids (int32)': raw32, 'generated text': Buffer.from(want.text.slice(0, 12)) };
  for (const [what, n] of Object.entries(needles)) h.check(cap.indexOf(n) < 0, `the capture does not contain the ${what}`);
  h.check(cap.indexOf(Buffer.from('CURVE')) >= 0, 'the capture is CURVE (ZMTP greeting)');
  for (const w of [w1, w2]) h.check((await w.stop()).code === 0, 'worker exits 0');
  h.check((await sched.stop()).code === 0, 'scheduler exits 0');
  for (const r of [rs, r1, r2]) r.server.close();
}
h.finish();
