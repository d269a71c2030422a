// server_api.mjs - `parallax serve` on aidreams-260k driven by the official
// OpenAI Node SDK (npm openai, pinned in oracles/package.json) and by curl.
//
//   node tests/server_api.mjs --parallax BUILD/parallax --model AIDREAMS_DIR
//
// Checked: /health, /metrics, models list/retrieve; temperature-0 completions
// of the five reference prompts equal `parallax generate` (prompt + text);
// stream deltas concatenate to the non-stream text, usage with
// stream_options.include_usage, [DONE] last; 16 concurrent requests give what
// they give alone; stop strings (never streamed past); logprobs; seeds;
// prefix-cache hits in usage.prompt_tokens_details.cached_tokens; every bad
// input gets the right 4xx with an OpenAI error body and the server keeps
// serving; --api-key; client disconnects free the KV cache; SIGTERM exits 0.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { harness, isErrorBody, metrics, parseArgs, postJson, request, sseEvents, startServer, waitIdle } from './server_common.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const o = parseArgs(process.argv, { threads: '1' });
const sdkPath = path.join(root, 'oracles/node_modules/openai/index.mjs');
if (!fs.existsSync(sdkPath)) { console.log('SKIP: npm openai is not installed (bash scripts/setup.sh)'); process.exit(77); }
if (!fs.existsSync(path.join(o.model, 'config.json'))) { console.log(`SKIP: no model at ${o.model}`); process.exit(77); }
const { default: OpenAI } = await import(pathToFileURL(sdkPath).href);
const h = harness('server_api');
const ref = JSON.parse(fs.readFileSync(path.join(o.model, 'reference/greedy_32.json'), 'utf8')).results;
const NAME = 'aidreams';

const srv = await startServer(o.parallax, ['-m', o.model, '--served-model-name', NAME, '-t', o.threads, '--kv-cache-memory', '32M']);
const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0 });

function generate(prompt) {
  return execFileSync(o.parallax, ['generate', '-m', o.model, '-p', prompt, '-n', '32', '--temp', '0', '--ignore-eos', '-t', o.threads],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).replace(/\n+$/, '');
}

async function testBasics() {
  const hl = await request(`${srv.url}/health`);
  h.check(hl.status === 200 && JSON.parse(hl.body).status === 'ok', '/health', hl.body);
  const m = await request(`${srv.url}/metrics`);
  h.check(m.status === 200 && /^text\/plain/.test(m.headers['content-type']) && m.body.includes('parallax_kv_blocks_total'), '/metrics');
  const list = await client.models.list();
  h.check(list.data.length === 1 && list.data[0].id === NAME && list.data[0].object === 'model', 'models.list', list.data);
  const one = await client.models.retrieve(NAME);
  h.check(one.id === NAME, 'models.retrieve');
  try { await client.models.retrieve('nope'); h.check(false, 'models.retrieve of an unknown model throws'); }
  catch (e) { h.check(e instanceof OpenAI.NotFoundError && e.status === 404, 'unknown model -> NotFoundError', String(e)); }
}

async function complete(prompt, extra = {}) {
  return client.completions.create({ model: NAME, prompt, max_tokens: 32, temperature: 0, ignore_eos: true, ...extra });
}

async function streamText(params) {
  const stream = await client.completions.create({ ...params, stream: true });
  let text = '', finish = null, usage = null, chunks = 0;
  for await (const c of stream) {
    chunks++;
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) { text += ch.text; if (ch.finish_reason) finish = ch.finish_reason; }
  }
  return { text, finish, usage, chunks };
}

async function testReference() {
  for (const r of ref) {
    const got = await complete(r.prompt);
    const want = generate(r.prompt);
    h.check(r.prompt + got.choices[0].text === want, `temperature 0 equals parallax generate: ${JSON.stringify(r.prompt)}`,
      { server: got.choices[0].text, generate: want });
    h.check(got.choices[0].finish_reason === 'length' && got.usage.completion_tokens === 32 &&
      got.usage.prompt_tokens === r.prompt_ids.length && got.usage.total_tokens === 32 + r.prompt_ids.length, 'usage of a full completion', got.usage);
    const params = { model: NAME, prompt: r.prompt, max_tokens: 32, temperature: 0, ignore_eos: true, stream_options: { include_usage: true } };
    const s = await streamText(params);
    h.check(s.text === got.choices[0].text && s.finish === 'length', 'stream deltas concatenate to the non-stream text', { s: s.text, n: got.choices[0].text });
    h.check(s.usage && s.usage.completion_tokens === 32 && s.usage.prompt_tokens === got.usage.prompt_tokens, 'stream usage', s.usage);
  }
  // prompt 3 reaches EOS: without ignore_eos it stops there
  const eos = await client.completions.create({ model: NAME, prompt: ref[3].prompt, max_tokens: 32, temperature: 0 });
  h.check(eos.choices[0].finish_reason === 'stop' && eos.usage.completion_tokens < 32, 'EOS ends with finish_reason stop', eos.usage);
  const ids = await client.completions.create({ model: NAME, prompt: ref[0].prompt_ids, max_tokens: 32, temperature: 0, ignore_eos: true });
  h.check(ids.choices[0].text === (await complete(ref[0].prompt)).choices[0].text, 'a prompt of token ids gives the same text');
  const echo = await complete(ref[0].prompt, { echo: true, max_tokens: 4 });
  h.check(echo.choices[0].text.startsWith(ref[0].prompt), 'echo prepends the prompt', echo.choices[0].text);
}

function curl(args) {
  return new Promise((ok) => execFile('curl', ['-sS', ...args], { encoding: 'utf8' }, (err, stdout) => ok(err ? '' : stdout)));
}

async function testCurl() {
  const body = JSON.stringify({ model: NAME, prompt: 'I dream of', max_tokens: 8, temperature: 0, stream: true });
  const out = await curl(['-N', '-H', 'Content-Type: application/json', '-d', body, `${srv.url}/v1/completions`]);
  const ev = sseEvents(out);
  h.check(ev.length >= 3 && ev[ev.length - 1] === '[DONE]' && out.endsWith('data: [DONE]\n\n'), 'curl: SSE ends with data: [DONE]', out.slice(-200));
  const text = ev.slice(0, -1).map((e) => JSON.parse(e).choices.map((c) => c.text).join('')).join('');
  const plain = JSON.parse(await curl(['-H', 'Content-Type: application/json', '-d', body.replace('"stream":true', '"stream":false'), `${srv.url}/v1/completions`]));
  h.check(plain.choices[0].text === text, 'curl: stream and non-stream agree', { text, plain: plain.choices[0].text });
  const err = await curl(['-w', '\n%{http_code}', '-d', '{"prompt":', `${srv.url}/v1/completions`]);
  h.check(err.endsWith('\n400') && isErrorBody(JSON.parse(err.split('\n')[0])), 'curl: invalid JSON -> 400 + error body', err);
}

async function testConcurrent() {
  const words = ['dream', 'data', 'silence', 'echo', 'neural', 'light', 'whisper', 'code'];
  const prompts = Array.from({ length: 16 }, (_, i) => `${words[i % 8]} ${words[(i * 3 + 1) % 8]} of ${i}`);
  const alone = [];
  for (const p of prompts) alone.push((await complete(p, { max_tokens: 24 })).choices[0].text);
  const together = await Promise.all(prompts.map((p) => complete(p, { max_tokens: 24 })));
  const same = together.every((r, i) => r.choices[0].text === alone[i]);
  h.check(same, '16 concurrent requests produce what they produce alone', together.map((r, i) => [r.choices[0].text, alone[i]]).filter(([a, b]) => a !== b));
}

async function testStops() {
  const full = (await complete(ref[0].prompt)).choices[0].text;
  for (const stop of [full.slice(12, 17), full.slice(5, 6), [full.slice(20, 24), full.slice(9, 13)]]) {
    const stops = [].concat(stop);
    const cut = Math.min(...stops.map((s) => full.indexOf(s)));
    const r = await complete(ref[0].prompt, { stop });
    h.check(r.choices[0].text === full.slice(0, cut) && r.choices[0].finish_reason === 'stop', `stop ${JSON.stringify(stop)}`,
      { got: r.choices[0].text, want: full.slice(0, cut) });
    const stream = await client.completions.create({ model: NAME, prompt: ref[0].prompt, max_tokens: 32, temperature: 0, ignore_eos: true, stop, stream: true });
    let text = '', leaked = false;
    for await (const c of stream) { text += c.choices[0]?.text ?? ''; if (stops.some((s) => text.includes(s))) leaked = true; }
    h.check(text === full.slice(0, cut) && !leaked, `stream with stop ${JSON.stringify(stop)} never passes it`, { text });
  }
}

async function testLogprobsAndSampling() {
  const r = await complete(ref[1].prompt, { logprobs: 3, max_tokens: 8 });
  const lp = r.choices[0].logprobs;
  h.check(lp && lp.tokens.length === 8 && lp.token_logprobs.length === 8 && lp.top_logprobs.length === 8 && lp.text_offset.length === 8,
    'completions logprobs has one entry per token', lp);
  const greedyOk = lp && lp.token_logprobs.every((v, i) => v <= 0 && Math.abs(v - Math.max(...Object.values(lp.top_logprobs[i]))) < 1e-4 &&
    Object.keys(lp.top_logprobs[i]).length <= 3);
  h.check(greedyOk, 'at temperature 0 the chosen token has the top logprob', lp);
  const a = await complete(ref[2].prompt, { temperature: 1, seed: 1234, max_tokens: 20 });
  const b = await complete(ref[2].prompt, { temperature: 1, seed: 1234, max_tokens: 20 });
  h.check(a.choices[0].text === b.choices[0].text, 'same seed, same text');
  const k1 = await complete(ref[2].prompt, { temperature: 0.9, top_k: 1, seed: 5 });
  h.check(k1.choices[0].text === (await complete(ref[2].prompt)).choices[0].text, 'top_k 1 is greedy');
}

async function testPrefixCache() {
  const p = 'Neural echoes ripple through silent layers of data, and I dream of light between the weights, softly';
  const first = await complete(p, { max_tokens: 4 });
  const second = await complete(p, { max_tokens: 4 });
  const cached = second.usage.prompt_tokens_details?.cached_tokens ?? 0;
  h.check(first.usage.prompt_tokens >= 40 && cached >= 32, 'a repeated prompt reports cached tokens', { first: first.usage, second: second.usage });
}

const CASES = [
  ['invalid JSON', '/v1/completions', '{"prompt":', 400],
  ['not an object', '/v1/completions', '[1,2]', 400],
  ['wrong type: temperature', '/v1/completions', { prompt: 'x', temperature: 'hot' }, 400, 'temperature'],
  ['wrong type: stream', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], stream: 'yes' }, 400, 'stream'],
  ['wrong type: max_tokens', '/v1/completions', { prompt: 'x', max_tokens: '5' }, 400, 'max_tokens'],
  ['missing prompt', '/v1/completions', { model: NAME }, 400, 'prompt'],
  ['missing messages', '/v1/chat/completions', { model: NAME }, 400, 'messages'],
  ['empty messages', '/v1/chat/completions', { model: NAME, messages: [] }, 400, 'messages'],
  ['bad message', '/v1/chat/completions', { messages: [{ content: 'no role' }] }, 400, 'messages'],
  ['unknown model', '/v1/completions', { model: 'gpt-4o', prompt: 'x' }, 404, 'model'],
  ['negative max_tokens', '/v1/completions', { prompt: 'x', max_tokens: -5 }, 400, 'max_tokens'],
  ['huge max_tokens', '/v1/completions', { prompt: 'x', max_tokens: 1e9 }, 400, 'max_tokens'],
  ['max_tokens past the context', '/v1/completions', { prompt: 'x', max_tokens: 127 }, 400, 'max_tokens'],
  ['prompt longer than the context', '/v1/completions', { prompt: 'dream '.repeat(200) }, 400, 'prompt'],
  ['n = 2', '/v1/completions', { prompt: 'x', n: 2 }, 400, 'n'],
  ['chat without a template', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] }, 400, 'messages'],
  ['10 MB body', '/v1/completions', JSON.stringify({ prompt: 'x'.repeat(10 << 20) }), 413],
  ['invalid UTF-8', '/v1/completions', Buffer.concat([Buffer.from('{"prompt":"caf'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), 400],
  ['unknown route', '/v1/engines', '{}', 404],
];

async function testErrors() {
  for (const [what, route, body, status, param] of CASES) {
    const r = await postJson(`${srv.url}${route}`, body);
    h.check(r.status === status && isErrorBody(r.json) && (!param || r.json.error.param === param), `${what} -> ${status}`,
      { status: r.status, body: r.body.slice(0, 300) });
  }
  const get = await request(`${srv.url}/v1/completions`);
  h.check(get.status === 405 && isErrorBody(JSON.parse(get.body)), 'GET on a POST route -> 405');
  try { await client.completions.create({ model: NAME, prompt: 'x', max_tokens: -5 }); h.check(false, 'SDK: bad max_tokens throws'); }
  catch (e) { h.check(e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'max_tokens', 'SDK: BadRequestError', String(e)); }
  try { await client.chat.completions.create({ model: NAME, messages: [{ role: 'user', content: 'hi' }] }); h.check(false, 'SDK: chat without template throws'); }
  catch (e) { h.check(e instanceof OpenAI.BadRequestError && e.code === 'chat_template_missing', 'SDK: chat without a template is a clear 400', String(e)); }
  const after = await complete('I dream of', { max_tokens: 4 });
  h.check(after.choices[0].text.length > 0, 'the server keeps serving after bad input');
}

// Opens a streaming request and destroys the socket after `afterBytes` bytes of the body.
function disconnectingStream(body, afterBytes) {
  return new Promise((ok) => {
    const req = http.request(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
      let n = 0;
      res.on('data', (d) => { n += d.length; if (n >= afterBytes) { req.destroy(); ok(n); } });
      res.on('end', () => ok(n));
    });
    req.on('error', () => ok(-1));
    req.end(JSON.stringify(body));
  });
}

async function testDisconnects() {
  const before = await metrics(srv.url);
  const streams = Array.from({ length: 12 }, (_, i) => disconnectingStream({ model: NAME, prompt: `I dream of ${i}`, max_tokens: 110, temperature: 0, ignore_eos: true, stream: true }, 1));
  await Promise.all(streams);
  const nonStream = new Promise((ok) => {
    const req = http.request(`${srv.url}/v1/completions`, { method: 'POST' }, () => ok());
    req.on('error', () => ok());
    req.end(JSON.stringify({ prompt: 'I dream of', max_tokens: 110, ignore_eos: true }));
    setTimeout(() => { req.destroy(); ok(); }, 5);
  });
  await nonStream;
  const m = await waitIdle(srv.url);
  h.check(m.parallax_kv_blocks_used === 0 && m.parallax_requests_running === 0 && m.parallax_requests_in_flight === 0,
    'after disconnects no request runs and no KV block is held', m);
  const aborted = m['parallax_requests_finished_total{reason="abort"}'] - before['parallax_requests_finished_total{reason="abort"}'];
  h.check(aborted >= 1, 'disconnects abort their requests', aborted);
}

async function testMetrics() {
  const m = await waitIdle(srv.url);
  h.check(m.parallax_kv_blocks_used === 0 && m.parallax_kv_blocks_free === m.parallax_kv_blocks_total, 'all KV blocks free at the end', m);
  h.check(m['parallax_http_requests_total{endpoint="completions",code="200"}'] > 20, 'requests counted by endpoint and code');
  h.check(m['parallax_http_requests_total{endpoint="completions",code="413"}'] >= 1, '413 counted');
  h.check(m.parallax_time_to_first_token_seconds_count > 20 && m.parallax_inter_token_latency_seconds_count > 100, 'TTFT and ITL histograms filled');
  h.check(m.parallax_prefix_cache_hit_rate > 0 && m.parallax_generation_tokens_total > 100, 'prefix hit rate and token counters');
}

async function testApiKey() {
  const keyed = await startServer(o.parallax, ['-m', o.model, '--served-model-name', NAME, '-t', o.threads, '--kv-cache-memory', '8M', '--api-key', 'sekrit', '--max-requests', '2']);
  const none = await postJson(`${keyed.url}/v1/completions`, { prompt: 'x', max_tokens: 2 });
  h.check(none.status === 401 && isErrorBody(none.json) && none.json.error.code === 'invalid_api_key', 'no key -> 401', none.body);
  const wrong = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
  try { await wrong.completions.create({ model: NAME, prompt: 'x', max_tokens: 2 }); h.check(false, 'wrong key throws'); }
  catch (e) { h.check(e instanceof OpenAI.AuthenticationError && e.status === 401, 'wrong key -> AuthenticationError', String(e)); }
  const right = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'sekrit', maxRetries: 0 });
  const r = await right.completions.create({ model: NAME, prompt: 'I dream of', max_tokens: 4, temperature: 0 });
  h.check(r.choices[0].text.length > 0, 'the right key works');
  h.check((await request(`${keyed.url}/health`)).status === 200, '/health needs no key');
  // --max-requests 2: a burst of 10 long generations gets some 429s, the rest complete
  const burst = await Promise.all(Array.from({ length: 10 }, (_, i) => postJson(`${keyed.url}/v1/completions`,
    { prompt: `I dream of ${i}`, max_tokens: 110, ignore_eos: true }, { Authorization: 'Bearer sekrit' })));
  const busy = burst.filter((r) => r.status === 429);
  h.check(busy.length >= 1 && busy.every((r) => isErrorBody(r.json)) && burst.every((r) => r.status === 200 || r.status === 429),
    'over --max-requests -> 429 with an error body', burst.map((r) => r.status));
  const st = await keyed.stop();
  h.check(st.code === 0, 'keyed server exits 0', st);
}

try {
  await testBasics();
  await testReference();
  await testCurl();
  await testConcurrent();
  await testStops();
  await testLogprobsAndSampling();
  await testPrefixCache();
  await testErrors();
  await testDisconnects();
  await testMetrics();
  await testApiKey();
} catch (e) {
  h.check(false, 'unexpected exception', e.stack);
}
const st = await srv.stop();
h.check(st.code === 0, 'SIGTERM: the server exits 0', { ...st, log: srv.log().slice(-2000) });
h.finish();
