// server_common.mjs - what the server tests share: starting `parallax serve`
// on a free port (the port is read from its "serving ... on http://HOST:PORT"
// log line), stopping it with SIGTERM and checking it exits 0 (under ASan a
// leak makes that fail), raw HTTP helpers, /metrics parsing, and a tiny
// check/report harness (one line per failure, a summary, exit code 1 on
// failure, 77 when something the test needs is missing).
import { spawn } from 'node:child_process';
import http from 'node:http';

export function parseArgs(argv, defaults = {}) {
  const o = { ...defaults };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    o[k] = argv[i + 1] !== undefined && !argv[i + 1].startsWith('--') ? argv[++i] : true;
  }
  return o;
}

export function harness(name) {
  const h = { passed: 0, failed: 0 };
  h.check = (cond, what, detail) => {
    if (cond) h.passed++;
    else {
      h.failed++;
      console.error(`FAIL ${name}: ${what}${detail !== undefined ? ` (${typeof detail === 'string' ? detail : JSON.stringify(detail)})` : ''}`);
    }
    return cond;
  };
  h.finish = () => {
    console.log(`${name}: ${h.passed} passed, ${h.failed} failed`);
    process.exit(h.failed ? 1 : 0);
  };
  return h;
}

export async function skipUnless(cond, why) {
  if (!cond) {
    console.log(`SKIP: ${why}`);
    process.exit(77);
  }
}

// Starts `parallax serve ARGS --port 0`; resolves {url, port, proc, log(), stop()}.
export function startServer(parallax, args, { env = {}, timeoutMs = 120000, quiet = true } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(parallax, ['serve', ...args, '--port', '0'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    let done = false;
    const timer = setTimeout(() => { if (!done) { done = true; proc.kill('SIGKILL'); reject(new Error(`server did not start:\n${log}`)); } }, timeoutMs);
    const onData = (d) => {
      log += d.toString();
      if (!quiet) process.stderr.write(d);
      const m = /serving .* on http:\/\/([^\s]+):(\d+)/.exec(log);
      if (m && !done) {
        done = true;
        clearTimeout(timer);
        const port = Number(m[2]);
        const exited = new Promise((ok) => proc.on('exit', (code, sig) => ok({ code, sig })));
        resolve({
          url: `http://127.0.0.1:${port}`, port, proc, log: () => log, exited,
          stop: async (ms = 60000) => {
            proc.kill('SIGTERM');
            const t = setTimeout(() => proc.kill('SIGKILL'), ms);
            const r = await exited;
            clearTimeout(t);
            return r;
          },
        });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => { if (!done) { done = true; clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${log}`)); } });
  });
}

// Raw HTTP request: resolves {status, headers, body (string)}; body may be a Buffer.
export function request(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export async function postJson(url, obj, headers = {}) {
  const body = typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj);
  const r = await request(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
  try { r.json = JSON.parse(r.body); } catch { r.json = null; }
  return r;
}

// SSE: the data: payloads in order (strings).
export function sseEvents(body) {
  return body.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => b.slice(6));
}

// Prometheus text -> {name or name{labels}: number}
export async function metrics(url) {
  const r = await request(`${url}/metrics`);
  const out = {};
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

// Waits until /metrics shows no request running or waiting and no KV block used.
export async function waitIdle(url, ms = 20000) {
  const t0 = Date.now();
  let m;
  while (Date.now() - t0 < ms) {
    m = await metrics(url);
    if (m.parallax_requests_running === 0 && m.parallax_requests_waiting === 0 && m.parallax_kv_blocks_used === 0 &&
        m.parallax_requests_in_flight === 0) return m;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  return m;
}

export function isErrorBody(j) {
  const e = j && j.error;
  return !!e && typeof e.message === 'string' && e.message.length > 0 && typeof e.type === 'string' &&
    'param' in e && 'code' in e;
}
