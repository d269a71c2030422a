// web_cluster.mjs - the Setup, Join and Cluster views in Debian's Chromium
// (npm playwright-core) on scripted cluster states: tests/fake_cluster.mjs
// answers /cluster/status[/stream] in the scheduler's format and relays
// everything else to a real `parallax serve` on aidreams-260k.
//
//   setup    a waiting cluster opens on Setup: model, layers, "0 of 2
//            joined", memory offered vs needed; the model list (sizes vs
//            the memory offered, an unusable model with its error); a typed
//            repo id; refusals (404, 409) shown plainly; nodes checked in the
//            page; Use this model POSTs /cluster/setup and moves to Join
//   join     the join command: the TOKEN placeholder (+ note) when
//            /cluster/join refuses the page, the real one (+ copy) when it
//            answers; nodes appearing as they join without a reload, joining
//            -> loading (progress bar, bytes) -> ready, the banner's
//            waiting / loading / ready states, then Next: chat
//   cluster  one bar per node over [0, L), pipelines, per-node latency, RTTs
//            and requests; a node that stops answering turns unresponsive,
//            then failed (kept, hatched) when the scheduler drops it; the
//            event log shows it leave and its requests re-routed; a new node
//            takes its layers and the pipeline is rebuilt
//   chat     the chat works through the same page (greedy answer = API)
// Screenshots of every screen at 1280x800 and 390x844 go to --out.
//
//   node tests/web_cluster.mjs --parallax build/parallax --model ../shared/models/aidreams-260k --out build/tests/out/web
import os from 'node:os';
import path from 'node:path';
import { parseArgs, harness, startServer, postJson } from './server_common.mjs';
import { DESKTOP, PHONE, sleep, loadChromium, launch, watch, shooter, overflow } from './web_common.mjs';
import { startFakeCluster, worker } from './fake_cluster.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const args = parseArgs(process.argv, {
  chromium: '/usr/bin/chromium',
  npm: path.join(here, '..', 'oracles', 'node_modules'),
  out: path.join(os.tmpdir(), 'parallax-web'),
});
const chromium = await loadChromium(args.chromium, args.npm);
const t = harness('web_cluster');
const snap = shooter(path.join(args.out, 'screenshots'));
const step = (s) => console.log(`-- ${s}`);

const srv = await startServer(args.parallax, ['-m', args.model, '--threads', '1']);
const fake = await startFakeCluster(srv.url, { intervalMs: 300, needed: 2 });
const st = fake.state;
st.model_bytes = 927832;
fake.models = [
  { id: '/models/aidreams-260k', name: 'aidreams-260k', path: '/models/aidreams-260k', source: 'model-dir', current: true, architecture: 'LlamaForCausalLM',
    layers: 4, hidden: 64, context_length: 128, bytes: 927832, bytes_estimated: false, usable: true },
  { id: 'org/big-model', name: 'org/big-model', path: '/hf/big-model', source: 'hf-cache', current: false, architecture: 'Qwen3ForCausalLM',
    layers: 36, hidden: 4096, context_length: 40960, bytes: 30e9, bytes_estimated: false, usable: true },
  { id: '/models/broken', name: 'broken', path: '/models/broken', source: 'model-dir', current: false, usable: false, error: 'unsupported architecture Foo' },
];
const browser = await launch(chromium, args.chromium, DESKTOP);
const { ctx, page } = browser;
const problems = [];
watch(page, problems);

/** Waits until fn() (in the page) is truthy; fails the check on timeout. */
async function until(what, fn, arg, ms = 5000) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms });
    return t.check(true, what);
  } catch {
    return t.check(false, what, 'timed out');
  }
}
const rowStatus = (id) => page.evaluate((x) => document.querySelector(`#cluster-body tr[data-node="${x}"]`)?.dataset.status ?? null, id);

async function both(name) {
  await page.evaluate(() => { window.scrollTo(0, 0); document.querySelector('main').scrollTop = 0; });
  await snap(page, `${name}-desktop`);
  await page.setViewportSize(PHONE);
  await sleep(350);
  t.check(await overflow(page) <= 0, `${name}: no horizontal scroll at 390 px`, await overflow(page));
  await snap(page, `${name}-phone`);
  await page.setViewportSize(DESKTOP);
}

try {
  step('setup');
  await page.goto(`${fake.url}/`);
  await page.waitForSelector('body.ready');
  t.check(await page.isVisible('#view-setup'), 'a waiting cluster opens on Setup');
  t.check(await page.isVisible('a[data-view="setup"]') && await page.isVisible('a[data-view="join"]'), 'Setup and Join are in the menu');
  t.check((await page.textContent('#nav-cluster')).trim() === 'Cluster', 'the cluster view is called Cluster');
  await until('the model card fills in', () => /aidreams-260k/.test(document.getElementById('setup-model-card')?.textContent ?? ''));
  const card = await page.textContent('#setup-model-card');
  t.check(/4 layers/.test(card) && /context 128 tokens/.test(card) && /0 of 2 nodes joined/.test(card), 'model, layers, context, 0 of 2 joined', card);
  t.check(/offered by joined nodes 0 B/.test(await page.textContent('#setup-mem-card')), 'memory offered is 0 before any join');
  await until('the model list fills in', () => document.querySelectorAll('#setup-models .model-item').length === 3);
  const items = await page.$$eval('#setup-models .model-item', (xs) => xs.map((x) => x.textContent));
  t.check(/aidreams-260k/.test(items[0]) && /current/.test(items[0]) && /4 layers/.test(items[0]) && /needs 906 KiB/.test(items[0]) &&
    /906 KiB more than the joined nodes offer/.test(items[0]), 'a listed model: layers, memory needed vs offered', items[0]);
  t.check(/big-model/.test(items[1]) && /Hugging Face cache/.test(items[1]) && /needs 27\.9 GiB/.test(items[1]), 'a cache entry with its size', items[1]);
  t.check(/broken/.test(items[2]) && /cannot be served: unsupported architecture Foo/.test(items[2]) &&
    await page.isDisabled('#setup-models .model-item[data-path="/models/broken"] input'), 'an unusable model is shown with its error, not selectable', items[2]);
  t.check(await page.isChecked('#setup-models input[value="/models/aidreams-260k"]'), 'the current model is preselected');
  await page.click('#setup-models .model-item[data-path="/hf/big-model"]');
  t.check(/needed 27\.9 GiB/.test(await page.textContent('#setup-mem-card')), 'the memory card follows the chosen model',
    await page.textContent('#setup-mem-card'));
  await page.fill('#setup-model', 'Qwen/Qwen3-0.6B');
  await page.fill('#setup-nodes', '3');
  await sleep(700); // a snapshot or two arrive while typing: the form keeps its values
  t.check((await page.inputValue('#setup-model')) === 'Qwen/Qwen3-0.6B' && await page.isChecked('#setup-choice-other'),
    'typing a repo id selects "another model" and survives status updates');
  fake.setupReply = { status: 404, body: { error: { message: "model 'Qwen/Qwen3-0.6B' not found: the hub is offline", type: 'invalid_request_error', param: null, code: 'model_not_found' } } };
  await page.click('#setup-use');
  await until('a refused model is reported plainly', () => /HTTP 404 · model_not_found: model 'Qwen\/Qwen3-0\.6B' not found/.test(document.getElementById('setup-result')?.textContent ?? ''));
  t.check(fake.setups.at(-1)?.model === 'Qwen/Qwen3-0.6B' && fake.setups.at(-1)?.nodes === 3, 'the typed model and node count were sent', fake.setups.at(-1));
  t.check(await page.isVisible('#view-setup') && await page.getAttribute('#setup-result', 'role') === 'alert', 'the page stays on Setup with an alert');
  fake.setupReply = { status: 409, body: { error: { message: '1 request is in flight', type: 'invalid_request_error', param: null, code: 'busy' } } };
  await page.click('#setup-use');
  await until('a busy scheduler is reported with what to do', () => /409 · busy.*Wait for the answers in progress/.test(document.getElementById('setup-result')?.textContent ?? ''));
  const sent = fake.setups.length;
  await page.fill('#setup-nodes', '0');
  await page.click('#setup-use');
  await until('nodes outside 1..64 are caught in the page', () => /whole number from 1 to 64/.test(document.getElementById('setup-result')?.textContent ?? ''));
  t.check(fake.setups.length === sent, 'and not sent');
  await page.fill('#setup-nodes', '2');
  await page.click('#setup-models .model-item[data-path="/models/aidreams-260k"]');
  await both('setup');
  fake.setupReply = null;
  await page.click('#setup-use');
  step('join');
  await until('Use this model moves to Join', () => location.hash === '#/join' && !document.getElementById('view-join').hidden);
  t.check(fake.setups.at(-1)?.model === '/models/aidreams-260k' && fake.setups.at(-1)?.nodes === 2, 'it posted the chosen path and 2 nodes', fake.setups.at(-1));
  await page.waitForSelector('#join-cmd');
  const cmd = await page.textContent('#join-cmd');
  t.check(cmd === 'parallax join -s 127.0.0.1:7000 --token TOKEN', 'the join command names this host and the cluster port', cmd);
  t.check(await page.isVisible('#join-token-note') && /parallax run/.test(await page.textContent('#join-token-note')),
    'the TOKEN placeholder is explained (the join endpoint refused this page)');
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: fake.url });
  await page.click('#join-copy');
  t.check(await page.evaluate(() => navigator.clipboard.readText()) === cmd, 'Copy puts the join command on the clipboard');
  t.check(/Waiting for nodes/.test(await page.textContent('#join-state')), 'the banner says waiting');
  await page.evaluate(() => { window.__noReload = true; });
  await snap(page, 'join-empty-desktop');

  st.nodes.push(worker('alpha-1a2b', { hostname: 'alpha', memory: 6e9, cores: 8 }));
  await until('a joining node appears without a reload', () => document.querySelector('#join-body tr[data-node="alpha-1a2b"]')?.dataset.status === 'joining');
  Object.assign(st.nodes[0], { state: 'loading', start: 0, end: 2, load_done: 412000, load_total: 1030000, progress: 0.4 });
  st.nodes.push(worker('beta-3c4d', { hostname: 'beta', memory: 4e9, cores: 4, state: 'loading', start: 2, end: 4 }));
  await until('a second node appears, both loading', () => document.querySelectorAll('#join-body tr[data-status="loading"]').length === 2);
  t.check(/Loading aidreams-260k/.test(await page.textContent('#join-state')) && /2 of 2 joined, 0 ready, 2 loading/.test(await page.textContent('#join-state')),
    'the banner says loading', await page.textContent('#join-state'));
  await until('a loading node shows its progress', () => document.querySelector('#join-body tr[data-node="alpha-1a2b"] [role="progressbar"]')?.getAttribute('aria-valuenow') === '40');
  t.check(/40 % · 402 KiB of 1006 KiB/.test(await page.textContent('#join-body tr[data-node="alpha-1a2b"] .progress-text')), 'with the bytes loaded',
    await page.textContent('#join-body tr[data-node="alpha-1a2b"]'));
  const row = await page.textContent('#join-body tr[data-node="alpha-1a2b"]');
  t.check(/alpha/.test(row) && /\[0, 2\)/.test(row) && /5\.6 GiB/.test(row) && /8 cores/.test(row), 'the row shows name, layers, memory, hardware', row);
  await both('join-loading');
  Object.assign(st.nodes[0], { state: 'serving', latencyMs: 0.5 });
  Object.assign(st.nodes[1], { state: 'serving' });
  st.nodes[0].layer_latency_ms = 0.5;
  st.nodes[1].layer_latency_ms = 0.8;
  st.nodes[0].rtt_ms = { 'beta-3c4d': 1.2 };
  st.nodes[1].rtt_ms = { 'alpha-1a2b': 1.3 };
  st.pipelines = [[{ node: 'alpha-1a2b', start: 0, end: 2 }, { node: 'beta-3c4d', start: 2, end: 4 }]];
  st.state = 'available';
  await until('the banner says ready', () => /cluster is ready/.test(document.getElementById('join-state')?.textContent ?? ''));
  t.check(await page.isVisible('#join-next'), 'Next: chat appears when ready');
  // a trusted page (loopback, or the API key) gets the real command: reopen Join
  fake.joinReply = { status: 200, body: { command: 'parallax join -s 10.1.2.3:7000 --token px1_secret', token: 'px1_secret', address: '10.1.2.3', cluster_port: 7000, auto_command: 'parallax join -s auto --token px1_secret' } };
  await page.click('a[data-view="setup"]');
  await page.click('a[data-view="join"]');
  await until('the real command replaces the placeholder', () => document.getElementById('join-cmd')?.textContent === 'parallax join -s 10.1.2.3:7000 --token px1_secret');
  t.check(await page.isHidden('#join-token-note') && (await page.textContent('#join-auto-cmd')) === 'parallax join -s auto --token px1_secret',
    'no placeholder note; the LAN beacon command too');
  await page.click('#join-copy');
  t.check(await page.evaluate(() => navigator.clipboard.readText()) === 'parallax join -s 10.1.2.3:7000 --token px1_secret', 'Copy copies the real command');
  t.check(await page.evaluate(() => window.__noReload === true), 'all of it without a reload');
  await both('join-ready');

  step('cluster');
  for (const n of st.nodes) { n.inflight = 3; n.load = 3; }
  st.requests.running = 3;
  await sleep(700);
  await page.click('a[data-view="cluster"]');
  await until('requests in flight are shown', () => document.getElementById('c-reqs')?.textContent.trim() === '3');
  await until('the allocation shows both slices', () => {
    const bars = [...document.querySelectorAll('.alloc-bar')].map((b) => b.textContent);
    return bars.length === 2 && bars[0].startsWith('0–2') && bars[1].startsWith('2–4');
  });
  const pipe = await page.textContent('.pipeline');
  t.check(/alpha-1a2b \[0, 2\)/.test(pipe) && /beta-3c4d \[2, 4\)/.test(pipe), 'the pipeline alpha -> beta is shown', pipe);
  const alphaRow = await page.textContent('#cluster-body tr[data-node="alpha-1a2b"]');
  t.check(/500 µs/.test(alphaRow) && /beta-3c4d 1\.20 ms/.test(alphaRow),
    'layer latency and RTTs are shown', alphaRow);
  t.check(await page.evaluate(() => document.querySelector('#cluster-body tr[data-node="alpha-1a2b"] td:nth-child(6)')?.textContent) === '3',
    'the node\'s requests in flight are shown');
  const bg = await page.evaluate(() => getComputedStyle(document.querySelector('.alloc-bar')).backgroundColor);
  t.check(/^rgb/.test(bg) && bg !== 'rgba(0, 0, 0, 0)', 'bars are coloured by load', bg);
  await both('cluster');

  step('a node dies');
  st.nodes[1].last_seen_s = 2.4;
  await until('a silent node turns unresponsive', () => document.querySelector('#cluster-body tr[data-node="beta-3c4d"]')?.dataset.status === 'unresponsive');
  st.nodes.splice(1, 1);
  st.pipelines = [];
  st.state = 'waiting';
  st.nodes[0].inflight = 0;
  st.requests.reroutes = 3;
  st.requests.running = 0;
  st.requests.waiting = 3;
  await until('the dropped node is kept and marked failed', () => document.querySelector('#cluster-body tr[data-node="beta-3c4d"]')?.dataset.status === 'failed');
  t.check(await page.evaluate(() => document.querySelectorAll('.alloc-bar.failed').length === 1), 'its bar is drawn failed');
  const ev = await page.textContent('#events');
  t.check(/beta-3c4d left the cluster/.test(ev) && /3 requests re-routed/.test(ev), 'the event log shows the failure and the moved requests', ev);
  t.check((await page.textContent('#c-reroutes')).trim() === '3', 're-routed count shown');
  await both('cluster-failed');

  step('a replacement takes over');
  st.nodes.push(worker('gamma-5e6f', { hostname: 'gamma', state: 'serving', start: 2, end: 4, inflight: 3, load: 3, latencyMs: 0.6 }));
  st.nodes[0].inflight = 3;
  st.pipelines = [[{ node: 'alpha-1a2b', start: 0, end: 2 }, { node: 'gamma-5e6f', start: 2, end: 4 }]];
  st.state = 'available';
  st.requests.running = 3;
  st.requests.waiting = 0;
  await until('the pipeline is rebuilt through the new node', () => /gamma-5e6f \[2, 4\)/.test(document.querySelector('.pipeline')?.textContent ?? ''));
  t.check(/pipelines: alpha-1a2b→gamma-5e6f/.test(await page.textContent('#events')), 'the event log shows the new pipeline');
  t.check(await rowStatus('beta-3c4d') === 'failed' && await rowStatus('gamma-5e6f') === 'ready', 'failed and new node side by side');
  await both('cluster-recovered');

  step('chat through the cluster page');
  await page.click('a[data-view="chat"]');
  await page.click('#settings-btn');
  await page.fill('#set-temperature', '0');
  await page.click('#settings-close');
  await page.fill('#input', 'I dream of');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => {
    const a = document.querySelector('.msg.assistant');
    return a && a.getAttribute('aria-busy') === 'false';
  }, null, { timeout: 30000 });
  const got = await page.evaluate(() => JSON.parse(localStorage.getItem('parallax.conversations.v1'))[0].messages[1].content);
  const want = (await postJson(`${srv.url}/v1/completions`, { prompt: 'I dream of', temperature: 0 })).json.choices[0].text;
  t.check(got === want, 'the chat answer equals the API greedy answer', { got, want });
  await both('cluster-chat');

  t.check(problems.length === 0, 'no page error, CSP violation or unexpected console error', problems);
} catch (e) {
  t.check(false, 'the browser run completed', e.stack ?? String(e));
  await snap(page, 'cluster-failure').catch(() => {});
} finally {
  await browser.close();
  fake.close();
  const r = await srv.stop();
  t.check(r.code === 0, 'server exits 0 on SIGTERM', r);
}
t.finish();
